"""Statistics on the tidy frame: medians with distribution-free confidence intervals."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import pandas as pd

from faultbench.analysis.replicates import boot_columns, replicate_values

CI_METHOD = ("distribution-free order-statistic 95% CI of the median of per-round values "
             "(mappers of a round pooled by their median; needs n >= 6 rounds)")


_GROUP = "_group"  # median_ci's id of a group of keys
_TABLE_COLUMNS = ("n", "median", "mean", "std", "n_samples", "n_boots", "ci_lo", "ci_hi")


@cache
def _lower_rank(n: int) -> int:
    """The largest l with P(Bin(n, 1/2) <= l) <= 0.025, -1 if none: counted exactly in
    integers (sum of C(n, k) against 2^n / 40), which also spares every summary scipy's
    import, the slowest of the analysis plane's. Each C(n, k) from the one before: computed
    afresh, the sum took 8 s at 10,000 rounds and about an hour at the 100,000 a workload
    allows."""
    total, rank, term, bound = 0, -1, 1, 2**n
    for k in range(n + 1):
        total += term
        if 40 * total > bound:
            break
        rank = k
        term = term * (n - k) // (k + 1)  # C(n, k + 1), exactly
    return rank


def median_ci(df: pd.DataFrame, keys: Sequence[str], metric: str) -> pd.DataFrame:
    """Per group of `keys`: n, median, 95% CI (order statistics), mean and std of `metric`,
    over the group's rounds.

    The mappers of one round share its machine state, so a round is one value, their median
    (`replicates.replicate_values`); n counts rounds, `n_samples` the valid samples and
    `n_boots` the boots they came from (1 without booted kernels). Rounds of several boots
    are pooled here; only `compare` tests at the boot level.

    The CI is [x_(l+1), x_(n-l)] with l the largest count such that P(Bin(n, 1/2) <= l) <=
    0.025: exact coverage >= 95% whatever the distribution. It needs n >= 6; below, NaN.
    """
    # Grouped by one integer id per group, the keys' values put back from each group's first
    # row: pandas makes the grouped keys of an object column of integers and None (a knob
    # some scenarios leave unset) float64, where 10 reads 10.0 and 2^53 and 2^53 + 1 are one
    # value. The id is also no name a key could share with a column replicate_values adds
    # ("value") or groups by ("round", "boot").
    mask = df["ok"] & df[metric].notna()
    if not mask.any():  # every sample failed or lacks the metric: no row, not a pandas error
        return pd.DataFrame(columns=[*keys, *_TABLE_COLUMNS])
    valid = df.loc[mask]
    group = valid.groupby(list(keys), sort=False, dropna=False).ngroup().to_numpy()
    columns = list(dict.fromkeys([*boot_columns(df), "round", metric]))
    rounds = replicate_values(valid[columns].assign(**{_GROUP: group}), [_GROUP], metric,
                              "round")
    boots = [column for column in boot_columns(rounds) if column != _GROUP]
    grouped = rounds.groupby(_GROUP, sort=False)
    out = grouped["value"].agg(n="count", median="median", mean="mean", std="std")
    out["n_samples"] = grouped["n_samples"].sum()
    out["n_boots"] = (rounds.drop_duplicates([_GROUP, *boots]).groupby(_GROUP, sort=False).size()
                      if boots else 1)
    n = out["n"].to_numpy()
    low = [_lower_rank(int(count)) for count in n]
    ranked = rounds.sort_values([_GROUP, "value"]).assign(
        _rank=lambda d: d.groupby(_GROUP, sort=False).cumcount()
    )
    out["_lo_rank"] = low
    out["_hi_rank"] = n - 1 - low
    out = out.reset_index()
    for side in ("lo", "hi"):
        picked = ranked.merge(out[[_GROUP, f"_{side}_rank"]], on=_GROUP, how="inner")
        picked = picked[picked["_rank"] == picked[f"_{side}_rank"]]
        out = out.merge(
            picked[[_GROUP, "value"]].rename(columns={"value": f"ci_{side}"}), on=_GROUP,
            how="left"
        )
    firsts = ~pd.Series(group).duplicated().to_numpy()
    key_values = valid.loc[firsts, list(keys)].assign(**{_GROUP: group[firsts]})
    return key_values.merge(out.drop(columns=["_lo_rank", "_hi_rank"]), on=_GROUP).drop(
        columns=_GROUP)


def unit_count(table: pd.DataFrame) -> pd.Series:
    """The n column tables show: rounds, or boots/rounds ("3b/6r") when a row has several
    boots (then the boot, not the round, is what varies independently)."""
    if (table["n_boots"] > 1).any():
        return table["n_boots"].map(str) + "b/" + table["n"].map(str) + "r"
    return table["n"].map(str)
