"""The runner's progress display: a bar with counts and ETA on a terminal, one plain line per
measurement otherwise (a log, CI output), nothing when quiet. Standard library only.
"""

from __future__ import annotations

import re
import sys
import time
from typing import IO, Any

from faultbench.errors import error_text
from faultbench.measurement.spec import format_size
from faultbench.measurement.workload import Unit

# Off a terminal each line stays below this many columns: logs and CI views do not wrap.
WIDTH = 99


class Progress:
    """A bar with counts and ETA on a terminal, one short line per measurement otherwise."""

    def __init__(self, total: int, done: int, quiet: bool, stream: IO[str] | None = None,
                 names: list[str] | None = None, eta: bool = True):
        """`eta` False: no ETA. A guest on the instruction clock times it in guest
        instructions (one virtual ns each), which passed about 4 times slower than the
        host's seconds the user waits in."""
        # sys.stderr as it is now: the command replaced Python's (cli._Stderr)
        self.stream = stream or sys.stderr
        self.total, self.done, self.quiet = total, done, quiet
        # the name parts every scenario of the run shares say nothing in a progress line
        parts = [set(name.split(",")) for name in names or []]
        self.common = set.intersection(*parts) if len(parts) > 1 else set()
        self.tty = self.stream.isatty()
        self.start = time.monotonic()
        self.measured = 0
        self.eta = eta

    def update(self, unit: Unit, samples: list[dict[str, Any]]) -> None:
        self.done += 1
        self.measured += 1
        if self.quiet:
            return
        elapsed = time.monotonic() - self.start
        eta = _clock(elapsed / self.measured * (self.total - self.done)) if self.eta else ""
        if self.tty:
            width = 30
            filled = width * self.done // max(self.total, 1)
            self.stream.write(
                f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                + (f"ETA {eta} " if eta else "")
            )
        else:
            self.stream.write(line(self.done, self.total, eta, unit, samples, self.common)
                              + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty and not self.quiet:
            self.stream.write("\n")
            self.stream.flush()


def line(done: int, total: int, eta: str, unit: Unit, samples: list[dict[str, Any]],
         common: set[str] | frozenset[str] = frozenset()) -> str:
    """`[12/165] ETA 3:05 r2 seq uffd=wp: 0.063 flt/pg 310 ns/pg` (no ETA when `eta` is
    empty): the scenario name without the `common` parts, in the words report tables use, at
    most WIDTH columns: the name gives way first (its middle elided), then the result."""
    head = (f"[{done}/{total}] {f'ETA {eta} ' if eta else ''}"
            f"{'warm-up ' if unit.warmup else ''}r{unit.round} ")
    result = _brief(samples)
    name = " ".join(_table_words(p) for p in unit.scenario.name.split(",")
                    if p not in common) or _table_words(unit.scenario.name)
    room = WIDTH - len(head) - len(result) - 2
    if len(name) > room:
        keep = max(room - 3, 8)
        name = name[: keep - keep // 3] + "..." + name[len(name) - keep // 3:]
    text = f"{head}{name}: {result}"
    return text if len(text) <= WIDTH else text[: WIDTH - 3] + "..."


# name parts (naming.scenario_name) as report tables write them (analysis.labels)
_MAPPERS = re.compile(r"(\d+)x(\w+)-(\w+)(?:-uffd@(\w+))?")
_SIZE = re.compile(r"\d+[KMGTP]?")


def _table_words(part: str) -> str:
    """One part of a scenario name in a table's words: `3xprocess-sequential-uffd@later`
    -> `x3 sequential process reg=later`, `64M` -> `size=64M`, `pagemap=off` ->
    `no-pagemap`, `fault_around_bytes=65536` -> `fa=64K`, `dir=/a/b` -> `dir=b`,
    `1xthread` -> `thread`."""
    if part == "1xthread":
        return "thread"
    if match := _MAPPERS.fullmatch(part):
        count, kind, mode, who = match.groups()
        return f"x{count} {mode} {kind}" + (f" reg={who}" if who else "")
    if _SIZE.fullmatch(part):
        return f"size={part}"
    if part == "pagemap=off":
        return "no-pagemap"
    name, _, value = part.partition("=")
    if name == "fault_around_bytes" and value.isascii() and value.isdigit():
        return f"fa={format_size(int(value))}"
    if name == "dir":
        return f"dir={value.rstrip('/').rpartition('/')[2] or value}"
    return part


def _clock(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" \
        if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


def _brief(samples: list[dict[str, Any]]) -> str:
    """One measurement's result: faults and ns per page, a range over several mappers."""
    bad = [s for s in samples if s["status"] != "ok"]
    if bad:
        return f"{bad[0]['status']}: {error_text(bad[0]['error'])}"

    def span(key: str, form: str) -> str:
        values = sorted(s[key] for s in samples)
        low, high = format(values[0], form), format(values[-1], form)
        return low if low == high else f"{low}-{high}"

    # under QEMU icount the clock counts guest instructions, not nanoseconds
    unit = "insn/pg" if samples[0].get("clock") == "icount" else "ns/pg"
    return f"{span('faults_per_page', '.3f')} flt/pg {span('ns_per_page', '.0f')} {unit}"


def say_drift(drifted: dict[str, int]) -> None:
    """The knobs someone else changed during the run, and in how many measurements."""
    if drifted:
        print("faultbench run: someone else changed kernel knobs during the run ("
              + ", ".join(f"{name}: {n} measurements" for name, n in sorted(drifted.items()))
              + "); those samples have `knob_drift` in samples.jsonl", file=sys.stderr)
