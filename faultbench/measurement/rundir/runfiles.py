"""A run directory's files: their names, what a resume renews (run_files), and reading them
as untrusted input: meta.json whole, the JSON-lines files (samples.jsonl, profiles.jsonl) one
bounded line at a time, each file and line under a cap, no planted link followed
(measurement.rundir.safefile). Standard library only."""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from faultbench.measurement.rundir.safefile import ResultsError, SafeDir
from faultbench.measurement.spec import Spec

META = "meta.json"
SAMPLES = "samples.jsonl"
PROFILES = "profiles.jsonl"  # kernel profiles of the profiled samples (docs/results.md)
PYPERF = "pyperf.json"
WORKER_LOG = "worker.log"
BOOTS_DIR = "boots"  # a booted run's per-boot records
BOOT_REPORT = "report.json"  # in boots/N.d: the guest's word on its boot, read back as untrusted
DISCARDED = "discarded.jsonl"  # samples of boots that did not finish, set aside
DISCARDED_PROFILES = "discarded-profiles.jsonl"  # their kernel profiles

# report and load read anyone's run, whose owner can make a file far larger than memory (a
# sparse one costs nothing). meta.json holds about 1 KB a scenario, and a workload has at
# most 10,000; a sample is about 2.4 KB, and 100,000 measurements of one mapper each make
# 240 MB. The shipped runs' largest are 61 KB, 4.5 MB of samples and 4.3 MB of profiles.
MAX_BYTES = {META: 64 << 20, SAMPLES: 1 << 30, PROFILES: 1 << 30}
# A byte cap alone does not bound what reading costs: a line of `{}` is 3 bytes of file and
# about 130 of Python objects, so a JSON-lines file is read one line at a time, each line
# bounded, and refused past the lines its run can have (most_lines). A sample is about
# 2.4 KB; a profile is the folded stacks of one loop, the shipped runs' longest 25 KB.
MAX_LINE_BYTES = {SAMPLES: 1 << 20, PROFILES: 64 << 20}
# The most lines without a meta.json to say how many: faultbench writes no sample shorter
# than 512 bytes (an error sample has every field, null: 1.2 KB), so no run within the byte
# cap has more samples, nor more profiles (one per profiled sample).
MAX_LINES = MAX_BYTES[SAMPLES] // 512

# Every file faultbench writes in a run directory, and the most bytes each may hold: what a
# resume renews (measurement.rundir.renew), and nothing else there is opened. The caps are
# their readers' (MAX_BYTES); discarded.jsonl holds samples set aside (and
# discarded-profiles.jsonl their profiles), pyperf.json the samples' values, worker.log what
# the worker says of them, and none is read back on a resume: each keeps 1 GiB, the one cap
# all had before. boots/N.json is a boot's machine state, as meta.json holds one (the
# guest's report, as the host read it). boots/N.d/ is not renewed: it is the directory its
# guest wrote (in root's boots/), whatever the guest made of it, and a resume only sets an
# unfinished boot's aside, reading what it can as untrusted, then removes it.
RUN_FILES = {META: MAX_BYTES[META], SAMPLES: MAX_BYTES[SAMPLES],
             PROFILES: MAX_BYTES[PROFILES], DISCARDED: MAX_BYTES[SAMPLES],
             DISCARDED_PROFILES: MAX_BYTES[PROFILES], WORKER_LOG: 1 << 30, PYPERF: 1 << 30}
RUN_FILES_MOST = sum(RUN_FILES.values())  # all of them together


def boot_dir_name(index: int) -> str:
    """boots/<index>.d: where boot `index` writes its samples. Here, in the rundir layer the
    guest imports anyway, not in boots.py: the guest would import the host's side (guest.py,
    the jobs loop) for it, seconds under TCG."""
    return f"{index}.d"


def run_files(boots: int) -> Iterator[tuple[tuple[str, ...], int]]:
    """The files faultbench writes in a run directory of `boots` boots (its meta.json's),
    each as its path's components and its cap."""
    for name, most in RUN_FILES.items():
        yield (name,), most
    for index in range(boots):
        yield (BOOTS_DIR, f"{index}.json"), MAX_BYTES[META]


