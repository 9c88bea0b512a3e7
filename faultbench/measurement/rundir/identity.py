"""Whether a run's samples are of its meta.json: each key that puts a sample in a row of the
analysis (scenario, spec, kernel, boot, machine, plane, clock) must be one meta.json records, or the
samples would be labelled, split or pooled as another run's. Knob values are not compared:
a sample records what the kernel read back, which may legitimately differ from the value its
scenario wrote (a coupled knob written after it; THP raising vm.min_free_kbytes), and the
sample was measured at the value read back. Standard library only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from faultbench.measurement.rundir.checks import RunRounds, clock_of, run_rounds, short
from faultbench.measurement.rundir.runfiles import META, merged_parts
from faultbench.measurement.rundir.safefile import ResultsError

# the times a table compares (the touch loop, munmap); mmap_ns is in none, and a copy with
# it edited was taken for another measurement
MEASURED_TIMES = ("touch_ns", "munmap_ns")


def _machines(meta: dict[str, Any]) -> set[str | None]:
    """The machines a sample of this run may name: those of a merge of machines (merge.py
    records each in `merged.from`), or none (None) in any other run."""
    merged, parts = meta.get("merged"), merged_parts(meta)
    if not (isinstance(merged, dict) and merged.get("kind") == "machines" and parts):
        return {None}
    return {part.get("machine") for part in parts}


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _skip_keys(skipped: Iterable[dict[str, Any]]) -> set[tuple[Any, str | None, str | None]]:
    """meta.json's `skipped` as (scenario, kernel, machine): an entry for one kernel, or one
    machine of a merge, or (None) every one."""
    return {(s["scenario"], _text_or_none(s.get("kernel")), _text_or_none(s.get("machine")))
            for s in skipped}


def _skipped_for(keys: set[tuple[Any, str | None, str | None]], record: dict[str, Any]) -> bool:
    """Whether `keys` (_skip_keys) skip the sample `record`'s scenario for its kernel and
    machine."""
    return any((record.get("scenario"), kernel, machine) in keys
               for kernel in (None, record.get("kernel"))
               for machine in (None, record.get("machine")))


def measured_not_skipped(skipped: list[dict[str, Any]], records: Iterable[dict[str, Any]]
                         ) -> list[dict[str, Any]]:
    """`skipped` less the entries that `records`' ok samples measured: a scenario a boot of a
    kernel refused (a setting it refused once) and another boot of it measured is not
    skipped for that kernel, or check_samples_match would refuse the run on every load."""
    measured: dict[Any, set[tuple[Any, Any]]] = {}
    for r in records:
        if r.get("status") == "ok":
            measured.setdefault(r.get("scenario"), set()).add((r.get("kernel"), r.get("machine")))
    kept = []
    for entry in skipped:
        kernel, machine = _text_or_none(entry.get("kernel")), _text_or_none(entry.get("machine"))
        if not any(kernel in (None, k) and machine in (None, m)
                   for k, m in measured.get(entry["scenario"], ())):
            kept.append(entry)
    return kept


def check_samples_match(meta: dict[str, Any], records: list[dict[str, Any]], path: Path) -> None:
    """Refuse samples that are not of this meta.json's run (another run's meta.json, or
    another workload's samples): mixing them would label one scenario's numbers with
    another's name, or split a run into machines or boots it did not have. `records` are
    valid samples (sample_problem found nothing)."""
    specs = {s["name"]: s["spec"] for s in meta["scenarios"]}
    # a native run's samples carry no kernel and no boot; a booted one's, one of its
    # kernels' labels and the boot they were measured in, which booted that kernel
    kernels = {k["label"]: k for k in meta.get("kernels") or []}
    labels = set(kernels) or {None}
    boots = {b["index"]: b for b in meta.get("boots") or []} or {None: {"kernel": None}}
    rounds = run_rounds(meta)
    _check_parts_sampled(meta, records, path)
    machines = _machines(meta)
    # what the run did not measure: a scenario (a knob axis) it could not apply, for every
    # kernel or one, on every machine or one; its samples, if any, say so (status unsupported)
    skipped = _skip_keys(meta.get("skipped") or ())
    for record in records:
        name, kernel, boot = record.get("scenario"), record.get("kernel"), record.get("boot")
        if kernel not in labels:
            problem = f"has samples of kernel {short(kernel)}, which its {META} does not list"
        elif boot not in boots:
            problem = (f"has samples of boot {short(boot)}, which its {META} does not list"
                       if boot is not None else
                       f"has samples of no boot, and its {META} records a booted run")
        elif kernel != boots[boot]["kernel"]:
            problem = (f"has samples of kernel {short(kernel)} in boot {boot}, which its "
                       f"{META} records as booting kernel {short(boots[boot]['kernel'])}")
        elif record.get("machine") not in machines:
            merge = "no merge of machines" if None in machines else "a merge of others"
            problem = (f"has samples of machine {short(record.get('machine'))}, and its "
                       f"{META} records {merge}")
        elif record["plane"] != meta["plane"]:
            # the plane says what a time is (ns, or guest instructions on tcg-icount)
            problem = (f"has samples of plane {short(record['plane'])}, and its {META} "
                       f"records plane {short(meta['plane'])}")
        elif record.get("clock") not in (None, clock_of(meta["plane"])):
            # samples of runs older than clocks have none
            problem = (f"has samples of the {short(record['clock'])} clock, and its {META} "
                       f"records plane {short(meta['plane'])} ({clock_of(meta['plane'])})")
        elif name not in specs:
            problem = (f"has samples of scenario {name}, which its {META} (workload "
                       f"{meta['workload']['name']}) does not list")
        elif record["spec"] != specs[name]:
            problem = (f"the samples of scenario {name} were measured with another spec than "
                       f"its {META} gives")
        elif record["status"] == "ok" and _skipped_for(skipped, record):
            problem = (f"has measured samples of scenario {name}, which its {META} records as "
                       "skipped (not measured)")
        elif boot is None or not (problem := _boot_problem(record, boots[boot],
                                                           kernels[kernel], rounds)):
            continue
        raise ResultsError(f"{path}: {problem}: the two files are from different runs")


def _boot_problem(record: dict[str, Any], boot: dict[str, Any], kernel: dict[str, Any],
                  rounds: RunRounds) -> str | None:
    """Why a booted run's sample, of the kernel its boot booted, is not of that boot as
    meta.json records it, or None: a boot whose samples are counted, a round of its share,
    the kernel's sha256 and release as the guest tagged them."""
    index = boot["index"]
    # a failed or interrupted boot's samples stay in its boots/N.d (set aside in
    # discarded.jsonl on resume), a pending one has none; a running one's may be here: a
    # kill between adding them and recording the boot as done (resume sets them aside)
    if boot["status"] not in ("ok", "running"):
        return f"has samples of boot {index}, which its {META} records as {boot['status']}"
    first, stop = boot["rounds"]
    measured = record["round"] - rounds.warmups  # from 0, as `rounds` counts them
    if 0 <= measured < rounds.repetitions and not first <= measured < stop:
        return (f"has samples of measured round {measured + 1} in boot {index}, whose share "
                f"its {META} records as rounds {first + 1}-{stop}")
    # each null in samples of a harness older than these tags
    tags = {"sha256": record.get("kernel_sha256"), "release": record.get("kernel_release"),
            "version": record.get("kernel_version")}
    wrong = next((key for key, value in tags.items() if value is not None and not (
        runs_version(kernel, value) if key == "version" else value == kernel[key])), None)
    if wrong is None:
        return None
    return (f"has samples of boot {index} tagged kernel {wrong} {short(tags[wrong])}, and its "
            f"{META} records kernel {short(kernel['label'])} with {wrong} {short(kernel[wrong])}")


