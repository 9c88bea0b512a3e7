"""Statistics on the tidy frame: medians with distribution-free confidence intervals."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

CI_METHOD = "distribution-free order-statistic 95% CI of the median (needs n >= 6)"


def median_ci(df: pd.DataFrame, keys: Sequence[str], metric: str) -> pd.DataFrame:
    """Per group of `keys`: n, median, 95% CI (order statistics), mean and std of `metric`.

    The CI is [x_(l+1), x_(n-l)] with l the largest count such that P(Bin(n, 1/2) <= l) <=
    0.025: exact coverage >= 95% whatever the distribution. It needs n >= 6; below, NaN.
    """
    data = df.loc[df["ok"] & df[metric].notna(), [*keys, metric]]
    keys = list(keys)
    grouped = data.groupby(keys, sort=False, dropna=False)[metric]
    out = grouped.agg(n="count", median="median", mean="mean", std="std")
    n = out["n"].to_numpy()
    low = stats.binom.ppf(0.025, n, 0.5)
    low = np.where(stats.binom.cdf(low, n, 0.5) <= 0.025, low, low - 1)
    ranked = data.sort_values([*keys, metric]).assign(
        _rank=lambda d: d.groupby(keys, sort=False, dropna=False).cumcount()
    )
    out["_lo_rank"] = low
    out["_hi_rank"] = n - 1 - low
    out = out.reset_index()
    for side in ("lo", "hi"):
        picked = ranked.merge(out[[*keys, f"_{side}_rank"]], on=keys, how="inner")
        picked = picked[picked["_rank"] == picked[f"_{side}_rank"]]
        out = out.merge(
            picked[[*keys, metric]].rename(columns={metric: f"ci_{side}"}), on=keys, how="left"
        )
    return out.drop(columns=["_lo_rank", "_hi_rank"])
