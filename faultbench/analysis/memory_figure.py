"""The memory-cost figure: per app launch, direct reclaim, refaults, faults and launch time
against fault_around_bytes, one line per guest memory (one run each, or several runs loaded
together).

Analysis plane (matplotlib, via analysis.mpl, which selects the Agg backend).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from faultbench.analysis.figure_text import drawable
from faultbench.analysis.figures import NO_CI, STYLE, _errbars, save, title
from faultbench.analysis.frame import FAULT_AROUND_KNOB, RunInfo
from faultbench.analysis.memory import sessions
from faultbench.analysis.mpl import FuncFormatter, plt
from faultbench.analysis.stats import median_ci
from faultbench.measurement.rundir.safefile import SafeDir
from faultbench.measurement.spec import format_size

PANELS = (("allocstall", "direct reclaims (allocstall) per launch"),
          ("refault", "refaults (workingset_refault) per launch"),
          ("faults", "page faults per launch"),
          ("launch_ms", "launch time, ms"))


def memory_figure(df: pd.DataFrame, info: RunInfo, out_dir: SafeDir) -> list[Path]:
    """figures/memory-cost.png|svg for runs with app-launch sessions sweeping the knob;
    memory-cost-by-memory.png|svg when they come from several guest memories."""
    apps = sessions(df)
    if apps.empty or FAULT_AROUND_KNOB not in apps:
        return []
    apps = apps.assign(x=pd.to_numeric(apps[FAULT_AROUND_KNOB], errors="coerce"))
    apps = apps[apps["x"].notna()]
    if apps["x"].nunique() < 2:
        return []
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(2, 2, figsize=(9.0, 7.0), layout="constrained")
        missing_ci = False
        for ax, (metric, label) in zip(axes.flat, PANELS, strict=True):
            table = median_ci(apps, ["guest_memory", "x"], metric).sort_values("x")
            missing_ci |= bool(table["ci_lo"].isna().any())
            for memory, part in table.groupby("guest_memory", sort=True):
                ax.errorbar(part["x"], part["median"], yerr=_errbars(part), marker="o",
                            capsize=3, label=drawable(f"guest memory {memory}"))
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted(apps["x"].unique()))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: format_size(int(v))))
            ax.set_xlabel("fault_around_bytes (log2)")
            ax.set_ylim(bottom=0)
            clock = ""
            if metric == "launch_ms" and info.emulated:
                clock = " (icount)" if info.instruction_clock else " (emulated wall clock)"
            ax.set_title(label + clock, fontsize=10)
        axes.flat[0].legend(fontsize=8, title=NO_CI if missing_ci else None,
                            title_fontsize=7)
        title(fig, "Memory cost of fault-around: app launches (median, 95% CI)", info)
        # several memories (several runs): a name a later `report` of one of them keeps
        several = apps["guest_memory"].nunique() > 1
        return save(fig, out_dir, "memory-cost-by-memory" if several else "memory-cost")


def main(argv: list[str] | None = None) -> int:
    """`python -m faultbench.analysis.memory_figure OUT_DIR RUN...`: one figure of several
    runs (e.g. the same workload at two guest memories), one line per guest memory."""
    import argparse
    import sys

    from faultbench.analysis.frame import load, run_info
    from faultbench.errors import FaultbenchError

    parser = argparse.ArgumentParser(prog="python -m faultbench.analysis.memory_figure")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    try:
        df = load(args.runs)
        info = run_info(next(iter(df.attrs["meta"].values())), df)
        with SafeDir.open(args.out_dir, create=True) as out_dir:
            made = memory_figure(df, info, out_dir)
    except FaultbenchError as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 2
    for path in made:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
