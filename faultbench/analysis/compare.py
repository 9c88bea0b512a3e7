"""Two runs, or two values of a knob, scenario by scenario (`faultbench compare`).

Significance: Mann-Whitney U, two-sided, per row: it assumes neither normality nor equal
sample counts, only independent samples, which the runner's interleaved rounds provide.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import comb

from faultbench.analysis.frame import METRICS, AnalysisError, dropped_notes, load, run_info
from faultbench.analysis.labels import (
    LABEL_FIELDS,
    constants_line,
    label_columns,
    labels,
    spec_order,
)
from faultbench.analysis.text import fmt, fmt_pct, text_table, wrap

ALPHA = 0.05
METHOD = "Mann-Whitney U, two-sided (scipy.stats.mannwhitneyu)"


@dataclass
class Side:
    """One operand: the run directory and, with --by, the knob value it selects."""
    path: Path
    value: str | None
    name: str


def parse_side(text: str, by: str | None, role: str) -> Side:
    if by is None:
        return Side(Path(text), None, text)
    path, sep, value = text.rpartition(":")
    if not sep or not path or not value:
        raise AnalysisError(f"{role} {text!r}: with --by {by}, give RUN_DIR:VALUE")
    return Side(Path(path), value, f"{by}={value}")


def select(df: pd.DataFrame, side: Side, by: str | None, role: str) -> pd.DataFrame:
    """Valid samples of one operand; with --by, only those at the chosen knob value."""
    ok = df[df["ok"]]
    if ok.empty:
        raise AnalysisError(f"{role} {side.path}: no valid samples (all warm-ups or errors)")
    if by is None:
        return ok
    knobs = df.attrs.get("knob_columns", [])
    if by not in knobs and by not in LABEL_FIELDS:
        raise AnalysisError(
            f"unknown knob {by!r} for --by: {side.path} has knobs: {', '.join(knobs) or 'none'};"
            f" spec fields: {', '.join(LABEL_FIELDS)}"
        )
    as_text = ok[by].map(_knob_text)
    chosen = ok[as_text == _knob_text(side.value)]
    if chosen.empty:
        values = ", ".join(sorted(as_text[ok[by].notna()].unique())) or "none"
        raise AnalysisError(
            f"{role} {side.path}: no samples with {by}={side.value} (values: {values})"
        )
    return chosen


def _knob_text(value: Any) -> str:
    """Knob values compare as text, with integral numbers written without a fraction.

    An unset value (knob not part of that scenario) is the empty string, so it still matches.
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "" if value is None else str(value)
    if number != number:
        return ""
    return str(int(number)) if number == int(number) else str(number)


def check_planes(base: pd.DataFrame, new: pd.DataFrame, force: bool) -> None:
    planes_base = set(base["plane"].unique())
    planes_new = set(new["plane"].unique())
    if planes_base != planes_new and not force:
        raise AnalysisError(
            f"BASE was measured on {'/'.join(sorted(planes_base))} and NEW on "
            f"{'/'.join(sorted(planes_new))}: timings from different planes (native, KVM "
            "guest, TCG emulation) are not comparable (--force compares anyway)"
        )


def compare(
    base: pd.DataFrame, new: pd.DataFrame, metric: str = "ns_per_page", by: str | None = None
) -> pd.DataFrame:
    """One row per scenario (and mapper role) present in both: medians, change, p-value.

    base/new are valid samples (see `select`). Rows match on the spec's fields and every
    knob but `by`.
    """
    knobs = [*base.attrs.get("knob_columns", []), *new.attrs.get("knob_columns", [])]
    keys = [c for c in dict.fromkeys([*LABEL_FIELDS, "seed", *knobs]) if c != by]
    both = pd.concat([base.assign(side="base"), new.assign(side="new")], ignore_index=True)
    both = both[both[metric].notna()]
    for key in keys:
        both[key] = both[key].map(_knob_text) if key in both else ""
    keys.append("role")
    grouped = both.groupby([*keys, "side"], sort=False)[metric]
    agg = grouped.agg(n="count", median="median")
    quartiles = grouped.quantile([0.25, 0.75]).unstack()
    agg["spread"] = (quartiles[0.75] - quartiles[0.25]) / 2
    agg = agg.unstack("side")
    agg.columns = [f"{side}_{stat}" for stat, side in agg.columns]
    if not {"base_n", "new_n"} <= set(agg.columns):
        raise AnalysisError("BASE and NEW have no scenario in common")
    table = agg.dropna(subset=["base_n", "new_n"]).reset_index()
    if table.empty:
        raise AnalysisError("BASE and NEW have no scenario in common")

    def test(group: pd.DataFrame) -> float:
        values = group.groupby("side")[metric]
        sides = dict(list(values))
        if len(sides) < 2:
            return np.nan
        return float(stats.mannwhitneyu(sides["base"], sides["new"], alternative="two-sided")
                     .pvalue)

    pvalues = both.groupby(keys, sort=False)[["side", metric]].apply(test).rename("p")
    table = table.merge(pvalues, left_on=keys, right_index=True, how="left")
    table["change_pct"] = 100 * (table["new_median"] / table["base_median"] - 1)
    table["base_spread_pct"] = 100 * table["base_spread"] / table["base_median"]
    table["new_spread_pct"] = 100 * table["new_spread"] / table["new_median"]
    # The smallest two-sided p the exact test can give: 2 / C(n1 + n2, n1). Rows that cannot
    # reach ALPHA are marked '?' rather than passed as 'no change'.
    table["min_p"] = np.minimum(1.0, 2 / comb(table["base_n"] + table["new_n"], table["base_n"]))
    table["significant"] = table["p"] < ALPHA
    table["mark"] = np.where(table["significant"], "*", np.where(table["min_p"] >= ALPHA, "?", ""))
    for column in keys[:-1]:
        table[column] = pd.to_numeric(table[column], errors="coerce").fillna(
            table[column].replace("", np.nan)
        )
    table.attrs["knob_columns"] = [k for k in dict.fromkeys(knobs) if k != by]
    table["ok"] = True
    table.attrs["label_columns"] = [*label_columns(table), "role"]
    table["label"] = labels(table, table.attrs["label_columns"])
    return table.sort_values(table.attrs["label_columns"], key=spec_order, kind="stable")


