"""Statistics that count what varies: samples collapsed to their independent unit, then tested.

Analysis plane (pandas, numpy, scipy); nothing here touches the kernel.

A run nests its samples: run > kernel > boot > round > mapper. Only what is repeated
independently may count as n:

- The mappers of one round share that round's machine state (page cache, caches, whatever
  else the host was doing): they are one observation, their median.
- The rounds of one boot share that boot (its memory layout, its host neighbours): when two
  kernels are compared, the unit that varies between them is the boot, and a boot is one
  observation, the median of its round values. Separate runs of one side count as separate
  boots (each is an independent start of everything).
- With one boot per side (native runs, one guest boot each) nothing above the round was
  repeated, so the round is the unit, and drift between boots or runs is invisible to the test
  (compare's footer says so for two separate runs).

Columns used: `round` (always; `faultbench.load` provides it), and whichever of `run`, `kernel`,
`boot` exist (`BOOT_COLUMNS`): a frame without them is one boot. Rows with `ok` False (warm-ups,
errors) and null metric values are dropped first.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import cache
from math import comb
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05
# What tells one boot from another, outermost first. Absent columns are simply not used.
BOOT_COLUMNS = ("run", "kernel", "boot")
ROUND_COLUMN = "round"
# Up to this many pairs (n1 * n2; 50 vs 50 rounds) U's null distribution is computed exactly.
EXACT_PAIRS = 2500
Unit = Literal["round", "boot"]

BOOT_METHOD = "Welch t-test on log per-boot medians"
ROUND_METHOD = "Mann-Whitney U on per-round medians"
EXACT_METHOD = "exact: no variation within either side"
FEW_BOOTS_METHOD = "untested: one side has a single boot, the other several"
# One line per method for compare's footer; `footer_note` picks those a table used.
REFERENCES = {
    BOOT_METHOD: "boots as units, the summary-statistics approach to nested data (Aarts et "
                 "al. 2014, Nat Neurosci 17:491); 95% CI of the ratio from the same t",
    ROUND_METHOD: "rounds as units, mappers of a round pooled by their median; 95% CI of the "
                  "ratio: Hodges-Lehmann, exact (Hollander & Wolfe 1999)",
    EXACT_METHOD: "=: the metric did not vary within either side, so equal or different is "
                  "exact",
    FEW_BOOTS_METHOD: "?: one side has a single boot, so its boot-to-boot variation is "
                      "unknown; not tested",
}
HOLM_REFERENCE = "Holm 1979, Scand J Stat 6:65"


def boot_columns(df: pd.DataFrame) -> list[str]:
    """The columns of `df` that identify a boot (a subset of BOOT_COLUMNS, outermost first)."""
    return [column for column in BOOT_COLUMNS if column in df]


def replicate_values(
    df: pd.DataFrame, keys: Sequence[str], metric: str, unit: Unit = "round"
) -> pd.DataFrame:
    """One row per independent unit of each group of `keys`: its value of `metric`.

    unit="round": the median over the mappers of one round of one boot. Columns: *keys, the
    boot columns present (see `boot_columns`), `round`, `value`, `n_samples`.
    unit="boot": the median over that boot's round values (each a median over mappers as
    above). Columns: *keys, the boot columns present, `value`, `n_rounds`, `n_samples`.

    Samples with `ok` False (when the column exists) and null `metric` values are left out.
    Null key or boot values form groups of their own (so a frame without `boot` is one boot).
    """
    if ROUND_COLUMN not in df:
        raise ValueError(f"samples have no {ROUND_COLUMN!r} column: load them with "
                         "faultbench.load, which provides it")
    if unit not in ("round", "boot"):
        raise ValueError(f"unit must be 'round' or 'boot', not {unit!r}")
    keys = list(keys)
    boots = [column for column in boot_columns(df) if column not in keys]
    valid = df[df[metric].notna()]
    if "ok" in valid:
        valid = valid[valid["ok"].astype(bool)]
    rounds = (
        valid.groupby([*keys, *boots, ROUND_COLUMN], sort=False, dropna=False)[metric]
        .agg(value="median", n_samples="count")
        .reset_index()
    )
    if unit == "round":
        return rounds
    return (
        rounds.groupby([*keys, *boots], sort=False, dropna=False)
        .agg(value=("value", "median"), n_rounds=("value", "count"),
             n_samples=("n_samples", "sum"))
        .reset_index()
    )


def compare_rows(
    base_df: pd.DataFrame,
    new_df: pd.DataFrame,
    keys: Sequence[str],
    metric: str,
    alpha: float = ALPHA,
) -> pd.DataFrame:
    """Per row (group of `keys` present on both sides): change of the median and its test.

    base_df, new_df: samples as `faultbench.load` gives them (any subset, e.g. one knob value
    or one kernel). Equal scenarios must have equal key values on both sides (NaN matches NaN);
    `kernel` belongs in `keys` unless it is what the sides differ in.

    The unit is chosen per row: with >= 2 boots on both sides, the boot (Welch's t-test on the
    log of per-boot medians); with one boot on both sides, the round (Mann-Whitney U over
    per-round medians, mappers pooled); one boot against several is not tested (p NaN).

    Why Welch on per-boot log medians: a boot comparison has few units (3 vs 3 by default).
    An exact permutation test over boot labels has only C(6,3) = 20 arrangements, so its
    smallest two-sided p is 0.1 and it can never find anything; a hierarchical bootstrap
    (Saravanan et al. 2020, Neurons Behav Data Anal Theory 3:5) draws its top level from 3
    boots, at most 10 distinct multisets, and underestimates their spread. Collapsing each
    boot to one summary and applying a t-test to the summaries is the summary-statistics
    approach to nested data (Aarts et al. 2014, Nat Neurosci 17:491): valid whatever the
    within-boot structure, since only boot-level values enter, and close to its nominal error
    rate when the per-boot values are roughly normal, which medians of several rounds
    approach. The log makes the test and its CI about the ratio (timings vary
    multiplicatively); Welch's form allows the kernels different boot-to-boot spreads. Rounds
    within one boot are not independent of the boot, so they are never the unit when several
    boots exist.

    Deterministic metrics (every unit of a side has the same value, with >= 2 units a side):
    equal sides give p 1, different sides p 0, `exact` True, without a test.

    Significance: p-values of the tested rows (not exact, not NaN) are Holm-adjusted across
    the rows of this table; `significant` is `p_adj < alpha`. Holm bounds the chance that an
    A/A comparison marks any row at all by alpha.

    Returns one row per group on both sides (none when no group is), in base's order, with
    columns:
      *keys;
      unit: "boot" or "round";
      base_boots, base_units, base_samples, base_median, base_spread_pct (and new_*):
        boots, units tested, valid samples, median of the unit values, half the
        interquartile range of the unit values in % of that median;
      ratio: new_median / base_median (1 when both are equal, NaN when base is 0);
      ci_lo, ci_hi: 95% CI of the ratio (Welch for boots, Hodges-Lehmann for rounds; NaN
        when too few units or values <= 0);
      p: raw two-sided p; p_adj: Holm-adjusted p (= p for exact rows, NaN when untested);
      min_p: the smallest raw p this row's test could give (2 / C(n1+n2, n1) for rounds,
        0 for boots);
      exact, significant: bools;
      mark: "*" significant, "=" exactly equal, "?" untested or unable to reach alpha even
        as the table's smallest p, "" otherwise;
      method: one of BOOT_METHOD, ROUND_METHOD, EXACT_METHOD, FEW_BOOTS_METHOD.
    `.attrs`: `alpha`, `tested` (the Holm family size), `significance` ("p_adj").
    """
    keys = list(keys)
    if not keys:
        raise ValueError("compare_rows needs at least one key column to tell rows apart")
    base = _side_units(base_df, keys, metric)
    new = _side_units(new_df, keys, metric)
    both = base.merge(new, on=keys, how="inner", suffixes=("_base", "_new"))
    rows = [_compare_one(row._asdict()) for row in both.drop(columns=keys).itertuples(index=False)]
    columns = ["unit", "base_boots", "base_units", "base_samples", "base_median",
               "base_spread_pct", "new_boots", "new_units", "new_samples", "new_median",
               "new_spread_pct", "ratio", "ci_lo", "ci_hi", "p", "min_p", "exact", "method"]
    table = pd.concat(
        [both[keys].reset_index(drop=True), pd.DataFrame(rows, columns=columns)], axis=1
    )
    tested = table["p"].notna() & ~table["exact"].astype(bool)
    table["p_adj"] = table["p"].where(~tested, holm(table["p"].where(tested)))
    table["significant"] = (table["p_adj"] < alpha).fillna(False).astype(bool)
    family = int(tested.sum())
    hopeless = table["p"].isna() | (tested & (table["min_p"] * max(family, 1) >= alpha))
    table["mark"] = np.select(
        [table["significant"], table["exact"] & ~table["significant"], hopeless],
        ["*", "=", "?"], "",
    )
    order = [*keys, *columns[:-4], "ci_lo", "ci_hi", "p", "p_adj", "min_p", "exact",
             "significant", "mark", "method"]
    table = table[list(dict.fromkeys(order))]
    table.attrs.update(alpha=alpha, tested=family, significance="p_adj")
    return table


def holm(pvalues: pd.Series | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values; NaN entries stay NaN and do not count in m."""
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full_like(p, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    m = len(finite)
    if not m:
        return adjusted
    order = finite[np.argsort(p[finite], kind="stable")]
    steps = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted[order] = np.maximum.accumulate(steps)
    return adjusted


def footer_note(table: pd.DataFrame) -> str:
    """One line for compare's footer: the units and methods this table used, with references."""
    used = [method for method in REFERENCES if (table["method"] == method).any()]
    alpha = table.attrs.get("alpha", ALPHA)
    parts = [f"{method}: {REFERENCES[method]}" if method in (BOOT_METHOD, ROUND_METHOD)
             else REFERENCES[method] for method in used]
    tested = table.attrs.get("tested", 0)
    if tested:
        parts.append(f"*: Holm-adjusted p < {alpha} over the {tested} tested rows "
                     f"({HOLM_REFERENCE})")
    if (table["exact"] & table["significant"]).any():
        parts.append("* on an exact row: the values differ without variation")
    return "; ".join(parts) + "."


def _side_units(df: pd.DataFrame, keys: list[str], metric: str) -> pd.DataFrame:
    """Per group of keys: the round values, the boot values and the sample count, as lists."""
    rounds = replicate_values(df, keys, metric, "round")
    boots = replicate_values(df, keys, metric, "boot")
    per_round = rounds.groupby(keys, sort=False, dropna=False).agg(
        round_values=("value", list), samples=("n_samples", "sum")
    )
    per_boot = boots.groupby(keys, sort=False, dropna=False).agg(boot_values=("value", list))
    return per_round.join(per_boot).reset_index()


def _compare_one(row: dict[str, object]) -> tuple[object, ...]:
    base_boots = np.asarray(row["boot_values_base"], dtype=float)
    new_boots = np.asarray(row["boot_values_new"], dtype=float)
    if len(base_boots) == len(new_boots) == 1:
        unit = "round"
        base = np.asarray(row["round_values_base"], dtype=float)
        new = np.asarray(row["round_values_new"], dtype=float)
    else:
        unit, base, new = "boot", base_boots, new_boots
    base_median, new_median = float(np.median(base)), float(np.median(new))
    ratio = _ratio(new_median, base_median)
    if unit == "boot" and min(len(base), len(new)) < 2:
        p, ci, min_p, exact, method = np.nan, (np.nan, np.nan), np.nan, False, FEW_BOOTS_METHOD
    elif min(len(base), len(new)) >= 2 and np.ptp(base) == 0 and np.ptp(new) == 0:
        p = 1.0 if base[0] == new[0] else 0.0
        ci, min_p, exact, method = (ratio, ratio), 0.0, True, EXACT_METHOD
    elif unit == "boot":
        p, ci = _welch_log(base, new)
        min_p, exact, method = 0.0, False, BOOT_METHOD
    else:
        p = _mann_whitney(base, new)
        ci = _hodges_lehmann_ratio_ci(base, new)
        min_p = min(1.0, 2 / comb(len(base) + len(new), len(base)))
        exact, method = False, ROUND_METHOD
    return (unit, len(base_boots), len(base), int(row["samples_base"]), base_median,
            _spread_pct(base), len(new_boots), len(new), int(row["samples_new"]), new_median,
            _spread_pct(new), ratio, ci[0], ci[1], p, min_p, exact, method)


def _ratio(new: float, base: float) -> float:
    if new == base:
        return 1.0
    return new / base if base != 0 else np.nan


def _spread_pct(values: np.ndarray) -> float:
    """Half the interquartile range in % of the median; NaN when the median is 0."""
    median = float(np.median(values))
    if median == 0:
        return np.nan
    low, high = np.percentile(values, [25, 75])
    return float(100 * (high - low) / 2 / abs(median))


def _welch_log(base: np.ndarray, new: np.ndarray) -> tuple[float, tuple[float, float]]:
    """Two-sided p and 95% CI of new/base from Welch's t on logs (raw scale, no CI, if <= 0)."""
    positive = (base > 0).all() and (new > 0).all()
    with warnings.catch_warnings():
        # values equal to within rounding make scipy warn of precision loss; p is then ~1,
        # which is the right answer for them
        warnings.simplefilter("ignore", RuntimeWarning)
        if not positive:
            result = stats.ttest_ind(new, base, equal_var=False)
            return float(result.pvalue), (np.nan, np.nan)
        result = stats.ttest_ind(np.log(new), np.log(base), equal_var=False)
        low, high = result.confidence_interval(0.95)
    return float(result.pvalue), (float(np.exp(low)), float(np.exp(high)))


def _mann_whitney(base: np.ndarray, new: np.ndarray) -> float:
    """Two-sided p: exact without ties (scipy's default turns asymptotic above 8 units, where
    10 vs 10 rounds would lose an order of magnitude), tie-corrected normal otherwise."""
    no_ties = len(np.unique(np.concatenate([base, new]))) == len(base) + len(new)
    method = "exact" if no_ties and len(base) * len(new) <= EXACT_PAIRS else "asymptotic"
    return float(stats.mannwhitneyu(new, base, alternative="two-sided", method=method).pvalue)


def _hodges_lehmann_ratio_ci(base: np.ndarray, new: np.ndarray) -> tuple[float, float]:
    """95% CI of new/base as a shift of logs: order statistics of the pairwise log differences.

    The bounds are the C-th smallest and largest of the n1*n2 differences, C - 1 the largest u
    with P(U <= u) <= 2.5%: the CI that inverts the two-sided Mann-Whitney test. C comes from
    the exact null distribution of U up to EXACT_PAIRS pairs, from its normal approximation
    beyond. NaN when no such C exists (too few rounds) or a value is <= 0.
    """
    if not ((base > 0).all() and (new > 0).all()):
        return np.nan, np.nan
    pairs = len(base) * len(new)
    if pairs <= EXACT_PAIRS:
        cdf = _u_null_cdf(*sorted((len(base), len(new))))
        rank = int(np.searchsorted(cdf, 0.025, side="right"))
    else:
        spread = np.sqrt(pairs * (len(base) + len(new) + 1) / 12)
        rank = int(np.floor(pairs / 2 - stats.norm.ppf(0.975) * spread))
    if rank < 1:
        return np.nan, np.nan
    differences = np.sort((np.log(new)[:, None] - np.log(base)[None, :]).ravel())
    return float(np.exp(differences[rank - 1])), float(np.exp(differences[-rank]))


@cache
def _u_null_cdf(n1: int, n2: int) -> np.ndarray:
    """P(U <= u), u = 0..n1*n2, for the Mann-Whitney U of n1 and n2 exchangeable values.

    The largest of the n1+n2 values is either one of the first group (it beats all n2 of
    the second: U gains n2) or of the second (U gains 0): f(i, j) = f(i-1, j) shifted by j
    plus f(i, j-1). Float counts: only additions, so no cancellation.
    """
    previous = [np.ones(1)] * (n2 + 1)  # i = 0: U is 0 whatever j
    for i in range(1, n1 + 1):
        current = [np.ones(1)]  # j = 0: U is 0
        for j in range(1, n2 + 1):
            counts = np.zeros(i * j + 1)
            counts[j:j + len(previous[j])] += previous[j]
            counts[:len(current[j - 1])] += current[j - 1]
            current.append(counts)
        previous = current
    counts = previous[n2]
    return np.cumsum(counts) / counts.sum()
