"""faultbench: measure what the Linux kernel's read fault-around costs and saves.

The measurement plane (this module's imports) uses only the standard library and the compiled
cffi module, so it also runs quickly inside emulated guests. The analysis plane lives in
separate modules that import pandas and matplotlib only when called.
"""

from typing import Any

from faultbench.measurement.measure import measure, measure_mappers
from faultbench.measurement.spec import Sample, Spec, SpecError

__version__ = "0.1.0"
__all__ = ["Sample", "Spec", "SpecError", "__version__", "load", "measure", "measure_mappers"]


def __getattr__(name: str) -> Any:
    # `load` needs pandas (seconds to import in a guest), so it is imported on first use only.
    if name == "load":
        from faultbench.analysis.frame import load

        return load
    raise AttributeError(f"module 'faultbench' has no attribute {name!r}")
