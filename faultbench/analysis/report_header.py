"""What a report says first: the run (workload, kernels, plane), where it was measured, and
how busy each machine was when its part of the run started (meta.json `machine_state`)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from faultbench.analysis.frame import RunInfo
from faultbench.analysis.harness_notes import wall_clock_jobs
from faultbench.analysis.text import wrap
from faultbench.measurement.rundir.runfiles import merged_parts


def header(info: RunInfo, title: str) -> str:
    if info.kernels:
        lines = wrap(f"{title}: workload {info.workload}, plane {info.plane_label()}; "
                     f"kernels: {info.kernels}; {info.boots_per_kernel} boot(s) per kernel "
                     f"on {info.host}")
    else:
        lines = wrap(f"{title}: workload {info.workload}, Linux {info.kernel} on {info.host}, "
                     f"plane {info.plane_label()}")
    if info.instruction_clock:
        lines += wrap("NOTE: times are QEMU instruction counts (-icount shift=0: one virtual "
                      "ns per guest instruction, user and kernel). They repeat across boots "
                      "and count work, not cycles: cache and TLB misses cost nothing here. "
                      "Compare them only with other instruction-clock runs. Fault counts are "
                      "the kernel's own.")
    elif info.emulated:
        lines += wrap("NOTE: timings were measured under TCG emulation; compare them only "
                      "with other emulated runs. Fault counts are the kernel's own.")
    return lines


def machine_line(meta: dict[str, Any]) -> str:
    """How busy the machine was when the run started (meta.json `machine_state`, written by
    `faultbench run`), with the warning the run printed; empty for runs without it. Each
    part of a merged run (a shard, a machine) started apart, maybe on another host: a line
    for each, named."""
    from faultbench.measurement.machine import describe

    meta = meta or {}
    states = [(_part_name(part), part.get("machine_state")) for part in merged_parts(meta)]
    lines = []
    for name, state in states or [("", meta.get("machine_state"))]:
        described = describe(state, meta.get("plane"))
        if described is not None:
            line, warnings = described
            lines.append(wrap(f"At the start{name}, {line}."
                              + "".join(f" {warning}." for warning in warnings)))
    if (count := wall_clock_jobs(meta)) is not None:
        lines.append(wrap(f"NOTE: its guests ran {count} at once on the wall clock (--jobs): "
                          "sharing the host's CPUs they slowed each other down, which moves "
                          "wall-clock times (the instruction clock is not moved)."))
    return "".join(lines)


def _part_name(part: dict[str, Any]) -> str:
    """` of shard 1/2 on HOST`, or ` on HOST` in a merge of machines (meta.json's
    `merged.from`, read back: untrusted)."""
    shard, host = part.get("shard"), part.get("machine")
    where = f" on {host}" if isinstance(host, str) and host else ""
    if isinstance(shard, dict) and all(isinstance(shard.get(k), int) for k in ("index", "count")):
        return f" of shard {shard['index']}/{shard['count']}{where}"
    return where


def unlike_the_machine(df: pd.DataFrame, meta: dict[str, Any], label_cols: list[str]) -> str:
    """The knobs every row set, which no row's label names, every row having them: each one
    set to another value than the machine's own (THP settings and fault_around_bytes, as
    recorded before the run set any: a native run's provenance, each boot's guest in a
    booted run), and each one whose own value no record holds (sysctls, read_ahead_kb)."""
    own, whose = _own_values(meta)
    ok = df[df["ok"]]
    unlike = []
    for knob in df.attrs.get("knob_columns", []):
        values = ok[knob] if knob in ok else pd.Series(dtype=object)
        if knob in label_cols or values.isna().any() or values.nunique() != 1:
            continue
        value = str(values.iloc[0])
        if not own.get(knob):
            unlike.append(f"{knob}={value} ({whose}: not recorded)")
        elif any(value.split() != mine.split() for mine in own[knob].values()):
            unlike.append(f"{knob}={value} ({whose}: {_by_side(own[knob])})")
    return wrap("Set for every row: " + ", ".join(unlike) + ".") if unlike else ""


def _own_values(meta: dict[str, Any]) -> tuple[dict[str, dict[str, str]], str]:
    """By knob, each machine's own value: keyed by kernel label in a booted run, whose
    guests record theirs before their run sets any ("a/b" if a kernel's boots differ). And
    whose they are, in words. meta.json is untrusted: what is no object is passed over."""
    def recorded(provenance: Any) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for part in ("thp", "knobs"):
            if isinstance(provenance, dict) and isinstance(provenance.get(part), dict):
                found.update(provenance[part])
        return found

    if not meta.get("kernels"):
        return ({knob: {"": str(value)} for knob, value in recorded(
            meta.get("provenance")).items() if value is not None}, "this machine's own")
    seen: dict[str, dict[str, list[str]]] = {}
    for boot in meta.get("boots") or []:
        if isinstance(boot, dict):
            for knob, value in recorded(boot.get("guest")).items():
                values = seen.setdefault(knob, {}).setdefault(str(boot.get("kernel")), [])
                if value is not None and str(value) not in values:
                    values.append(str(value))
    return ({knob: {side: "/".join(values) for side, values in sides.items() if values}
             for knob, sides in seen.items()}, "the guests' own")


def _by_side(own: dict[str, str]) -> str:
    """One value when every kernel's guests had it, else each kernel's."""
    if len(set(own.values())) == 1:
        return next(iter(own.values()))
    return ", ".join(f"{side} {value}" for side, value in own.items())
