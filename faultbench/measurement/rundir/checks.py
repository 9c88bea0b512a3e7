"""What a line of samples.jsonl or profiles.jsonl must be for faultbench to use it: both are
read back as untrusted input (another program, a bad disk or a person may have written them).
Standard library only."""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

from faultbench.measurement.knobs.catalog import MAX_KNOBS, is_knob_name
from faultbench.measurement.knobs.sysctl_ranges import ULONG_MAX
from faultbench.measurement.spec import (
    CLOCKS,
    LAUNCH_OUTCOMES,
    MAX_DEADLINE_S,
    MAX_MAPPERS,
    PLANES,
    STATUSES,
    Sample,
    Spec,
    SpecError,
    parse_size,
)

# Sample fields by kind, from the Sample dataclass itself so that a new field is checked too.
_INT_FIELDS = tuple(f.name for f in dataclasses.fields(Sample) if f.type in ("int", "int | None"))
_FLOAT_FIELDS = tuple(f.name for f in dataclasses.fields(Sample) if f.type == "float | None")
_INT64_MAX = (1 << 63) - 1
FOLIO_MAX_ORDER = 40  # far above any folio; a larger order in a file is not one
_MAX_PAGE_SIZE = 1 << 30  # no page is larger (x86's gigantic pages)
# A sample ends at its deadline, so no page took longer; more faults than this per page
# touched is not a measurement either. Bounds for plausibility, and to keep tables narrow.
_FLOAT_MAX = {"ns_per_page": MAX_DEADLINE_S * 1e9, "faults_per_page": 1e6}
# what an "ok" sample has by definition: its touch loop ran and was counted
_OK_FIELDS = ("pages_touched", "touch_ns", "ns_per_page", "faults_per_page")
# Every key a samples.jsonl line has: Sample's fields (`faultbench measure --json` prints
# them), its place in the run (runner.execute), a booted run's boot tags (boot_guest) and a
# merged run's machine (merge). Each key of a line becomes a column of the analysis' frame
# for every line, so any other is refused (a spec field outside the spec would be a second
# column of that name).
_RUN_KEYS = ("scenario", "round", "warmup", "knob_drift", "kernel", "boot", "kernel_release",
             "kernel_version", "kernel_sha256", "machine")
_SAMPLE_FIELDS = frozenset(f.name for f in dataclasses.fields(Sample))
_KEYS = _SAMPLE_FIELDS | frozenset(_RUN_KEYS)
# The Sample fields of the format's first version: every line any faultbench wrote has them,
# so the analysis reads them from every line (a line without `knobs` among others made a
# frame column named 0). A line without one is not a sample. Fields added since may be
# missing from an older harness's lines, and the analysis defaults them.
_ALWAYS_WRITTEN = ("spec", "status", "error", "mapper", "plane", "page_size",
                   "pages_touched", "touch_ns", "ns_per_page", "faults_minor", "faults_major",
                   "faults_per_page", "perf_page_faults", "pages_mapped",
                   "resident_before_pages", "mmap_ns", "munmap_ns", "uffd_events", "uffd_ns",
                   "uffd_features", "cycles", "instructions", "fs_type", "knobs",
                   "null_reasons")
# ... and those of an app-launch session (spec apps > 0), which came with them
_LAUNCH_FIELDS = ("launches_done", "rss_pages", "vmstat", "launch_outcome")
_SPEC_FIELDS = frozenset(f.name for f in dataclasses.fields(Spec))
# The other fields' types, and those the writer may leave null
_TYPED = (("status", str), ("plane", str), ("warmup", bool), ("knobs", dict),
          ("null_reasons", dict), ("error", str), ("profiled", bool), ("launch_outcome", str),
          ("clock", str), ("fs_type", str), ("kernel", str), ("machine", str),
          ("kernel_release", str), ("kernel_version", str), ("kernel_sha256", str),
          ("registered", bool), ("folios", dict), ("profile", dict))
_NULLABLE = frozenset(("error", "launch_outcome", "fs_type", "kernel", "machine",
                       "kernel_release", "kernel_version", "kernel_sha256", "registered",
                       "folios", "profile"))
# the text fields the measurement writes one of a few values in (spec.py)
_DOMAINS = (("status", STATUSES), ("plane", PLANES), ("clock", CLOCKS),
            ("launch_outcome", LAUNCH_OUTCOMES))


