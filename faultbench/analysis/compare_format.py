"""`faultbench compare --format lkp|json`: the comparison as test-robot reports print it, and
as one JSON object. Rows and statistics come from `compare.compare`."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pandas as pd

from faultbench.analysis.frame import COUNT_METRICS, AnalysisError, metric_unit
from faultbench.analysis.text import fmt, fmt_fixed, fmt_pct, wrap

# rows named in the note on rows only one side has; the rest are counted
ONLY_IN_SHOWN = 5

# LKP prints a side's relative standard deviation only above this many percent.
LKP_QUIET_PCT = 2
BACKSLASH = "\\"
LKP_METRICS = ("ns_per_page", "faults_per_page", "mapped_per_touched", "munmap_ns_per_page")


def lkp_tables(compare: Callable[[str], pd.DataFrame]
               ) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """compare's table of each LKP metric the runs hold, and a note for each they do not
    (pages mapped, of a run with pagemap = false); the first, time, they must hold."""
    tables, left_out = {}, []
    for metric in LKP_METRICS:
        try:
            tables[metric] = compare(metric)
        except AnalysisError as exc:
            if metric == LKP_METRICS[0]:
                raise
            left_out.append(f"Not shown: {metric}, as {exc}.")
    return tables, left_out


def _stddev(value: float) -> str:
    if value != value or value <= LKP_QUIET_PCT:
        return " " * 5
    return f"\u00b1{value:3.0f}%" if value < 1000 else f"\u00b1{value:.0e}%"


def _column(metric: str, values: list[float]) -> list[str]:
    """Counts per page at one precision per column; timings as `fmt` writes them."""
    return fmt_fixed(values) if metric in COUNT_METRICS else [fmt(v) for v in values]


def _name(label: str, metric: str, unit: str) -> str:
    """An LKP row name: the scenario's words joined by dots, then the metric's unit."""
    return ".".join(label.split()) + "." + unit.replace(" ", "_")


def lkp(tables: dict[str, pd.DataFrame], base: str, new: str, title: str, brief: bool) -> str:
    """Rows of every metric, scenario by scenario: `base ±sd%  %change  new ±sd%  name`, the
    layout of the Linux kernel test robot's reports, with the numbers of the text table:
    base and new the medians of the units (boots or rounds), their relative standard
    deviation shown above 2%, and %change the one estimate the row's test and CI belong to.
    BASE and NEW are named in full above the columns, which are too narrow for them."""
    first = next(iter(tables.values()))
    planes = first.attrs.get("planes", ("native",))
    head = [wrap(title).rstrip("\n"), wrap(f"base: {base}").rstrip("\n"),
            wrap(f"new: {new}").rstrip("\n"), "",
            f"{'base':>16} {'new':>27}", f"{'-' * 16} {'-' * 27}",
            f"{'%stddev':>16} {'%change':>11} {'%stddev':>15}",
            " " * 13 + BACKSLASH + " " * 10 + "|" + " " * 15 + BACKSLASH]
    rows = []
    order = list(first["label"])
    by_label = {m: t.set_index("label") for m, t in tables.items()}
    shown = {m: dict(zip([("base", x) for x in t.index] + [("new", x) for x in t.index],
                         _column(m, [*t["base_median"], *t["new_median"]]), strict=True))
             for m, t in by_label.items()}
    for label in order:
        for metric, table in by_label.items():
            if label not in table.index:
                continue
            row = table.loc[label]
            mark = "*" if row["mark"] == "*" else ""
            rows.append(f"{shown[metric][('base', label)]:>10} {_stddev(row['base_sd_pct'])} "
                        f"{fmt_pct(row['change_pct']) + mark:>11} "
                        f"{shown[metric][('new', label)]:>10} {_stddev(row['new_sd_pct'])}  "
                        f"{_name(label, metric, metric_unit(metric, planes))}")
    units = first["unit"].iloc[0] + "s"
    foot = (f"base, new: medians of the {units} (the test's units), as faultbench compare "
            f"prints them; %stddev: the {units}' standard deviation in % of their geometric "
            f"mean, shown above {LKP_QUIET_PCT}%; %change: the estimate the row's test and "
            f"95% CI belong to (faultbench compare's change column), not new/base; *: the "
            f"row's test marks it (Holm). Time units: per page touched.")
    short = (f"Medians of the {units}; %change: the test's estimate (not new/base); *: "
             f"{first['method'].iloc[0].split(' on ')[0]}, Holm p < 0.05 (faultbench compare).")
    return "\n".join(head + rows) + "\n\n" + wrap(short if brief else foot)


def _plain(value: Any) -> Any:
    """A JSON value: NaN and inf are null, numpy scalars plain numbers."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def as_json(table: pd.DataFrame, metric: str, title: str, footer: str) -> str:
    """The comparison as one JSON object: the same fields as the text table and its footer
    (docs/results.md, "compare --format json")."""
    sides = ("boots", "units", "samples", "dropped", "median", "spread_pct", "gmean", "sd_pct")
    keys = [c for c in table.attrs["label_columns"] if c != "role"]
    rows = []
    for _, row in table.iterrows():
        rows.append({
            "label": row["label"], "role": row["role"],
            "spec": {k: _plain(row[k]) for k in keys},
            "unit": row["unit"],
            **{side: {name: _plain(row[f"{side}_{name}"]) for name in sides}
               for side in ("base", "new")},
            "change_pct": _plain(row["change_pct"]),
            "ci_pct": None if row["ci_lo_pct"] != row["ci_lo_pct"] else
            [_plain(row["ci_lo_pct"]), _plain(row["ci_hi_pct"])],
            "median_ratio": _plain(row["median_ratio"]),
            "detect_pct": _plain(row["detect_pct"]),
            "p": _plain(row["p"]), "p_adj": _plain(row["p_adj"]),
            "exact": bool(row["exact"]), "significant": bool(row["significant"]),
            "mark": row["mark"], "method": row["method"],
            "interfered": int(row["interfered"]), "hit_pct": _plain(row["hit_pct"]),
        })
    planes = table.attrs.get("planes", ("native",))
    return json.dumps({
        "title": title, "metric": metric,
        "unit": metric_unit(metric, planes), "alpha": table.attrs.get("alpha"),
        "tested": table.attrs.get("tested"), "power": table.attrs.get("power"),
        "rows": rows, "only_in": table.attrs.get("only_in", {"BASE": [], "NEW": []}),
        "left_by_strict": table.attrs.get("strict_gone", []),
        "unfinished": table.attrs.get("unfinished", []),
        "footer": " ".join(footer.split()),
    }, indent=2, allow_nan=False) + "\n"


