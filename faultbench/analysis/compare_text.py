"""`faultbench compare` as text, markdown and CSV: one estimate per row (the one its test and
95% CI belong to), the medians beside it in their own labelled columns, and the footer that
says how. Rows and statistics come from `compare.compare`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from faultbench.analysis.frame import COUNT_METRICS, metric_unit
from faultbench.analysis.labels import constants_line, grouped_rows
from faultbench.analysis.replicates import footer_note
from faultbench.analysis.report import interference_note
from faultbench.analysis.text import fmt, fmt_fixed, fmt_pct, text_table, wrap


def _units(table: pd.DataFrame) -> pd.Series:
    """Per row: what it rests on, "2b/16" (boots / valid samples) or "10r/20" (rounds /
    samples), one side when both are equal, else base,new."""
    letter = table["unit"].str[0]
    base = table["base_units"].map(str) + letter + "/" + table["base_samples"].map(str)
    new = table["new_units"].map(str) + letter + "/" + table["new_samples"].map(str)
    return base.where(base == new, base + "," + new)


def _ci(table: pd.DataFrame) -> pd.Series:
    cells = table["ci_lo_pct"].map(_pct) + ".." + table["ci_hi_pct"].map(_pct) + "%"
    cells = cells.where(table["ci_lo_pct"].notna(), "-")
    return cells.where(~table["exact"], "exact")


def _pct(value: float) -> str:
    """A CI bound: signed, one decimal below 10%, none above."""
    return f"{value:+.1f}" if abs(value) < 10 else f"{value:+.0f}"


def detect_cell(ratio: float) -> str:
    """The detectable change: "12%" below 2x, "x2.5" or "x31" above, ">x100", "never"."""
    if ratio != ratio:
        return "-"
    if ratio == np.inf:
        return "never"
    if ratio < 2:
        return f"{100 * (ratio - 1):.0f}%" if ratio >= 1.1 else f"{100 * (ratio - 1):.1f}%"
    if ratio > 100:
        return ">x100"
    return f"x{ratio:.1f}" if ratio < 10 else f"x{ratio:.0f}"


def blind_line(table: pd.DataFrame) -> str:
    """One line above a table whose tests cannot see a change below 2x (empty otherwise):
    without it, "0 of 66 significant" reads as "no change"."""
    tested = table["detect"].dropna()
    blind = int((tested >= 2).sum())
    if not blind:
        return ""
    if blind == len(tested) and tested.min() == np.inf:
        return wrap("NOTE: this table cannot detect any change: too few units for any p to "
                    "pass Holm's threshold; a row without * is no evidence of no change.")
    if blind == len(tested):
        return wrap(f"NOTE: this table cannot detect a change below 2x in any tested row "
                    f"(detect: {detect_cell(tested.min())} or more); a row without * is no "
                    "evidence of no change.")
    return wrap(f"NOTE: {blind} of {len(tested)} tested rows cannot detect a change below 2x "
                "(detect column); without * they are no evidence of no change.")


def method_line(table: pd.DataFrame) -> str:
    """The method in one line (--brief)."""
    methods = dict.fromkeys(m.split(" on ")[0] for m in table["method"]
                            if not m.startswith(("exact", "untested")))
    unit = "boots" if (table["unit"] == "boot").any() else "rounds"
    tested = table.attrs.get("tested", 0)
    exact = "; exact: constant samples, no test" if table["exact"].any() else ""
    hopeless = "; ?: too few units for any p to pass" if (table["mark"] == "?").any() else ""
    return wrap(f"{', '.join(methods) or 'no test'} on per-{unit[:-1]} values{exact}; "
                f"change: its estimate (not new/base); *: Holm p < "
                f"{table.attrs.get('alpha', 0.05)} over {tested} rows{hopeless}; detect: "
                f"{100 * table.attrs.get('power', 0.8):.0f}% power; faultbench compare.")


def footer(table: pd.DataFrame, metric: str, unit: str, two_runs: bool,
           samples: pd.DataFrame) -> str:
    """Units and method with references, Holm, interference, and the drift of two runs.

    samples: both sides' valid samples (for the interference count)."""
    per = "boot" if (table["unit"] == "boot").any() else "round"
    text = (
        f"{unit} touched ({metric}). change: the one estimate of the row, the one the test "
        f"and its 95% CI belong to (boots: ratio of geometric means; rounds: "
        f"Hodges-Lehmann shift); *: significant, ?: untested or too few units to pass. "
        f"base med, new med: for reference, medians of the per-{per} values (each the "
        f"median of its {'rounds' if per == 'boot' else 'mappers'}); their ratio is not "
        f"the change. n: boots (b) or rounds (r) / valid samples "
        f"(base,new when they differ). detect: the change this row's test finds with "
        f"{100 * table.attrs.get('power', 0.8):.0f}% power at Holm's first threshold "
        f"{table.attrs.get('alpha', 0.05)}/{max(table.attrs.get('tested', 1), 1)} (a lone "
        f"change in this table), given its n and spread (never: its smallest p cannot "
        f"pass). {footer_note(table)} {len(table)} rows, "
        f"{int(table['significant'].sum())} significant"
    )
    exact = table[table["exact"]]
    if len(exact):
        text += (f", {len(exact)} exact ({int((exact['ratio'] != 1).sum())} of them "
                 "changed)")
    text += "."
    hopeless = table["p"].notna() & (table["mark"] == "?")
    if hopeless.any():
        smallest = table.loc[hopeless, "min_p"].min()
        text += (f" ?: with so few units the smallest p the test can give ({smallest:.2g}) "
                 f"cannot pass Holm's threshold: more rounds or boots are needed.")
    dropped = table["base_dropped"] + table["new_dropped"]
    if dropped.any():
        text += (f" drop: samples left out of a row, failed or with no {metric} value "
                 f"({int(dropped.sum())} in all); when slow samples fail (a uffd deadline) "
                 "the rest are the fast ones.")
    interference = interference_note(samples)
    if interference and metric not in COUNT_METRICS:
        text += " hit%: share of a row's valid samples (both sides) that were hit. " + \
            interference
    if two_runs:
        # Measured on the development VM: two runs minutes apart differed by 2-10% in many
        # rows, and a fresh run from a clean clone by up to +37%; only interleaving cancels it.
        text += (" Two separate runs: the test knows only the spread within each run, not "
                 "the drift between runs (up to +37% seen between a reference run and a "
                 "fresh one); small changes marked * may be that drift. Compare within one "
                 "run (--by) where you can.")
    return wrap(text)