def clock_of(plane: str) -> str:
    """The clock a plane's *_ns fields are read from: QEMU's instruction counter on
    tcg-icount (one virtual ns per guest instruction), real time everywhere else."""
    return "icount" if plane == "tcg-icount" else "wall"


# The label word and `compare --by` value (analysis.labels) of a field or knob a scenario
# leaves unset (null): a knob it does not set (the machine's value), no `tmpfs_huge` (no tmpfs
# of faultbench's own), no `dir` (the backing's default directory). A level of its own, never
# pooled with a set value; so no merged machine may be named it (merge).
UNSET = "unset"

# uname's fields hold at most 64 bytes (__NEW_UTS_LEN): a longer host name or release is no
# machine's, and would label every row and figure of the merged run
UTS_MAX_BYTES = 64


@dataclasses.dataclass(frozen=True)
class RunRounds:
    """A run's rounds, in order: its warm-ups, measured rounds and profiled ones."""
    warmups: int
    repetitions: int
    profile: int

    @property
    def total(self) -> int:
        return self.warmups + self.repetitions + self.profile


def run_rounds(meta: dict[str, Any]) -> RunRounds:
    """The rounds a run's samples are in (counts check_meta has validated)."""
    workload = meta["workload"]
    return RunRounds(workload["warmups"], workload["repetitions"], workload.get("profile", 0))


