"""`faultbench restore`: put back kernel knobs a killed or crashed run left changed, and
unmount the tmpfs it left mounted (spec tmpfs_huge)."""

from __future__ import annotations

import argparse
import os
import sys

from faultbench.commands import check_text
from faultbench.errors import printable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--journal", metavar="PATH",
        help="journal to replay (default: the one a killed run recorded in the knob lock, "
             "and $FAULTBENCH_JOURNAL or /run/faultbench/journal.json)",
    )


def run(args: argparse.Namespace) -> int:
    from faultbench.measurement.knobs.catalog import KnobError
    from faultbench.measurement.knobs.journal import journals, restore_journal
    from faultbench.measurement.knobs.tmpfs import restore_mounts

    path = check_text(args.journal, "--journal")
    if os.geteuid() != 0:  # a journal is root's, and only root writes knobs or unmounts
        raise KnobError("needs root: what a run left changed (knobs, mounts) is root's to "
                        "put back; run it as root")
    problems = []
    try:
        restored = restore_journal(path)
    except KnobError as exc:
        restored, problems = [], [str(exc)]
    for journal in [path] if path else journals():
        mounts = restore_mounts(journal)
        restored += mounts.done
        problems += mounts.failed
        for why in mounts.skipped:
            print(f"faultbench restore: warning: {why}", file=sys.stderr)
    for line in restored:
        print(f"restored {line}")
    if problems:
        raise KnobError("; ".join(problems))
    if not restored:
        where = " or ".join(journals()) if path is None else path
        # one line: stdout escapes control characters but keeps newlines (printable_lines)
        print(f"faultbench restore: nothing to restore (no journal at {printable(where)})")
    return 0
