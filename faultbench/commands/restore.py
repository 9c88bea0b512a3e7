"""`faultbench restore`: put back kernel knobs a killed or crashed run left changed."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--journal", metavar="PATH",
        help="journal to replay (default: $FAULTBENCH_JOURNAL or /run/faultbench/journal.json)",
    )


def run(args: argparse.Namespace) -> int:
    from faultbench.measurement import knobs as _knobs

    path = args.journal or _knobs.journal_path()
    try:
        restored = _knobs.restore_journal(path)
    except _knobs.KnobError as exc:
        print(f"faultbench restore: {exc}", file=sys.stderr)
        return 2
    if not restored:
        print(f"faultbench restore: nothing to restore (no journal at {path})")
        return 0
    for line in restored:
        print(f"restored {line}")
    return 0