def sample_problem(record: dict[str, Any], in_run: bool = True,
                   rounds: RunRounds | None = None) -> str | None:
    """Why a samples.jsonl record is not a sample faultbench can use, or None.

    Checks what resuming and analysis rely on: the keys that identify it (scenario, boot,
    round, mapper) and its spec, and that every number is of its field's type, finite and
    in range (a NaN or a 300-digit value is refused, not shown). Without `in_run` a bare
    sample (`faultbench measure --json`) passes too: it has no scenario or round. With
    `rounds` (run_rounds of its meta.json), a round the run does not have is refused:
    resuming would count it as one more repetition; so is a `warmup` or `profiled` flag
    that is not its round's (a warm-up counted as measured). A mapper past its spec's
    mappers is refused too: its numbers would be pooled into another mapper's row."""
    scenario = record.get("scenario")
    odd = next((key for key in record if key not in _KEYS), None)
    if odd is not None:
        where = f"scenario {scenario}" if isinstance(scenario, str) and scenario else "sample"
        if odd in _SPEC_FIELDS:
            return f"{where}: spec field {short(odd)} outside its spec"
        return f"{where}: key {short(odd)}, which no faultbench sample has"
    bare = not in_run and "scenario" not in record and "round" not in record
    if not bare and (not isinstance(scenario, str) or not scenario):
        return f"scenario is {scenario!r}, not a scenario name"
    where = f"scenario {scenario}" if scenario else "sample"
    for key, low, high in (("round", 0, 10**9), ("mapper", 0, MAX_MAPPERS - 1),
                           ("boot", 0, 10**6)):
        value = record.get(key)
        if value is None and (key == "boot" or (bare and key == "round")):
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            return f"{where}: {key} is {value!r}, not an integer from {low} to {high}"
    if rounds is not None and record.get("round") is not None and \
            record["round"] >= rounds.total:
        return (f"{where}: round {record['round']} is past the run's {rounds.total} rounds "
                "(warm-ups, repetitions and profiled ones)")
    lacking = next((key for key in _ALWAYS_WRITTEN if key not in record), None)
    if lacking is not None:
        return f"{where}: no {lacking}, which every faultbench sample has"
    # kernel and machine (a booted run's, a merged run's) group tables: a list or a float
    # there is no label, and would fail deep in pandas. Null only where the writer writes
    # null: a `warmup` or `profiled` null would count its sample as measured. A line of a
    # harness from before a field was added lacks it, which is not null.
    for key, kind in _TYPED:
        value = record.get(key)
        if isinstance(value, kind):
            continue
        may_lack = key != "warmup" or bare
        if value is None and (key in _NULLABLE or (key not in record and may_lack)):
            continue
        return f"{where}: {key} is {short(value)}, not {kind.__name__}"
    if rounds is not None and record.get("round") is not None and \
            (problem := _phase_problem(record, rounds)):
        return f"{where}: {problem}"
    odd = next((key for key, values in _DOMAINS if key in record
                and record[key] is not None and record[key] not in values), None)
    if odd is not None:
        return (f"{where}: {odd} is {short(record[odd])}, not one of "
                f"{', '.join(dict(_DOMAINS)[odd])}")
    drift = record.get("knob_drift")
    if drift is not None and (not isinstance(drift, dict) or not all(
            isinstance(v, list) and len(v) == 2 and all(map(_knob_value, v))
            for v in drift.values())):
        return f"{where}: knob_drift is {short(drift)}, not {{knob: [expected, found]}}"
    # knob names become columns of the analysis' frame: one that is no knob's could be one
    # of its own columns (ok, role)
    for key in ("knobs", "knob_drift"):
        odd = next((name for name in record.get(key) or {} if not is_knob_name(name)), None)
        if odd is not None:
            return f"{where}: {key} names {short(odd)}, not a knob"
    # values label scenarios: an object is no label, NaN no value equal to itself
    odd = next((name for name, value in (record.get("knobs") or {}).items()
                if not _knob_value(value)), None)
    if odd is not None:
        return (f"{where}: knob {short(odd)} is {short(record['knobs'][odd])}, not a value "
                "read back (an integer or text)")
    reasons = record.get("null_reasons") or {}
    if not all(isinstance(v, str) for v in reasons.values()):
        return f"{where}: null_reasons is {short(reasons)}, not {{field: why}}"
    # each names a null field of the sample; any other key would be a column of the
    # report's footer frame, which 70,000 of them on a line made take gigabytes
    odd = next((name for name in reasons if name not in _SAMPLE_FIELDS), None)
    if odd is not None:
        return f"{where}: null_reasons names {short(odd)}, not a sample field"
    vmstat = record.get("vmstat", {})
    if not isinstance(vmstat, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= _INT64_MAX
            for v in vmstat.values()):
        return f"{where}: vmstat is {short(vmstat)}, not an object of counter deltas"
    if not folios_valid(record.get("folios") or {}):
        return f"{where}: folios is {short(record['folios'])}, not {{order: pages}}"
    problem = _spec_problem(record.get("spec"))
    if problem is not None:
        return f"{where}: spec: {problem}"
    if record["spec"].get("apps", Spec.apps) and \
            (lacking := next((k for k in _LAUNCH_FIELDS if k not in record), None)):
        return f"{where}: no {lacking}, which every app-launch sample has"
    mappers = record["spec"].get("mappers", Spec.mappers)
    if record["mapper"] >= mappers:
        return f"{where}: mapper {record['mapper']} of a spec of {mappers} mapper(s)"
    for key in _INT_FIELDS:
        value = record.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not 0 <= value <= _INT64_MAX):
            return f"{where}: {key} is {short(value)}, not a count from 0 to 2^63-1"
    page_size = record.get("page_size")  # strides and windows are counted in it
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not (
            0 < page_size <= _MAX_PAGE_SIZE and page_size & (page_size - 1) == 0):
        return f"{where}: page_size is {short(page_size)}, not a power of two up to 1G"
    problem = _pages_problem(record)
    if problem is not None:
        return f"{where}: {problem}"
    for key in _FLOAT_FIELDS:
        value = record.get(key)
        high = _FLOAT_MAX.get(key, float(_INT64_MAX))
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or not 0 <= value <= high):
            return f"{where}: {key} is {short(value)}, not a number from 0 to {high:g}"
    if record["status"] == "ok":  # what every table divides by and reads
        missing = [k for k in _OK_FIELDS if record.get(k) is None]
        if missing or not record["pages_touched"]:
            return (f"{where}: status ok without its loop's {', '.join(missing) or 'pages'} "
                    "(not a measurement)")
        # two reads of CLOCK_MONOTONIC_RAW around a loop touching a page differ by tens of
        # ns; 0 is a loop the clock did not see (a tick-based clocksource), not a time, and
        # the break-even's on/off ratio and the cost model's relative errors divide by it.
        if not record["touch_ns"]:
            return (f"{where}: status ok with touch_ns 0 (a loop below the clock's "
                    "resolution: not a measurement)")
        return _per_page_problem(record, where)
    return None


