"""`faultbench run [WORKLOAD]`: run a workload into a results directory, print a summary."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from faultbench.commands import (
    FilesystemError,
    check_count,
    check_text,
    filesystem_errors,
    imported_meanwhile,
    integer,
)
from faultbench.commands.run_hints import (
    interrupted_hint,
    knob_writer_said_once,
    recorded_command,
    recovery,
    started,
)

if TYPE_CHECKING:
    from faultbench.measurement.rundir.results import RunDir
    from faultbench.measurement.workload import Workload

DEFAULT_WORKLOAD = "quick"
PROFILE_ROUNDS = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "workload", nargs="?", metavar="WORKLOAD",
        help=f"a shipped workload (see `faultbench workloads`) or a .toml file "
        f"(default: {DEFAULT_WORKLOAD})",
    )
    parser.add_argument(
        "--out", metavar="DIR", help="results directory (default: results/<UTC time>-<workload>)"
    )
    parser.add_argument(
        "--resume", metavar="DIR",
        help="continue the interrupted run in DIR, measuring only what is missing",
    )
    parser.add_argument(
        "--kernel", metavar="[LABEL=]IMAGE", action="append",
        help="boot IMAGE (a bzImage/vmlinuz file or a kernel build tree) under QEMU "
        "(virtme-ng) and run the workload there; give it twice or more to compare kernels in "
        "one run (LABEL defaults to the image's release)",
    )
    parser.add_argument(
        "--boots", metavar="N", type=integer,
        help="boots of each kernel, in a balanced interleaved order, each running an equal "
        "share of the rounds (default: 3 with several kernels, else 1)",
    )
    parser.add_argument(
        "--jobs", metavar="N", type=integer,
        help="with --kernel: guests booted at once (default: on the instruction clock the "
        "CPUs available, fewer if memory for each guest's --memory + 256M runs out; on the "
        "wall clock 1, since contention moves wall-clock times); also with --resume",
    )
    parser.add_argument(
        "--shard", metavar="I/N",
        help="with --kernel: run only shard I of N of the boot plan (every N-th boot from "
        "the I-th) into a run directory of its own; `faultbench merge` combines the N",
    )
    parser.add_argument(
        "--memory", metavar="SIZE",
        help="the booted guest's memory, e.g. 384M (default: the workload's guest_memory, "
        "else 3x its largest scenario + 512M, at least 1G); recorded in meta.json",
    )
    parser.add_argument(
        "--clock", choices=("icount", "wall"),
        help="with --kernel under TCG: the guests' clock, QEMU's instruction counter (icount, "
        "the default: 1 virtual ns = 1 guest instruction, repeatable across boots) or the "
        "host's real time (wall); KVM guests always use the wall clock",
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KNOB=V1[,V2...]",
        help="add a knob axis to every scenario of the workload, as `measure --set` does "
        "(several --set: cross product; replaces the workload's own values of that knob); "
        "recorded in meta.json",
    )
    parser.add_argument(
        "--only", action="append", default=[], metavar="FILTER",
        help="run only the scenarios every FILTER accepts: FIELD=V1[,V2...] on a spec field "
        "or knob (uffd=none,wp  size=64M  fault_around_bytes=64K), or a pattern on the "
        "scenario name (a glob with * ? [, else a substring); recorded in meta.json",
    )
    parser.add_argument(
        "--repetitions", metavar="N", type=integer,
        help="measured rounds instead of the workload's own; recorded in meta.json",
    )
    parser.add_argument(
        "--profile", metavar="N", type=integer, nargs="?", const=PROFILE_ROUNDS,
        help=f"after the measured rounds, N more (default {PROFILE_ROUNDS}) whose samples are "
        "profiled (kernel symbols of the loop and munmap, in profiles.jsonl) and kept out of "
        "the timings; overrides the workload's `profile`",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def run(args: argparse.Namespace) -> int:
    for value, option in ((args.workload, "WORKLOAD"), (args.out, "--out"),
                          (args.resume, "--resume"), *((k, "--kernel") for k in args.kernel or ())):
        check_text(value, option)
    for value in args.set:
        check_text(value, "--set", give="KNOB=V1[,V2...]")
    for value in args.only:
        check_text(value, "--only", give="FIELD=V1[,V2...] or a pattern on the scenario name")
    check_text(args.memory, "--memory", give="a size such as 512M")
    from faultbench.measurement.run_checks import WorkerStartError
    from faultbench.measurement.rundir.results import BadSampleLine, ResultsError, resume_hint

    try:
        with filesystem_errors(f"writing {args.resume or args.out or 'the results directory'}"):
            return _run(args)
    except (FilesystemError, WorkerStartError) as exc:
        path = started(args)
        raise type(exc)(f"{exc}{resume_hint(path) if path else ''}") from None
    except BadSampleLine as exc:
        raise ResultsError(f"{exc}; {recovery(exc)}") from None


def _run(args: argparse.Namespace) -> int:
    from faultbench.measurement.booted.jobs import MAX_JOBS
    from faultbench.measurement.rundir.results import ResultsError, RunDir
    from faultbench.measurement.runner import RunError, execute, start, utc_now
    from faultbench.measurement.signals import INTERRUPTED, exit_status
    from faultbench.measurement.workload import (
        KNOB_AXIS,
        MAX_PROFILE_ROUNDS,
        check_measurements,
    )

    run_dir: RunDir | None = None
    on_unit = None
    try:
        # first: the options below ask for --kernel, which --resume refuses as well
        if args.resume and (
                args.workload or args.out or args.kernel or args.boots is not None
                or args.clock or args.set or args.only or args.repetitions is not None
                or args.profile is not None or args.memory is not None
                or args.shard is not None):
            raise RunError("--resume DIR takes the workload, kernels, clock, memory, shard "
                           "and directory from DIR; give no WORKLOAD, --out, --kernel, "
                           "--boots, --clock, --memory, --shard, --set, --only, "
                           "--repetitions or --profile with it")
        if args.boots is not None and not args.kernel:
            raise RunError("--boots counts boots of --kernel images; give --kernel too")
        if args.memory is not None and not args.kernel:
            raise RunError("--memory sizes a booted guest; give --kernel too")
        for given, option in ((args.jobs, "--jobs"), (args.shard, "--shard")):
            if given is not None and not (args.kernel or (args.resume and option == "--jobs")):
                raise RunError(f"{option} shares out the boots of --kernel images; give "
                               "--kernel too")
        check_count(args.jobs, "--jobs", 1, MAX_JOBS)
        if args.clock and not args.kernel:
            raise RunError("--clock chooses the booted guests' clock; give --kernel too (the "
                           "running kernel is timed on the wall clock)")
        if args.resume:
            run_dir = RunDir.existing(Path(args.resume),
                                      refuse=functools.partial(_refuse_resume, args))
            meta = run_dir.read_meta()
            if meta.get("kernels"):
                return _booted(run_dir, args.quiet, args.jobs)
            _restore_knobs(meta)
            if not any(s["knobs"] for s in meta["scenarios"]):  # (a knob writer: locked)
                on_unit = knob_writer_said_once()
        else:
            workload = _workload(args)
            if args.profile is not None:
                check_count(args.profile, "--profile", 0, MAX_PROFILE_ROUNDS)
                workload = dataclasses.replace(workload, profile=args.profile)
                check_measurements(workload.file, len(workload.scenarios), workload.rounds)
            # each boot runs at least one measured round; checked before a plan is built
            check_count(args.boots, "--boots", 1, workload.repetitions)
            kernels = _parse_kernels(args.kernel) if args.kernel else None
            stamp = utc_now().replace("-", "").replace(":", "")
            out = Path(args.out or f"results/{stamp}-{workload.name}")
            from faultbench.measurement import machine
            # collect() mostly waits through its window: the summary's pandas loads meanwhile
            with imported_meanwhile("faultbench.analysis.summary"):
                state = machine.collect(host_knobs=not kernels)
            extra = {"machine_state": state, "command": recorded_command(args._argv)}

            def begin(out: Path) -> RunDir:
                return _start_booted(workload, out, kernels, args.boots, args.clock, extra,
                                     args.memory, args.shard, args.jobs) if kernels else \
                    start(workload, out, extra=extra)

            try:
                run_dir = begin(out)
            except ResultsError:
                if args.out:
                    raise
                # another run took the default name (started in the same second): ours has
                # this process's id after it (the directory is made and locked only there)
                run_dir = begin(out.with_name(f"{out.name}-{os.getpid()}"))
            if kernels:
                _say_machine_state(state, args.quiet, run_dir.read_meta()["plane"])
                return _booted(run_dir, args.quiet, args.jobs)
            # said once the run is accepted: a refusal stays one line
            _say_machine_state(state, args.quiet, "native")
            for skipped in run_dir.read_meta()["skipped"]:
                if skipped["scenario"].startswith(KNOB_AXIS):
                    print(f"faultbench run: {skipped['scenario']} skipped: {skipped['reason']}",
                          file=sys.stderr)
        execute(run_dir, quiet=args.quiet, on_unit=on_unit)
        return _report(run_dir)
    except INTERRUPTED as exc:
        print(f"\nfaultbench run: interrupted{interrupted_hint(run_dir)}", file=sys.stderr)
        return exit_status(exc)
    finally:
        if run_dir is not None:
            run_dir.lock.release()


def _workload(args: argparse.Namespace) -> Workload:
    """The workload with the command line's knob axes, filters and repetitions."""
    from faultbench.measurement.knobs.requested import parse_set_options
    from faultbench.measurement.workload import MAX_MEASUREMENTS, load

    check_count(args.repetitions, "--repetitions", 1, MAX_MEASUREMENTS)
    # the same parser as `measure --set`; names and values as the knob module spells them
    knobs = dict(parse_set_options(args.set))
    return load(args.workload or DEFAULT_WORKLOAD, knobs, args.repetitions).select(args.only)


