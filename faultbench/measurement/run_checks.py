"""What a native run is checked for before its directory exists or a knob is written:
memory and disk per scenario, the knob axes this machine can set, and which disk's
read_ahead_kb the run's knob is; and what a resume is refused for. Standard library only
(runner.py, which imports it, runs in guests too).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from faultbench._version import __version__
from faultbench.errors import FaultbenchError, printable
from faultbench.measurement.knobs.catalog import (
    KnobError,
    check_coupled,
    check_knob_backing,
    check_settable,
    read_ahead_path,
    read_value,
    resolve,
)
from faultbench.measurement.knobs.journal import (
    check_journal_writable,
    journal_path,
    refuse_if_journal,
)
from faultbench.measurement.knobs.knoblock import KnobLock
from faultbench.measurement.knobs.session import KnobSession
from faultbench.measurement.knobs.sysfs import DEBUGFS, mounted
from faultbench.measurement.naming import scenario_name
from faultbench.measurement.rundir.meta_checks import HARNESS_EPOCH, harness_epoch, same_harness
from faultbench.measurement.rundir.provenance import cpuinfo_fields, kernel_cmdline
from faultbench.measurement.rundir.results import META, report_command
from faultbench.measurement.spec import SpecError, clipped, shown
from faultbench.measurement.workload import Scenario, Workload


class RunError(FaultbenchError, RuntimeError):
    """A run that cannot start or continue; the message says why and what to do."""


class WorkerStartError(RunError):
    """The measuring worker did not start (`ulimit -n`, `-u`): the run directory stays, for
    `run --resume` once the limit allows it."""


def check_resources(workload: Workload, here: bool) -> None:
    """Refuse (RunError, with the figures) a matrix whose largest scenario would not fit in
    a safe share of memory or disk here; a booted guest's memory, disks and directories
    (/var/tmp/xfs) are its own, checked there per sample. (Scenarios the kernel cannot do at
    all, e.g. hugetlb without reserved pages, are measured as `unsupported` and recorded as
    skipped.)"""
    from faultbench.measurement.measure import check_resources as check_spec

    for scenario in workload.scenarios:
        try:
            if here:
                check_spec(scenario.spec)
            check_coupled(scenario.knobs)
            check_knob_backing(scenario.knobs, scenario.spec.backing,
                                   scenario.spec.map)
        except (SpecError, KnobError) as exc:
            raise RunError(f"refusing workload {workload.name}: {scenario.name}: {exc}") \
                from None


def read_ahead_dir(scenarios: Iterable[Scenario]) -> str | None:
    """The directory whose disk's read_ahead_kb the run's knob is: that of the files of the
    scenarios that set it (None: no file scenario sets it, and check_resources refuses any
    other backing that does).

    Scenarios on two disks are refused (KnobError) rather than each setting its own disk:
    a run has one read_ahead_kb knob, with one original in the journal, one drift check and
    one `knobs.read_ahead_kb` per sample, which would not say whose disk it read; and a
    value compared across two disks compares the disks, not the value. Each disk's scenarios
    are a run of their own (`--only dir=...`)."""
    from faultbench.measurement.measure import backing_dir

    disks: dict[str, str] = {}  # read_ahead_kb file -> the first directory on that disk
    for scenario in scenarios:
        if "read_ahead_kb" in scenario.knobs and scenario.spec.backing == "file":
            directory = backing_dir(scenario.spec)
            disks.setdefault(read_ahead_path(directory), directory)
    if len(disks) > 1:
        on = ", ".join(f"{clipped(directory, 100)} on {Path(path).parents[1].name}"
                       for path, directory in list(disks.items())[:2])
        raise KnobError(
            f"read_ahead_kb: the scenarios' files are on {len(disks)} disks ({on}), and a run "
            "sets one disk's read-ahead; run each disk's scenarios on their own "
            "(--only dir=DIR)")
    return next(iter(disks.values()), None)


def settable_knobs(workload: Workload) -> Workload:
    """The workload without the knob axes of its file this machine cannot set (recorded as
    skipped with the knob module's reason, e.g. lockdown). An axis the command line asked
    for (`--set`, or an `--only` on it) is refused instead, as `measure --set` refuses it.
    Checked without writing anything."""
    names = workload.knob_names()
    if not names:
        return workload
    asked = [(f"--set {name}", name) for name in workload.command_line.get("set", {})]
    asked += [(f"--only {text}", text.partition("=")[0])
              for text in workload.command_line.get("only", [])]
    file_dir = read_ahead_dir(workload.scenarios)  # two disks: refused, not skipped
    with mounted("debugfs", DEBUGFS):
        for name in names:
            try:
                check_settable(resolve(name, file_dir))
            except KnobError as exc:
                option = next((option for option, knob in asked if knob == name), None)
                if option:
                    raise KnobError(f"{option}: {exc}") from None
                workload = workload.without_knobs({name}, str(exc))
    return workload


def check_knob_settings(workload: Workload) -> None:
    """Refused now, not after the directory exists (a run that never measured anything must
    leave nothing to --resume): a journal that cannot be written, or another's left, and
    two settings the kernel reads back alike (each written once, and restored)."""
    with KnobLock(journal_path()):
        refuse_if_journal(journal_path())
        check_journal_writable(journal_path())
    with KnobSession(workload.knob_names(),
                     file_dir=read_ahead_dir(workload.scenarios)) as session:
        session.tell_apart(knob_settings(workload.scenarios))


def knob_settings(scenarios: Iterable[Scenario]) -> list[dict[str, str]]:
    """Each knob setting of `scenarios` once, in their order."""
    return [dict(setting) for setting in dict.fromkeys(tuple(s.knobs.items()) for s in scenarios)]


def nothing_to_resume(path: Path | str, finished: str) -> RunError:
    """The refusal of `--resume` for a run that finished at `finished`."""
    return RunError(f"{path} finished at {finished}; nothing to resume ({report_command(path)} "
                    "shows it)")


def refuse_relative_dir(meta: dict[str, Any], path: Path | str) -> None:
    """Refuse to resume a run made before a workload's `dir` was recorded absolute: its
    relative `dir` was resolved against a working directory meta.json does not record, so
    from here it may name no directory (every sample an error) or another one, on another
    filesystem (samples of a different scenario under the same name)."""
    for scenario in meta["scenarios"]:  # check_meta: objects whose spec normalizes
        written = scenario["spec"].get("dir")
        if isinstance(written, str) and not written.startswith("/"):
            raise RunError(
                f"{path} measured in the relative dir {shown(written)} (a run from before "
                "dirs were recorded absolute) and meta.json does not say what it was "
                "relative to: a resume could measure in another directory; "
                f"{report_command(path)} shows its samples, and a new run records the directory")


def refuse_misnamed(meta: dict[str, Any], path: Path | str) -> None:
    """Refuse to resume a run whose meta.json gives a scenario knobs (or a spec) its name
    does not say: a resume writes what `knobs` holds to the kernel and files the samples
    under the name, one scenario that would then be two rows, each labelled wrong."""
    for data in meta["scenarios"]:  # check_meta: objects whose spec normalizes
        scenario = Scenario.from_dict(data)
        if (named := scenario_name(scenario.spec, scenario.knobs)) != scenario.name:
            raise RunError(f"{path}: meta.json's scenario {printable(scenario.name)} has the "
                           f"spec and knobs of {printable(named)}: a resume would set those "
                           f"and file them under the first name; {report_command(path)} shows "
                           "its samples, and a new run measures what its name says")


def refuse_other_harness(meta: dict[str, Any], path: Path | str) -> None:
    """Refuse to resume a run another faultbench started: its samples and ours would be
    pooled under its harness_epoch and version (a harness of another epoch counts other
    things in a sample, compare's epoch check then judges by half the run). Another version
    at the same epoch is refused too: nothing says what else it changed."""
    epoch, version = harness_epoch(meta), meta.get("faultbench_version")
    provenance = meta.get("provenance")
    recorded = provenance.get("faultbench") if isinstance(provenance, dict) else None
    revision = recorded.get("git_revision") if isinstance(recorded, dict) else None
    that = f"faultbench {clipped(str(version), 40)}" + (
        f" (git {clipped(str(revision), 60)})" if revision else "")
    finish = (f"finish it with {that}, the one that started it, or start a new run "
              f"({report_command(path)} shows its samples)")
    if not same_harness((epoch, HARNESS_EPOCH), {meta["plane"]}):
        raise RunError(f"{path} was measured at harness epoch {epoch} and this faultbench "
                       f"measures at epoch {HARNESS_EPOCH}, which counts other things in a "
                       f"sample (docs/results.md, harness epochs): a resume would pool the "
                       f"two under epoch {epoch}; {finish}")
    if version != __version__:
        raise RunError(f"{path} was started by faultbench {clipped(str(version), 40)} and this "
                       f"is {__version__}: a resume would add this version's samples to a run "
                       f"meta.json credits to that one; {finish}")


def refuse_changed_knobs(meta: dict[str, Any], path: Path | str) -> None:
    """Refuse to resume a native run where a knob its provenance records (THP settings,
    fault_around_bytes, read_ahead_kb), and none of its scenarios sets, reads otherwise
    now: its new samples would be pooled with the old ones in every row, credited to the
    setting meta.json records. Called once the run's own journal is replayed."""
    from faultbench.measurement.rundir.provenance import file_dir
    from faultbench.measurement.spec import Spec

    provenance = meta.get("provenance")
    if not isinstance(provenance, dict):
        return
    set_here = {name for scenario in meta.get("scenarios", []) for name in scenario["knobs"]}
    recorded: dict[str, Any] = {}
    for part in ("thp", "knobs"):
        if isinstance(values := provenance.get(part), dict):
            recorded.update(values)
    try:
        where = file_dir(Spec.from_dict(s["spec"]) for s in meta["scenarios"])
    except (KeyError, TypeError, SpecError):
        where = None
    changed = []
    for name, then in recorded.items():
        if name in set_here or isinstance(then, bool) or not isinstance(then, (int, str)):
            continue  # set by the run itself, or not read then
        try:
            now = read_value(resolve(name, where))
        except (KnobError, OSError):
            continue
        if str(now) != str(then):
            changed.append(f"{clipped(printable(name), 60)} {clipped(printable(str(then)), 40)} "
                           f"then, {now} now")
    if changed:
        raise RunError(f"{path} was measured with {'; '.join(changed)}: resuming now would "
                       "pool samples of both settings under the first; put it back (`faultbench "
                       "restore`, if a killed run left it) or start a new run")


def refuse_other_machine(meta: dict[str, Any], path: Path | str) -> None:
    """Refuse to resume a native run on another kernel or host than the one it measured (a
    reboot into a patched kernel, a copy on another machine): its new samples would be
    pooled with the old ones, and meta.json, report and compare would credit them all to
    the first kernel on the first host. (A booted run's kernels are its images, pinned by
    sha256.)"""
    provenance = meta.get("provenance")
    parts = {part: provenance.get(part) if isinstance(provenance, dict) else None
             for part in ("kernel", "host", "cpu")}
    if not all(isinstance(value, dict) for value in parts.values()):
        lacking = "provenance" if not isinstance(provenance, dict) else ", ".join(
            f"provenance.{part}" for part, value in parts.items() if not isinstance(value, dict))
        raise RunError(f"{Path(path) / META}: no {lacking}: nothing says which kernel and "
                       "machine measured its samples, so a resume could pool another's with "
                       f"them; start a new run ({report_command(path)} shows its samples)")
    kernel, host, cpu = parts["kernel"], parts["host"], parts["cpu"]
    uname = os.uname()
    there = kernel.get("release"), kernel.get("version"), host.get("name")
    here = uname.release, uname.version, uname.nodename
    if there != here:
        def said(release: Any, version: Any, name: Any) -> str:
            return (f"Linux {clipped(str(release), 80)} ({clipped(str(version), 80)}) on host "
                    f"{clipped(str(name), 80)}")

        raise RunError(f"{path} was measured on {said(*there)} and this is {said(*here)}: "
                       "resuming here would pool the samples of both under the first one's "
                       "name; resume it on that kernel and host, or start a new run "
                       f"({report_command(path)} shows its samples)")
    # one kernel booted with other parameters (mitigations=, transparent_hugepage=, ...)
    then, now = kernel.get("cmdline"), kernel_cmdline()
    then_words, now_words = (text.split() if isinstance(text, str) else None
                             for text in (then, now))
    if then_words is not None and now_words is not None and \
            sorted(then_words) != sorted(now_words):
        differ = [f"{kind} {clipped(printable(' '.join(these)), 200)}, which this boot {has}"
                  for kind, these, has in (
                      ("with", [w for w in then_words if w not in now_words], "lacks"),
                      ("without", [w for w in now_words if w not in then_words], "has"))
                  if these]
        raise RunError(f"{path} was measured under another kernel command line: "
                       f"{'; '.join(differ)}: resuming here would pool the samples of both "
                       "under the first; boot with the first again, or start a new run")
    # a host name is no machine's identity (cloud images' "localhost", a disk moved to other
    # hardware): its processors, as recorded
    there_cpu = cpu.get("count"), cpu.get("model")
    here_cpu = os.cpu_count(), cpuinfo_fields().get("model name")
    if there_cpu != here_cpu:
        raise RunError(f"{path} was measured on {clipped(str(there_cpu[0]), 20)} CPUs "
                       f"({clipped(str(there_cpu[1]), 80)}) and this machine has "
                       f"{here_cpu[0]} ({here_cpu[1]}): resuming here would pool two "
                       "machines' samples under the first; resume it there, or start a new "
                       "run")
    # on one machine, the CPUs it may run on (taskset, a cgroup's cpuset, isolcpus) are part
    # of what a sample measured: one CPU shared with everything, or two
    usable = len(os.sched_getaffinity(0))
    if cpu.get("usable") is not None and cpu.get("usable") != usable:
        raise RunError(f"{path} was measured with {clipped(str(cpu.get('usable')), 20)} usable "
                       f"CPU(s) and this process may use {usable} (taskset, a cpuset, "
                       "isolcpus): resuming here would pool samples of both under the first; "
                       "resume it on the same CPUs, or start a new run")