def runs_version(kernel: dict[str, Any], version: str) -> bool:
    """Whether `version` (a guest's `uname -v`, "#1 SMP ... date") is meta.json's `kernel`'s:
    the end of its image header's version, which a rebuild of the same release changes (any,
    when the header had none)."""
    expected = kernel.get("version")
    return not isinstance(expected, str) or expected.endswith(version)


def _check_parts_sampled(meta: dict[str, Any], records: list[dict[str, Any]],
                         path: Path) -> None:
    """Refuse a merge of machines recording a machine none of its samples is of: the report
    names each part's host and how busy it was, so one such part named a host no sample
    comes from, and 400,000 of them (46 MB of meta.json) made a header of as many. The
    parts' machines are names, each once (check_meta), and each sample's is one of them
    (check_samples_match): no more parts than the samples have machines makes them those."""
    merged, parts = meta.get("merged"), merged_parts(meta)
    if not (isinstance(merged, dict) and merged.get("kind") == "machines"):
        return
    sampled = {record.get("machine") for record in records}
    if len(parts) > len(sampled):
        # the parts' machines are distinct: one of the first len(sampled) + 1 is no sample's
        ghost = next(p["machine"] for p in parts if p["machine"] not in sampled)
        raise ResultsError(f"{path}: has no sample of machine {short(ghost)}, which its "
                           f"{META} records merging ({len(parts):,} machines, samples of "
                           f"{len(sampled):,}): the two files are from different runs")


def measurements(records: Iterable[Mapping[str, Any]],
                 meta: dict[str, Any] | None) -> set[tuple]:
    """Each measured sample of a run (ok, neither a warm-up nor profiled: what its tables
    use) as what makes it one measurement: where it sits (scenario, round, mapper), the
    times its tables compare, and, in a booted run, its boot as meta.json records it (start,
    end, the guest's own clock reading). Two runs measured apart share none of these: a wall
    clock's nanoseconds do not repeat both times of a sample. The instruction clock's can (a
    guest counts the same instructions each boot), and there the boot tells them apart. A
    copy of a run shares them all unless those very fields were edited in it; a merged run
    shares those of each of its parts, and two resumes of one interrupted run those measured
    before it stopped. compare refuses to test such samples against themselves, merge to
    count them twice. `meta` None: the samples alone, boots not told apart."""
    boots = {boot.get("index"): (boot.get("kernel"), boot.get("started_utc"),
                                 boot.get("finished_utc"), _guest_clock(boot.get("guest")))
             for boot in (meta or {}).get("boots", ()) if isinstance(boot, dict)}
    return {(r["scenario"], r["round"], r["mapper"], boots.get(r.get("boot")),
             *(r.get(time) for time in MEASURED_TIMES))
            for r in records
            if r.get("status") == "ok" and not r.get("warmup") and not r.get("profiled")}


def _guest_clock(guest: Any) -> str | None:
    stamp = guest.get("collected_utc") if isinstance(guest, dict) else None
    return stamp if isinstance(stamp, str) else None