def _parse_kernels(texts: list[str]) -> list[Any]:
    from faultbench.measurement.booted.boots import parse_kernel

    return [parse_kernel(t) for t in texts]


def _say_machine_state(state: dict[str, Any], quiet: bool, plane: str) -> None:
    """The machine's load at the start in one line, and its warnings (even when quiet):
    busy enough to bend timings, another faultbench changing the knobs."""
    from faultbench.measurement import machine

    described = machine.describe(state, plane)
    assert described is not None  # collect() writes what describe() reads
    line, warnings = described
    if not quiet:
        print(f"faultbench run: {line}", file=sys.stderr)
    for warning in warnings:
        print(f"faultbench run: {warning}", file=sys.stderr)


def _start_booted(workload: Workload, out: Path, kernels: list[Any], boots: int | None,
                  clock: str | None, extra: dict[str, Any], memory: str | None = None,
                  shard: str | None = None, jobs: int | None = None) -> Any:
    from faultbench.measurement.booted import boots as booting
    from faultbench.measurement.booted import guest
    from faultbench.measurement.booted.boot_order import BootPlanError, parse_shard
    from faultbench.measurement.booted.clocks import clock_record, without_concurrent_mappers
    from faultbench.measurement.booted.jobs import refuse_over_memory
    from faultbench.measurement.runner import RunError, start

    try:
        shard_of = parse_shard(shard) if shard is not None else None
    except BootPlanError as exc:
        raise RunError(str(exc)) from None
    missing = guest.requirements(kernels[0].image)
    if missing:
        raise RunError("; ".join(missing))
    guest.check_timeouts_from_env()  # refused now, not after the run directory exists
    guest.check_shared_dir(str(out))
    size, source = booting.chosen_memory(memory, workload.guest_memory)
    if size is None:
        size = booting.guest_memory({"scenarios": [s.to_dict() for s in workload.scenarios]})
        # as a given size is: a guest for the largest scenario may not fit on this machine
        booting.checked_memory(size, f"the guests' memory, by {source}")
    booting.refuse_past_guest_memory((s.spec for s in workload.scenarios), size, source)
    kvm, clock = guest.resolve_clock(clock)
    if clock == "icount":
        workload = without_concurrent_mappers(workload)
    boots = boots if boots is not None else (3 if len(kernels) > 1 else 1)
    plan = booting.plan(kernels, boots, workload.repetitions)
    sharded: dict[str, Any] = {}
    if shard_of:
        plan, sharded["shard"] = booting.shard(plan, *shard_of)
    refuse_over_memory(jobs and min(jobs, len(plan)), size)
    return start(workload, out, plane=guest.plane_for(kvm, clock), extra={
        "kernels": [k.to_dict() for k in kernels], "boots_per_kernel": boots, "boots": plan,
        **sharded,
        "clock": clock_record(clock, kvm), **extra,
        "guest_memory": size, "guest_memory_source": source,
    })


