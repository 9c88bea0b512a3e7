"""`faultbench report RUN_DIR`: per-scenario statistics, knob sweeps and figures."""

from __future__ import annotations

import argparse
from pathlib import Path

from faultbench.commands import check_text, filesystem_errors


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by faultbench run")
    parser.add_argument(
        "--baseline", metavar="VALUE",
        help="knob value that sweep tables compare against (default: 4096 for "
        "fault_around_bytes, i.e. fault-around off; the smallest value for other knobs)",
    )
    parser.add_argument("--no-figures", action="store_true", help="write report.txt only")


def run(args: argparse.Namespace) -> int:
    from faultbench.analysis.report import write_report

    check_text(args.run_dir, "RUN_DIR")
    with filesystem_errors(f"writing the report in {args.run_dir}"):
        text, figures = write_report(Path(args.run_dir), args.baseline, not args.no_figures)
    print(text, end="")
    where = Path(args.run_dir) / "report.txt"
    print(f"\nwrote {where}" + (f" and {len(figures)} figures in {figures[0].parent}"
                                if figures else ""))
    return 0
