"""The populate rows: the range made present by one call before the timed loop."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from faultbench.analysis.breakeven.crossover import curve_columns
from faultbench.analysis.breakeven.rows import group_label, json_safe, prepare_rows
from faultbench.analysis.frame import FAULT_AROUND_KNOB
from faultbench.analysis.labels import format_value
from faultbench.analysis.stats import median_ci

POPULATE_CALLS = {"madvise": "MADV_POPULATE_READ", "map": "MAP_POPULATE"}
FLOOR_WHY = (
    "floor: populate_ns + touch_ns per touched page, the whole range made present by one "
    "call before the loop (MADV_POPULATE_READ, or mmap with MAP_POPULATE), then the same "
    "touches; flt: faults in the touch loop, pop flt: faults in the populate call"
)


@dataclass(frozen=True)
class FloorPoint:
    """The ideal-prefault cost at one stride: medians over samples, 95% CI of the median
    (order statistics; None below 6 samples)."""

    group: str
    backing: str
    populate: str
    call: str
    fault_around_bytes: int | None
    stride: int
    ns_per_page: float
    ci: list[float] | None
    n: int
    touch_faults: float
    populate_faults: float | None
    pages_mapped: float | None

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))


def prefault_floor(df: pd.DataFrame) -> pd.DataFrame:
    """Samples of the ideal-prefault rows (single-mapper reads with a populate step and a
    stride): `group` (as BreakEven.group, so each lands on its figure), `label` (the call),
    `populate`, `backing`, `stride`, `ns_per_page` = (populate_ns + touch_ns) /
    pages_touched, `touch_faults`, `populate_faults`, `pages_mapped`, `round`, `ok`. What
    `breakeven_figure(floor=...)` draws; empty when the run has none."""
    rows = prepare_rows(df, prefaulted=True)
    if rows.empty or "populate_ns" not in rows:
        return pd.DataFrame(columns=["group", "label", "fault_around_bytes", "populate",
                                     "backing", "stride", "ns_per_page"])
    rows = rows[rows["stride"].notna() & rows["populate_ns"].notna()
                & rows["pages_touched"].gt(0)]
    spent = rows["populate_ns"].astype(float) + rows["touch_ns"].astype(float)
    label = rows["populate"].map(lambda p: POPULATE_CALLS.get(p, p))
    # the populate call faults through do_read_fault too: fault-around batches it
    knob = (pd.to_numeric(rows[FAULT_AROUND_KNOB], errors="coerce") if FAULT_AROUND_KNOB in rows
            else pd.Series(np.nan, index=rows.index))
    label = label.where(knob.isna(), label + " " + knob.map(
        lambda v: format_value(FAULT_AROUND_KNOB, v)))
    return pd.DataFrame({
        "group": group_label(rows, curve_columns(prepare_rows(df))),
        "label": label, "fault_around_bytes": knob,
        "populate": rows["populate"], "backing": rows["backing"],
        "stride": rows["stride"].astype(int),
        "ns_per_page": spent / rows["pages_touched"].astype(float),
        "touch_faults": rows["faults"], "populate_faults": rows["populate_faults"],
        "pages_mapped": rows["pages_mapped"], "round": rows["round"], "ok": True,
    }, index=rows.index)


def floor_points(floor: pd.DataFrame) -> list[FloorPoint]:
    """`prefault_floor(df)` summarised per group, populate call and stride."""
    if floor.empty:
        return []
    keys = ["group", "backing", "populate", "label", "fault_around_bytes", "stride"]
    table = median_ci(floor, keys, "ns_per_page")
    counts = floor.groupby(keys, dropna=False)[
        ["touch_faults", "populate_faults", "pages_mapped"]].median()
    table = table.join(counts, on=keys).sort_values(
        ["group", "populate", "fault_around_bytes", "stride"])
    return [
        FloorPoint(
            group=str(r.group), backing=str(r.backing), populate=str(r.populate),
            call=str(r.label), stride=int(r.stride), ns_per_page=float(r.median),
            fault_around_bytes=None if r.fault_around_bytes != r.fault_around_bytes
            else int(r.fault_around_bytes),
            ci=None if r.ci_lo != r.ci_lo else [float(r.ci_lo), float(r.ci_hi)], n=int(r.n),
            touch_faults=float(r.touch_faults), populate_faults=float(r.populate_faults),
            pages_mapped=float(r.pages_mapped),
        )
        for r in table.itertuples(index=False)
    ]