def _pages_problem(record: dict[str, Any]) -> str | None:
    """Why a sample counts more pages than its mappings hold, or None. A mapper maps its
    spec's size once (native/mapper_block.c refuses a mapper's report of more, as here), an
    app-launch session's sums are of its launches, each mapping one app's files of that
    size; folios count each present page of the range once (native/folios.c)."""
    spec = record["spec"]
    pages = parse_size(spec.get("size", Spec.size)) // record["page_size"]
    held = "its mapping holds"
    if apps := spec.get("apps", Spec.apps):
        # the launches the session was to make (spec.py: `launches`, or twice each app):
        # launches_done, at most that, is a count an edit may have emptied
        pages *= spec.get("launches", Spec.launches) or 2 * apps
        held = "its launches' mappings hold"
    folios = record.get("folios") or {}
    counts = [(key, record.get(key))
              for key in ("pages_touched", "pages_mapped", "resident_before_pages")]
    counts.append(("the pages of its folios", sum(
        n for n in folios.values() if isinstance(n, int) and not isinstance(n, bool))))
    for name, count in counts:
        if count is not None and count > pages:
            return f"{name} {count}, more than the {pages} pages {held}"
    return None


def _per_page_problem(record: dict[str, Any], where: str) -> str | None:
    """Why an ok sample's per-page values are not its counts over pages_touched (what the
    measurement writes), or None: any other value is no measurement, and one as small as a
    denormal overflows the ratio of two samples that compare estimates."""
    faults = (None if record["faults_minor"] is None or record["faults_major"] is None
              else record["faults_minor"] + record["faults_major"])
    for key, counts, counted in (("ns_per_page", "touch_ns", record["touch_ns"]),
                                 ("faults_per_page", "faults_minor + faults_major", faults)):
        if counted is not None and not math.isclose(record[key], counted / record["pages_touched"],
                                                    rel_tol=1e-9):
            return (f"{where}: {key} is {short(record[key])}, not its {counts} over "
                    "pages_touched")
    return None


def _phase_problem(record: dict[str, Any], rounds: RunRounds) -> str | None:
    """Why the sample's `warmup` or `profiled` flag is not its round's, or None; a line that
    lacks one (written before the field was) is not checked for it."""
    round_ = record["round"]
    for key, first, stop, which in (
            ("warmup", 0, rounds.warmups, "warm-up rounds, the first"),
            ("profiled", rounds.warmups + rounds.repetitions, rounds.total,
             "profiled rounds, the last")):
        flag = record.get(key)
        if isinstance(flag, bool) and flag != (first <= round_ < stop):
            return (f"{key} {str(flag).lower()} in round {round_}, "
                    f"{'one' if flag is False else 'not one'} of the run's {which} "
                    f"{stop - first} of {rounds.total}")
    return None


def folios_valid(folios: dict[Any, Any]) -> bool:
    """Whether `folios` is present pages by folio order (native/folios.c): orders up to
    FOLIO_MAX_ORDER, pages a count."""
    return all(isinstance(order, str) and order.isascii() and order.isdigit()
               and int(order) <= FOLIO_MAX_ORDER and str(int(order)) == order  # "01" is 1
               and isinstance(pages, int)
               and not isinstance(pages, bool) and 0 <= pages <= _INT64_MAX
               for order, pages in folios.items())


def _knob_value(value: Any) -> bool:
    """Whether `value` is one knobs.catalog.read_value can give: a number or text."""
    return isinstance(value, str) or (
        isinstance(value, int) and not isinstance(value, bool)
        and -(1 << 63) <= value <= ULONG_MAX)


def knob_names_problem(record: dict[str, Any], seen: set[str]) -> str | None:
    """Why a valid sample cannot join the samples whose knob names are `seen`, or None (and
    its names added): together they would name more than the MAX_KNOBS knobs of a run, each
    a column of the analysis' frame for every sample."""
    new = [name for name in record.get("knobs") or {} if name not in seen]
    if len(seen) + len(new) > MAX_KNOBS:
        where = f"scenario {record['scenario']}" if "scenario" in record else "sample"
        return f"{where}: knobs past the {MAX_KNOBS} a run may set (with the lines before it)"
    seen.update(new)
    return None


def knob_setting_problem(record: dict[str, Any],
                         settings: dict[str, dict[str, Any]]) -> str | None:
    """Why a sample's knobs are not its scenario's (`settings`: meta.json's knobs of each
    scenario), or None. A run reads each knob back as it wrote it, or does not measure
    (catalog.reads_as); a sample it could not set has none. Rows are keyed by these values:
    a line with others would be pooled into another setting's row."""
    written, read_back = settings.get(record.get("scenario")), record.get("knobs")
    # a scenario meta.json does not list refuses the whole run (check_samples_match); a
    # line of a harness from before `knobs` has none
    if written is None or read_back is None or (read_back == {} and record["status"] != "ok"):
        return None
    if set(read_back) == set(written) and all(
            str(read_back[name]).split() == str(value).split()
            for name, value in written.items()):
        return None
    return f"scenario {record['scenario']}: knobs other than its scenario's in meta.json"


