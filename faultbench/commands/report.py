"""`faultbench report RUN_DIR`: per-scenario statistics, knob sweeps and figures."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from faultbench.commands import ArgumentError, check_text, filesystem_errors


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by faultbench run")
    parser.add_argument(
        "--baseline", metavar="[KNOB=]VALUE", action="append",
        help="knob value that sweep tables compare against (default: 4096 for "
        "fault_around_bytes, i.e. fault-around off; a THP setting's first value as the "
        "workload lists it; the smallest value for other knobs); "
        "a bare VALUE applies to each swept knob it is a value of; repeat it for several "
        "knobs",
    )
    parser.add_argument(
        "--out", metavar="DIR",
        help="write report.txt and figures/ into DIR (made if missing) instead of RUN_DIR, "
        "which is then only read (as compare reads it: anyone's run)",
    )
    parser.add_argument("--no-figures", action="store_true", help="write report.txt only")
    parser.add_argument(
        "--json", action="store_true",
        help="print what the report computes as one JSON object (scenario medians and CIs, "
        "break_even, cost_model, floor; null where unknown) and write nothing",
    )
    parser.add_argument(
        "--strict", action="store_true",
        help="leave out samples whose timed loop was preempted or saw steal time (by "
        "default they are counted and flagged in the 'hit' column)",
    )


def run(args: argparse.Namespace) -> int:
    check_text(args.run_dir, "RUN_DIR")
    check_text(args.out, "--out")
    for value in args.baseline or ():
        check_text(value, "--baseline", give="KNOB=VALUE or VALUE")
    if args.json:
        from faultbench.analysis.report import report_data

        given = [option for option, value in (("--baseline", args.baseline), ("--out", args.out),
                                              ("--no-figures", args.no_figures)) if value]
        if given:
            raise ArgumentError(f"{' and '.join(given)} with --json: --json prints what the "
                                "report computes, without its sweep tables, and writes nothing")

        print(json.dumps(report_data(Path(args.run_dir), args.strict), indent=2, allow_nan=False))
        return 0
    from faultbench.analysis.report import write_report

    out = Path(args.out or args.run_dir)
    with filesystem_errors(f"writing the report in {out}"):
        text, figures = write_report(Path(args.run_dir), args.baseline, not args.no_figures,
                                     args.strict, out=out if args.out else None)
    print(text, end="")
    where = out / "report.txt"
    print(f"\nwrote {where}" + (f" and {len(figures)} figures in {figures[0].parent}"
                                if figures else ""))
    return 0
