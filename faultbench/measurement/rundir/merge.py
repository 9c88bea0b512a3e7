"""`faultbench merge`: run directories made apart combined into one.

Two kinds, never mixed:
- **Shards** of one booted run (`run --shard I/N`, on one machine or many): boots are the
  units, so the merged run is the unsharded one: every boot back at its plan position
  (`plan_index`), its samples and profiles renumbered to it.
- **Native runs of one workload from different machines** (a fleet): every sample gets
  `machine` (the run's provenance host name), which tables and `compare --by machine` treat
  as a factor: one machine's rows are never pooled with another's.

Everything that would make the parts incomparable is refused in one line: another
workload, kernel (by sha256), plane, clock, harness epoch or faultbench version; shards of
another boot plan (kernels in another order, a boot not the one its plan position has); a
boot or machine given twice; a missing shard; a native run not finished. The output is a
normal run directory (meta.json, samples.jsonl, pyperf.json), written through
results.RunDir, meta.json last: a merge that fails leaves its --out empty. Standard library
only (pyperf for pyperf.json, as every run).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faultbench.errors import FaultbenchError, printable
from faultbench.measurement.rundir.checks import UNSET, profile_problem
from faultbench.measurement.rundir.identity import (
    check_samples_match,
    measured_not_skipped,
    measurements,
)
from faultbench.measurement.rundir.meta_checks import UTS_MAX_BYTES
from faultbench.measurement.rundir.results import (
    BOOTS_DIR,
    META,
    PROFILES,
    PYPERF,
    SAMPLES,
    RunDir,
    most_lines,
    parse_meta,
    parse_samples,
    read_run_file,
    resume_command,
    run_file_lines,
    run_rounds,
)
from faultbench.measurement.rundir.safefile import SafeDir
from faultbench.measurement.runner import BootShare, unmeasured, utc_now
from faultbench.measurement.spec import clipped
from faultbench.measurement.workload import Unit

# What must be equal for runs to be parts of one: meta.json keys, and how a refusal names
# them. The workload's file path may differ between machines; its content may not. So may
# the QEMU version of a clock (as the machines do); its name, options and guest's may not.
SAME = (("workload", "workload"), ("scenarios", "scenarios"), ("plane", "plane"),
        ("clock", "clock"), ("harness_epoch", "harness epoch"))
SAME_BOOTED = (("boots_per_kernel", "boots per kernel"), ("guest_memory", "guest memory"))
_MAY_DIFFER = {"workload": ("file",), "clock": ("qemu",)}


class MergeError(FaultbenchError, ValueError):
    """Runs that cannot be merged; the message names the runs and what differs."""


@dataclass
class Part:
    """One input run directory, read and validated."""

    path: Path
    meta: dict[str, Any]
    samples: list[dict[str, Any]]
    profiles: list[dict[str, Any]]
    reports: dict[int, dict[str, Any]]
    private: bool  # out of other users' reach (0700): a booted run, or one made at umask 077


def _read(path: Path) -> Part:
    with SafeDir.reading(path) as directory:
        data = read_run_file(directory, META)
        if data is None:
            raise MergeError(f"{path}: not a faultbench run directory (no {META})")
        meta = parse_meta(data, path / META)
        most = most_lines(meta)
        with run_file_lines(directory, SAMPLES, most) as lines:
            samples, _ = parse_samples(lines or (), path / SAMPLES, strict=True, validate=True,
                                       rounds=run_rounds(meta))
        check_samples_match(meta, samples, path / SAMPLES)
        with run_file_lines(directory, PROFILES, most) as lines:
            profiles, _ = parse_samples(lines or (), path / PROFILES, strict=True)
        # renumbered and copied as they are: one the readers would skip is refused here
        for number, record in enumerate(profiles, 1):
            if (why := profile_problem(record)) is not None:
                raise MergeError(f"{path / PROFILES}: profile {number}: {why}")
        reports = {}
        if directory.is_dir(BOOTS_DIR):
            with SafeDir.reading(path / BOOTS_DIR) as boots:
                for boot in meta.get("boots", []):
                    raw = boots.read_bytes(f"{boot['index']}.json", limit=1 << 20)
                    report = _json_object(raw)
                    if report is not None:
                        reports[boot["index"]] = report
        private = not os.fstat(directory.fd).st_mode & 0o077
    part = Part(path, meta, samples, profiles, reports, private)
    _check_complete(part)
    return part


def _check_complete(part: Part) -> None:
    """Refuse a part whose samples.jsonl lacks samples it says it has (lacking_measurements):
    merged, it would look complete."""
    found = next(lacking_measurements(part.meta, part.samples), None)
    if found is not None:
        share, lacking = found
        where = "" if share is None else f" boot {share.index} (recorded as done)"
        raise MergeError(
            f"{part.path}:{where} lacks the samples of {len(lacking)} measurement(s) "
            f"(first: scenario {lacking[0].scenario.name}, round {lacking[0].round}): its "
            f"{SAMPLES} was cut short or edited: merge it as it was written, or measure "
            "it again")


def lacking_measurements(meta: dict[str, Any], records: list[dict[str, Any]]
                         ) -> Iterator[tuple[BootShare | None, list[Unit]]]:
    """Of a finished native run (share None), or of each boot recorded as done, the planned
    measurements `records` lack: a samples.jsonl cut or edited. A boot not done, or a native
    run not finished, lacks samples by its own account (a resume measures them)."""
    shares: list[BootShare | None] = [BootShare(b["index"], *b["rounds"], {})
                                      for b in meta.get("boots", []) if b.get("status") == "ok"]
    if not meta.get("kernels") and meta.get("finished_utc") is not None:
        shares = [None]
    for share in shares:
        lacking = unmeasured(meta, records, share)
        if lacking:
            yield share, lacking


def _json_object(raw: bytes | None) -> dict[str, Any] | None:
    try:
        value = json.loads(raw) if raw is not None else None
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _value(meta: dict[str, Any], key: str) -> Any:
    value = meta.get(key)
    if isinstance(value, dict) and key in _MAY_DIFFER:
        return {k: v for k, v in value.items() if k not in _MAY_DIFFER[key]}
    return value


def _check_same(parts: list[Part], keys: Iterable[tuple[str, str]]) -> None:
    first = parts[0]
    for part in parts[1:]:
        for key, name in keys:
            if (ours := _value(first.meta, key)) != (theirs := _value(part.meta, key)):
                raise MergeError(f"{part.path} and {first.path} differ in "
                                 f"{name}{_which(ours, theirs)}: they are not parts of one run")


def _which(ours: Any, theirs: Any) -> str:
    """What in two records differs, as a user set it: a workload made from one file with
    another `--only`, `--set`, `--repetitions` or `--profile` differs there, not in its
    file (its `command_line`, named as the options)."""
    if not (isinstance(ours, dict) and isinstance(theirs, dict)):
        return ""
    names = []
    for key in sorted(set(ours) | set(theirs), key=str):
        if ours.get(key) == theirs.get(key):
            continue
        mine, other = ours.get(key), theirs.get(key)
        if key == "command_line" and isinstance(mine or {}, dict) and \
                isinstance(other or {}, dict):
            options = set(mine or {}) | set(other or {})
            names += [f"--{o}" for o in sorted(options, key=str)
                      if (mine or {}).get(o) != (other or {}).get(o)]
        else:
            names.append(str(key))
    names = [n for n in names if f"--{n}" not in names]  # the option, not what it set too
    return f" ({printable(', '.join(names)[:200])})" if names else ""


def _check_version(parts: list[Part]) -> None:
    """Refuse parts measured by different faultbench versions, as `run --resume` refuses to
    add another version's samples to a run: the merged meta.json records one version (the
    first part's), to which compare's harness notes then credit every part's samples; and
    nothing says what else another version changed."""
    first = parts[0]
    version = first.meta.get("faultbench_version")
    for part in parts[1:]:
        if (other := part.meta.get("faultbench_version")) != version:
            raise MergeError(f"{part.path} was measured by faultbench {clipped(str(other), 40)} "
                             f"and {first.path} by {clipped(str(version), 40)}: the merged run "
                             "would credit every part's samples to one version; merge parts "
                             "measured by one faultbench version")


def _kernels(meta: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, sha256) in --kernel order: the order makes the boot plan (boot_order)."""
    return [(k["label"], k["sha256"]) for k in meta.get("kernels", [])]


