"""Notes a comparison prints when its two runs were measured by harnesses, or at machine
settings, that differ in a way that alone moves counts (`faultbench compare`)."""

from __future__ import annotations

import re
from typing import Any

from faultbench.errors import printable

# The first version whose mapper processes exec faultbench/_mapper (before: a fork of the
# measuring Python process, whose mappings each fault's VMA lookup walked; docs/overhead.md).
EXEC_MAPPER_VERSION = (0, 4)
RUN_ALONE_EPOCH = 2  # from here an instruction-clock mapper's loop runs with no task beside it


def _version(meta: dict) -> tuple[int, int] | None:
    """major.minor of the faultbench that measured a run; None unless the version is plain
    dotted digits (meta.json is untrusted input, and the note prints it)."""
    text = meta.get("faultbench_version")
    if not isinstance(text, str) or not re.fullmatch(r"[0-9]{1,4}(\.[0-9]{1,4}){1,3}", text):
        return None
    major, minor = text.split(".")[:2]
    return int(major), int(minor)


def harness_notes(base_meta: dict, new_meta: dict, by: str | None = None,
                  values: tuple[Any, Any] = (None, None)) -> list[str]:
    """A note when one run's mappers ran in a fork of Python and the other's in the mapper
    program, or when two instruction-clock runs had different numbers of guests at once:
    either alone moves instruction counts by up to 1-2%; of kernel settings the two sides
    ran at (`by` machine: the two machines, `values`, of a merged fleet run); and of guests
    that shared the host's CPUs on the wall clock."""
    notes = []
    versions = [_version(meta) for meta in (base_meta, new_meta)]
    if None not in versions and (versions[0] >= EXEC_MAPPER_VERSION) != (
            versions[1] >= EXEC_MAPPER_VERSION):
        notes.append(
            f"BASE was measured by faultbench {base_meta['faultbench_version']} and NEW by "
            f"{new_meta['faultbench_version']}: from 0.4 a mapper process execs the mapper "
            "program instead of running in a fork of the measuring Python process, which "
            "alone moves a sample's instructions by up to ~1% (docs/overhead.md); part of "
            "any change here may be that.")
    jobs = [_jobs(meta) for meta in (base_meta, new_meta)]
    epochs = [meta.get("harness_epoch", 0) for meta in (base_meta, new_meta)]
    if None not in jobs and jobs[0] != jobs[1] and min(epochs) < RUN_ALONE_EPOCH:
        notes.append(
            f"BASE ran {jobs[0]} guest(s) at once and NEW {jobs[1]} (--jobs): on the "
            "instruction clock before harness epoch 2 that alone moved rows whose loops "
            "take about one timer tick by up to 1.7%, mostly upwards with more guests "
            "(docs/scale.md); part of any change here may be that.")
    if by == "machine":
        base_meta, new_meta = (_machine_meta(base_meta, values[0]),
                               _machine_meta(new_meta, values[1]))
    return (notes + _knob_notes(base_meta, new_meta) + _writer_notes(base_meta, new_meta)
            + _contention_notes(base_meta, new_meta))


def _machine_meta(meta: dict, machine: Any) -> dict:
    """What a merged fleet run's meta.json keeps of one machine's part (its provenance and
    machine state), as that part's own meta.json; {} when it keeps none."""
    merged = meta.get("merged")
    parts = merged.get("from") if isinstance(merged, dict) else None
    part = next((p for p in parts if isinstance(p, dict) and p.get("machine") == machine),
                None) if isinstance(parts, list) else None
    if part is None:
        return {}
    return {"provenance": part.get("provenance"), "machine_state": part.get("machine_state"),
            "scenarios": meta.get("scenarios", [])}


def _knob_notes(base_meta: dict, new_meta: dict) -> list[str]:
    """A note when two native runs ran at THP settings, fault_around_bytes or read_ahead_kb
    (their provenance) that differ, where no scenario of either set them: a killed run's
    leftover, or a setting changed by hand, moves every row it touches."""
    values = []
    for meta in (base_meta, new_meta):
        provenance = meta.get("provenance")
        if meta.get("kernels") or not isinstance(provenance, dict):
            return []  # a booted run's knobs are its guests'
        recorded = {}
        for part in ("thp", "knobs"):
            if isinstance(found := provenance.get(part), dict):
                recorded.update(found)
        values.append(recorded)
    set_by_runs = {str(name) for meta in (base_meta, new_meta)
                   for scenario in meta.get("scenarios", [])
                   if isinstance(scenario, dict) and isinstance(scenario.get("knobs"), dict)
                   for name in scenario["knobs"]}
    differ = [f"{name} {values[0][name]} vs {values[1][name]}"
              for name in sorted(set(values[0]) & set(values[1]) - set_by_runs, key=str)
              if values[0][name] is not None and values[1][name] is not None
              and values[0][name] != values[1][name]]
    if not differ:
        return []
    shown = printable("; ".join(differ[:4]))[:400] + ("; ..." if len(differ) > 4 else "")
    return [f"BASE and NEW ran at different kernel settings that no scenario of theirs set "
            f"(their provenance): {shown}; part of any change here may be that."]


def _writer_notes(base_meta: dict, new_meta: dict) -> list[str]:
    """A note for a run measured at knobs another faultbench had set (machine_state's
    knob_writer: a live one, or what a killed one left), which its own provenance does not
    name when it is no THP setting, fault_around_bytes or read_ahead_kb (vm.swappiness)."""
    notes = []
    for side, meta in (("BASE", base_meta), ("NEW", new_meta)):
        state = meta.get("machine_state")
        writer = state.get("knob_writer") if isinstance(state, dict) else None
        if not isinstance(writer, dict):
            continue
        left = writer.get("left")
        what = (f"at knobs a killed run had left changed ({printable(str(left))[:300]})"
                if left else f"while another faultbench (pid {printable(str(writer.get('pid')))}"
                ") held the knob lock, at the knobs it had set")
        notes.append(f"{side} was measured {what}, not at the machine's own; part of any "
                     "change here may be that.")
    return notes


def _contention_notes(base_meta: dict, new_meta: dict) -> list[str]:
    return [f"{side}'s guests ran {count} at once on the wall clock (--jobs): sharing the "
            "host's CPUs they slowed each other down, which moves wall-clock times; part of "
            "any change here may be that."
            for side, meta in (("BASE", base_meta), ("NEW", new_meta))
            if (count := wall_clock_jobs(meta)) is not None]


def _guests_at_once(meta: dict) -> int | None:
    """How many guests at once a booted run had; None for a native run (or a record that
    is not a small count: meta.json is untrusted input)."""
    jobs = meta.get("jobs")
    count = jobs.get("count") if isinstance(jobs, dict) else None
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 4096:
        return None
    return count


def _jobs(meta: dict) -> int | None:
    """How many guests at once an instruction-clock run had; None for any other run."""
    return _guests_at_once(meta) if meta.get("plane") == "tcg-icount" else None


def wall_clock_jobs(meta: dict) -> int | None:
    """How many guests at once a booted wall-clock run had, when more than one: they shared
    the host's CPUs, which moves wall-clock times (the run warned, and so do report and
    compare); None otherwise."""
    count = _guests_at_once(meta)
    if meta.get("plane") == "tcg-icount" or not meta.get("kernels") or not count or count < 2:
        return None
    return count
