"""How long the analysis plane takes on a run: load, statistics, compare, report, figures.

Usage: .venv/bin/python benchmarks/analysis_speed.py [RUN_DIR] (default: results/example).
Prints seconds per step; the report's figures go to a temporary directory, not RUN_DIR.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def main() -> int:
    run = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent.parent
               / "results" / "example")
    start = time.perf_counter()
    import pandas  # noqa: F401  (the import is part of what a user waits for)

    from faultbench.analysis.compare import compare
    from faultbench.analysis.figures import make_figures
    from faultbench.analysis.frame import load, run_info
    from faultbench.analysis.labels import label_columns
    from faultbench.analysis.report import report_text
    from faultbench.analysis.stats import median_ci
    from faultbench.measurement.rundir.safefile import SafeDir

    steps = [("import pandas/scipy/matplotlib", time.perf_counter() - start)]

    def timed(name: str, func: Callable[[], T]) -> T:
        began = time.perf_counter()
        result = func()
        steps.append((name, time.perf_counter() - began))
        return result

    df = timed("load", lambda: load(run))
    meta = df.attrs["meta"][run.resolve().name]
    timed("median + CI per scenario", lambda: median_ci(df, [*label_columns(df), "role"],
                                                         "ns_per_page"))
    ok = df[df["ok"]]
    timed("compare (run against itself)", lambda: compare(ok, ok))
    timed("report text", lambda: report_text(df, meta))
    with tempfile.TemporaryDirectory() as tmp, SafeDir.open(Path(tmp)) as out:
        made = timed("figures (PNG + SVG)", lambda: make_figures(df, run_info(meta, df), out))
    print(f"{run}: {len(df)} samples, {len(made)} figure files")
    for name, seconds in steps:
        print(f"{name:32s} {seconds:8.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
