"""Where the fault cost goes: kernel profiles (profiles.jsonl) grouped into phases.

A profiled sample's loop profile is folded kernel stacks with sample counts (one sample
per 20 us of the touching thread's CPU time, or of its instructions under QEMU's icount
clock). A stack belongs to the first phase of PHASES that names any function on it, so
rmap accounting done inside fault-around counts as rmap, and a timer interrupt taken
inside a fault as an interrupt. The munmap profile is all teardown. A phase's cost per
touched page is its share of the loop's samples times the median ns/page of the
*unprofiled* samples of the same row: the profiler slows what it samples (its cost is
shown), but not, to first order, the shares.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from faultbench.analysis.labels import knob_order, label_columns, labels, sort_labels
from faultbench.analysis.stats import median_ci
from faultbench.measurement.profile import USER
from faultbench.measurement.rundir.checks import profile_problem
from faultbench.measurement.rundir.results import (
    PROFILES,
    json_lines,
    most_lines,
    run_file_lines,
    unique_key,
)
from faultbench.measurement.rundir.runfiles import Repeats
from faultbench.measurement.rundir.safefile import SafeDir


@dataclass(frozen=True)
class Phase:
    name: str
    functions: tuple[str, ...]  # a trailing * matches a prefix; .isra/.constprop ignored
    meaning: str


# THE phase table (docs/results.md copies it). Order is priority: a stack is the first
# phase that names a function on it.
PHASES: tuple[Phase, ...] = (
    Phase("interrupts", ("asm_sysvec_*", "sysvec_*", "asm_common_interrupt",
                         "common_interrupt", "handle_softirqs", "__irq_exit_rcu",
                         "irq_exit_rcu", "__schedule", "preempt_schedule*"),
          "interrupts, softirqs and scheduling that landed inside the loop"),
    Phase("userfaultfd", ("handle_userfault", "userfaultfd_*", "uffd_*", "mfill_*"),
          "the userfaultfd path of the faulting thread"),
    Phase("page tables", ("__pte_alloc", "pte_alloc_one", "__pmd_alloc", "pmd_alloc_one",
                          "pmd_install", "__pud_alloc", "__p4d_alloc"),
          "page-table allocation (with its memcg charge)"),
    Phase("rmap+memcg", ("folio_add_file_rmap_*", "folio_add_file_rmap", "page_add_file_rmap",
                         "page_add_file_rmap_range", "__folio_add_file_rmap",
                         "__folio_add_rmap", "__lruvec_stat_mod_folio",
                         "lruvec_stat_mod_folio", "__mod_lruvec_page_state",
                         "__mod_lruvec_state", "mod_memcg_lruvec_state",
                         "__mod_memcg_lruvec_state", "__mod_node_page_state",
                         "count_memcg_events", "__count_memcg_events",
                         "__css_rstat_updated", "css_rstat_updated", "cgroup_rstat_updated",
                         "mem_cgroup_from_task", "percpu_counter_add_batch",
                         "add_mm_counter*", "inc_mm_counter*"),
          "rmap and memcg/RSS accounting of each mapped page, in any phase"),
    Phase("fault-around", ("do_fault_around", "filemap_map_pages"),
          "fault-around PTE installation: do_fault_around, filemap_map_pages and what it "
          "calls (next_uptodate_*, filemap_map_folio_range, set_pte_range, PTE locks)"),
    Phase("lookup", ("__do_fault", "shmem_fault", "shmem_get_folio*", "shmem_getpage*",
                     "filemap_get_entry", "filemap_fault", "__filemap_get_folio",
                     "filemap_get_folio*", "find_get_entry", "pagecache_get_page"),
          "the page-cache lookup of the faulting page (->fault)"),
    # 6.1 finds the VMA under mmap_lock (lock_mm_and_find_vma, find_vma, mt_find), 6.4 and
    # later first under RCU (lock_vma_under_rcu, mas_walk): both named, so that neither
    # kernel's lookup reads as entry/exit
    Phase("VMA lookup", ("lock_vma_under_rcu", "lock_mm_and_find_vma", "find_vma",
                         "find_vma_prev", "find_extend_vma*", "mt_find", "mas_walk",
                         "mtree_range_walk", "mas_find"),
          "finding the faulting address's VMA (per-VMA lock under RCU, or mmap_lock)"),
    Phase("entry/exit", ("asm_exc_page_fault", "exc_page_fault", "do_user_addr_fault",
                         "handle_mm_fault", "__handle_mm_fault", "irqentry_*",
                         "error_entry"),
          "fault entry and exit, the fault handler's own work (finish_fault installing the "
          "one faulting PTE)"),
)
USER_PHASE = "user"  # the loop's own instructions (and, in a VM, what the guest cannot see)
OTHER = "other kernel"  # kernel samples no phase names
TEARDOWN = "teardown"  # the whole munmap profile
PHASE_NAMES = (*(p.name for p in PHASES), OTHER, USER_PHASE)
TOP_SYMBOLS = 8
# Stacks (rows of stack_frame, ~1.5 KB each) read from one profiles.jsonl: the largest
# measured run has 24560; lines past this many are skipped as invalid, which bounds the
# memory an untrusted file of up to 1 GiB costs report to about 0.75 GB.
MAX_STACK_ROWS = 500_000

# A stack's phase in C, not a Python step a frame: the frames (each after a `;`, one put
# first) that start with a function of PHASES (a name, then its end: `.isra.0`, ` [module]`,
# the next frame; or a prefix), each phase's before the next one's, so that a frame is the
# first phase naming it. A stack may have many thousands of distinct functions, and a report
# half a million stacks.
_FUNCTIONS = re.compile(";(" + "|".join(
    re.escape(f[:-1]) if f.endswith("*") else rf"{re.escape(f)}(?=[. ;]|\Z)"
    for p in PHASES for f in p.functions) + ")")
_TOKEN_RANK = {f.rstrip("*"): i for i, p in reversed(list(enumerate(PHASES)))
               for f in p.functions}


def phase_of(stack: str) -> str:
    """The phase of one folded loop stack (root first, `;`-separated)."""
    if stack == USER:
        return USER_PHASE
    found = set(_FUNCTIONS.findall(";" + stack))
    return PHASES[min(map(_TOKEN_RANK.__getitem__, found))].name if found else OTHER


def read_profiles(run_dir: Path, meta: dict[str, Any]
                  ) -> tuple[list[dict[str, Any]] | None, int]:
    """profiles.jsonl's valid lines (untrusted: a line without its keys and counts is
    skipped and counted), None without the file, and how many were skipped; `meta`: the
    run's meta.json as loaded ({} without one), which bounds how many lines are read
    (most_lines). An exact copy of a line is kept (one sample's profile written twice);
    two lines that differ for one sample (unique_key) are both skipped, as samples.jsonl's
    are (results.parse_samples): neither can be preferred."""
    records: list[dict[str, Any] | None] = []
    kept: dict[tuple[Any, ...], list[int]] = {}  # a sample's key -> indices of its lines
    differ: set[tuple[Any, ...]] = set()
    repeats = Repeats()
    bad = rows = 0
    # never through a link, regular files only
    with SafeDir.reading(run_dir) as directory, \
            run_file_lines(directory, PROFILES, most_lines(meta)) as lines:
        if lines is None:
            return None, 0
        for number, raw, record in json_lines(lines):
            if (record is None or profile_problem(record) is not None
                    or rows + _stacks(record) > MAX_STACK_ROWS or unique_key(record) in differ):
                bad += 1
                continue
            key = unique_key(record)
            if (repeat := repeats.of(key, number, raw)) is not None and not repeat[1]:
                differ.add(key)  # this line and those kept of its sample (copies) go
                gone = kept.pop(key)
                for index in gone:
                    rows -= _stacks(records[index] or {})
                    records[index] = None
                bad += 1 + len(gone)
                continue
            kept.setdefault(key, []).append(len(records))
            records.append(record)
            rows += _stacks(record)
    return [r for r in records if r is not None], bad


def _stacks(record: dict[str, Any]) -> int:
    """The rows a valid profiles.jsonl record makes in stack_frame."""
    return sum(len(record[part]["stacks"]) for part in ("loop", "munmap") if record.get(part))


@dataclass(frozen=True)
class Coverage:
    """How a load's profiled valid samples and its runs' profiles.jsonl lines met
    (stack_frame's `.attrs["coverage"]`; `report --json`'s `profile_coverage`)."""
    profiled_samples: int  # valid samples of the profiled rounds
    without_profile: int  # of them, those no profile line is joined to
    # null_reasons["profile"] of those the measurement recorded none for -> samples
    none_recorded: dict[str, int]
    runs_without_file: list[str]  # runs without a profiles.jsonl
    unmatched_lines: int  # valid lines joined to no profiled sample
    skipped_lines: int  # lines not a valid profile (read_profiles)

    def __deepcopy__(self, memo: dict[int, Any]) -> Coverage:
        # pandas deep-copies a frame's attrs into every frame made from it: shared instead,
        # as frame.Shared is (nothing changes a Coverage once made)
        return self

    def note(self, several: bool) -> str:
        """The note on the samples without a profile, and why; "" when none lacks one."""
        if not self.without_profile:
            return ""
        why = [f"{n} had none recorded ({reason})" for reason, n in self.none_recorded.items()]
        if self.without_profile > sum(self.none_recorded.values()):
            lost = [f"{PROFILES}{f' of {run}' if several else ''} is missing"
                    for run in self.runs_without_file]
            if self.unmatched_lines:
                lost.append(f"{self.unmatched_lines} valid line(s) of {PROFILES} match no "
                            "profiled sample")
            if self.skipped_lines:
                lost.append(f"{self.skipped_lines} line(s) of {PROFILES} are not a valid "
                            "profile")
            why += lost or [f"{PROFILES} has no line for them"]
        return (f"NOTE: {self.without_profile} of {self.profiled_samples} profiled sample(s) "
                f"have no kernel profile: {'; '.join(why)}.")


def coverage_notes(coverage: Coverage, several: bool) -> tuple[str, str]:
    """The note on profiles.jsonl lines skipped and the note on profiled samples left
    without a profile, each "" when there is nothing to say."""
    skipped = (f"{coverage.skipped_lines} line(s) of {PROFILES} skipped: not a valid profile "
               "(cut short by a kill or a full disk, or edited; or past the stacks a report "
               "holds; or one of two that differ for one sample).") * bool(coverage.skipped_lines)
    return skipped, coverage.note(several)


def _profiled(df: pd.DataFrame) -> pd.DataFrame:
    """The samples profiles belong to: valid ones (not warm-ups) of the profiled rounds."""
    return df[(df["status"] == "ok") & df["profiled"] & ~df["warmup"] & ~df["drifted"]]


def stack_frame(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (profiled valid sample, part, stack): the sample's label columns, role,
    `part`, `stack`, `count`, `phase` (loop rows), and per part `samples`, `unresolved`,
    `lost`. Only profiles
    whose sample is in `df` (valid, not a warm-up) count: a discarded boot's do not.
    `.attrs["coverage"]`: the Coverage of the join."""
    # a sample's identity (results.unique_key): without `machine`, a merged run's last
    # machine's profile would be every machine's
    keys = ["scenario", "boot", "round", "mapper", "machine"]
    rows: list[dict[str, Any]] = []
    lines = skipped = 0
    weights: dict[int, int] = {}  # a profile's _line -> the lines of profiles.jsonl it is
    no_file = []
    for run, path in df.attrs.get("paths", {}).items():
        profiles, bad = read_profiles(Path(path), df.attrs["meta"][run])
        skipped += bad
        if profiles is None:
            no_file.append(run)
        copies = Counter(unique_key(r) for r in profiles or ())  # lines of each sample's
        for record in {unique_key(r): r for r in profiles or ()}.values():
            lines += 1
            weights[lines] = copies[unique_key(record)]
            for part in ("loop", "munmap"):
                data = record.get(part)
                if not data:
                    continue
                head = {**{k: record.get(k) for k in keys}, "run": run, "part": part,
                        "samples": data["samples"], "unresolved": data["unresolved"],
                        "lost": data.get("lost"), "_line": lines}
                rows += [{**head, "stack": s, "count": n} for s, n in data["stacks"].items()]
    profiled = _profiled(df)
    stacks = pd.DataFrame()
    if rows and not profiled.empty:
        stacks = pd.DataFrame(rows)
        sample_cols = [c for c in df.columns if c not in ("samples", "count", "stack", "part")]
        joined = profiled[sample_cols].assign(
            run=profiled["run"] if "run" in profiled else next(iter(df.attrs["paths"])),
            _boot=profiled["boot"].fillna(-1).astype(int),
            _machine=profiled["machine"].fillna(""), _sample=profiled.index)
        stacks["_boot"] = stacks["boot"].fillna(-1).astype(int)
        stacks["_machine"] = stacks["machine"].fillna("")
        stacks = stacks.drop(columns=["boot", "machine"]).merge(
            joined, on=["run", "scenario", "_boot", "round", "mapper", "_machine"], how="inner")
        # each distinct loop stack once: one recurs in every round's profile of a row, and
        # every part of this frame (profile_check's per round) has its phase
        loop = stacks["part"] == "loop"
        phase = {stack: phase_of(stack) for stack in stacks.loc[loop, "stack"].unique()}
        stacks["phase"] = stacks["stack"].map(phase).where(loop)
    without = profiled[~profiled.index.isin(stacks.get("_sample", ()))]
    stacks.attrs["coverage"] = Coverage(
        profiled_samples=len(profiled), without_profile=len(without),
        none_recorded=without["null_reasons"].map(
            lambda d: (d or {}).get("profile")).dropna().value_counts().to_dict(),
        runs_without_file=no_file,
        unmatched_lines=sum(weights.values()) - sum(
            weights[line] for line in stacks.get("_line", pd.Series()).unique()),
        skipped_lines=skipped)
    return stacks


@dataclass(frozen=True)
class PhaseCosts:
    """One row's profile in numbers (what `phase_costs` returns, per row).

    `phases`: ns per touched page of each loop phase (PHASE_NAMES) and TEARDOWN (munmap),
    each = its share of the samples x the median of the unprofiled samples (ns_per_page,
    or munmap_ns_per_page for teardown). `shares`: the loop shares, summing to 1."""
    label: str
    scenario: str
    role: str
    kernel: str | None
    ns_per_page: float
    profiled_ns_per_page: float
    faults_per_page: float
    mapped_per_touched: float
    samples: int
    unresolved: int
    lost: int | None
    rounds: int
    boots: int
    shares: dict[str, float]
    phases: dict[str, float]
    symbols: list[tuple[str, float]]  # leaf symbols of the loop: (name, share), largest first
    teardown_symbols: list[tuple[str, float]]
    boot_shares: dict[str, tuple[float, float]]  # phase -> (min, max) over boots

    def per_fault(self, phase: str) -> float:
        """ns of `phase` per fault taken (fault entry/exit per fault, for the cost model)."""
        return self.phases[phase] / self.faults_per_page if self.faults_per_page else float("nan")

    def per_mapped(self, phase: str) -> float:
        """ns of `phase` per page mapped (the fault-around phase per PTE installed)."""
        mapped = self.mapped_per_touched
        return self.phases[phase] / mapped if mapped == mapped and mapped else float("nan")


def _leaf_shares(part: pd.DataFrame) -> list[tuple[str, float]]:
    counts = part.groupby("leaf")["count"].sum().sort_values(ascending=False, kind="stable")
    total = counts.sum()
    return [(str(k), float(v / total)) for k, v in counts.items()] if total else []


def phase_costs(df: pd.DataFrame, stacks: pd.DataFrame | None = None,
                kernels: bool | None = None) -> list[PhaseCosts]:
    """Per row of the report's scenario table (label, mapper role, kernel) that has kernel
    profiles: the phase split of its cost per touched page. `df`: `faultbench.load(RUN)`;
    `stacks`: its stack_frame, if already made; `kernels`: whether labels name the kernel
    (label_columns; False for one kernel of a run compared `--by kernel`)."""
    stacks = stack_frame(df) if stacks is None else stacks
    if stacks.empty:
        return []
    keys, stacks, ok = _labelled(df, stacks, kernels)
    stacks = stacks.assign(leaf=stacks["stack"].str.rsplit(";", n=1).str[-1])
    by_label = dict(tuple(stacks.groupby("label", sort=False)))  # each in the frame's order
    medians = median_ci(ok, ["label"], "ns_per_page").set_index("label")["median"]
    unmap = median_ci(ok, ["label"], "munmap_ns_per_page").set_index("label")["median"]
    per_page = ok.groupby("label")[["faults_per_page", "mapped_per_touched"]].median()
    out = []
    order = sort_labels(stacks.drop_duplicates("label"), keys, knob_order(df))
    for label in order["label"]:
        rows = by_label[label]
        loop, munmap = rows[rows["part"] == "loop"], rows[rows["part"] == "munmap"]
        total, shares = _shares(loop)
        if label not in medians.index or not total:
            continue
        phases = {p: s * float(medians[label]) for p, s in shares.items()}
        phases[TEARDOWN] = float(unmap.get(label, float("nan")))
        per_sample = loop.drop_duplicates(["run", "_boot", "round", "mapper"])
        first = rows.iloc[0]
        out.append(PhaseCosts(
            label=label, scenario=str(first["scenario"]), role=str(first["role"]),
            kernel=None if pd.isna(first["kernel"]) else str(first["kernel"]),
            ns_per_page=float(medians[label]),
            profiled_ns_per_page=float(per_sample["ns_per_page"].median()),
            faults_per_page=float(per_page.loc[label, "faults_per_page"]),
            mapped_per_touched=float(per_page.loc[label, "mapped_per_touched"]),
            samples=int(total), unresolved=int(per_sample["unresolved"].sum()),
            lost=None if per_sample["lost"].isna().any() else int(per_sample["lost"].sum()),
            rounds=int(per_sample["round"].nunique()), boots=int(per_sample["_boot"].nunique()),
            shares=shares, phases=phases, symbols=_leaf_shares(loop),
            teardown_symbols=_leaf_shares(munmap), boot_shares=_boot_ranges(loop, total),
        ))
    return out


def loop_shares(df: pd.DataFrame, stacks: pd.DataFrame) -> dict[str, tuple[int, dict[str, float]]]:
    """Per label of phase_costs(df, stacks): its loop samples and each phase's share of
    them, and nothing else phase_costs works out (profile_check asks again per round)."""
    if stacks.empty:
        return {}
    _, stacks, ok = _labelled(df, stacks, None)
    timed = set(ok.loc[ok["ns_per_page"].notna(), "label"])  # what median_ci gives a median
    loops = stacks[stacks["part"] == "loop"]
    out = {}
    for label, loop in loops.groupby("label", sort=False):
        total, shares = _shares(loop)
        if label in timed and total:
            out[str(label)] = (total, shares)
    return out


def _labelled(df: pd.DataFrame, stacks: pd.DataFrame, kernels: bool | None
              ) -> tuple[list[str], pd.DataFrame, pd.DataFrame]:
    """The label keys, and the stacks and the valid samples of `df` with their label."""
    keys = [*label_columns(df, kernels=kernels), "role"]
    return (keys, stacks.assign(label=labels(stacks, keys)),
            df[df["ok"]].assign(label=lambda d: labels(d, keys)))


def _shares(loop: pd.DataFrame) -> tuple[int, dict[str, float]]:
    """A row's loop samples, and each phase's share of them."""
    total = int(loop["count"].sum())
    counts = loop.groupby("phase")["count"].sum()
    return total, {p: float(counts.get(p, 0) / total) if total else 0.0 for p in PHASE_NAMES}


def _boot_ranges(loop: pd.DataFrame, total: int) -> dict[str, tuple[float, float]]:
    """Per phase, its lowest and highest share among the row's boots (several boots only)."""
    if loop["_boot"].nunique() < 2:
        return {}
    by_boot = loop.groupby(["_boot", "phase"])["count"].sum().unstack(fill_value=0)
    shares = by_boot.div(by_boot.sum(axis=1), axis=0)
    return {str(p): (float(shares[p].min()), float(shares[p].max())) for p in shares.columns}
