"""`faultbench compare BASE [NEW]`: two runs, two values of a knob, or two kernels of one run,
scenario by scenario."""

from __future__ import annotations

import argparse

from faultbench.commands import check_text, filesystem_errors

FORMATS = ("text", "markdown", "csv", "json", "lkp")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "base", metavar="BASE",
        help="run directory; with --by KNOB, RUN_DIR:VALUE (the knob's value to select; "
        "unset: the scenarios that leave it unset)",
    )
    parser.add_argument(
        "new", metavar="NEW", nargs="?",
        help="like BASE; may be left out with --by kernel on a run of two kernels (BASE is "
        "then the run, compared as RUN:first-kernel RUN:second-kernel)",
    )
    parser.add_argument(
        "--by", metavar="KNOB",
        help="compare two values of KNOB (e.g. fault_around_bytes), of a spec field (e.g. "
        "uffd), the kernels of a booted run (kernel) or the machines of a merged run "
        "(machine): rows match on everything else; BASE and NEW may be the same run "
        "directory",
    )
    parser.add_argument(
        "--metric", default="ns_per_page",
        help="ns_per_page (default), faults_per_page, mapped_per_touched, munmap_ns_per_page",
    )
    parser.add_argument(
        "--format", choices=FORMATS, default="text",
        help="text (default), markdown, csv (rows only; the notes on stderr), json (rows and "
        "footer, docs/results.md), lkp (time, faults, pages mapped and munmap per scenario, as the "
        "kernel test robot prints them)",
    )
    parser.add_argument(
        "--brief", action="store_true",
        help="one line of method under the table instead of the full footer (for pasting)",
    )
    parser.add_argument(
        "--force", action="store_true",
        help="compare rows measured on different planes (native vs emulated timings)",
    )
    parser.add_argument(
        "--profile", action="store_true",
        help="add the kernel profiles of both sides (runs made with --profile): phase and "
        "top symbol shares and ns per touched page, side by side",
    )
    parser.add_argument(
        "--strict", action="store_true",
        help="leave out samples whose timed loop was preempted or saw steal time (by "
        "default they are counted and flagged in the 'hit' column)",
    )


def run(args: argparse.Namespace) -> int:
    from faultbench.analysis.compare import compare_runs

    for value, name in ((args.base, "BASE"), (args.new, "NEW")):
        check_text(value, name)
    check_text(args.by, "--by", give="a knob or a spec field")
    with filesystem_errors(f"reading {args.base} and {args.new}"):
        text = compare_runs(args.base, args.new, args.by, args.metric, args.format, args.force,
                            args.strict, args.brief, args.profile)
    print(text, end="")
    return 0
