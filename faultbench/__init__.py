"""faultbench: measure what the Linux kernel's read fault-around costs and saves.

The public API. Measurement: measure, measure_mappers, Spec, Sample, SpecError,
FaultbenchError. Analysis: load (run directories -> one DataFrame), run_info (where a run
was measured, for titles), median_ci (medians with their 95% CI per group), make_figures (a
run's figures), report_text (a run's report.txt). Importing faultbench loads only the
measurement plane (the standard library and the compiled cffi module), so it also runs
quickly inside emulated guests; the analysis names bring in pandas on first use (and
make_figures matplotlib). docs/architecture.md maps the modules; anything not named here may
change.
"""

import _signal  # the interpreter's own, loaded before any faultbench code runs (signal is not)

# Every signal is held while startup is imported and says what one does to the command (end
# it with a line), then delivered: one that came during the import gave a traceback.
_unheld = _signal.pthread_sigmask(_signal.SIG_BLOCK, _signal.valid_signals())
try:
    from faultbench.measurement import startup

    if startup.is_the_command():
        startup.exit_quietly_until_started()  # before the imports below, which take a while
finally:
    _signal.pthread_sigmask(_signal.SIG_SETMASK, _unheld)

from typing import Any

from faultbench._version import __version__
from faultbench.errors import FaultbenchError
from faultbench.measurement.measure import measure, measure_mappers
from faultbench.measurement.spec import Sample, Spec, SpecError

# The analysis plane's public names, imported on first use: pandas and matplotlib take
# seconds to import in a guest, where only the measurement plane is needed.
_ANALYSIS = {
    "load": "faultbench.analysis.frame",
    "run_info": "faultbench.analysis.frame",
    "median_ci": "faultbench.analysis.stats",
    "make_figures": "faultbench.analysis.figures",
    "report_text": "faultbench.analysis.report",
}
__all__ = ["FaultbenchError", "Sample", "Spec", "SpecError", "__version__", "measure",
           "measure_mappers", *_ANALYSIS]


def __getattr__(name: str) -> Any:
    if name in _ANALYSIS:
        import importlib

        return getattr(importlib.import_module(_ANALYSIS[name]), name)
    raise AttributeError(f"module 'faultbench' has no attribute {name!r}")