def _spread(value: float) -> str:
    if value != value:
        return "-"
    return f"\u00b1{value:.0f}%" if value >= 10 else f"\u00b1{value:.1f}%"


def footer(table: pd.DataFrame, metric: str, two_runs: bool) -> str:
    def span(column: str) -> str:
        low, high = int(table[column].min()), int(table[column].max())
        return str(low) if low == high else f"{low}-{high}"

    text = (
        f"{metric}: medians of valid samples; change: new/base - 1; \u00b1: half the "
        f"interquartile range, % of the median. *: p < {ALPHA} by {METHOD}; ?: too few "
        f"samples to reach p < {ALPHA}. "
        f"{len(table)} rows, {int(table['significant'].sum())} significant; samples per row: "
        f"base {span('base_n')}, new {span('new_n')}."
    )
    if two_runs:
        # Measured on the development VM: two runs minutes apart differed by 2-10% in many
        # rows, far beyond their within-run spread; only interleaving cancels that.
        text += (" Two separate runs: the test knows only the spread within each run, not "
                 "the drift between runs; small changes marked * may be that drift. An "
                 "A/A pair of runs shows its size.")
    return wrap(text)


def render(
    table: pd.DataFrame, fmt_name: str, metric: str, title: str, two_runs: bool = True
) -> str:


    if fmt_name == "csv":
        columns = ["label", *table.attrs["label_columns"], "base_n", "base_median",
                   "base_spread_pct", "new_n", "new_median", "new_spread_pct", "change_pct", "p",
                   "significant"]
        return table[columns].to_csv(index=False)
    cells = pd.DataFrame({
        "label": table["label"],
        "base": table["base_median"].map(fmt),
        "bsd": table["base_spread_pct"].map(_spread),
        "new": table["new_median"].map(fmt),
        "nsd": table["new_spread_pct"].map(_spread),
        "chg": table["change_pct"].map(fmt_pct),
        "sig": table["mark"],
    })
    headers = ["scenario", "base", "\u00b1", "new", "\u00b1", "change", ""]
    common = constants_line(table, table.attrs["label_columns"])
    if fmt_name == "markdown":
        head = "| " + " | ".join(headers) + " |\n" + "|---" * len(headers) + "|\n"
        body = "".join("| " + " | ".join(row) + " |\n" for row in cells.to_numpy().tolist())
        return f"{title}\n{common}\n{head}{body}\n{footer(table, metric, two_runs)}"
    return (wrap(title) + common + text_table(headers, cells.to_numpy().tolist())
            + footer(table, metric, two_runs))


def compare_runs(
    base_arg: str, new_arg: str, by: str | None = None, metric: str = "ns_per_page",
    fmt_name: str = "text", force: bool = False,
) -> str:
    """The comparison `faultbench compare BASE NEW` prints (see its --help for the
    arguments); AnalysisError when the runs cannot be compared as asked."""
    if metric not in METRICS:
        raise AnalysisError(f"unknown --metric {metric!r}: one of {', '.join(METRICS)}")
    base_side = parse_side(base_arg, by, "BASE")
    new_side = parse_side(new_arg, by, "NEW")
    base_df = load(base_side.path)
    same = new_side.path.resolve() == base_side.path.resolve()
    new_df = base_df if same else load(new_side.path)
    base = select(base_df, base_side, by, "BASE")
    new = select(new_df, new_side, by, "NEW")
    check_planes(base, new, force)
    table = compare(base, new, metric, by)
    infos = [run_info(next(iter(d.attrs["meta"].values())), d) for d in (base_df, new_df)]
    title = f"{METRICS[metric]}: base {base_side.name}, new {new_side.name}"
    if infos[0].kernel != infos[1].kernel:
        title += f" (Linux {infos[0].kernel} vs {infos[1].kernel})"
    else:
        title += f" (Linux {infos[0].kernel})"
    planes = {i.plane_label() for i in infos}
    title += "; plane " + " vs ".join(sorted(planes))
    notes = [f"BASE: {n}" for n in dropped_notes(base_df)]
    notes += [] if same else [f"NEW: {n}" for n in dropped_notes(new_df)]
    text = render(table, fmt_name, metric, title, not same)
    return text if fmt_name == "csv" else text + "".join(wrap(note) for note in notes)
