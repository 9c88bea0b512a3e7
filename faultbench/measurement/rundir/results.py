"""A run's results directory (the contract is docs/results.md).

samples.jsonl is appended, flushed and fsynced one sample at a time, so SIGKILL or power loss
loses at most the sample being written; meta.json and pyperf.json are replaced atomically.
Every file is written through measurement.safefile (no planted link is followed).
Standard library only, except pyperf (pure Python), which only the parent imports.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from faultbench.errors import not_a_file, shell_word
from faultbench.measurement.rundir.checks import (
    RunRounds,
    knob_names_problem,
    profile_problem,
    run_rounds,
    sample_problem,
)
from faultbench.measurement.rundir.dirlock import LOCK_NAME, DirLock
from faultbench.measurement.rundir.identity import check_samples_match
from faultbench.measurement.rundir.meta_checks import check_meta
from faultbench.measurement.rundir.renew import renew_files
from faultbench.measurement.rundir.runfiles import (
    BOOTS_DIR,
    DISCARDED,
    DISCARDED_PROFILES,
    MAX_LINES,
    META,
    PROFILES,
    PYPERF,
    SAMPLES,
    WORKER_LOG,
    Repeats,
    missing_file,
    most_lines,
    read_path,
    read_run_file,
    run_file_lines,
)
from faultbench.measurement.rundir.safefile import ResultsError, SafeDir

# what a run adds to; all else replaced
APPENDED = (SAMPLES, PROFILES, WORKER_LOG, DISCARDED, DISCARDED_PROFILES)
# Linux's PATH_MAX (a path the kernel takes, its NUL included) less room for a directory and
# a file in it of NAME_MAX (255) each: a report's figures/NAME.png, a boot's
# boots/N.d/kernel-image (QEMU is handed it by path). A run directory made one component at a
# time may be deeper, but no path then opens it or its files: not report, compare, nor QEMU.
RUN_PATH_MAX = 4096 - 1 - 2 * (1 + 255)


def resume_command(path: Path | str) -> str:
    """The command that continues the run in `path`, quoted for a shell."""
    return f"faultbench run --resume {shell_word(path)}"


def resume_hint(path: Path) -> str:
    """How a message about a run left unfinished ends: where its samples are, or that it
    holds none yet, and the command that continues it."""
    try:
        held = os.lstat(path / SAMPLES).st_size > 0
    except OSError:
        held = False
    where = f"samples so far are in {path}" if held else f"{path} holds no sample yet"
    return f"; {where}; continue with: {resume_command(path)}"


def report_command(path: Path | str) -> str:
    """The command that shows the run in `path`, quoted for a shell."""
    return f"faultbench report {shell_word(path)}"


def no_samples_yet(path: Path, meta: dict[str, Any]) -> str | None:
    """Why a run that has not finished has no samples.jsonl yet, and how to go on; None for a
    finished one, whose samples.jsonl is lost, not to come. A booted run's samples wait in
    boots/N.d/ until their boot completes: a run interrupted in its first boot has none yet."""
    if meta.get("finished_utc"):
        return None
    what = ("a booted run that has not finished, none of its boots complete yet (a boot's "
            "samples, in boots/N.d/ until then, join the run's when it completes)"
            if meta.get("kernels") else
            "a run that has not finished, and no sample of it is recorded yet")
    return f"{path}: {what}: no samples to show; continue with: {resume_command(path)}"


def read_samples(
    path: Path, strict: bool, validate: bool = False
) -> tuple[list[dict[str, Any]], int]:
    """The samples of a samples.jsonl (one JSON object per line; blank lines are ignored)
    and how many lines were not one.

    strict: a bad line raises ResultsError naming it (resuming must not build on a file it
    does not understand). Otherwise bad lines are skipped and counted: a run killed
    mid-write leaves a partial last line, and the rest is still worth reading.
    validate: a line is bad too when `sample_problem` finds one (the message says which).
    """
    with SafeDir.reading(path.parent) as directory, \
            run_file_lines(directory, path.name, MAX_LINES, SAMPLES) as lines:
        if lines is None:
            raise missing_file(path)
        return parse_samples(lines, path, strict, validate)


class BadSampleLine(ResultsError):
    """A line of samples.jsonl a strict reader refuses; `lines`: the line numbers that
    would have to go for the file to be read (1 = the first line)."""

    def __init__(self, path: Path, number: int, problem: str, lines: tuple[int, ...]) -> None:
        super().__init__(f"{path}:{number}: {problem}")
        self.path = path
        self.lines = lines


def json_lines(lines: Iterable[bytes]) -> Iterator[tuple[int, bytes, dict[str, Any] | None]]:
    """Each line of a JSON-lines file that is not blank, as it is read: its number (1 = the
    first), its bytes, and the object it holds, None when it holds none."""
    for number, raw in enumerate(lines, 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            line = "\0"  # not JSON either
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):  # a 5000-digit number; [[[[... nested
            record = None
        yield number, raw, record if isinstance(record, dict) else None


def parse_samples(
    lines: Iterable[bytes], path: Path, strict: bool, validate: bool = False,
    rounds: RunRounds | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """read_samples() of lines already read from `path`; `rounds`: see sample_problem.
    With `validate` a sample whose key (unique_key) an earlier line had is bad too: counted
    twice it would weigh twice in every statistic, and so is one naming knobs past those a
    run may set (knob_names_problem)."""
    records: list[dict[str, Any]] = []
    bad = 0
    repeats = Repeats()
    knobs: set[str] = set()
    for number, raw, record in json_lines(lines):
        problem = "not a JSON object" if record is None else (
            sample_problem(record, rounds=rounds) if validate else None)
        drop: tuple[int, ...] = (number,)
        if problem is None and validate:
            if (repeat := repeats.of(unique_key(record), number, raw)) is not None:
                first, copy = repeat  # a copy goes; of two measurements, both
                which = ", ".join(f"{key} {record[key]}" for key in ("boot", "round", "mapper")
                                  if record.get(key) is not None)
                problem = (f"the sample of line {first} again (scenario {record['scenario']}, "
                           f"{which}): {'an exact copy' if copy else 'measured differently'}")
                drop = (number,) if copy else (first, number)
            else:
                problem = knob_names_problem(record, knobs)
        if problem is None:
            records.append(record)
        elif strict:
            raise BadSampleLine(path, number, problem, drop)
        else:
            bad += 1
    return records, bad


def nothing_left(meta: dict[str, Any]) -> bool:
    """Whether the run of `meta` is done: finished, and none of its boots to redo."""
    return bool(meta.get("finished_utc")) and all(
        boot.get("status") == "ok" for boot in meta.get("boots", []))


def _occupied(path: Path, directory: SafeDir, resumable: bool) -> str:
    """Why `--out path` is refused: it holds files. A run to continue is pointed at `run
    --resume`, a finished one (which resume refuses) at its report."""
    if not (resumable and directory.is_file(META)):
        return f"{path} already exists and is not empty: --out names a new or empty directory"
    try:
        finished = nothing_left(parse_meta(read_run_file(directory, META) or b"", path / META))
    except ResultsError:  # what is wrong with it is resume's to say
        finished = False
    if finished:
        return (f"{path} already holds a finished run ({report_command(path)} shows it): "
                "--out names a new or empty directory")
    return f"{path} already exists and is not empty (continue it with {resume_command(path)})"


def read_meta(path: Path) -> dict[str, Any]:
    """A meta.json, checked (check_meta); ResultsError when unreadable or not one."""
    return parse_meta(read_path(path, META), path)


def parse_meta(data: bytes, path: Path) -> dict[str, Any]:
    """read_meta() of bytes already read from `path`."""
    try:
        meta = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ResultsError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except (ValueError, RecursionError) as exc:  # RecursionError: [[[[... nested deep
        raise ResultsError(f"{path}: not valid JSON ({exc})") from None
    return check_meta(meta, path)


def sample_key(record: dict[str, Any]) -> tuple[str, int | None, int, int]:
    """What identifies a sample within a run (a booted run repeats warm-up rounds per boot)."""
    return record["scenario"], record.get("boot"), record["round"], record["mapper"]


def unique_key(record: dict[str, Any]) -> tuple[Any, ...]:
    """What a sample of any run holds once: sample_key, and the machine in a merged run of
    several (each repeats every other key)."""
    return (*sample_key(record), record.get("machine"))


def _profile_key(line: bytes) -> tuple[Any, ...] | None:
    """The sample_key of a profiles.jsonl line, None if it is no profile (profile_problem,
    as the readers judge it)."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return sample_key(record) if profile_problem(record) is None else None