def _cells(table: pd.DataFrame, metric: str) -> tuple[list[str], pd.DataFrame]:
    values = [*table["base_median"], *table["new_median"]]
    # counts per page: one precision for the column (1.0000 next to 0.0626, not 1)
    shown = fmt_fixed(values) if metric in COUNT_METRICS else [fmt(v) for v in values]
    cells = pd.DataFrame({
        "label": table["label"],
        "chg": table["change_pct"].map(fmt_pct) + table["mark"].str.ljust(1),
        "ci": _ci(table),
        "detect": table["detect"].map(detect_cell),
        "n": _units(table),
        "base": shown[:len(table)],
        "new": shown[len(table):],
    })
    headers = ["scenario", "change ", "95% CI", "detect", "n", "base med", "new med"]
    dropped = table["base_dropped"] + table["new_dropped"]
    if dropped.any():
        cells["drop"] = dropped.map(lambda n: str(n) if n else "")
        headers.append("drop")
    if table["interfered"].any() and metric not in COUNT_METRICS:
        cells["hit"] = table["hit_pct"].map(lambda v: f"{v:.0f}" if v == v else "")
        headers.append("hit%")
    if table["folios"].nunique() > 1 or table["folios"].str.contains(" -> ").any():
        cells["folios"] = table["folios"]
        headers.append("folios")
    return headers, cells


def _markdown_cell(text: str) -> str:
    """A markdown table cell: a `|` in it (a directory may have one) escaped, so that it is
    no column's end, and so a backslash, so that none escapes what follows it."""
    return text.replace("\\", "\\\\").replace("|", "\\|")


def render(
    table: pd.DataFrame, fmt_name: str, metric: str, title: str, samples: pd.DataFrame,
    two_runs: bool = True, brief: bool = False,
) -> str:
    unit = metric_unit(metric, samples["plane"].unique())
    if fmt_name == "csv":
        columns = ["label", *table.attrs["label_columns"], "unit", "base_boots", "base_units",
                   "base_samples", "base_dropped", "base_median", "base_spread_pct",
                   "new_boots", "new_units", "new_samples", "new_dropped", "new_median",
                   "new_spread_pct", "change_pct", "ci_lo_pct", "ci_hi_pct", "detect_pct",
                   "median_ratio", "p", "p_adj", "exact", "significant", "mark", "method",
                   "interfered"]
        # an infinite detect_pct (never) is empty, as JSON's null
        return table[columns].replace([np.inf, -np.inf], np.nan).to_csv(index=False)
    headers, cells = _cells(table, metric)
    common = constants_line(table, table.attrs["label_columns"])
    note = method_line(table) if brief else footer(table, metric, unit, two_runs, samples)
    title = f"{unit} touched: {title}"
    if fmt_name == "markdown":
        head = ("| " + " | ".join(h.strip() for h in headers) + " |\n"
                + "|---" * len(headers) + "|\n")
        body = "".join("| " + " | ".join(map(_markdown_cell, row)) + " |\n"
                       for row in cells.to_numpy().tolist())
        return f"{title}\n{common}{blind_line(table)}\n{head}{body}\n{note}"
    rows, groups = grouped_rows(table, table.attrs["label_columns"], headers,
                                cells.to_numpy().tolist())
    return (wrap(title) + common + blind_line(table) + text_table(headers, rows, groups=groups)
            + note)