def only_in_note(table: pd.DataFrame) -> list[str]:
    """The sentences naming the rows left out of a comparison: one side lacks them, or
    --strict left one side no sample there."""
    parts = []
    for role, names in table.attrs.get("only_in", {}).items():
        if names:
            shown = ", ".join(names[:ONLY_IN_SHOWN]) + (
                f" and {len(names) - ONLY_IN_SHOWN} more" if len(names) > ONLY_IN_SHOWN else "")
            parts.append(f"{len(names)} row{'s' * (len(names) > 1)} only in {role} ({shown})")
    verb = "is" if len(parts) == 1 and parts[0].startswith("1 ") else "are"
    notes = [f"NOTE: {' and '.join(parts)} {verb} not compared: the other side has no "
             "valid sample there."] if parts else []
    if gone := table.attrs.get("strict_gone"):
        shown = ", ".join(gone[:ONLY_IN_SHOWN]) + (
            f" and {len(gone) - ONLY_IN_SHOWN} more" if len(gone) > ONLY_IN_SHOWN else "")
        notes.append(f"NOTE: {len(gone)} row{'s' * (len(gone) > 1)} ({shown}) "
                     f"{'is' if len(gone) == 1 else 'are'} not compared: --strict left out "
                     "every sample of one side there (preempted or stolen from).")
    return notes
