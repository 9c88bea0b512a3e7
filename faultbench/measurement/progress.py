"""The runner's progress display: a bar with counts and ETA on a terminal, one plain line per
measurement otherwise, nothing when quiet. Standard library only.
"""

from __future__ import annotations

import sys
import time
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from faultbench.measurement.runner import Unit


class Progress:
    """A bar with counts and ETA on a terminal, one plain line per measurement otherwise."""

    def __init__(self, total: int, done: int, quiet: bool, stream: IO[str] = sys.stderr):
        self.total, self.done, self.quiet, self.stream = total, done, quiet, stream
        self.tty = stream.isatty()
        self.start = time.monotonic()
        self.measured = 0

    def update(self, unit: Unit, samples: list[dict[str, Any]]) -> None:
        self.done += 1
        self.measured += 1
        if self.quiet:
            return
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.measured * (self.total - self.done)
        if self.tty:
            width = 30
            filled = width * self.done // max(self.total, 1)
            self.stream.write(
                f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                f"ETA {_clock(eta)} "
            )
        else:
            tag = "warm-up " if unit.warmup else ""
            self.stream.write(
                f"[{self.done}/{self.total}] {tag}round {unit.round} {unit.scenario.name}: "
                f"{' | '.join(_brief(s) for s in samples)}\n"
            )
        self.stream.flush()

    def finish(self) -> None:
        if self.tty and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    return f"{seconds // 60}:{seconds % 60:02d}"


def _brief(sample: dict[str, Any]) -> str:
    if sample["status"] != "ok":
        return f"{sample['status']}: {sample['error']}"
    return f"{sample['faults_per_page']:.3f} faults/page {sample['ns_per_page']:.0f} ns/page"


