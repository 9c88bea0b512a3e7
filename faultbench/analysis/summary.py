"""The short table `faultbench run` prints at its end: faults/page and ns/page per scenario,
with the notes on what no row shows. `faultbench report` has the full statistics."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from faultbench.analysis.dropped import drift_notes, kernels_unmeasured_note
from faultbench.analysis.frame import load, run_info, time_unit
from faultbench.analysis.labels import grouped_rows, knob_order, label_columns, labels, sort_labels
from faultbench.analysis.report import interference_note, unit_legend
from faultbench.analysis.stats import median_ci, unit_count
from faultbench.analysis.text import fmt, fmt_fixed, text_table, wrap
from faultbench.errors import error_text, printable
from faultbench.measurement.rundir.safefile import SafeDir


def summary(run_dir: Path | SafeDir) -> str:
    """The argument in one short table: faults/page and ns/page with fault-around on or off.

    Printed by `faultbench run` at its end; `faultbench report` has the full statistics.
    """
    df = load(run_dir)
    ok = df[df["ok"]]
    if ok.empty:
        return ("no valid samples to summarise\n" + "".join(wrap(n) for n in drift_notes(df))
                + unmeasured_note(df))
    label_cols = label_columns(df)
    keys = [*label_cols, "role", "label"]
    # a kernel's "base:" heads the rest of a label; in a run of one scenario it is the label
    data = ok.assign(label=labels(ok, keys[:-1]).str.removesuffix(":"),
                     per_fault=ok["mapped_per_touched"]
                     / ok["faults_per_page"].where(ok["faults_per_page"] > 0))
    # by label alone: a key that is None for some rows (dir, tmpfs_huge) matches no row in
    # a join on every key
    medians = data.groupby("label", sort=False)[["faults_per_page", "per_fault"]].median()
    table = median_ci(data, keys, "ns_per_page").join(medians, on="label")
    table = sort_labels(table, keys[:-1], knob_order(df))
    rows = pd.DataFrame({
        "label": table["label"], "fa": table["per_fault"].map(fmt),
        "flt": fmt_fixed(list(table["faults_per_page"])),
        "ns": table["median"].map(fmt), "n": unit_count(table),
    })
    meta = next(iter(df.attrs["meta"].values()))
    run = run_info(meta, df)
    unit = time_unit(run.plane)
    head = (f"Summary ({run.plane_label()}; medians; per page touched; n: "
            f"{unit_legend(df)}). map/flt: pages mapped per fault, as measured (1: "
            f"fault-around did not map more).")
    headers = ["scenario", "map/flt", "faults/pg", f"{unit}/page", "n"]
    cells, groups = grouped_rows(table, [*label_cols, "role"], headers,
                                 rows.to_numpy().tolist())
    text = wrap(head) + text_table(headers, cells, groups=groups)
    notes = [interference_note(df), *drift_notes(df), *kernels_unmeasured_note(df, meta)]
    return text + "".join(wrap(n) for n in notes if n) + unmeasured_note(df)


def unmeasured_note(df: pd.DataFrame) -> str:
    """The scenarios measured without one valid sample (they have no row), each with its
    first error; empty when there are none."""
    if "scenario" not in df:
        return ""
    measured = df[~df["warmup"]]
    bad = measured[~measured["scenario"].isin(df.loc[df["ok"], "scenario"])]
    if bad.empty:
        return ""
    first = bad.groupby("scenario", sort=True).first()
    return wrap("No valid sample (so no row) for: " + "; ".join(
        # the mapper's error is text a child process wrote: its control characters show
        f"{name}: {row.status}: {printable(error_text(row.error)[:120])}" if row.status != "ok" else
        f"{name}: measured while someone else had changed a knob (knob_drift)"
        for name, row in first.iterrows()))