def _spec_problem(spec: Any) -> str | None:
    """Why `spec` is not a valid spec, or None; a run's samples share a few specs, so each
    distinct one is checked once."""
    try:
        # with each value's type: 1, 1.0 and true are equal keys but not equally valid
        return _checked_spec(tuple((k, type(v), v) for k, v in sorted(spec.items())))
    except (AttributeError, TypeError):  # not an object, or a value that is a list or object
        try:
            Spec.from_dict(spec).normalized()
        except SpecError as exc:
            return str(exc)
        return None


@functools.lru_cache(maxsize=1024)
def _checked_spec(items: tuple[tuple[str, type, Any], ...]) -> str | None:
    try:
        Spec.from_dict({k: v for k, _, v in items}).normalized()
    except SpecError as exc:
        return str(exc)
    return None


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 24 else f"{text[:20]}..."




def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _INT64_MAX


# Distinct stacks one part of a profile may have: measured ones have at most 117 (a loop's
# faults take few paths); room for 35 times that, so that `report`, which holds a row per
# stack, is not made to hold an untrusted file many times over.
MAX_PROFILE_STACKS = 4096
# Frames one stack may have: native/profile.c asks perf for at most FB_PROFILE_MAX_STACK (32)
# kernel frames a sample (perf_event_attr.sample_max_stack: the kernel records no more than
# asked, and refuses to be asked more than kernel.perf_event_max_stack, which goes up to 640K
# (kernel/events/callchain.c)), and measurement.profile.fold adds none. A longer stack is not
# one faultbench recorded, and report classifies every frame of every stack.
MAX_PROFILE_FRAMES = 32


def profile_problem(record: Any) -> str | None:
    """Why a profiles.jsonl record is not a sample's profile faultbench can use, or None:
    the sample's keys, and per part (loop, munmap) counts and stacks that add up, its
    unresolved and user samples among them. `lost` is a count, or null when the kernel
    could not say."""
    if not isinstance(record, dict) or not isinstance(record.get("scenario"), str):
        return "not an object with a scenario"
    if not all(_count(record.get(k)) for k in ("round", "mapper")):
        return "round or mapper is not a count"
    if record.get("boot") is not None and not _count(record["boot"]):
        return "boot is not a count"
    if not isinstance(record.get("machine"), str | None):  # a merged run's: its sample's key
        return "machine is not a name or null"
    for part in ("loop", "munmap"):
        data = record.get(part)
        if data is None:
            continue
        if not isinstance(data, dict) or not isinstance(data.get("stacks"), dict):
            return f"{part} has no stacks"
        if not all(_count(data.get(k)) for k in ("samples", "unresolved", "user", "throttled")):
            return f"{part}: samples, unresolved, user or throttled is not a count"
        # a user-mode sample has no kernel address to resolve: the two are apart
        if data["unresolved"] + data["user"] > data["samples"]:
            return (f"{part}: {data['unresolved']} unresolved and {data['user']} user "
                    f"samples of {data['samples']}")
        if not _count(data.get("period_ns")) or not data["period_ns"]:
            return f"{part}: period_ns is {short(data.get('period_ns'))}, not a period"
        if data.get("lost") is not None and not _count(data["lost"]):
            return f"{part}: lost is {short(data['lost'])}, not a count or null"
        if len(data["stacks"]) > MAX_PROFILE_STACKS:
            return (f"{part}: {len(data['stacks'])} distinct stacks, more than the "
                    f"{MAX_PROFILE_STACKS} a profile has room for")
        if not all(isinstance(s, str) and _count(n) for s, n in data["stacks"].items()):
            return f"{part}: a stack is not a name with a count"
        if any(s.count(";") >= MAX_PROFILE_FRAMES for s in data["stacks"]):
            return (f"{part}: a stack of more than the {MAX_PROFILE_FRAMES} frames faultbench "
                    "records")
        if sum(data["stacks"].values()) != data["samples"]:
            return f"{part}: its stacks do not add up to its samples"
    return None
