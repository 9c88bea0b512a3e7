"""The report's knob sweeps: per swept knob, a table per scenario of each of its values
against a baseline value (`faultbench report --baseline`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pandas as pd

from faultbench.analysis.frame import FAULT_AROUND_KNOB, AnalysisError, time_unit
from faultbench.analysis.labels import format_value, labels, spec_order, spelled_number
from faultbench.analysis.stats import median_ci, unit_count
from faultbench.analysis.text import fmt, fmt_pct, text_table, wrap
from faultbench.measurement.knobs.catalog import is_knob_name
from faultbench.measurement.spec import SpecError, parse_size


def _sweep_level(value: Any) -> Any:
    """A knob value as one level of its sweep: text of an integer is that integer (as
    knobs.catalog.read_value reads it), so "60" and 60 are one level, 60 beside "x"."""
    return int(value) if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value) else value


def _levels(df: pd.DataFrame, knob: str) -> pd.Series:
    """The knob's value in each valid sample that sets it, as a level of its sweep."""
    return df.loc[df["ok"] & df[knob].notna(), knob].map(_sweep_level)


def default_baseline(knob: str, values: pd.Series, listed: Sequence[Any] = ()) -> Any:
    """fault_around_bytes 4096 (off); for a knob set by words (THP's never, madvise, ...)
    the first of `listed` (the workload's order) it has samples of: sorted, "always" would
    come first; otherwise the smallest value, a number before any text (a knob's values
    read back as numbers in some samples and as text in others do not compare with `<`)."""
    if knob == FAULT_AROUND_KNOB and (values == 4096).any():
        return 4096
    if all(isinstance(value, str) for value in values):
        first = next((level for level in map(_sweep_level, listed) if (values == level).any()),
                     None)
        if first is not None:
            return first
    return values.sort_values(key=spec_order, kind="stable").iloc[0]


def _listed(df: pd.DataFrame, knob: str) -> list[Any]:
    """The knob's values in the order its run's scenarios (meta.json) set them."""
    return [scenario["knobs"][knob] for meta in df.attrs.get("meta", {}).values()
            for scenario in meta.get("scenarios", [])
            if isinstance(scenario, dict) and knob in (scenario.get("knobs") or {})]


def _level(text: str, values: pd.Series) -> Any:
    """`text` as the knob's values are stored (sizes may be written 64K) if it is one of
    them, else None."""
    if spelled_number(text):
        return None
    try:
        value: Any = parse_size(text)
    except SpecError:
        value = text
    return value if (values == value).any() else None


def _shown(knob: str, values: pd.Series) -> str:
    return ", ".join(format_value(knob, v).split("=")[-1] for v in
                     pd.Series(values.unique()).sort_values(key=spec_order))


def baselines(df: pd.DataFrame, swept: list[str], given: str | Sequence[str] | None
              ) -> dict[str, Any]:
    """The baseline level of each swept knob that --baseline names (any other keeps
    default_baseline). KNOB=VALUE names KNOB's; a bare VALUE is the baseline of each swept
    knob it is a value of: with several knobs swept, a value is usually one knob's.
    AnalysisError for a value of no swept knob (naming them and their values), a knob not
    swept, or two baselines of one knob."""
    texts = [given] if isinstance(given, str) else list(given or ())
    if texts and not swept:
        raise AnalysisError("--baseline applies to knob sweeps; this run sweeps no knob")
    chosen: dict[str, tuple[str, Any]] = {}
    for text in texts:
        knob, named, value = text.partition("=")
        # a knob's name has no "=", a text value may: "x=y" names a knob only if x is one's
        if named and is_knob_name(knob):
            candidates = [knob] if knob in swept else []
        else:
            candidates, value = swept, text
        found = {k: level for k in candidates
                 if (level := _level(value, _levels(df, k))) is not None}
        if not found:
            raise AnalysisError(_not_a_baseline(df, text, candidates, swept))
        for k, level in found.items():
            if k in chosen and chosen[k][1] != level:
                raise AnalysisError(f"--baseline {chosen[k][0]} and --baseline {text} are "
                                    f"both baselines of {k}: give one")
            chosen[k] = (text, level)
    return {k: level for k, (_, level) in chosen.items()}


def _not_a_baseline(df: pd.DataFrame, text: str, candidates: list[str], swept: list[str]
                    ) -> str:
    """Why --baseline `text` is the level of no knob it was looked for in (`candidates`).
    Text with "=" that is no knob's value names its knob: a knob not swept (or no knob, such
    as a spec field) is what is wrong with it, not the value."""
    knob, named, value = text.partition("=")
    if not knob or (named and not value):
        return f"--baseline {text!r}: give KNOB=VALUE or VALUE"
    if named and knob not in candidates:
        return f"--baseline {text}: this run sweeps {', '.join(swept)}, not {knob}"
    if len(candidates) == 1:
        return (f"--baseline {text} is not a value of {candidates[0]} in this run: "
                f"{_shown(candidates[0], _levels(df, candidates[0]))}")
    return (f"--baseline {text} is not a value of any knob this run sweeps: "
            + "; ".join(f"{k}: {_shown(k, _levels(df, k))}" for k in candidates))


def sweep_tables(df: pd.DataFrame, knob: str, label_cols: list[str], baseline: Any) -> str:
    """One table per scenario (all but `knob` fixed): each knob value against the baseline
    level (a value of `baselines`; None: default_baseline)."""
    data = df[df["ok"] & df[knob].notna()]
    data = data.assign(
        group=labels(data, [c for c in label_cols if c != knob] + ["role"]),
        value=_levels(df, knob),
    )
    if baseline is None:
        baseline = default_baseline(knob, data["value"], _listed(df, knob))
    ns = median_ci(data, ["group", "value"], "ns_per_page")
    faults = data.groupby(["group", "value"], sort=False)["faults_per_page"].median()
    table = ns.merge(faults.rename("faults"), left_on=["group", "value"], right_index=True)
    base = table[table["value"] == baseline].set_index("group")[["median", "faults"]]
    table = table.join(base.add_suffix("_base"), on="group").sort_values(
        ["group", "value"], key=spec_order, kind="stable")
    table["d_ns"] = 100 * (table["median"] / table["median_base"] - 1)
    table["d_flt"] = 100 * (table["faults"] / table["faults_base"] - 1)
    table["shown"] = table["value"].map(lambda v: format_value(knob, v).split("=")[-1])
    table["ci"] = (table["ci_lo"].map(fmt) + ".." + table["ci_hi"].map(fmt)).where(
        table["ci_lo"].notna(), "-"
    )
    unit = time_unit(str(data["plane"].iloc[0])) if len(data) else "ns"
    headers = [knob, f"{unit}/page", "95% CI", "vs base", "flt/pg", "vs base", "n"]
    out = [wrap(f"Sweep of {knob}; 'vs base' is the change of the median against "
                f"{knob}={format_value(knob, baseline).split('=')[-1]}.")]
    for group, part in table.groupby("group", sort=True):
        rows = pd.DataFrame({
            "v": part["shown"], "ns": part["median"].map(fmt), "ci": part["ci"],
            "dns": part["d_ns"].map(fmt_pct), "flt": part["faults"].map(fmt),
            "dflt": part["d_flt"].map(fmt_pct), "n": unit_count(part),
        })
        out.append(f"\n{group}\n" + text_table(headers, rows.to_numpy().tolist()))
    return "".join(out)