def merge(paths: list[Path], out: Path) -> dict[str, Any]:
    """Merge the runs in `paths` into the new run directory `out`; its meta.json."""
    if len(paths) < 2:
        raise MergeError("give two or more run directories to merge")
    parts = [_read(path) for path in paths]
    booted = [bool(p.meta.get("kernels")) for p in parts]
    if len(set(booted)) > 1:
        one = parts[booted.index(True)].path
        other = parts[booted.index(False)].path
        raise MergeError(f"{one} booted kernels and {other} did not: merge shards of one "
                         "booted run, or native runs of different machines")
    _check_same(parts, SAME)
    _check_version(parts)
    if booted[0]:
        meta, samples, profiles, reports = _shards(parts)
    else:
        meta, samples, profiles, reports = _machines(parts)
    _check_measured_apart(parts)  # after what is wrong with a part itself
    run_dir = RunDir.create(out, resumable=False)
    try:
        # a booted run's meta.json holds what its guests returned, boots/ or not; and the
        # merge of a private run is no more readable than it was
        if booted[0] or any(part.private for part in parts):
            run_dir.make_private()
        run_dir.append_lines(SAMPLES, samples)
        if profiles:
            run_dir.append_lines(PROFILES, profiles)
        for index, report in sorted(reports.items()):
            run_dir.write_boot_report(index, report)
        run_dir.write_pyperf(meta, samples)
        # last: meta.json makes a run directory, and a merge cut short is not one to resume
        run_dir.write_meta(meta)
    except BaseException:
        _remove_written(run_dir.dir)
        raise
    finally:
        run_dir.lock.release()
    return meta


