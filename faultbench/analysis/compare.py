"""Two runs, two values of a knob, or two kernels of one run, scenario by scenario
(`faultbench compare`).

Significance: `replicates.compare_rows` per row, on the unit that varies independently: the
boot when both sides have several (Welch's t on per-boot log medians), the round otherwise
(Mann-Whitney U on per-round medians, mappers of a round pooled); Holm-adjusted over the rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from faultbench.analysis.breakeven import compare_section
from faultbench.analysis.frame import (
    METRICS,
    AnalysisError,
    booted_kernels,
    dropped_notes,
    exclude_interfered,
    load,
    run_info,
)
from faultbench.analysis.labels import (
    LABEL_FIELDS,
    constants_line,
    label_columns,
    labels,
    spec_order,
)
from faultbench.analysis.memory import compare_section as memory_compare
from faultbench.analysis.replicates import compare_rows, footer_note
from faultbench.analysis.report import hit_cells, interference_note
from faultbench.analysis.text import fmt, fmt_pct, text_table, wrap


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
    """Valid samples of one operand (with those --strict excluded, for the hit counts);
    with --by, only those at the chosen knob value."""
    ok = df[df["ok"] | df["interfered"]]
    if not df["ok"].any():
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
    """One row per scenario (and mapper role) present in both: `replicates.compare_rows`'
    columns, `change_pct` and its CI (`ci_lo_pct`, `ci_hi_pct`), `interfered` (samples of
    both sides preempted or stolen from), `label`.

    base/new are valid samples (see `select`); those not `ok` (--strict) only count as
    interfered. Rows match on the spec's fields, the kernel and every knob but `by`.
    """
    knobs = [*base.attrs.get("knob_columns", []), *new.attrs.get("knob_columns", [])]
    keys = [c for c in dict.fromkeys([*LABEL_FIELDS, "seed", *knobs]) if c != by]
    sides = [side.assign(**{key: side[key].map(_knob_text) if key in side else ""
                            for key in keys}) for side in (base, new)]
    keys.append("role")
    table = compare_rows(sides[0], sides[1], keys, metric)
    if table.empty:
        strict = not (base["ok"].all() and new["ok"].all())
        why = " once --strict left out the samples preempted or stolen from" if strict else ""
        raise AnalysisError(f"BASE and NEW have no scenario in common{why}")
    hits = pd.concat(sides).groupby(keys, sort=False, dropna=False)["interfered"].sum()
    table["interfered"] = table.join(hits, on=keys)["interfered"].fillna(0).astype(int)
    for column, ratio in (("change_pct", "ratio"), ("ci_lo_pct", "ci_lo"),
                          ("ci_hi_pct", "ci_hi")):
        table[column] = 100 * (table[ratio] - 1)
    for column in keys[:-1]:
        table[column] = pd.to_numeric(table[column], errors="coerce").fillna(
            table[column].replace("", np.nan)
        )
    attrs = dict(table.attrs)
    table.attrs["knob_columns"] = [k for k in dict.fromkeys(knobs) if k != by]
    table["ok"] = True
    # what varies among the rows, or did before --strict left some out: labels stay stable
    varying = label_columns(pd.concat([table, *(side.loc[~side["ok"]] for side in sides)]))
    table.attrs["label_columns"] = [*(c for c in varying if c in keys), "role"]
    table["label"] = labels(table, table.attrs["label_columns"])
    table = table.sort_values(table.attrs["label_columns"], key=spec_order, kind="stable")
    table.attrs.update(attrs)
    return table


def _units(table: pd.DataFrame) -> pd.Series:
    """Per row: what it rests on, "2b/16" (boots / valid samples) or "10r/20" (rounds /
    samples), one side when both are equal, else base,new."""
    letter = table["unit"].str[0]
    base = table["base_units"].map(str) + letter + "/" + table["base_samples"].map(str)
    new = table["new_units"].map(str) + letter + "/" + table["new_samples"].map(str)
    return base.where(base == new, base + "," + new)


def _ci(table: pd.DataFrame) -> pd.Series:
    cells = table["ci_lo_pct"].map(lambda v: f"{v:+.1f}") + ".." + table["ci_hi_pct"].map(
        fmt_pct)
    return cells.where(table["ci_lo_pct"].notna() & ~table["exact"], "-")


def _spread(value: float) -> str:
    if value != value:
        return "-"
    return f"\u00b1{value:.0f}%" if value >= 10 else f"\u00b1{value:.1f}%"


def footer(table: pd.DataFrame, metric: str, two_runs: bool, samples: pd.DataFrame) -> str:
    """Units and method with references, Holm, interference, and the drift of two runs.

    samples: both sides' valid samples (for the interference count)."""
    text = (
        f"{metric}: base, new: medians of the units' values; change: new/base - 1 with its "
        f"95% CI; n: boots (b) or rounds (r) / valid samples (base,new when they differ). "
        f"{footer_note(table)} {len(table)} rows, "
        f"{int(table['significant'].sum())} significant."
    )
    interference = interference_note(samples)
    if interference:
        text += " " + interference
    if two_runs:
        # Measured on the development VM: two runs minutes apart differed by 2-10% in many
        # rows, far beyond their within-run spread; only interleaving cancels that.
        text += (" Two separate runs: the test knows only the spread within each run, not "
                 "the drift between runs; small changes marked * may be that drift. An "
                 "A/A pair of runs shows its size.")
    return wrap(text)


