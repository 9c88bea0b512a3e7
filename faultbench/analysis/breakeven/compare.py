"""The cost model of two runs side by side, for `faultbench compare`."""

from __future__ import annotations

from typing import Any

import pandas as pd

from faultbench.analysis.breakeven.costmodel import MIN_SCENARIOS, CostModel, cost_models
from faultbench.analysis.breakeven.render import ci_text
from faultbench.analysis.text import fmt, text_table, wrap

MINUS = "\u2212"  # the sign a changelog sentence prints, not a hyphen

def compare_cost_models(base: CostModel | dict[str, Any], new: CostModel | dict[str, Any]) -> str:
    """The changelog sentence: "per-fault cost \u221240 ns (\u22125%), per-page map cost
    unchanged, per-touch cost unchanged" (a minus sign, U+2212). A constant is unchanged
    when the two 95% intervals overlap (or either has none); a model whose constants are
    not identified or that does not fit gives the reason instead: its numbers are not
    constants to compare."""
    sides = [m.to_dict() if isinstance(m, CostModel) else m for m in (base, new)]
    for name, side in zip(("base", "new"), sides, strict=True):
        if not side.get("fits"):
            return f"no cost comparison: the {name} model: {side.get('reason')}"
    words = []
    for key, what in (("ns_per_fault", "per-fault cost"), ("ns_per_page_mapped",
                      "per-page map cost"), ("ns_per_touch", "per-touch cost")):
        old, now = sides[0][key], sides[1][key]
        overlap = (old["ci"] is None or now["ci"] is None
                   or (old["ci"][0] <= now["ci"][1] and now["ci"][0] <= old["ci"][1]))
        if overlap:
            words.append(f"{what} unchanged")
            continue
        delta = now["value"] - old["value"]
        words.append(f"{what} {_signed(delta, ' ns')} ({_signed(100 * delta / old['value'], '%')})")
    return ", ".join(words)


def _signed(value: float, unit: str) -> str:
    text = f"{abs(value):.0f}" if abs(value) >= 10 or value == int(value) else f"{abs(value):.1f}"
    return f"{'+' if value >= 0 else MINUS}{text}{unit}"


def compare_section(base: pd.DataFrame, new: pd.DataFrame, by: str | None = None) -> str:
    """For `faultbench compare`: per group with a cost model on both sides, the constants
    and the changelog sentence (`compare_cost_models`). Models that cannot be identified
    from a side's rows (too few scenarios, fault-around only on or only off) are left out,
    so the section is empty unless both sides ran a stride sweep. `by`: the field the two
    sides differ in (compare --by), named in each group's heading; with --by
    fault_around_bytes each side has one window, so neither identifies a and b."""

    def keyed(df: pd.DataFrame) -> dict[tuple[str, str], CostModel]:
        return {(m.group, m.backing): m for m in cost_models(df)
                if len(m.scenarios) >= MIN_SCENARIOS and m.residual is not None}

    bases, news = keyed(base), keyed(new)
    parts = []
    for key in (k for k in bases if k in news):
        old, now = bases[key], news[key]
        parts.append(f"\n{key[0]}{f' (by {by})' if by else ''}:\n")
        if old.fits and now.fits:
            parts.append(text_table(["constant", "base", "95% CI", "new", "95% CI"], [
                [name, fmt(a.value), ci_text(a.ci), fmt(b.value), ci_text(b.ci)]
                for name, a, b in (
                    ("a, ns/fault", old.ns_per_fault, now.ns_per_fault),
                    ("b, ns/page mapped", old.ns_per_page_mapped, now.ns_per_page_mapped),
                    ("c, ns/page touched", old.ns_per_touch, now.ns_per_touch),
                ) if a is not None and b is not None
            ]))
        parts.append(wrap(compare_cost_models(old, now) + "."))
    if not parts:
        return ""
    return "\n" + wrap(
        "Cost model, touch_ns = a*faults + b*pages_mapped + c*pages_touched, new against "
        "base; a constant is unchanged when the two 95% bootstrap intervals overlap.") + \
        "".join(parts)