class Repeats:
    """The lines of a JSON-lines file whose key an earlier line had. A copy of that line is
    one record written twice; a line that differs is one sample measured differently, and
    neither of the two can be preferred. Each first line is held as its digest only: a
    profiles.jsonl line may be 64 MiB."""

    def __init__(self) -> None:
        self._first: dict[tuple[Any, ...], tuple[int, bytes]] = {}

    def of(self, key: tuple[Any, ...], number: int, raw: bytes) -> tuple[int, bool] | None:
        """None for the first line of `key` (line `number`, bytes `raw`); for a later one,
        the first's number and whether this line is an exact copy of it."""
        digest = hashlib.blake2b(raw.strip()).digest()
        first, seen = self._first.setdefault(key, (number, digest))
        return None if first == number else (first, seen == digest)


def read_run_file(directory: SafeDir, name: str) -> bytes | None:
    """The run file `name` (META: run_file_lines reads the others) in `directory`, None if missing;
    refused (ResultsError) over its MAX_BYTES, or when not a regular file."""
    return directory.read_bytes(name, limit=MAX_BYTES[name])


def missing_file(path: Path) -> ResultsError:
    return ResultsError(f"{path}: cannot read: {os.strerror(errno.ENOENT)}")


def read_path(path: Path, kind: str) -> bytes:
    """The file at `path`, read as read_run_file reads a file `kind` (META)."""
    with SafeDir.reading(path.parent) as directory:
        data = directory.read_bytes(path.name, limit=MAX_BYTES[kind])
    if data is None:
        raise missing_file(path)
    return data


class RunFileLines:
    """The lines of a run's JSON-lines file (SAMPLES, PROFILES), read one at a time as they
    are iterated; a line over MAX_LINE_BYTES, or more lines than `most`, is refused
    (ResultsError naming the file and the bound). After the iteration `partial` says whether
    the last line had no newline (a kill cut it short), and `complete` is where it started."""

    def __init__(self, fh: IO[bytes], path: Path, kind: str, most: int) -> None:
        self._fh = fh
        self.path = path
        self._longest = MAX_LINE_BYTES[kind]
        self.most = most
        self.complete = 0
        self.partial = False

    def __iter__(self) -> Iterator[bytes]:
        number = 0
        while True:
            try:
                line = self._fh.readline(self._longest + 1)
            except OSError as exc:
                raise ResultsError(f"cannot read {self.path}: {exc.strerror}") from None
            if not line:
                return
            number += 1
            if len(line) > self._longest:
                raise ResultsError(f"{self.path}:{number}: a line over {self._longest:,} bytes, "
                                   "longer than faultbench writes: not read")
            if number > self.most:
                raise ResultsError(f"{self.path}: more than {self.most:,} lines, more than "
                                   "its run's measurements can make: not read")
            if line.endswith(b"\n"):
                self.complete += len(line)
            else:
                self.partial = True
            yield line


@contextmanager
def run_file_lines(directory: SafeDir, name: str, most: int, kind: str | None = None
                   ) -> Iterator[RunFileLines | None]:
    """The run file `name` in `directory`, of `kind` (SAMPLES or PROFILES, by default its
    name), as RunFileLines, None if missing; refused as read_run_file refuses a file.
    `most`: see most_lines."""
    kind = kind or name
    fh = directory.open_reading(name, MAX_BYTES[kind])
    if fh is None:
        yield None
        return
    with fh:
        yield RunFileLines(fh, directory.path / name, kind, most)


def most_lines(meta: dict[str, Any]) -> int:
    """The most lines a samples.jsonl or profiles.jsonl of the run of `meta` (check_meta's,
    {} for a run without one) may have: twice a line per mapper of every measurement the
    run makes (each boot's warm-up and profiled rounds too, every machine of a merged run),
    and a thousand more (a profile measured again after each interruption, blank lines).
    At most MAX_LINES, however many boots or machines meta.json claims."""
    if not meta:
        return MAX_LINES
    workload = meta["workload"]
    per_boot = workload["warmups"] + workload.get("profile", 0)
    boots = meta.get("boots") or [{"rounds": [0, workload["repetitions"]]}]
    rounds = sum(per_boot + stop - first for first, stop in (b["rounds"] for b in boots))
    mappers = sum(Spec.from_dict(s["spec"]).mappers for s in meta["scenarios"])
    copies = len(merged_parts(meta)) or 1
    return min(2 * copies * rounds * mappers + 1000, MAX_LINES)


def merged_parts(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """What a merged run records of each run it was merged from (`merged.from`: its path,
    machine, shard, times, machine_state), in the order merged; [] for a run not merged.
    meta.json is read back: an entry that is not an object is no part."""
    merged = meta.get("merged")
    parts = merged.get("from") if isinstance(merged, dict) else None
    return [part for part in parts if isinstance(part, dict)] if isinstance(parts, list) else []