def render(
    table: pd.DataFrame, fmt_name: str, metric: str, title: str, samples: pd.DataFrame,
    two_runs: bool = True,
) -> str:
    if fmt_name == "csv":
        columns = ["label", *table.attrs["label_columns"], "unit", "base_boots", "base_units",
                   "base_samples", "base_median", "base_spread_pct", "new_boots", "new_units",
                   "new_samples", "new_median", "new_spread_pct", "change_pct", "ci_lo_pct",
                   "ci_hi_pct", "p", "p_adj", "significant", "mark", "method", "interfered"]
        return table[columns].to_csv(index=False)
    cells = pd.DataFrame({
        "label": table["label"],
        "base": table["base_median"].map(fmt),
        "new": table["new_median"].map(fmt),
        "chg": table["change_pct"].map(fmt_pct),
        "ci": _ci(table),
        "n": _units(table),
    })
    headers = ["scenario", "base", "new", "change", "95% CI", "n"]
    if table["interfered"].any():
        cells["hit"] = hit_cells(table["interfered"])
        headers.append("hit")
    cells["sig"] = table["mark"]
    headers.append("")
    common = constants_line(table, table.attrs["label_columns"])
    note = footer(table, metric, two_runs, samples)
    if fmt_name == "markdown":
        head = "| " + " | ".join(headers) + " |\n" + "|---" * len(headers) + "|\n"
        body = "".join("| " + " | ".join(row) + " |\n" for row in cells.to_numpy().tolist())
        return f"{title}\n{common}\n{head}{body}\n{note}"
    return wrap(title) + common + text_table(headers, cells.to_numpy().tolist()) + note


def implied_kernels(run: str) -> tuple[str, str]:
    """`compare RUN --by kernel`: RUN:first and RUN:second of a run of exactly two kernels."""
    df = load(Path(run))
    labels_ = list(booted_kernels(next(iter(df.attrs["meta"].values()))))
    if len(labels_) != 2:
        shown = ", ".join(labels_) or "none"
        raise AnalysisError(f"{run}: compare RUN --by kernel needs a run of two kernels "
                            f"(this one has: {shown}); give BASE and NEW as RUN:LABEL")
    return f"{run}:{labels_[0]}", f"{run}:{labels_[1]}"


def compare_runs(
    base_arg: str, new_arg: str | None, by: str | None = None, metric: str = "ns_per_page",
    fmt_name: str = "text", force: bool = False, strict: bool = False,
) -> str:
    """The comparison `faultbench compare BASE [NEW]` prints (see its --help for the
    arguments); AnalysisError when the runs cannot be compared as asked."""
    if metric not in METRICS:
        raise AnalysisError(f"unknown --metric {metric!r}: one of {', '.join(METRICS)}")
    if new_arg is None:
        if by != "kernel":
            raise AnalysisError("give BASE and NEW (only --by kernel on a run of two kernels "
                                "implies them)")
        base_arg, new_arg = implied_kernels(base_arg)
    base_side = parse_side(base_arg, by, "BASE")
    new_side = parse_side(new_arg, by, "NEW")
    base_df = load(base_side.path)
    same = new_side.path.resolve() == base_side.path.resolve()
    new_df = base_df if same else load(new_side.path)
    if strict:
        base_df = exclude_interfered(base_df)
        new_df = base_df if same else exclude_interfered(new_df)
    base = select(base_df, base_side, by, "BASE")
    new = select(new_df, new_side, by, "NEW")
    check_planes(base, new, force)
    table = compare(base, new, metric, by)
    metas = [next(iter(d.attrs["meta"].values())) for d in (base_df, new_df)]
    infos = [run_info(meta, d) for meta, d in zip(metas, (base_df, new_df), strict=True)]
    title = f"{METRICS[metric]}: base {base_side.name}, new {new_side.name}"
    if by == "kernel":
        kernels = [booted_kernels(meta).get(str(side.value)) for meta, side in
                   zip(metas, (base_side, new_side), strict=True)]
        title += " (" + " vs ".join(f"Linux {k[0]}, sha {k[1]}" if k else "unknown kernel"
                                    for k in kernels) + ")"
    elif infos[0].kernel != infos[1].kernel:
        title += f" (Linux {infos[0].kernel} vs {infos[1].kernel})"
    else:
        title += f" (Linux {infos[0].kernel})"
    planes = {i.plane_label() for i in infos}
    title += "; plane " + " vs ".join(sorted(planes))
    samples = pd.concat([base, new])
    if strict:
        samples.attrs["excluded"] = int(samples["interfered"].sum())
    text = render(table, fmt_name, metric, title, samples, not same)
    if fmt_name == "csv":  # rows only; the cost model and the notes are prose
        return text
    notes = [f"BASE: {n}" for n in dropped_notes(base_df)]
    notes += [] if same else [f"NEW: {n}" for n in dropped_notes(new_df)]
    # the cost-model section is empty unless both sides have a model
    return (text + "".join(wrap(note) for note in notes) + compare_section(base, new, by)
            + memory_compare(base, new))
