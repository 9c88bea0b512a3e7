"""Where fault-around turns from saving to costing, and what a fault and a mapped page cost.

Analyses of a run's DataFrame (`faultbench.load`), each returning dataclasses whose
`to_dict()` is plain JSON, one module per reason to change:

- `crossover.break_even(df)`: per backing and contrast (fault-around on vs off), the stride,
  and pages touched per fault-around window, at which the time per touched page with
  fault-around on equals the time with it off, with a bootstrap interval over rounds.
- `costmodel.cost_models(df)`: touch_ns = a*faults + b*pages_mapped + c*pages_touched.
- `floor`: the populate rows (the range made present before the timed loop).
- `render`: the text of `faultbench report` and the keys of `report --json`.
- `phases`: a kernel profile's phase costs checked against a and b.
- `rows`: what they share (the rows read, their groups, resampling rounds or boots).

Analysis plane: numpy, pandas; never touches the kernel.
"""

from faultbench.analysis.breakeven.costmodel import CostModel, Estimate, cost_models
from faultbench.analysis.breakeven.crossover import MIN_STRIDES, BreakEven, break_even
from faultbench.analysis.breakeven.floor import floor_points, populate_rows
from faultbench.analysis.breakeven.render import report_json, report_section
from faultbench.analysis.breakeven.rows import stride_of

__all__ = [
    "MIN_STRIDES", "BreakEven", "CostModel", "Estimate", "break_even", "cost_models",
    "floor_points", "populate_rows", "report_json", "report_section", "stride_of",
]
