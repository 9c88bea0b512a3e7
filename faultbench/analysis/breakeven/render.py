"""The break-even, floor and cost-model tables for `faultbench report`, and their JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from faultbench.analysis.breakeven.costmodel import (
    CI_ASSUMES,
    FIT_WHICH,
    MAX_RESIDUAL,
    MIN_SCENARIOS,
    MIN_WINDOWS,
    CostModel,
    cost_models,
)
from faultbench.analysis.breakeven.crossover import MIN_STRIDES, BreakEven, break_even
from faultbench.analysis.breakeven.floor import FLOOR_WHY, FloorPoint, floor_points, populate_rows
from faultbench.analysis.breakeven.phases import MAPS_AHEAD, ProfileCheck
from faultbench.analysis.breakeven.rows import REPLICATES
from faultbench.analysis.frame import FAULT_AROUND_KNOB, clock_unit
from faultbench.analysis.labels import format_value
from faultbench.analysis.stats import CI_METHOD
from faultbench.analysis.text import fmt, text_table, wrap

HEADLINE_WHY = (
    "headline: touch only, the fault path itself and what the issue's anchors measure; "
    "'+munmap' also counts the teardown of every mapped page (munmap_ns), paid at munmap or "
    "exit"
)

SPARSE_NOTE = "page_size/8 (512 with 4K pages) is the sparse pattern, one page per page table"

def report_json(df: pd.DataFrame) -> dict[str, Any]:
    """`break_even`, `cost_model` and `floor` for `faultbench report --json`: lists of plain
    dicts (docs/results.md)."""
    return {
        "break_even": [b.to_dict() for b in break_even(df)],
        "cost_model": [m.to_dict() for m in cost_models(df)],
        "floor": [p.to_dict() for p in floor_points(populate_rows(df))],
    }


def ci_text(ci: list[float | None] | None, below: str = "<", above: str = ">",
             ends: tuple[float, float] | None = None) -> str:

    if ci is None:
        return "-"
    low = fmt(ci[0]) if ci[0] is not None else (f"{below}{fmt(ends[0])}" if ends else "?")
    high = fmt(ci[1]) if ci[1] is not None else (f"{above}{fmt(ends[1])}" if ends else "?")
    return f"{low}..{high}"


def report_section(
    df: pd.DataFrame, results: Sequence[BreakEven] | None = None,
    models: Sequence[CostModel] | None = None,
) -> str:
    """The break-even, floor and cost-model tables, 72 columns. Contrasts measured
    at fewer than MIN_STRIDES strides and fits over fewer than MIN_SCENARIOS scenarios (a
    run without a stride sweep) are left to --json, so the section is empty for such runs;
    the floor is shown for the groups whose break-even is. Pass precomputed `results` and
    `models` to avoid computing them twice when `report_json` is also made."""

    results = break_even(df) if results is None else results
    models = cost_models(df) if models is None else models
    # ns of the wall clock, or guest instructions on the instruction clock
    clock = clock_unit(df["plane"].dropna().unique() if "plane" in df else [])
    results = [r for r in results if len(r.curve) >= MIN_STRIDES]
    models = [m for m in models if len(m.scenarios) >= MIN_SCENARIOS]
    shown = {r.group for r in results}
    floor = [p for p in floor_points(populate_rows(df)) if p.group in shown]
    parts: list[str] = []
    if results:
        parts.append(wrap("Break-even access density: where time per touched page with "
                          "fault-around on equals the time with it off."))
        for (group, contrast), items in _grouped(results):
            first = items[0]
            if first.missing_strides:
                parts.append(wrap(f"\n{group}, {contrast}: no valid value on one side at "
                                  f"stride {', '.join(map(str, first.missing_strides))}; "
                                  f"the crossing is not interpolated over it.").lstrip("\n"))
            window = format_value(FAULT_AROUND_KNOB, first.window_bytes).split("=")[-1]
            source = "the kernel's default" if first.window_source == "default" else "knob"
            parts.append(f"\n{group}, {contrast} (window {window}, {source}):\n")
            rows = [[str(p.stride), fmt(p.pages_per_window), fmt(p.on_ns), fmt(p.off_ns),
                     fmt(p.on_ns / p.off_ns)] for p in first.curve]
            parts.append(text_table(
                ["stride", "pg/win", f"on {clock}/pg", f"off {clock}/pg", "on/off"], rows))
            for item in items:
                what = "touch" if not item.teardown_counted else "touch+munmap"
                head = f"crossing ({what}{', headline' if item.headline else ''}): "
                if item.stride is None:
                    parts.append(wrap(head + str(item.reason)))
                    continue
                ends = (first.curve[0].stride, first.curve[-1].stride)
                win_ends = (first.curve[-1].pages_per_window, first.curve[0].pages_per_window)
                ci = item.ci or {}
                bracket = item.bracket or []
                text = (f"stride {fmt(item.stride)} [{ci_text(ci.get('stride'), ends=ends)}]"
                        f", {fmt(item.pages_per_window)} pages per window "
                        f"[{ci_text(ci.get('pages_per_window'), ends=win_ends)}]; between "
                        f"strides {' and '.join(map(str, bracket))}")
                if item.crossings > 1:
                    text += f"; the curves cross {item.crossings} times, the first is shown"
                if item.reason:
                    text += f" ({item.reason})"
                parts.append(wrap(head + text))
        rounds = max(r.rounds for r in results)
        unit = results[0].unit
        parts.append("\n" + wrap(
            f"on/off: {clock} per touched page, medians over {unit}s ({rounds}); pg/win: pages "
            f"touched per fault-around window. Crossing: interpolated in log(stride) between "
            f"the bracketing strides; [95% CI]: percentile bootstrap over {unit}s "
            f"({REPLICATES} replicates); an end beyond the strides measured is shown as "
            f"<first or >last. Stride {SPARSE_NOTE}. {HEADLINE_WHY}."))
    if floor:
        parts.append(_floor_section(floor, results, clock))
    if models:
        parts.append(model_section(models, clock))
    return "".join(parts)


def _grouped(results: Sequence[BreakEven]) -> list[tuple[tuple[str, str], list[BreakEven]]]:
    grouped: dict[tuple[str, str], list[BreakEven]] = {}
    for item in results:
        grouped.setdefault((item.group, item.contrast), []).append(item)
    return list(grouped.items())


def _floor_section(points: Sequence[FloorPoint], results: Sequence[BreakEven],
                   clock: str) -> str:
    parts = ["\n" + wrap(f"Floor: the touch loop alone with every page already mapped, {clock} "
                         "per touched page, against the same touches through faults.")]
    for group in dict.fromkeys(p.group for p in points):
        # the headline curve of the group's first contrast: on and off at each stride
        curve = next(({c.stride: c for c in r.curve} for r in results
                      if r.group == group and r.headline), {})
        rows = []
        for p in (p for p in points if p.group == group):
            point = curve.get(p.stride)
            rows.append([
                str(p.stride), p.populate, fmt(p.ns_per_page), ci_text(p.ci),
                fmt(point.on_ns) if point else "-", fmt(point.off_ns) if point else "-",
                fmt(p.with_populate_ns_per_page) if p.whole_range_touched else "-",
                fmt(p.touch_faults), fmt(p.populate_faults), str(p.n)])
        contrast = next((r.contrast for r in results if r.group == group), "")
        parts.append(f"\n{group}{f' (on/off: {contrast})' if contrast else ''}:\n")
        parts.append(text_table(["stride", "call", "floor", "95% CI", "on", "off",
                                 "+populate", "flt", "pop flt", "n"], rows))
    parts.append("\n" + wrap(f"{FLOOR_WHY}. 95% CI: {CI_METHOD}."))
    return "".join(parts)


# A condition number this large is F and M in exact proportion, not a measured collinearity.
PROPORTIONAL = 1e6


def model_section(models: Sequence[CostModel], clock: str = "ns") -> str:
    """The cost model of each group: the constants the rows identify, and why not the
    others."""
    parts = ["\n" + wrap("Cost model: touch_ns = a*faults + b*pages_mapped + "
                         "c*pages_touched.")]
    for model in models:
        parts.append(f"\n{model.group} ({len(model.scenarios)} scenarios, {model.rounds} "
                     f"{model.unit}s):\n")
        within = model.condition_within_window
        within_text = "" if within is None else (
            f" ({fmt(within)} within one window)" if within < PROPORTIONAL
            else " (faults and pages mapped proportional within one window)")
        parts.append(wrap(
            f"design: {model.design_rows} distinct rows, {len(model.pages_per_fault)} "
            f"pages-per-fault value(s) ({', '.join(fmt(p) for p in model.pages_per_fault)}), "
            f"condition number {fmt(model.condition)}{within_text}"))
        if model.fits:
            rows = [[name, fmt(est.value), ci_text(est.ci)] for name, est in (
                (f"a, {clock} per fault", model.ns_per_fault),
                (f"b, {clock} per page mapped", model.ns_per_page_mapped),
                (f"c, {clock} per page touched", model.ns_per_touch),
            ) if est is not None]
            parts.append(text_table(["constant", "value", "95% CI"], rows))
        else:
            nothing = not model.per_fault and model.ns_per_touch is None
            parts.append(wrap(f"no {'constants' if nothing else 'a and b'}: {model.reason}"))
        if model.touch_ns_by_stride and model.ns_per_touch is not None:
            (first, _), (last, c_last) = model.touch_ns_by_stride[0], \
                model.touch_ns_by_stride[-1]
            parts.append(wrap(
                f"c pinned from the populate rows' touch-only time: "
                f"{fmt(model.ns_per_touch.value)} [{ci_text(model.ns_per_touch.ci)}] {clock} at "
                f"stride {fmt(first)}, {fmt(c_last)} at stride {fmt(last)}"))
        if model.per_fault:
            line = model.fits
            parts.append(text_table(
                ["pages/fault", f"{clock} per fault", "95% CI", *(["a+b*P"] if line else []),
                 "rows"],
                [[fmt(f.pages_per_fault), fmt(f.ns), ci_text(f.ci),
                  *([fmt(f.line_ns)] if line else []), str(f.scenarios)]
                 for f in model.per_fault]))
        if model.residual is not None and model.residual <= MAX_RESIDUAL:
            parts.append(wrap(f"residual {100 * model.residual:.1f}% (RMS of relative errors "
                              f"over scenario medians)"
                              + (f"; {model.reason}" if model.fits and model.reason else "")))
        if len(model.by_stride) > 1:
            a_s = [row[1] for row in model.by_stride]
            b_s = [row[2] for row in model.by_stride]
            parts.append(wrap(
                f"misfit: fitted to each stride's rows alone ({len(a_s)} strides), a runs "
                f"from {fmt(min(a_s))} to {fmt(max(a_s))} and b from {fmt(min(b_s))} to "
                f"{fmt(max(b_s))}; constants that move with the stride are an error of the "
                f"model that its CIs do not include"))
        if model.profile is not None:
            parts.append(_profile_lines(model.profile))
    unit = models[0].unit
    profiled = any(m.profile is not None for m in models)
    parts.append("\n" + wrap(
        f"Fitted to scenario medians of {clock} per touched page, least squares on relative "
        f"errors, c per stride from populate rows where the run has them; rows: {FIT_WHICH}. "
        f"A fault mapping P pages costs a + b*P: a and b need {MIN_WINDOWS} or more "
        f"pages-per-fault values (fault_around_bytes values), else the cost of one fault "
        f"per value is given; {clock} per fault: fitted to the rows of one window alone, a+b*P: "
        f"the model's line through them. {CI_ASSUMES.format(unit=unit)}. A residual above "
        f"{100 * MAX_RESIDUAL:.0f}% prints no constants."
        + (f" {PROFILE_NOTE}" if profiled else "")))
    return "".join(parts)


PROFILE_NOTE = (
    f"Kernel profile: a as the entry/exit, VMA lookup and page-cache lookup phases per "
    f"fault, b as the fault-around and rmap+memcg phases per page mapped (rows mapping "
    f"{MAPS_AHEAD:g}+ pages per fault; the faulting page's own rmap is b's, as the model "
    f"counts it among the pages mapped), pooled over the profiled rows; 95% CI: percentile "
    f"bootstrap over the profiled rounds and the rows (docs/profiles.md). CIs: whether the "
    f"profile's and the model's intervals overlap; no tolerance is added to either")


def _profile_lines(check: ProfileCheck) -> str:
    """The profile's a and b beside the regression's, each with its interval."""
    rows = []
    for c in check.constants:
        mine = [c.constant, fmt(c.profile), ci_text(c.profile_ci)]
        if c.model is None:
            rows.append([*mine, "-", "-", "-", "not identified"])
            continue
        verdict = {True: "overlap", False: "APART", None: "-"}[c.overlap]
        rows.append([*mine, fmt(c.model), ci_text(c.model_ci),
                     f"{fmt(c.ratio)}x" if c.ratio else "-", verdict])
    head = wrap(f"kernel profile ({check.rows} rows, {check.samples} samples, {check.units} "
                f"profiled rounds) against the regression:")
    return head + text_table(["constant", "profile", "95% CI", "model", "95% CI", "model/pr",
                              "CIs"], rows)