def profile_record(sample: dict[str, Any], profile: dict[str, Any]) -> dict[str, Any]:
    """A profiles.jsonl line: the sample's identity (and kernel), then its profile parts."""
    keys = ("scenario", "boot", "round", "mapper", "kernel")
    return {**{k: sample[k] for k in keys if k in sample}, **profile}


def benchmark_name(record: dict[str, Any], kernels: bool) -> str:
    """pyperf benchmark of a sample: the scenario, per kernel of a run that booted several
    (`kernels`; of one, its names are a native run's, so that `pyperf compare_to` pairs two
    runs' benchmarks), per machine in a merged run of several, per mapper when there are
    several (first and later mappers measure different things)."""
    name = record["scenario"] + "".join(
        f",{key}={record[key]}" for key in ("kernel", "machine")
        if record.get(key) is not None and (key != "kernel" or kernels))
    return f"{name},mapper={record['mapper']}" if record["spec"]["mappers"] > 1 else name


class RunDir:
    """One run's directory: create it, append samples, resume it.

    `any_owner`: the guest side of a booted run writes the host's directory, which the host
    checked; its owner as seen over 9p is the host user's."""
    def __init__(self, path: Path, directory: SafeDir | None = None,
                 any_owner: bool = False) -> None:
        self.path = path
        self.dir = directory or SafeDir.open(path, any_owner=any_owner)
        self.lock = DirLock(self.dir)  # one writer per directory
        self._samples: IO[str] | None = None

    @classmethod
    def create(cls, path: Path, resumable: bool = True) -> RunDir:
        """A new run directory (or an empty one), locked for this process. `resumable`: an
        existing run there is one to point at `run --resume` (not a merge's output)."""
        if (length := len(os.fsencode(os.path.abspath(path)))) > RUN_PATH_MAX:
            raise ResultsError(f"{path} is a path of {length:,} bytes, over the "
                               f"{RUN_PATH_MAX:,} a run directory's may have: the paths of "
                               "the files in it must stay within PATH_MAX (4,096 bytes) for "
                               "report, compare and a boot to open them; choose a shorter one")
        directory = SafeDir.open(path, create=True)
        try:
            if set(os.listdir(directory.fd)) - {LOCK_NAME}:  # a lock a kill left
                raise ResultsError(_occupied(path, directory, resumable))
            run_dir = cls(path, directory)
            run_dir.lock.acquire("being written")
        except BaseException:
            directory.remove_if_made()
            raise
        return run_dir

    def abandon(self) -> None:
        """Unlocked, and removed if this process made the directory and it holds nothing
        else: a run that ends before its meta.json is written leaves nothing behind."""
        self.lock.release()
        self.dir.remove_if_made()

    @classmethod
    def existing(cls, path: Path, any_owner: bool = False,
                 refuse: Callable[[RunDir, dict[str, Any]], None] | None = None) -> RunDir:
        """The run in `path`; unless `any_owner` (the guest, whose host holds it), locked
        for this process first, its meta.json read and checked, `refuse` called with it (it
        raises what refuses the resume, and only reads), and then every file faultbench
        writes there a copy no other process has open (renew_files)."""
        run_dir = cls(path, any_owner=any_owner)
        try:
            why = not_a_file(META, dir_fd=run_dir.dir.fd, follow=False)
            if why == "no such file":
                raise ResultsError(f"{path}: not a faultbench run directory (no {META})")
            if why is not None:
                raise ResultsError(f"{path}/{META} is {why}: faultbench reads only a regular "
                                   "file there")
            if not any_owner:
                run_dir.lock.acquire("being written")
                for name in APPENDED:  # refused before a resume writes anything
                    run_dir.dir.check_file_owner(name)
                checked = read_run_file(run_dir.dir, META)
                meta = parse_meta(checked or b"", path / META)
                if refuse is not None:
                    refuse(run_dir, meta)
            run_dir.dir.remove_temp_files()  # atomic writes an interruption cut short
            if not any_owner:
                # before the rest is read: what is read then is what is written on
                renew_files(run_dir.dir, len(meta.get("boots", [])))
                if read_run_file(run_dir.dir, META) != checked:
                    raise ResultsError(f"{path}/{META} changed as it was being resumed: "
                                       "resume it again")
        except BaseException:
            run_dir.lock.release()  # if taken: a refusal leaves no .lock behind
            run_dir.dir.close()
            raise
        return run_dir

    def read_samples(self, strict: bool = True, meta: dict[str, Any] | None = None
                     ) -> list[dict[str, Any]]:
        """Every complete line, strictly (for resuming); a last line cut short by a kill is
        removed from the file, so the sample is measured again and never half-recorded.
        Not `strict`: read only, a bad line (one cut short too) skipped. `meta`: the run's,
        checked against instead of the directory's own (a boot's, whose guest can write it)."""
        # a directory holding no meta.json yet has no samples either (a run cut short as it
        # started); samples without one are refused below, by read_meta
        if meta is None:
            meta = self.read_meta() if self.dir.is_file(META) else {}
        most = most_lines(meta)
        last_profile = None
        if strict:
            last_profile = self._cut_partial_line(PROFILES, most)  # or the next is glued to it
            self._cut_partial_line(SAMPLES, most)
        path = self.path / SAMPLES
        with run_file_lines(self.dir, SAMPLES, most) as lines:
            if lines is None:
                return []
            meta = meta or self.read_meta()
            records, _ = parse_samples(lines, path, strict=strict, validate=True,
                                       rounds=run_rounds(meta))
        check_samples_match(meta, records, path)
        key = _profile_key(last_profile[1]) if last_profile is not None else None
        if key is not None and key not in map(sample_key, records):
            # its sample's line never written (runner.py writes the profile first): measured
            # again, it would have two profiles, and neither would be used (read_profiles)
            self.dir.truncate(PROFILES, last_profile[0])
        return records

    def read_meta(self) -> dict[str, Any]:
        data = read_run_file(self.dir, META)  # refuses a planted link
        return parse_meta(data if data is not None else b"", self.path / META)

    def write_meta(self, meta: dict[str, Any]) -> None:
        self.dir.replace(META, json.dumps(meta, indent=1) + "\n")

    def _cut_partial_line(self, name: str, most: int) -> tuple[int, bytes] | None:
        """The JSON-lines file `name` (if any) cut after its last newline: the rest is what a
        kill or a full disk cut short. Its last complete line then, and where it starts."""
        last = None
        with run_file_lines(self.dir, name, most) as lines:
            if lines is None:
                return None
            for line in lines:
                if line.endswith(b"\n"):
                    last = (lines.complete - len(line), line)
        if lines.partial:
            self.dir.truncate(name, lines.complete)
        return last

    def rewrite_samples(self, records: list[dict[str, Any]]) -> None:
        """samples.jsonl replaced, atomically, by `records`."""
        self.close()
        self.dir.replace(SAMPLES, "".join(json.dumps(r) + "\n" for r in records))

    def append(self, record: dict[str, Any]) -> None:
        if self._samples is None:
            # kept open across appends; close() ends it
            self._samples = self.dir.appending(SAMPLES)
        # one write per line, so a kill leaves at most one partial line, at the end
        self._samples.write(json.dumps(record) + "\n")
        self._samples.flush()
        os.fsync(self._samples.fileno())

    def append_lines(self, name: str, records: Iterable[dict[str, Any]]) -> None:
        """Records appended to the JSON-lines file `name` (e.g. discarded.jsonl), durably."""
        with self.dir.appending(name) as fh:
            for record in records:
                fh.write(json.dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def open_log(self) -> IO[bytes]:
        """worker.log, for appending; the caller closes it."""
        return self.dir.appending(WORKER_LOG, binary=True)

    def make_private(self) -> None:
        """The run directory root's alone (0700), as a booted run's is: its guests can read
        any of the host's files, and return them in what the run keeps of them (their
        provenance in meta.json, their worker logs, even the digits of their samples)."""
        self.dir.make_private()

    def boots(self) -> SafeDir:
        """boots/, made if missing; it and the run directory are root's alone (0700) whatever
        they were (make_private). Each boot's guest writes in its boots/<index>.d as root, in
        any mode (9p passes it through), so a setuid file or a copy of a root-only file there
        must be out of other users' reach."""
        self.make_private()
        boots = self.dir.sub(BOOTS_DIR)
        try:
            boots.make_private()
        except ResultsError:
            boots.close()
            raise
        return boots

    def write_boot_report(self, index: int, report: dict[str, Any]) -> None:
        """boots/<index>.json, replaced atomically: the host's copy of what the guest reported
        (boots/<index>.d/report.json, once read and checked)."""
        with self.boots() as boots:
            boots.replace(f"{index}.json", json.dumps(report, indent=1) + "\n")

    def close(self) -> None:
        if self._samples is not None:
            self._samples.close()
            self._samples = None

    def write_pyperf(self, meta: dict[str, Any], records: Iterable[dict[str, Any]]) -> int:
        """pyperf.json from the ok samples; returns the number of benchmarks."""
        from faultbench.measurement.rundir.pyperf_suite import pyperf_suite

        suite = pyperf_suite(meta, records)
        if suite is None:
            return 0
        with self.dir.replacing(PYPERF) as fh:
            suite.dump(fh, replace=True)
        return len(suite)
