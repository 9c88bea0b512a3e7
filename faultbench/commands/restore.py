"""`faultbench restore`: put back kernel knobs a killed or crashed run left changed, and
unmount the tmpfs it left mounted (spec tmpfs_huge)."""

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
    from faultbench.measurement.knobs.journal import journals, restore_journal
    from faultbench.measurement.knobs.tmpfs import restore_mounts

    path = check_text(args.journal, "--journal")
    restored = restore_journal(path)
    for journal in [path] if path else journals():
        restored += restore_mounts(journal)
    if not restored:
        where = " or ".join(journals()) if path is None else path
        print(f"faultbench restore: nothing to restore (no journal at {where})")
        return 0
    for line in restored:
        print(f"restored {line}")
    return 0