def _check_measured_apart(parts: list[Part]) -> None:
    """Refuse two parts sharing a measured sample (identity.measurements: a copy of one run,
    its host name or any line no table uses edited; a merged run and one of its parts):
    merged, one measurement would count as two machines' or two shards'."""
    owner: dict[tuple, Path] = {}
    for part in parts:
        mine = measurements(part.samples, part.meta)
        if clash := next((owner[key] for key in mine if key in owner), None):
            shared = sum(owner.get(key) == clash for key in mine)
            raise MergeError(f"{clash} and {part.path} share {shared:,} measured sample(s): a "
                             "copy of one run, or a run and a part of it, is not a second "
                             "measurement; merge runs measured apart")
        owner.update(dict.fromkeys(mine, part.path))


def _remove_written(directory: SafeDir) -> None:
    """What a failed merge wrote, so that its --out is empty again (it was, or is new)."""
    for name in (SAMPLES, PROFILES, PYPERF):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=directory.fd)
    directory.remove_tree(BOOTS_DIR)


def _merged_from(part: Part) -> dict[str, Any]:
    provenance = part.meta.get("provenance", {})
    return {"path": str(part.path), "machine": provenance.get("host", {}).get("name"),
            "started_utc": part.meta.get("started_utc"),
            "finished_utc": part.meta.get("finished_utc"), "shard": part.meta.get("shard"),
            "machine_state": part.meta.get("machine_state")}


def _started(parts: list[Part]) -> str | None:
    return min((p.meta["started_utc"] for p in parts if p.meta.get("started_utc")), default=None)


def _finished(parts: list[Part]) -> str | None:
    ends = [p.meta.get("finished_utc") for p in parts]
    return max(ends) if all(ends) else None


