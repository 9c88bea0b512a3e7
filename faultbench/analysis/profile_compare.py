"""`compare --profile`: the kernel profiles of two sides (profile.py) row by row."""

from __future__ import annotations

from dataclasses import replace

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
from faultbench.analysis.profile_section import share_pct
from faultbench.analysis.text import fmt, fmt_pct, text_table, wrap


def compare_section(base: pd.DataFrame, new: pd.DataFrame, base_name: str,
                    new_name: str, by: str | None = None) -> str:
    """`compare --profile`: per row both sides have profiles for, the phase and top symbol
    shares and ns per touched page side by side, with the change of ns/page. `base`, `new`:
    every row of each side (profiled ones too), so the compared field (`by`) has one value
    in each and is in no label."""
    frames = [stack_frame(d) for d in (base, new)]
    kernels = False if by == "kernel" else None
    sides = [{c.label: c for c in phase_costs(d, f, kernels)}
             for d, f in zip((base, new), frames, strict=True)]
    common = [label for label in sides[0] if label in sides[1]]
    notes = _notes(sides, frames, (base_name, new_name), (base, new))
    if not common:
        return wrap("No row has kernel profiles on both sides (run with --profile).") + notes
    icount = pd.concat([base, new])["plane"].isin(INSTRUCTION_CLOCK_PLANES).any()
    unit = "insn" if icount else "ns"
    out = [wrap(f"Kernel profiles: base {base_name}, new {new_name}; share of the loop's "
                f"samples and {unit} per touched page (share x unprofiled median).")]
    for label in common:
        b, n = sides[0][label], sides[1][label]
        out.append("\n" + wrap(f"{label}: {b.samples:,} vs {n.samples:,} samples, "
                               f"{b.unresolved} vs {n.unresolved} unresolved"))
        rows = [[p, share_pct(b.shares[p]), fmt(b.phases[p]), share_pct(n.shares[p]),
                 fmt(n.phases[p]), _change(b.phases[p], n.phases[p])]
                for p in PHASE_NAMES if b.shares[p] or n.shares[p]]
        rows.append([TEARDOWN, "", fmt(b.phases[TEARDOWN]), "", fmt(n.phases[TEARDOWN]),
                     _change(b.phases[TEARDOWN], n.phases[TEARDOWN])])
        out.append(text_table(["phase", "base", f"{unit}/pg", "new", f"{unit}/pg", "change"],
                              rows))
        names = list(dict.fromkeys([s for s, _ in b.symbols[:TOP_SYMBOLS]]
                                   + [s for s, _ in n.symbols[:TOP_SYMBOLS]]))
        bs, ns_ = dict(b.symbols), dict(n.symbols)
        out.append(text_table(["symbol (self)", "base", "new", "change"], [
            [s, share_pct(bs.get(s, 0.0)), share_pct(ns_.get(s, 0.0)),
             _change(bs.get(s, 0.0) * b.ns_per_page, ns_.get(s, 0.0) * n.ns_per_page)]
            for s in names]))
    out.append(wrap(f"change: of {unit} per touched page. A symbol's share is of its own side's "
                    "samples; base and new may be different kernels, whose functions differ."))
    return "".join(out) + notes


def _notes(sides: list[dict], frames: list[pd.DataFrame], names: tuple[str, str],
           dfs: tuple[pd.DataFrame, pd.DataFrame]) -> str:
    """What the table leaves out: the rows only one side has profiles for, and each side's
    profiles.jsonl lines skipped and profiled samples without a profile (as report notes
    them), once when both sides read the same file to the same end."""
    texts = []
    for own, other, side, name in ((0, 1, "base", names[0]), (1, 0, "new", names[1])):
        alone = [label for label in sides[own] if label not in sides[other]]
        if alone:
            texts.append(f"NOTE: not compared, profiles on the {side} side ({name}) only: "
                         + "; ".join(alone) + ".")
    # two sides of one run read one profiles.jsonl: each side's lines then "match no
    # profiled sample" of the other side, which is no loss
    one_run = dfs[0].attrs.get("paths") == dfs[1].attrs.get("paths")
    for frame, side, name, df in zip(frames, ("base", "new"), names, dfs, strict=True):
        coverage = frame.attrs["coverage"]
        if one_run:
            coverage = replace(coverage, unmatched_lines=0)
        skipped, note = coverage_notes(coverage, len(df.attrs.get("paths", {})) > 1)
        whose = f"NOTE, {side} side ({name}): "
        if skipped and not (one_run and side == "new"):  # one file: said once
            texts.append(("NOTE: " if one_run else whose) + skipped)
        if note:
            texts.append(whose + note.removeprefix("NOTE: "))
    return "".join(wrap(text) for text in texts)


def _change(base: float, new: float) -> str:
    return fmt_pct(100 * (new / base - 1)) if base and base == base else "-"
