"""`faultbench restore`: put back kernel knobs a killed or crashed run left changed."""

from __future__ import annotations

import argparse

from faultbench.commands import check_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--journal", metavar="PATH",
        help="journal to replay (default: the one a killed run recorded in the knob lock, "
             "and $FAULTBENCH_JOURNAL or /run/faultbench/journal.json)",
    )


def run(args: argparse.Namespace) -> int:
    from faultbench.measurement.journal import journals, restore_journal

    path = check_text(args.journal, "--journal")
    restored = restore_journal(path)
    if not restored:
        where = " or ".join(journals()) if path is None else path
        print(f"faultbench restore: nothing to restore (no journal at {where})")
        return 0
    for line in restored:
        print(f"restored {line}")
    return 0
