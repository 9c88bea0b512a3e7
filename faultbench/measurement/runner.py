"""Runs a workload: interleaved seeded rounds, one worker process, crash-safe results.

The parent sets knobs (journaled and restored by the knob session), schedules, records; the
worker (faultbench.measurement.worker) only measures. A worker that crashes or misses its
deadline is killed with its mapper processes, the sample is recorded as an error, and a fresh
worker takes the next one.
"""

from __future__ import annotations

import json
import os
import random
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from faultbench.errors import FaultbenchError, limit_hint, printable
from faultbench.measurement.knobs.catalog import KnobError, ValueRefused, thp_names
from faultbench.measurement.knobs.session import KnobSession
from faultbench.measurement.knobs.tmpfs import release_killed
from faultbench.measurement.knobs.watch import KnobWatch
from faultbench.measurement.measure import sample_without_result
from faultbench.measurement.progress import Progress, say_drift
from faultbench.measurement.run_checks import (
    RunError,
    WorkerStartError,
    check_knob_settings,
    check_resources,
    knob_settings,
    nothing_to_resume,
    read_ahead_dir,
    refuse_relative_dir,
    settable_knobs,
)
from faultbench.measurement.rundir.meta_checks import FORMAT, HARNESS_EPOCH
from faultbench.measurement.rundir.results import (
    PROFILES,
    WORKER_LOG,
    RunDir,
    profile_record,
    resume_hint,
    sample_key,
)
from faultbench.measurement.signals import signal_name, signals_raise
from faultbench.measurement.spec import Spec, shown
from faultbench.measurement.workload import Scenario, Unit, Workload

# Beyond the spec's own deadline (per mapper), what a worker may take to start (importing
# the native module) and to set up and tear down the backing.
GRACE_S = 20.0
# An emulated guest on a busy host imports the native module 5-20x slower than native.
EMULATED_GRACE_S = 180.0


def schedule(
    scenarios: list[Scenario], warmups: int, repetitions: int, seed: int, profile: int = 0
) -> Iterator[Unit]:
    """Every scenario once per round, in a seeded shuffled order per round, so drift of the
    machine during the run hits every configuration alike. Deterministic for a given seed
    and scenario list, which is what lets --resume find where it stopped. Made one round at
    a time: a run holds one round's order, never the whole run's. The `profile` rounds come
    last, so the profiler's cost never touches a timed round's machine state."""
    rng = random.Random(seed)
    for round_ in range(warmups + repetitions + profile):
        order = list(scenarios)
        rng.shuffle(order)
        yield from (Unit(s, round_, round_ < warmups, round_ >= warmups + repetitions)
                    for s in order)


def start_grace() -> float:
    """How long a worker may take to start here."""
    from faultbench.measurement.measure import current_plane

    return GRACE_S if current_plane() == "native" else EMULATED_GRACE_S


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class WorkerLost(FaultbenchError, RuntimeError):

    """The worker crashed or missed the deadline; the message is the sample's error."""