def _shards(parts: list[Part]) -> tuple[dict[str, Any], list[dict[str, Any]],
                                        list[dict[str, Any]], dict[int, dict[str, Any]]]:
    first = parts[0]
    _check_same(parts, SAME_BOOTED)
    for part in parts:
        if "shard" not in part.meta:
            raise MergeError(f"{part.path} is not a shard (made with run --shard I/N): its "
                             "boots would collide with the others'")
        if sorted(_kernels(part.meta)) != sorted(_kernels(first.meta)):
            raise MergeError(f"{part.path} and {first.path} booted other kernels (labels or "
                             "sha256 differ): they are not parts of one run")
        if _kernels(part.meta) != _kernels(first.meta):
            orders = "; ".join(", ".join(label for label, _ in _kernels(p.meta))
                               for p in (part, first))
            raise MergeError(f"{part.path} and {first.path} give the kernels in another order "
                             f"({orders}), so their boot plans differ: they are not parts of "
                             "one run")
    count = first.meta["shard"]["count"]
    plan_boots = first.meta["shard"]["plan_boots"]
    by_index: dict[int, Part] = {}
    for part in parts:
        shard = part.meta["shard"]
        if (shard["count"], shard["plan_boots"]) != (count, plan_boots):
            raise MergeError(f"{part.path} is shard {shard['index']}/{shard['count']} of a "
                             f"plan of {shard['plan_boots']} boots, {first.path} a shard of "
                             f"{count} of a plan of {plan_boots}: not parts of one run")
        if shard["index"] in by_index:
            raise MergeError(f"{part.path} and {by_index[shard['index']].path} are both shard "
                             f"{shard['index']}/{count}: their boots are duplicates")
        by_index[shard["index"]] = part
    # which shards are absent first: the set given is what the user fixes
    missing = [i for i in range(1, count + 1) if i not in by_index]
    if missing:
        raise MergeError(f"shard {', '.join(f'{i}/{count}' for i in missing)} missing: give "
                         "every shard's run directory")
    # each shard's boots are its plan positions' boots, at distinct positions of its own, so
    # no two shards' collide (check_meta: plan_problem), and the shards have one plan: the
    # same kernels, in one order, boots per kernel and workload
    if (made := len(_kernels(first.meta)) * first.meta["boots_per_kernel"]) != plan_boots:
        raise MergeError(f"{first.path}: its shard is of a plan of {plan_boots} boots, and its "
                         f"kernels and boots per kernel make {made}")
    boots: dict[int, dict[str, Any]] = {}
    samples: list[dict[str, Any]] = []
    profiles: list[dict[str, Any]] = []
    reports: dict[int, dict[str, Any]] = {}
    for index in sorted(by_index):
        part = by_index[index]
        local = {}
        for boot in part.meta["boots"]:
            position = boot["plan_index"]
            local[boot["index"]] = position
            boots[position] = {**{k: v for k, v in boot.items() if k != "plan_index"},
                               "index": position, "shard": index}
            if boot["index"] in part.reports:
                reports[position] = {**part.reports[boot["index"]], "boot": position}
        samples += [{**r, "boot": local[r["boot"]]} for r in part.samples
                    if r.get("boot") in local]
        profiles += [{**r, "boot": local[r["boot"]]} for r in part.profiles
                     if r.get("boot") in local]
    if sorted(boots) != list(range(plan_boots)):
        raise MergeError(f"the shards hold {len(boots)} of the plan's {plan_boots} boots")
    meta = {k: v for k, v in first.meta.items() if k not in ("shard", "jobs")}
    meta.update(boots=[boots[i] for i in range(plan_boots)],
                # a scenario one shard's boots of a kernel refused and another's measured
                skipped=measured_not_skipped(_union(p.meta["skipped"] for p in parts), samples),
                started_utc=_started(parts),
                finished_utc=_finished(parts),
                merged={"kind": "shards", "merged_utc": utc_now(),
                        "from": [_merged_from(by_index[i]) for i in sorted(by_index)]})
    return meta, samples, profiles, reports


