"""The report's kernel-profile section (profile.py's phase costs, as text): per row, its
phases and top symbols, and what the sampling left out."""

from __future__ import annotations

import pandas as pd

from faultbench.analysis.frame import INSTRUCTION_CLOCK_PLANES
from faultbench.analysis.profile import (
    PHASE_NAMES,
    TEARDOWN,
    TOP_SYMBOLS,
    coverage_notes,
    phase_costs,
    stack_frame,
)
from faultbench.analysis.text import fmt, fmt_pct, text_table, wrap


def share_pct(share: float) -> str:
    return f"{100 * share:.1f}%"


def _none_profiled(df: pd.DataFrame) -> str:
    """The note on a finished run whose workload asks for profiled rounds and that has none:
    the profiler was not available where it ran, which the run said once, on its stderr."""
    metas = df.attrs.get("meta", {}).values()
    asked = max((m["workload"].get("profile", 0) for m in metas), default=0)
    if not asked or df["profiled"].any() or any(m.get("finished_utc") is None for m in metas):
        return ""
    return (f"NOTE: the workload asks for {asked} kernel-profiled round(s) per scenario, and "
            "the run has none: the profiler was not available where it ran (not root, "
            "kernel.perf_event_paranoid above 1, or no perf events), as `faultbench run` "
            "said then.")


def section(df: pd.DataFrame) -> str:
    """The report's profile section: per row, phases and top symbols with share and ns per
    touched page, the sampling's completeness and the profiler's cost. Empty without
    profiles, but for the notes on lines skipped and profiled samples left without one."""
    stacks = stack_frame(df)
    costs = phase_costs(df, stacks)
    note = "".join(wrap(text) for text in [*coverage_notes(
        stacks.attrs["coverage"], len(df.attrs.get("paths", {})) > 1), _none_profiled(df)]
        if text)
    if not costs:
        return note
    icount = df["plane"].isin(INSTRUCTION_CLOCK_PLANES).any()
    per_page = f"{'insn' if icount else 'ns'}/page"
    out = [wrap(f"Kernel profiles (cpu-clock samples of the touching thread; {per_page} = "
                "share x the unprofiled median; phases: faultbench/analysis/profile.py PHASES)"
                + (". On the instruction clock a sample is every 20,000 guest instructions."
                   if icount else ""))]
    for c in costs:
        out.append("\n" + wrap(f"{c.label}: {c.samples:,} loop samples ({c.rounds} rounds"
                                f"{f', {c.boots} boots' if c.boots > 1 else ''}), "
                                f"{c.unresolved} unresolved, {fmt(c.lost)} lost; profiled "
                                f"{fmt(c.profiled_ns_per_page)} vs {fmt(c.ns_per_page)} "
                                f"{per_page} unprofiled "
                                f"({fmt_pct(100 * (c.profiled_ns_per_page / c.ns_per_page - 1))}"
                                " profiler cost)."))
        spread = bool(c.boot_shares)
        rows = []
        for phase in PHASE_NAMES:
            if not c.shares[phase]:
                continue
            row = [phase, share_pct(c.shares[phase]), fmt(c.phases[phase])]
            if spread:
                low, high = c.boot_shares.get(phase, (0.0, 0.0))
                row.append(f"{100 * low:.1f}-{100 * high:.1f}%")
            rows.append(row)
        rows.append([f"{TEARDOWN} (munmap)", "", fmt(c.phases[TEARDOWN])]
                    + ([""] if spread else []))
        out.append(text_table(["phase", "share", per_page] + (["boots"] if spread else []),
                              rows))
        out.append(text_table(["top symbols (self)", "share", per_page], [
            [name, share_pct(share), fmt(share * c.ns_per_page)]
            for name, share in c.symbols[:TOP_SYMBOLS]]))
        if c.teardown_symbols:
            out.append(wrap("munmap: " + ", ".join(
                f"{name} {share_pct(share)}" for name, share in c.teardown_symbols[:4])))
    return "".join(out) + ("\n" + note if note else "")