def _refuse_resume(args: argparse.Namespace, run_dir: RunDir, meta: dict[str, Any]) -> None:
    """What refuses `run --resume` of the run of `meta` (checked): asked before a file of
    it is renewed (RunDir.existing), so a refused resume writes nothing."""
    from faultbench.measurement.booted import guest
    from faultbench.measurement.booted.boots import check_unchanged, checked_memory
    from faultbench.measurement.booted.imagecheck import tmpdir_refusal
    from faultbench.measurement.run_checks import (
        nothing_to_resume,
        refuse_changed_knobs,
        refuse_misnamed,
        refuse_other_harness,
        refuse_other_machine,
        refuse_relative_dir,
    )
    from faultbench.measurement.rundir.results import META, nothing_left
    from faultbench.measurement.runner import RunError, unmeasured
    from faultbench.measurement.spec import shown

    path = args.resume
    if meta.get("kernels"):
        if nothing_left(meta):
            raise nothing_to_resume(path, meta["finished_utc"])
        refuse_other_harness(meta, path)  # its kernels: checked by sha256
        refuse_misnamed(meta, path)
        refuse_relative_dir(meta, path)  # a native run's: in execute()
        guest.check_timeouts_from_env()  # before a boot is marked running
        guest.check_shared_dir(str(run_dir.path))
        if why := tmpdir_refusal():
            raise RunError(why)
        if meta.get("guest_memory"):  # the load checked it as a size; this machine's is ours
            checked_memory(meta["guest_memory"], f"{run_dir.path / META}: guest_memory")
        for kernel in meta["kernels"]:
            check_unchanged(kernel)
        return
    if args.jobs is not None:
        raise RunError(f"--jobs: {path} runs on this machine's own kernel, not in booted "
                       "guests")
    merged = meta.get("merged")
    if (isinstance(merged, dict) and merged.get("kind") == "machines"
            and isinstance(meta.get("finished_utc"), str)):
        # merge takes finished runs only; no one host could measure it again
        raise nothing_to_resume(path, meta["finished_utc"])
    refuse_other_harness(meta, path)
    refuse_misnamed(meta, path)
    refuse_other_machine(meta, path)  # before a knob is put back
    refuse_changed_knobs(meta, path)  # those it sets are the journal's to put back
    if meta.get("finished_utc") and not unmeasured(meta, run_dir.read_samples(strict=False),
                                                   None):
        # execute() says so too, of the samples as the renewal left them
        raise nothing_to_resume(path, shown(meta["finished_utc"]))
    refuse_relative_dir(meta, path)