class Worker:
    """A persistent measuring subprocess, restarted after a crash or a missed deadline."""
    def __init__(self, log: IO[bytes] | None = None) -> None:
        self._log = log
        self._proc: subprocess.Popen[bytes] | None = None
        self._buffer = b""

    def _start(self) -> subprocess.Popen[bytes]:
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        self._buffer = b""
        try:
            self._proc = subprocess.Popen(
                # -P: the faultbench this runner imported, not one in the working directory
                [sys.executable, "-P", "-m", "faultbench.measurement.worker"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env,
                # its own process group: killing it takes its mapper processes along, and a
                # Ctrl-C at the terminal reaches only the parent, which stops it cleanly
                start_new_session=True,
            )
        except OSError as exc:  # its pipes or the process itself (ulimit -n, -u)
            raise WorkerStartError(printable(  # filename: the interpreter it could not run
                f"cannot start the measuring worker: {exc.strerror or exc}"
                f"{f' ({exc.filename})' if exc.filename else ''}{limit_hint(exc)}")) from None
        assert self._proc.stdout is not None
        # A worker that cannot even start would otherwise cost every sample of the run.
        try:
            ready = self._readline(self._proc.stdout.fileno(), time.monotonic() + start_grace())
        except WorkerLost as exc:
            raise RunError(f"the measuring worker cannot start: {exc}: "
                           f"{self._log_tail()}") from None
        if ready is None:
            self.close()
            raise RunError(f"the measuring worker did not start within {start_grace():g} s")
        return self._proc

    def _log_tail(self) -> str:
        if self._log is None:
            return "its error is on stderr above"
        self._log.flush()
        # the log is open for appending only, by descriptor (SafeDir): read the same file
        with open(f"/proc/self/fd/{self._log.fileno()}", "rb") as log:
            log.seek(max(os.fstat(log.fileno()).st_size - 4096, 0))
            lines = log.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else "(nothing logged)"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def measure(self, spec: Spec, timeout_s: float, profile: bool = False
                ) -> list[dict[str, Any]]:
        """Sample dicts of one measurement, or WorkerLost."""
        if self._proc is None:
            self._start()
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        request = {"spec": spec.to_dict(), "profile": profile}
        try:
            proc.stdin.write(json.dumps(request).encode() + b"\n")
            proc.stdin.flush()
        except BrokenPipeError:
            raise WorkerLost(self._lost("the worker exited before the sample")) from None
        line = self._readline(proc.stdout.fileno(), time.monotonic() + timeout_s)
        if line is None:
            self.close()
            raise WorkerLost(f"no result within {timeout_s:g} s; worker killed")
        reply = json.loads(line)
        if "error" in reply:
            raise WorkerLost(f"the worker failed: {reply['error']}")
        return list(reply["samples"])

    def _readline(self, fd: int, deadline: float) -> bytes | None:
        """The next line; None at the deadline; WorkerLost at end of file (the worker died,
        whether or not it can be reaped yet)."""
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                # an empty select is checked once more without waiting: a parent stopped
                # (Ctrl-Z) past the deadline resumes into EINTR, and CPython's retry then
                # returns [] without polling, though the worker had answered in time
                timeout = max(deadline - time.monotonic(), 0)
                if not selector.select(timeout) and not selector.select(0):
                    return None
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    raise WorkerLost(self._lost("the worker died during the sample"))
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def _lost(self, what: str) -> str:
        assert self._proc is not None
        code = self._proc.wait()
        self.close()
        how = f"signal {signal_name(-code)}" if code < 0 else f"exit status {code}"
        return f"{what} ({how}); see {WORKER_LOG}"

    def close(self) -> None:
        """Stop the worker and anything it started; safe to call at any time."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        # its own group holds the mappers it forked; a crashed worker may have left some.
        # Killed before the worker is reaped, so the group id cannot have been reused.
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        # SIGKILL gave it no chance to release a tmpfs_huge mount; reaped, it provably won't
        release_killed(proc.pid)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with suppress(BrokenPipeError):
                    stream.close()


def every_mapper(samples: list[dict[str, Any]], mappers: int) -> list[dict[str, Any]]:
    """One sample per mapper: when setup failed the core returns mapper 0's only (so does a
    lost worker), and the mappers that never ran carry the same status and reason, so every
    measurement has the same keys, which resuming relies on."""
    return samples + [{**samples[0], "mapper": m} for m in range(len(samples), mappers)]


def start(
    workload: Workload, out: Path, plane: str | None = None, extra: dict[str, Any] | None = None
) -> RunDir:
    """A new run directory with meta.json written, ready for execute().

    `plane` is where the samples will be measured when that is not here (booted kernels,
    whose knobs are then checked in the guest); `extra` goes into meta.json as it is. The
    directory is locked for this process (RunDir.lock)."""
    from faultbench._version import __version__
    from faultbench.measurement.measure import current_plane
    from faultbench.measurement.rundir.provenance import collect, file_dir

    if plane is None:
        workload = settable_knobs(workload)
    check_resources(workload, here=plane is None)
    if not workload.scenarios:
        reasons = "; ".join(f"{s['scenario']}: {s['reason']}" for s in workload.skipped[:3])
        raise RunError(f"nothing to run in workload {workload.name}: {reasons}")
    if plane is None and workload.knob_names():
        check_knob_settings(workload)
    run_dir = RunDir.create(out)
    try:
        try:
            provenance = collect(file_dir(s.spec for s in workload.scenarios))
        except OSError as exc:
            raise RunError(f"cannot read this machine's provenance: {exc.filename}: "
                           f"{exc.strerror}{limit_hint(exc)}") from None
        run_dir.write_meta({
            "format": FORMAT,
            "faultbench_version": __version__,
            "harness_epoch": HARNESS_EPOCH,
            "workload": workload.meta(),
            "scenarios": [s.to_dict() for s in workload.scenarios],
            "skipped": workload.skipped,
            "provenance": provenance,
            "plane": plane or current_plane(),
            "started_utc": utc_now(),
            "finished_utc": None,
            **(extra or {}),
        })
    except BaseException:  # an interrupt while provenance is collected, ...
        run_dir.abandon()
        raise
    return run_dir


@dataclass(frozen=True)
class BootShare:
    """What one boot of a booted run measures: every warm-up round, then measured rounds
    [first, stop) (counted from 0 after the warm-ups); its samples carry `tags`."""

    index: int
    first: int
    stop: int
    tags: dict[str, Any]


def execute(run_dir: RunDir, quiet: bool = False, on_unit: Callable[[Unit], None] | None = None,
            boot: BootShare | None = None) -> dict[str, Any]:
    """Measure every unit of the run not yet in samples.jsonl; returns the final meta.

    KeyboardInterrupt (Ctrl-C) or Terminated (SIGTERM) propagates after knobs are restored
    and the worker is stopped; samples already written stay, and execute() on the same
    directory resumes. `on_unit` is called before each measurement. With `boot`, only that
    boot's share is measured and meta.json and pyperf.json are left to the host (which
    reads the kernel's refusals from the boot's samples, bootresult.py)."""
    meta = run_dir.read_meta()
    scenarios = [Scenario.from_dict(s) for s in meta["scenarios"]]
    workload = meta["workload"]
    records = run_dir.read_samples()
    if boot is not None:
        records = [r for r in records if r.get("boot") == boot.index]
    boot_index = None if boot is None else boot.index
    done = {sample_key(r) for r in records}
    unsupported = refused_scenarios(records)

    profile_rounds = workload.get("profile", 0)
    if profile_rounds:  # the profiler's module only for a run that profiles
        from faultbench.measurement.profile import unavailable

        if why := unavailable():  # one line; the timings do not need the profiles
            print(f"faultbench run: no kernel profiles: {why}", file=sys.stderr)
            profile_rounds = 0

    def units() -> Iterator[Unit]:
        return share_units(scenarios, workload, boot, profile_rounds)

    def pending(u: Unit) -> bool:
        return is_pending(u, done, unsupported, boot_index)

    total = todo = 0
    for u in units():
        total += 1
        todo += pending(u)
    if boot is None and not todo and meta.get("finished_utc"):
        # left as it is: rewriting its finish time would date the samples wrongly
        raise nothing_to_resume(run_dir.path, shown(meta["finished_utc"]))
    if boot is None:  # a booted run's host checked it before booting
        refuse_relative_dir(meta, run_dir.path)
    plane = meta["plane"]
    knob_names = sorted({name for s in scenarios for name in s.knobs})
    progress = Progress(total, total - todo, quiet, names=[s.name for s in scenarios],
                        eta=plane != "tcg-icount")
    try:
        with ExitStack() as stack:
            # unwound in reverse: worker stopped, then knobs restored, then files closed
            # SIGTERM unwinds like Ctrl-C (as Terminated), so knobs are restored and the
            # worker stopped
            stack.enter_context(signals_raise((signal.SIGTERM,)))
            log = stack.enter_context(run_dir.open_log())
            stack.callback(progress.finish)
            stack.callback(run_dir.close)
            knobs = stack.enter_context(KnobSession(
                knob_names, file_dir=read_ahead_dir(scenarios))) if knob_names else None
            if knobs is not None:  # a guest's, and a resumed run's (checked again)
                knobs.tell_apart(knob_settings(scenarios))
            worker = Worker(log)
            stack.callback(worker.close)
            applied: dict[str, Any] | None = None
            readback: dict[str, Any] = {}
            drifted: dict[str, int] = {}
            stack.callback(say_drift, drifted)  # on every way out, Ctrl-C included
            watch = KnobWatch(n for n in thp_names() if n not in knob_names)  # not set here
            for unit in units():
                if not pending(unit):
                    continue
                spec = unit.scenario.spec
                refused = None
                if knobs is not None and unit.scenario.knobs != applied:
                    try:
                        readback = knobs.apply(unit.scenario.knobs)
                        applied = unit.scenario.knobs
                    except ValueRefused as exc:
                        # this setting is skipped as a kernel without the feature skips one;
                        # the others are measured, and a resume does not ask again
                        readback, applied, refused = {}, None, str(exc)
                        print(f"faultbench run: {unit.scenario.name} skipped: the kernel "
                              f"refused it: {refused}", file=sys.stderr)
                if on_unit is not None:
                    on_unit(unit)
                timeout = spec.deadline_s * spec.mappers + GRACE_S
                try:
                    samples = worker.measure(spec, timeout, unit.profiled) if not refused else [
                        sample_without_result(spec, plane, "unsupported", refused).to_dict()]
                except WorkerLost as exc:
                    samples = [sample_without_result(spec, plane, "error", str(exc)).to_dict()]
                samples = every_mapper(samples, spec.mappers)
                drift = {**(knobs.drift() if knobs is not None else {}), **watch.drift()}
                if drift:
                    applied = None  # the next measurement sets them again
                    for name in drift:
                        drifted[name] = drifted.get(name, 0) + 1
                for sample in samples:
                    sample["knobs"] = dict(readback)
                    if drift:
                        sample["knob_drift"] = drift
                    profile = sample.pop("profile", None)
                    record = {**sample, "scenario": unit.scenario.name, "round": unit.round,
                              "warmup": unit.warmup, "profiled": unit.profiled,
                              **(boot.tags if boot else {})}
                    if sample_key(record) not in done:
                        if profile is not None:  # first: a sample never lacks its profile
                            run_dir.append_lines(PROFILES, [profile_record(record, profile)])
                        run_dir.append(record)
                        records.append(record)
                if all(s["status"] == "unsupported" for s in samples):
                    unsupported[unit.scenario.name] = samples[0]["error"] or "unsupported"
                progress.update(unit, samples)
    except KnobError as exc:
        raise RunError(f"{exc}{resume_hint(run_dir.path)}") from None
    if boot is not None:
        return meta
    known = {s["scenario"] for s in meta["skipped"]}
    meta["skipped"] += [
        {"scenario": name, "reason": f"the kernel refused it: {reason}"}
        for name, reason in unsupported.items() if name not in known
    ]
    meta["finished_utc"] = utc_now()
    run_dir.write_pyperf(meta, records)
    run_dir.write_meta(meta)
    return meta


def share_units(scenarios: list[Scenario], workload: dict[str, Any], boot: BootShare | None,
                profile_rounds: int) -> Iterator[Unit]:
    """A run's (or boot's) units, made lazily, each time in the same order. Every boot takes
    the warm-up and profiled rounds, and its share of the measured ones."""
    warmups = workload["warmups"]
    for u in schedule(scenarios, warmups, workload["repetitions"], workload["seed"],
                      profile_rounds):
        if (boot is None or u.warmup or u.profiled
                or warmups + boot.first <= u.round < warmups + boot.stop):
            yield u


def is_pending(unit: Unit, done: set[tuple[Any, ...]], unsupported: dict[str, str],
               boot_index: int | None) -> bool:
    """Whether a mapper of `unit` has no sample in `done` (sample_key) yet; a scenario the
    kernel refused (`unsupported`) is never measured again."""
    return unit.scenario.name not in unsupported and any(
        (unit.scenario.name, boot_index, unit.round, m) not in done
        for m in range(unit.scenario.spec.mappers))


def unmeasured(meta: dict[str, Any], records: list[dict[str, Any]],
               boot: BootShare | None) -> list[Unit]:
    """The units of a finished run (or of one of its boots) that `records` lack: what a
    resume would measure. Profiled rounds are left out: a machine that could not profile
    measured none."""
    scenarios = [Scenario.from_dict(s) for s in meta["scenarios"]]
    index = None if boot is None else boot.index
    mine = [r for r in records if r.get("boot") == index]
    done = {sample_key(r) for r in mine}
    unsupported = refused_scenarios(mine)
    return [u for u in share_units(scenarios, meta["workload"], boot, 0)
            if is_pending(u, done, unsupported, index)]


def refused_scenarios(records: list[dict[str, Any]]) -> dict[str, str]:
    """Scenarios the kernel refused in `records` (every sample of a round unsupported), and
    why: not measured again."""
    by_measurement: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for record in records:
        by_measurement.setdefault((record["scenario"], record["round"]), []).append(record)
    return {
        name: samples[0]["error"] or "unsupported"
        for (name, _), samples in by_measurement.items()
        if all(s["status"] == "unsupported" for s in samples)
    }
