"""Load run directories (docs/results.md) into one tidy DataFrame.

Analysis plane: imports pandas, so nothing in the measurement plane may import this module;
`faultbench.load` reaches it lazily. samples.jsonl is read by the results module's reader
(bad lines skipped and counted), the same one `faultbench run --resume` uses strictly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from faultbench.analysis.dropped import Dropped
from faultbench.errors import FaultbenchError
from faultbench.measurement.rundir.checks import folios_valid, knob_setting_problem
from faultbench.measurement.rundir.identity import check_samples_match
from faultbench.measurement.rundir.results import (
    MAX_LINES,
    META,
    SAMPLES,
    RunRounds,
    json_lines,
    knob_names_problem,
    most_lines,
    no_samples_yet,
    parse_meta,
    read_run_file,
    run_file_lines,
    run_rounds,
    sample_problem,
    unique_key,
)
from faultbench.measurement.rundir.runfiles import merged_parts
from faultbench.measurement.rundir.safefile import SafeDir
from faultbench.measurement.spec import format_size, parse_size

FAULT_AROUND_KNOB = "fault_around_bytes"
EMULATED_PLANES = {"tcg-guest", "tcg-icount"}
# Planes whose *_ns fields count guest instructions (QEMU -icount shift=0), not time.
INSTRUCTION_CLOCK_PLANES = {"tcg-icount"}
# Per-page metrics: the words after the value ("{t}": the plane's time unit, `time_unit`).
# Every per-page metric is per page *touched* (pages_touched), whatever was mapped.
METRICS = {
    "ns_per_page": "{t}/page",
    "faults_per_page": "faults/page",
    "mapped_per_touched": "mapped/page",
    "munmap_ns_per_page": "munmap {t}/page",
}
# Fault counts and pages mapped come from the kernel: preemption cannot change them.
COUNT_METRICS = ("faults_per_page", "mapped_per_touched")


def time_unit(plane: str) -> str:
    """What a timing counts on a plane: "ns" of the wall clock (native, kvm-guest,
    tcg-guest) or "insn", guest instructions (tcg-icount: QEMU -icount shift=0 makes one
    virtual ns one instruction). The one place tables and figures take the unit from."""
    return "insn" if plane in INSTRUCTION_CLOCK_PLANES else "ns"


def clock_unit(planes: Iterable[str]) -> str:
    """The time unit of rows from these planes: "ns", "insn", or "insn|ns" when they mix
    clocks (compare --force); "ns" for none."""
    return "|".join(sorted({time_unit(plane) for plane in planes})) or "ns"


def metric_unit(metric: str, planes: Iterable[str] = ("native",)) -> str:
    """The unit a table header prints for a metric, e.g. "ns/page" or "insn/page"; "ns|insn"
    when the rows mix clocks (compare --force)."""
    return METRICS[metric].format(t=clock_unit(planes))


# folio_pages_<size> (e.g. folio_pages_64K): a sample's present pages in folios of that size
FOLIO_PREFIX = "folio_pages_"
def _folio_sizes(folios: Any, page_size: int) -> dict[int, int] | None:
    """A sample's `folios` (pages per order; a line whose `folios` is not was dropped at
    load, checks.folios_valid) as pages per folio size in bytes; None if it is absent."""
    if not isinstance(folios, dict) or not folios_valid(folios) or not page_size > 0:
        return None
    return {page_size << int(order): pages for order, pages in folios.items()}


def folio_text(rows: pd.DataFrame) -> str:
    """The folio sizes behind these rows' pages, largest share first: "64K 98%, 4K 2%";
    sizes under 5% after the first are counted, not listed, so that a table cell stays short
    ("1M 95% +3": three more sizes, 5% of the pages together); "" when none was recorded."""
    columns = [c for c in rows if c.startswith(FOLIO_PREFIX)]
    pages = rows[columns].sum()
    total = pages.sum()
    if not columns or not total:
        return ""
    shares = sorted(((n / total, parse_size(c.removeprefix(FOLIO_PREFIX)))
                     for c, n in pages.items() if n), key=lambda item: (-item[0], -item[1]))
    listed = [shares[0], *(item for item in shares[1:] if item[0] >= 0.05)]
    text = ", ".join(f"{format_size(size)} {share:.0%}" if share >= 0.005
                     else f"{format_size(size)} <1%" for share, size in listed)
    return text + (f" +{len(shares) - len(listed)}" if len(shares) > len(listed) else "")


def folio_texts(df: pd.DataFrame, keys: str | list[str]) -> pd.Series:
    """folio_text of each group of `df` by `keys`."""
    groups = df.groupby(keys, sort=False, dropna=False)
    return groups.apply(folio_text, include_groups=False) if len(df) else pd.Series(dtype=str)


def _folio_columns(df: pd.DataFrame) -> None:
    """`folios` as FOLIO_PREFIX columns (NaN where not recorded)."""
    if "folios" not in df:
        return
    page_sizes = pd.to_numeric(df["page_size"], errors="coerce").fillna(0).astype(int)
    sizes = [_folio_sizes(f, p) for f, p in zip(df["folios"], page_sizes, strict=True)]
    for size in sorted({size for found in sizes if found for size in found}):
        df[FOLIO_PREFIX + format_size(size)] = [np.nan if found is None else found.get(size, 0)
                                                for found in sizes]


# Sample fields that say the timed loop was disturbed: involuntary context switches of the
# touching thread, steal time.
INTERFERENCE_FIELDS = ("nivcsw", "steal_ns")


class AnalysisError(FaultbenchError, ValueError):
    """Input that cannot be analysed; the message is one line naming the path and the problem."""


@dataclass(frozen=True)
class RunInfo:
    """What titles and headers say about where a run was measured."""
    kernel: str
    host: str
    plane: str
    workload: str
    # booted runs: "LABEL (release, sha 1234abcd), ..." and the boots of each kernel
    kernels: str | None = None
    boots_per_kernel: int | None = None

    @property
    def emulated(self) -> bool:
        return self.plane in EMULATED_PLANES

    @property
    def instruction_clock(self) -> bool:
        return self.plane in INSTRUCTION_CLOCK_PLANES

    def plane_label(self) -> str:
        if self.instruction_clock:
            return f"{self.plane} (instruction clock: 1 virtual ns = 1 guest instruction)"
        return f"{self.plane} (emulated timings)" if self.emulated else self.plane


def check_run_dir(run: Path) -> None:
    """AnalysisError unless `run` names a directory (whether a run's is read after)."""
    if "\0" in str(run):
        raise AnalysisError(f"{str(run)!r}: a path has no NUL bytes")
    try:
        found = run.is_dir()
    except OSError as exc:  # a name too long, ...
        raise AnalysisError(f"{run}: {exc.strerror}") from None
    if not found:
        raise AnalysisError(f"{run}: not a directory (expected a faultbench run directory)")


def _read_run(run: Path | SafeDir) -> tuple[pd.DataFrame, dict[str, Any], Dropped]:
    """One run's frame, its files read through the directory's descriptor (opened here
    for a path): never through a link, regular files only."""
    if isinstance(run, SafeDir):
        return _read_files(run)
    check_run_dir(run)
    with SafeDir.reading(run) as directory:
        return _read_files(directory)


def _read_files(directory: SafeDir) -> tuple[pd.DataFrame, dict[str, Any], Dropped]:
    run_dir = directory.path
    samples_path = run_dir / SAMPLES
    meta: dict[str, Any] = {}
    with run_file_lines(directory, SAMPLES, MAX_LINES) as lines:
        meta_bytes = read_run_file(directory, META)
        if meta_bytes is not None:
            meta = parse_meta(meta_bytes, run_dir / META)
        if lines is None:
            why = no_samples_yet(run_dir, meta) if meta else None
            raise AnalysisError(why or f"{run_dir}: not a faultbench run directory (no {SAMPLES})")
        if meta:
            lines.most = most_lines(meta)  # known only now: meta.json read second
        # each line checked as it is read: a bad one is not held while the rest are read
        records, dropped = _valid((record for _, _, record in json_lines(lines)),
                                  run_rounds(meta) if meta else None,
                                  {s["name"]: s["knobs"] for s in meta.get("scenarios", ())})
    if not records and not (dropped.unreadable or dropped.invalid):
        raise AnalysisError(f"{run_dir}: the run has no samples (samples.jsonl is empty)")
    if not records:
        why = dropped.notes()[0].removeprefix("NOTE: ")
        raise AnalysisError(f"{run_dir}: the run has no valid samples: {why}")
    if meta:
        check_samples_match(meta, records, samples_path)
    frame = pd.DataFrame.from_records(records)
    spec = pd.DataFrame(frame.pop("spec").tolist(), index=frame.index)
    # object: a knob some scenarios leave unset would otherwise be float64, which makes
    # 10 read 10.0 and two values above 2^53 (sysctls go to 2^64-1) one. Every valid
    # sample has its `knobs` object (sample_problem).
    knobs = pd.DataFrame(frame.pop("knobs").tolist(), index=frame.index, dtype=object)
    frame = pd.concat([frame, spec, knobs], axis=1)
    frame.attrs["knob_columns"] = list(knobs.columns)
    return frame, meta, dropped


def _valid(records: Iterable[dict[str, Any] | None], rounds: RunRounds | None,
           settings: dict[str, dict[str, Any]]) -> tuple[list[dict[str, Any]], Dropped]:
    """The records that are valid samples, each (scenario, boot, round, mapper) once; a
    None is a line that held no JSON object. `settings`: each scenario's knobs."""
    dropped = Dropped()
    seen: set[tuple[Any, ...]] = set()
    knobs: set[str] = set()
    valid = []
    for record in records:
        if record is None:
            dropped.unreadable += 1
            continue
        problem = (sample_problem(record, in_run=False, rounds=rounds)
                   or knob_names_problem(record, knobs)
                   or knob_setting_problem(record, settings))
        if problem is not None:
            # the kind of problem, without the scenario it was found in
            kind = problem.split(": ", 1)[-1] if problem.startswith("scenario ") else problem
            dropped.invalid[kind] = dropped.invalid.get(kind, 0) + 1
            continue
        if "scenario" in record:  # bare samples (measure --json) are each their own
            key = unique_key(record)
            if key in seen:
                dropped.duplicates += 1
                continue
            seen.add(key)
        valid.append(record)
    return valid, dropped


def _derive(df: pd.DataFrame, knob_columns: list[str]) -> pd.DataFrame:
    df["warmup"] = df["warmup"].fillna(False).astype(bool) if "warmup" in df else False
    for name in ("round", "mapper"):
        if name not in df:
            df[name] = 0
    # runs from before the populate step had none
    df["populate"] = df["populate"].fillna("none") if "populate" in df else "none"
    df["pagemap"] = df["pagemap"].fillna(True).astype(bool) if "pagemap" in df else True
    df["fill"] = df["fill"].fillna("write") if "fill" in df else "write"  # runs before fill
    for name in (*METRICS, "munmap_ns", "pages_mapped", "pages_touched"):
        if name not in df:
            df[name] = np.nan
    touched = df["pages_touched"].astype(float).where(df["pages_touched"] > 0)
    df["munmap_ns_per_page"] = df["munmap_ns"].astype(float) / touched
    df["mapped_per_touched"] = df["pages_mapped"].astype(float) / touched
    df["ns_per_page"] = df["ns_per_page"].astype(float)
    df["faults_per_page"] = df["faults_per_page"].astype(float)
    multi = df["mappers"] > 1
    df["role"] = np.where(multi, np.where(df["mapper"] == 0, "first", "later"), "only")
    # WP and MINOR registrations switch fault-around off (uffd_disable_fault_around), MISSING
    # does not; each sample says whether its mapper registered.
    off = _registered(df) & df["uffd"].isin(["wp", "minor"])
    if FAULT_AROUND_KNOB in knob_columns:
        knob = pd.to_numeric(df[FAULT_AROUND_KNOB], errors="coerce")
        off |= knob <= df["page_size"]
    never = df["backing"].isin(["anon", "hugetlb"]) | (df["access"] == "write")
    df["fault_around"] = np.where(never, "n/a", np.where(off, "off", "on"))
    df["emulated"] = df["plane"].isin(EMULATED_PLANES)
    # a profiled sample ran with the kernel profiler sampling it: slower, so no timing data
    df["profiled"] = df["profiled"].fillna(False).astype(bool) if "profiled" in df else False
    # A sample measured while someone else had changed a knob (knob_drift) was not measured
    # at its scenario's settings: no statistic uses it, profiled or not (drift_notes says so).
    df["drifted"] = (df["knob_drift"].map(lambda d: isinstance(d, dict) and bool(d))
                     if "knob_drift" in df else False)
    df["ok"] = (df["status"] == "ok") & ~df["warmup"] & ~df["profiled"] & ~df["drifted"]
    # runs without booted kernels: one kernel, one boot; runs not merged: one machine
    for name in ("kernel", "boot", "machine"):
        if name not in df:
            df[name] = None
    # Something else ran on the touching thread's CPU (it was preempted) or the hypervisor
    # took time from the guest during the timed loop; runs from before these were recorded
    # have neither, and count as undisturbed.
    hit = pd.Series(False, index=df.index)
    for name in INTERFERENCE_FIELDS:
        if name in df:
            hit |= pd.to_numeric(df[name], errors="coerce").fillna(0) > 0
    df["interfered"] = df["ok"] & hit
    _folio_columns(df)
    return df


def exclude_interfered(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with interfered samples no longer `ok` (--strict); `.attrs["excluded"]`: how many.
    AnalysisError when that leaves none of the valid samples it had."""
    strict = df.assign(ok=df["ok"] & ~df["interfered"])
    if df["ok"].any() and not strict["ok"].any():
        raise AnalysisError(
            f"{', '.join(df.attrs['paths'].values())}: --strict left out all "
            f"{int(df['ok'].sum())} valid samples (their timed loops were preempted or saw "
            "steal time); run without --strict, or measure again on a quieter machine")
    strict.attrs = {**df.attrs, "excluded": int(df["interfered"].sum())}
    return strict


def _registered(df: pd.DataFrame) -> pd.Series:
    """Whether each sample's mapper registered with userfaultfd, as the sample records it.

    Samples written before faultbench recorded it (the reference runs under results/ until
    they are regenerated) lack the field; for them it follows from uffd_mappers.
    """
    recorded = df["registered"] if "registered" in df else pd.Series(np.nan, index=df.index)
    derived = (df["uffd"] != "none") & (
        (df["uffd_mappers"] == "all")
        | ((df["uffd_mappers"] == "first") & (df["mapper"] == 0))
        | ((df["uffd_mappers"] == "later") & (df["mapper"] > 0))
    )
    return recorded.where(recorded.notna(), derived).astype(bool)


def load(runs: str | Path | SafeDir | Sequence[str | Path]) -> pd.DataFrame:
    """One row per sample of one or several run directories (docs/results.md).

    Columns: every Sample field, the spec's fields, one column per knob, and derived ones:
    `role` (only/first/later mapper), `fault_around` (on/off/n/a for that mapper),
    `munmap_ns_per_page`, `mapped_per_touched`, `emulated`, `drifted` (measured while
    someone else had changed a knob: `knob_drift`), `ok` (valid, not a warm-up and not
    drifted: what statistics use), `interfered` (an ok sample preempted or stolen from in its
    loop),
    and `kernel`, `boot` (None for runs without booted kernels). Several runs add a `run`
    column (the directory name).
    `.attrs`: `meta` (meta.json per run), `knob_columns`, `bad_lines` per run, `dropped`
    (per run, the lines not loaded and why: unreadable, invalid, duplicate), `paths` (the
    directory per run name). `profiled` samples (kernel-profiled, slower) are never `ok`.
    A SafeDir (a run directory already opened) is read through its descriptor.
    """
    paths: list[Path | SafeDir] = (
        [runs] if isinstance(runs, SafeDir) else [Path(runs)] if isinstance(runs, str | Path)
        else [Path(p) for p in runs])
    if not paths:
        raise AnalysisError("no run directory given")
    frames: list[pd.DataFrame] = []
    metas: dict[str, dict[str, Any]] = {}
    bad_lines: dict[str, int] = {}
    dropped: dict[str, Dropped] = {}
    knob_columns: list[str] = []
    paths_by_name: dict[str, str] = {}
    for path in paths:
        frame, meta, lost = _read_run(path)
        where = path.path if isinstance(path, SafeDir) else path
        name = _unique_name(where, metas)
        paths_by_name[name] = str(where)
        frame["run"] = name
        metas[name] = meta
        bad_lines[name] = lost.unreadable
        dropped[name] = lost
        knob_columns += [c for c in frame.attrs["knob_columns"] if c not in knob_columns]
        frames.append(frame)
    df = pd.concat(frames, ignore_index=True)
    if len(paths) == 1:
        df = df.drop(columns="run")
    df = _derive(df, knob_columns)
    df.attrs = {"meta": Shared(metas), "knob_columns": knob_columns,
                "bad_lines": Shared(bad_lines), "dropped": Shared(dropped),
                "paths": Shared(paths_by_name)}
    return df


class Shared(dict):
    """A dict of `.attrs`, read-only once loaded. pandas deep-copies a frame's attrs into
    every frame made from it; this one is shared instead (a run's meta.json copied for
    every groupby and selection was most of an A/A comparison's time, and what was dropped
    at load a tenth of a profiled report's)."""

    def __deepcopy__(self, memo: dict[int, Any]) -> Shared:
        return self


def _unique_name(path: Path, taken: dict[str, Any]) -> str:
    name = path.resolve().name or str(path)
    suffix = 2
    unique = name
    while unique in taken:
        unique = f"{name}#{suffix}"
        suffix += 1
    return unique


def run_info(meta: dict[str, Any], df: pd.DataFrame | None = None) -> RunInfo:
    """Kernel release, host and plane from meta.json, falling back to what samples say.

    A booted run's provenance is the host's: its kernels are those meta.json lists (each
    with the release read from its image), not the host's.
    """
    prov = meta.get("provenance") or {}
    kernel = _first_str(
        prov, ("kernel.release", "kernel_release", "release", "kernel", "uname.release")
    )
    booted = booted_kernels(meta)
    kernels = None
    if booted:
        kernel = " / ".join(dict.fromkeys(release for release, _ in booted.values()))
        kernels = ", ".join(f"{label} ({release}, sha {sha})"
                            for label, (release, sha) in booted.items())
    host = _first_str(prov, ("host.name", "hostname", "host", "node", "uname.nodename"))
    # a merge of shards keeps the first shard's provenance; its parts name every host
    hosts = [p.get("machine") for p in merged_parts(meta)]
    host = ", ".join(dict.fromkeys(h for h in hosts if isinstance(h, str) and h)) or host
    plane = meta.get("plane")
    if not plane and df is not None and len(df):
        plane = str(df["plane"].iloc[0])
    workload = meta.get("workload") or {}
    name = workload.get("name") if isinstance(workload, dict) else str(workload)
    return RunInfo(
        kernel=kernel or "unknown kernel",
        host=host or "unknown host",
        plane=plane or "unknown plane",
        workload=name or "unknown workload",
        kernels=kernels,
        boots_per_kernel=meta.get("boots_per_kernel") if booted else None,
    )


def booted_kernels(meta: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """A booted run's kernels in --kernel order: label -> (release, first 8 of the sha256)."""
    kernels = [k for k in meta.get("kernels") or [] if isinstance(k, dict)]
    return {str(k.get("label")): (str(k.get("release") or "unknown release"),
                                  str(k.get("sha256") or "?")[:8]) for k in kernels}


def _first_str(data: dict[str, Any], dotted: Iterable[str]) -> str | None:
    for key in dotted:
        value: Any = data
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if isinstance(value, str) and value:
            return value
    return None
