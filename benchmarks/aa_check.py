"""A/A check: how often does `faultbench compare` mark anything when nothing differs?

Holm bounds the chance that a table marks *any* row by 5%, so the number to check is the
share of A/A tables with at least one row marked (per-table false-positive rate), not marked
rows out of all rows. Many A/A tables come from one long run
(`analysis.replicates.aa_tables`): its units split in halves at random, again and again -
the rounds of a native run, or the boots of one kernel of a booted run when it has >= 4;
with a `--swap` column measured twice in every round (two directories of one filesystem),
each round's two labels swapped at random instead.

Prints, per run: the tables, the per-table rate with its 95% Clopper-Pearson interval, the
share of rows with raw p < 0.05, and the detectable change of the rows. The tables share one
run's data, so they are not independent: the interval is a guide, not a guarantee. When the
units allow fewer distinct splits than --tables (6 boots: 10), each split is made once and
the count is given as "k of m splits", with no interval: they are all there are. Reads
runs; measures nothing.

Usage: python benchmarks/aa_check.py [--tables N] [--swap COLUMN] [--one-image] RUN_DIR...
(default: results/native-break-even results/native-quick, 200 tables each)
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd
from scipy import stats

import faultbench
from faultbench.analysis.aa import aa_tables
from faultbench.analysis.labels import LABEL_FIELDS

METRIC = "ns_per_page"


def split_input(df: pd.DataFrame, swap: str | None,
                one_image: bool) -> tuple[pd.DataFrame, list[str]]:
    """A run's samples as aa_tables splits them, and the keys of its rows."""
    if one_image:  # one image under several labels: all boots are boots of one kernel
        df = df.assign(boot=df["kernel"].astype(str) + "/" + df["boot"].astype(str),
                       kernel="one")
    knobs = df.attrs.get("knob_columns", [])
    keys = [c for c in dict.fromkeys([*LABEL_FIELDS, *knobs, "role"])
            if c in df and c != swap and c != "kernel"]
    split = df.assign(**{k: df[k].astype(str) for k in keys})
    # pandas deep-copies attrs (the runs' meta.json) on every operation: a tenth of the time
    split.attrs = {}
    return split, keys


def check(run: str, tables: int, swap: str | None, one_image: bool = False) -> str:
    df, keys = split_input(faultbench.load(run), swap, one_image)
    results = aa_tables(df, keys, METRIC, tables=tables, swap=swap)
    marked = sum(bool(t["significant"].any()) for t in results)
    p = np.concatenate([t["p"].dropna().to_numpy() for t in results])
    detect = np.concatenate([t["detect"].to_numpy() for t in results])
    first = results[0]
    units = (f"{first['base_units'].iloc[0]} vs {first['new_units'].iloc[0]} "
             f"{first['unit'].iloc[0]}s")
    finite = detect[np.isfinite(detect)]
    sees = (f"median detectable change {100 * (np.median(finite) - 1):.0f}%"
            if len(finite) else "no row can be marked at all (too few units for Holm)")
    if len(results) < tables:  # every distinct split once (aa_tables): nothing sampled
        rate = (f"  any row marked: {marked} of {len(results)} splits (each distinct split "
                f"once: no interval)\n")
    else:
        ci = stats.binomtest(marked, len(results)).proportion_ci(0.95)
        rate = (f"  tables with any row marked: {marked} of {len(results)} = "
                f"{100 * marked / len(results):.1f}% (95% CI {100 * ci.low:.1f}-"
                f"{100 * ci.high:.1f}%; Holm's bound 5%)\n")
    return (f"{run}: {len(results)} A/A tables of {len(first)} rows, {units} "
            f"(plane {df['plane'].iloc[0]})\n" + rate +
            f"  rows with raw p < 0.05: {100 * (p < 0.05).mean():.1f}% of {len(p)} "
            f"(5% if calibrated; fewer with ties)\n  {sees}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*",
                        default=["results/native-break-even", "results/native-quick"])
    parser.add_argument("--tables", type=int, default=200)
    parser.add_argument("--swap", help="a column measured twice per round (e.g. dir)")
    parser.add_argument("--one-image", action="store_true",
                        help="the run booted one image under several --kernel labels: split "
                        "all its boots (with 6, 10 distinct 3 vs 3 splits, each made once)")
    args = parser.parse_args()
    if args.tables < 20:
        parser.error("--tables: at least 20")
    for run in args.runs:
        try:
            print(check(run, args.tables, args.swap, args.one_image), flush=True)
        except ValueError as exc:
            print(f"{run}: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
