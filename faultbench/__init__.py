"""faultbench: measure what the Linux kernel's read fault-around costs and saves.

The public API: measure, measure_mappers, Spec, Sample, SpecError, FaultbenchError, load.
Importing faultbench loads only the measurement plane (the standard library and the compiled
cffi module), so it also runs quickly inside emulated guests; `load` brings in the analysis
plane (pandas) on first use. docs/architecture.md maps the modules.
"""

from typing import Any

from faultbench.measurement import signals

if signals.is_the_command():
    signals.exit_quietly_until_started()  # before the imports below, which take a while

from faultbench.errors import FaultbenchError
from faultbench.measurement.measure import measure, measure_mappers
from faultbench.measurement.spec import Sample, Spec, SpecError

__version__ = "0.1.0"
__all__ = ["FaultbenchError", "Sample", "Spec", "SpecError", "__version__", "load", "measure",
           "measure_mappers"]


def __getattr__(name: str) -> Any:
    # `load` needs pandas (seconds to import in a guest), so it is imported on first use only.
    if name == "load":
        from faultbench.analysis.frame import load

        return load
    raise AttributeError(f"module 'faultbench' has no attribute {name!r}")
