"""`faultbench restore`: put back kernel knobs a killed or crashed run left changed, and
unmount the tmpfs it left mounted (spec tmpfs_huge)."""

from __future__ import annotations

import argparse

from faultbench.commands import check_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--journal", metavar="PATH",
        help="journal to replay (default: $FAULTBENCH_JOURNAL or /run/faultbench/journal.json)",
    )


def run(args: argparse.Namespace) -> int:
    from faultbench.measurement.journal import journal_path, restore_journal
    from faultbench.measurement.tmpfs import restore_mounts

    path = check_text(args.journal, "--journal") or journal_path()
    restored = [*restore_journal(path), *restore_mounts(path)]
    if not restored:
        print(f"faultbench restore: nothing to restore (no journal at {path})")
        return 0
    for line in restored:
        print(f"restored {line}")
    return 0
