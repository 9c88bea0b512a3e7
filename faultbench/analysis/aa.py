"""A/A tables: one run's own measurements split into two sides again and again, so that
whatever `compare_rows` marks between them is a false positive (benchmarks/aa_check.py)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from math import comb

import numpy as np
import pandas as pd

from faultbench.analysis.replicates import ROUND_COLUMN, boot_columns, compare_rows


def aa_tables(df: pd.DataFrame, keys: Sequence[str], metric: str, tables: int = 40,
              seed: int = 0, swap: str | None = None) -> list[pd.DataFrame]:
    """A/A comparisons of one run: `tables` `compare_rows` tables of two sides drawn from
    the same measurements, so that whatever they mark is a false positive.

    swap: a column with two values measured side by side in every round (two directories
    of one filesystem): in each table, each round's two labels are swapped or not at
    random, so a real difference between the two values cancels. Without swap, the units
    themselves are split in halves at random: the boots of each kernel when every kernel
    has >= 4 (2 vs 2 at least), else the rounds of a run of one boot per kernel; ValueError
    for a booted run with 2 or 3 boots per kernel (its boots cannot be split, and its rounds
    are not independent of them). `keys` must not include swap. When the units allow no
    more distinct halvings than `tables` (`distinct_halves`), each is made once instead:
    fewer tables, none repeated."""
    rng = np.random.default_rng(seed)
    # only the columns a comparison reads: every table copies its sides' rows
    read = {*keys, metric, "ok", "warmup", "interfered", "kernel", ROUND_COLUMN,
            *boot_columns(df), *([swap] if swap else [])}
    ok = df.loc[df["ok"], [c for c in df.columns if c in read]]
    units = _split_units(ok) if swap is None else None
    if units is not None:
        ok, units = ok[units.notna()], units.dropna()
        count, half = units.nunique(), units.nunique() // 2
        # counted before they are made: 25 rounds have 5 million
        if comb(count, half) // (2 if 2 * half == count else 1) <= tables:
            return [compare_rows(ok[units.isin(a)], ok[~units.isin(a)], keys, metric)
                    for a in distinct_halves(units.unique())]  # random draws would repeat them
    out = []
    for _ in range(tables):
        if swap is not None:
            first = sorted(ok[swap].dropna().unique())[0]
            rounds = ok[ROUND_COLUMN].unique()
            flipped = dict(zip(rounds, rng.integers(0, 2, len(rounds)).astype(bool),
                               strict=True))
            side_a = (ok[swap] == first) ^ ok[ROUND_COLUMN].map(flipped)
        else:
            chosen = set(rng.permutation(units.unique())[:units.nunique() // 2])
            side_a = units.isin(chosen)
        out.append(compare_rows(ok[side_a], ok[~side_a], keys, metric))
    return out


def distinct_halves(units: Sequence[str]) -> list[set[str]]:
    """Every split of `units` into halves (the smaller first when odd), each once: A vs B
    and B vs A are one split. 6 boots give C(6,3)/2 = 10."""
    ordered = sorted(set(units))
    half = len(ordered) // 2
    splits = [set(c) for c in combinations(ordered, half)]
    # with an even count each split appears twice, once from each half: keep the one
    # holding the first unit
    return [c for c in splits if ordered[0] in c] if 2 * half == len(ordered) else splits


def _split_units(ok: pd.DataFrame) -> pd.Series:
    """Per sample, the unit an A/A split draws: its boot (with its kernel) when every
    kernel has >= 4 boots, else its round."""
    if "boot" in ok and ok["boot"].notna().any():
        per_kernel = ok.groupby("kernel", dropna=False)["boot"].nunique()
        if per_kernel.min() >= 4:
            boots = ok["kernel"].astype(str) + "/" + ok["boot"].astype(str)
            # one kernel's boots: an A/A within a kernel, never one kernel against another
            return boots.where(ok["kernel"] == per_kernel.index[0])
        if per_kernel.max() > 1:
            raise ValueError(f"an A/A split of boots needs >= 4 boots per kernel, this run "
                             f"has {per_kernel.min()}")
    return ok[ROUND_COLUMN].astype(str)