def _booted(run_dir: Any, quiet: bool, jobs: int | None) -> int:
    """Every boot of the run's plan not yet done, `jobs` guests at once (None: the default
    for the run's clock); pyperf.json and the summary on the host."""
    from faultbench.measurement.booted.boots import guest_memory, run_boots
    from faultbench.measurement.booted.clocks import run_clock
    from faultbench.measurement.booted.jobs import attempt_jobs, jobs_record
    from faultbench.measurement.rundir.results import resume_command
    from faultbench.measurement.runner import utc_now

    meta = run_dir.read_meta()
    record, warning = jobs_record(jobs, run_clock(meta), guest_memory(meta),
                                  sum(boot["status"] != "ok" for boot in meta["boots"]))
    if warning:
        print(f"faultbench run: {warning}", file=sys.stderr)
    elif not quiet and record["count"] > 1:
        print(f"faultbench run: {record['count']} guests at once ({record['source']})",
              file=sys.stderr)
    count, meta["jobs"] = attempt_jobs(meta.get("jobs"), record)
    run_dir.write_meta(meta)
    meta = run_boots(run_dir, quiet=quiet, jobs=count)
    failed = [b for b in meta["boots"] if b["status"] != "ok"]
    if not failed:
        meta["finished_utc"] = utc_now()
    records = run_dir.read_samples()
    run_dir.write_pyperf(meta, records)
    run_dir.write_meta(meta)
    status = _report(run_dir) if records else 1
    if failed:
        total = len(meta["boots"])
        for boot in failed:
            print(f"faultbench run: boot {boot['index'] + 1}/{total} ({boot['kernel']}) "
                  f"failed: {boot['reason']}", file=sys.stderr)
        print(f"faultbench run: {len(failed)} of {total} boots failed; redo them with: "
              f"{resume_command(run_dir.path)}", file=sys.stderr)
        return 1
    return status