def _machines(parts: list[Part]) -> tuple[dict[str, Any], list[dict[str, Any]],
                                          list[dict[str, Any]], dict[int, dict[str, Any]]]:
    seen: dict[str, Path] = {}
    skipped: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    profiles: list[dict[str, Any]] = []
    for part in parts:
        machine = part.meta.get("provenance", {}).get("host", {}).get("name")
        if not isinstance(machine, str) or not machine or not machine.isprintable():
            raise MergeError(f"{part.path}: its provenance names no machine (host name "
                             f"{machine!r})")
        release = part.meta.get("provenance", {}).get("kernel", {}).get("release") or ""
        for what, value in (("host name", machine), ("kernel release", release)):
            size = len(value.encode("utf-8", "surrogatepass"))
            if size > UTS_MAX_BYTES:
                raise MergeError(f"{part.path}: its provenance's {what} is {size} bytes, more "
                                 f"than uname's {UTS_MAX_BYTES}: no machine's")
        if any("machine" in r for r in part.samples):
            raise MergeError(f"{part.path} is a merged run already: merge the runs it came "
                             "from")
        if part.meta.get("finished_utc") is None:
            # a shard's boots say which to redo when the merge is resumed; a native run's
            # gap is said nowhere: resuming the merge would seal it, or fill it on whichever
            # machine resumes it
            raise MergeError(f"{part.path} is not finished (finished_utc is null): finish it "
                             f"with {resume_command(part.path)} first")
        if any(c in machine for c in ",:="):
            # the merged host name joins machines with ", ", `compare RUN:MACHINE` selects
            # one after a ':', and labels read NAME=VALUE: such a name would split in two
            raise MergeError(f"{part.path} is from machine {machine!r}, whose name has a ',', "
                             "':' or '=': it cannot name a level of the `machine` factor; "
                             "merge runs of hosts whose names have none")
        if not machine.isascii():
            # a host name is ASCII (RFC 1123; punycode for others): one that is not may
            # look like another (a Cyrillic em for an m, fullwidth letters) and be read as it
            raise MergeError(f"{part.path} is from machine {machine!a}, whose name is "
                             "not ASCII: a reader could not tell it from a name it looks "
                             "like; merge runs of hosts with ASCII names")
        if machine == UNSET:
            # `compare RUN:unset` selects the samples of no machine, as of no knob
            raise MergeError(f"{part.path} is from machine {machine!r}, the name `compare` "
                             "gives a value left unset: it cannot name a level of the "
                             "`machine` factor; merge runs of hosts named otherwise")
        if machine in seen:
            raise MergeError(f"{part.path} and {seen[machine]} are both from machine "
                             f"{machine}: merge runs of different machines (a machine is one "
                             "level of the `machine` factor)")
        # names are compared exactly; two that differ only in case or surrounding spaces
        # ("vm", "VM ") may be one machine named twice, or two: neither is guessed
        alike = next((m for m in seen if m.strip().casefold() == machine.strip().casefold()),
                     None)
        if alike is not None:
            raise MergeError(f"{part.path} is from machine {machine!r} and {seen[alike]} from "
                             f"{alike!r}: names that differ only in case or spaces are "
                             "ambiguous; merge runs whose host names differ otherwise")
        seen[machine] = part.path
        # one machine's skip, not another's: the scenario may be measured elsewhere
        skipped += [{**entry, "machine": machine, "reason": f"on {machine}: {entry.get('reason')}"}
                    for entry in part.meta["skipped"]]
        samples += [{**r, "machine": machine} for r in part.samples]
        profiles += [{**r, "machine": machine} for r in part.profiles]
    first = parts[0]
    releases = dict.fromkeys(p.meta.get("provenance", {}).get("kernel", {}).get("release")
                             or "unknown" for p in parts)
    meta = {**{k: v for k, v in first.meta.items() if k != "machine_state"},
            "provenance": {"host": {"name": ", ".join(seen)},
                           "kernel": {"release": " / ".join(releases)}},
            "skipped": skipped,
            "started_utc": _started(parts),
            "finished_utc": _finished(parts),
            "merged": {"kind": "machines", "merged_utc": utc_now(),
                       "from": [{**_merged_from(p), "provenance": p.meta.get("provenance")}
                                for p in parts]}}
    return meta, samples, profiles, {}


def _union(lists: Iterable[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for entries in lists:
        out += [e for e in entries if e not in out]
    return out