def _restore_knobs(meta: dict[str, Any]) -> None:
    """A run killed with SIGKILL left its knobs changed and journaled: put them back before
    resuming (the knob session refuses to start over a stale journal)."""
    if not any(s["knobs"] for s in meta["scenarios"]):
        return
    from faultbench.measurement.knobs.journal import restore_journal

    written = {name: {str(s["knobs"][name]) for s in meta["scenarios"] if name in s["knobs"]}
               for scenario in meta["scenarios"] for name in scenario["knobs"]}
    for line in restore_journal(written=written):
        print(f"faultbench run: restored {line}", file=sys.stderr)


def _report(run_dir: RunDir) -> int:
    """The summary, and on stderr how many samples failed; status 1 when no measured sample
    of the run is usable (valid, neither profiled nor measured while someone else had
    changed a knob: what every statistic reads) or most of them failed or drifted (a lost
    worker's one error leaves it 0)."""
    from faultbench.analysis.summary import summary
    from faultbench.errors import FaultbenchError, error_text, printable
    from faultbench.measurement.rundir.results import META, PYPERF, SAMPLES
    from faultbench.measurement.spec import clipped
    from faultbench.measurement.workload import KNOB_AXIS

    written = [n for n in (SAMPLES, META, PYPERF) if run_dir.dir.is_file(n)]
    try:
        print(f"results in {run_dir.path}/ ({', '.join(written)})")
        print(summary(run_dir.dir), end="")
        sys.stdout.flush()
    except FaultbenchError as exc:  # a closed or full standard output, not the run's fault
        raise type(exc)(f"{exc}{interrupted_hint(run_dir)}") from None
    records, meta = run_dir.read_samples(), run_dir.read_meta()
    failed = [r for r in records if r["status"] == "error"]
    if failed:
        # an error sample is final (a resume does not measure it again): said where a
        # script's log keeps it, not only in the summary's notes
        first = printable(clipped(error_text(failed[0]["error"])))
        print(f"faultbench run: {len(failed)} of {len(records)} samples failed (status "
              f"\"error\" in {SAMPLES}); the first: {first}", file=sys.stderr)
    # the kernel's refusals (a knob axis's were said as the run began)
    if refused := [s for s in meta["skipped"] if not s["scenario"].startswith(KNOB_AXIS)]:
        first = printable(f"{clipped(refused[0]['scenario'])}: {clipped(refused[0]['reason'])}")
        print(f"faultbench run: {len(refused)} scenario(s) skipped (`skipped` in {META}); "
              f"the first: {first}", file=sys.stderr)
    why = Counter(_unusable(r) for r in records if not r["warmup"])
    measured, usable = why.total(), why.pop(None, 0)
    if measured and not usable:
        print(f"faultbench run: none of the {measured} measured samples is usable: "
              f"{', '.join(f'{n} {reason}' for reason, n in why.items())}", file=sys.stderr)
    failed_or_drifted = why["failed"] + why["measured while someone else had changed a knob"]
    return 0 if usable and 2 * failed_or_drifted <= measured else 1


def _unusable(record: dict[str, Any]) -> str | None:
    """Why no statistic reads this sample (None: one does)."""
    if record["status"] == "error":
        return "failed"
    if record["status"] != "ok":
        return str(record["status"])  # unsupported: the scenario is skipped, said as such
    if record.get("knob_drift"):
        return "measured while someone else had changed a knob"
    return "profiled" if record.get("profiled") else None
