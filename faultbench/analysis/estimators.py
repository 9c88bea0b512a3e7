"""The estimators and tests `replicates.compare_rows` applies to one row's unit values:
numpy arrays in, numbers out. Analysis plane; nothing here touches the kernel.

All work on logs (timings vary multiplicatively), so every unit value must be > 0.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd

# scipy is imported by the functions that use it: a run's summary calls none of them, and
# importing it takes longer than the rest of the analysis plane together.

# Up to this many pairs (n1 * n2; 50 vs 50 rounds) U's null distribution is computed exactly.
EXACT_PAIRS = 2500
# The power the detectable change is computed for.
POWER = 0.8
# Fewest boot-level rows whose spreads the moderated t pools; below, Welch row by row.
MIN_MODERATED_ROWS = 5


def detectable(se: float, df: float, level: float, min_p: float = 0.0) -> float:
    """The smallest ratio a two-sided test at `level` finds with probability POWER, for an
    estimate of the log ratio with standard error `se` and `df` degrees of freedom:
    exp(delta se), where delta is the noncentrality at which a noncentral t with `df`
    degrees of freedom falls beyond +-t_{1-level/2} with probability POWER (exact for a
    t statistic; the normal-theory shortcut t_{1-level/2} + t_{POWER} gives 72-74% power
    at 4-5 df and the small levels Holm asks for). inf when the test's smallest possible p
    exceeds `level`."""
    if min_p >= level:
        return np.inf
    if not (se == se and df == df) or df <= 0:
        return np.nan
    return float(np.exp(_noncentrality(float(df), level) * se))


@cache
def _noncentrality(df: float, level: float) -> float:
    """delta with P(|T'| > t_{1-level/2}) = POWER for T' ~ noncentral t(df, delta)."""
    from scipy import optimize, stats
    critical = stats.t.ppf(1 - level / 2, df)

    def short(delta: float) -> float:
        # far right of a large delta the lower tail is nil; scipy may give NaN for it
        lower = np.nan_to_num(stats.nct.cdf(-critical, df, delta))
        return float(stats.nct.sf(critical, df, delta) + lower - POWER)

    # the normal-theory value falls short of POWER at few df and never by half
    guess = critical + stats.t.ppf(POWER, df)
    return float(optimize.brentq(short, 0.0, 2 * guess))


# A side's per-boot values are in boot states when the largest step between them is this
# many times every other step: on the instruction clock a boot lands on one of a few levels
# (one timer tick more or less per loop, docs/icount.md), and a split of the boots along
# those levels looks like a change as large as the step.
STATE_SEPARATION = 5.0


def state_step(values: np.ndarray) -> float:
    """The step between boot states among one side's per-boot values (> 0), as a ratio:
    their largest step in log, when it is STATE_SEPARATION times each other step (3 or more
    boots); NaN when they show no separate levels. A change smaller than the step cannot be
    told from a boot that landed in the other state."""
    values = np.asarray(values, dtype=float)
    if len(values) < 3 or not (values > 0).all():
        return np.nan
    logs = np.sort(np.log(values))
    steps = np.diff(logs)
    largest = int(np.argmax(steps))
    others = np.delete(steps, largest)
    if steps[largest] <= 0 or steps[largest] < STATE_SEPARATION * others.max():
        return np.nan
    return float(np.exp(steps[largest]))


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


def welch_log(base: np.ndarray, new: np.ndarray
               ) -> tuple[float, float, tuple[float, float], float, float]:
    """Welch's t on logs (values > 0): the ratio of geometric means, two-sided p, its 95% CI,
    the standard error of the log ratio and Welch's degrees of freedom."""
    from scipy import stats
    log_base, log_new = np.log(base), np.log(new)
    with warnings.catch_warnings():
        # values equal to within rounding make scipy warn of precision loss; p is then ~1,
        # which is the right answer for them
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(log_new, log_base, equal_var=False)
        low, high = result.confidence_interval(0.95)
    shift = float(log_new.mean() - log_base.mean())
    se = float(np.sqrt(log_base.var(ddof=1) / len(base) + log_new.var(ddof=1) / len(new)))
    return (float(np.exp(shift)), float(result.pvalue), (float(np.exp(low)), float(np.exp(high))),
            se, float(result.df))


def mann_whitney_shift(base: np.ndarray, new: np.ndarray
                        ) -> tuple[float, float, tuple[float, float], float, float]:
    """Mann-Whitney U on logs (values > 0): the Hodges-Lehmann ratio (exp of the median of
    the pairwise log differences), two-sided p, its 95% CI, and for `detectable` the
    standard error of the log shift the test sees: the pooled standard deviation of the logs
    over the test's efficiency against the t-test (3/pi under normality), with n1+n2-2
    degrees of freedom."""
    differences = np.sort((np.log(new)[:, None] - np.log(base)[None, :]).ravel())
    estimate = float(np.exp(np.median(differences)))
    n1, n2 = len(base), len(new)
    squares = ((np.log(base) - np.log(base).mean()) ** 2).sum() + (
        (np.log(new) - np.log(new).mean()) ** 2).sum()
    df = n1 + n2 - 2
    se = float(np.sqrt(squares / df * (1 / n1 + 1 / n2) * np.pi / 3)) if df else np.nan
    return (estimate, _mann_whitney(base, new), _hodges_lehmann_ratio_ci(base, new), se,
            float(df))


def _mann_whitney(base: np.ndarray, new: np.ndarray) -> float:
    """Two-sided p: exact without ties (scipy's default turns asymptotic above 8 units, where
    10 vs 10 rounds would lose an order of magnitude), tie-corrected normal otherwise."""
    from scipy import stats
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
    from scipy import stats
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


@dataclass(frozen=True)
class Prior:
    """The distribution of the rows' true variances of log unit values that the moderated t
    draws on (Smyth 2004): a scaled inverse chi-square with `df` degrees of freedom around
    `var`. df inf: the rows share one variance."""
    df: float
    var: float


def pooled_log_variance(base: np.ndarray, new: np.ndarray) -> tuple[float, int]:
    """The within-side variance of the logs, pooled over both sides, and its degrees of
    freedom n1 + n2 - 2."""
    logs = (np.log(base), np.log(new))
    df = len(base) + len(new) - 2
    squares = sum(float(((values - values.mean()) ** 2).sum()) for values in logs)
    return (squares / df if df > 0 else np.nan), df


def variance_prior(variances: list[float], dfs: list[int]) -> Prior | None:
    """Smyth's (2004) moment estimates of the prior of the row variances, from the rows'
    own variances; None with fewer than MIN_MODERATED_ROWS rows that vary."""
    from scipy import special
    var, df = np.asarray(variances, dtype=float), np.asarray(dfs, dtype=float)
    keep = np.isfinite(var) & (var > 0) & (df > 0)
    if keep.sum() < MIN_MODERATED_ROWS:
        return None
    var, df = var[keep], df[keep]
    e = np.log(var) - special.digamma(df / 2) + np.log(df / 2)
    excess = e.var(ddof=1) - float(special.polygamma(1, df / 2).mean())
    if excess <= 0:
        return Prior(np.inf, float(np.exp(e.mean())))
    prior_df = 2 * _trigamma_inverse(excess)
    return Prior(prior_df, float(np.exp(e.mean() + special.digamma(prior_df / 2)
                                        - np.log(prior_df / 2))))


def moderated_t(base: np.ndarray, new: np.ndarray, prior: Prior
                ) -> tuple[float, float, tuple[float, float], float, float]:
    """The moderated t on logs (values > 0; Smyth 2004, Stat Appl Genet Mol Biol 3:3, the
    statistic of limma): the row's pooled variance shrunk towards the prior's, with the
    prior's degrees of freedom added. Returns the ratio of geometric means, two-sided p,
    its 95% CI, the standard error of the log ratio and the degrees of freedom."""
    from scipy import stats
    variance, df = pooled_log_variance(base, new)
    if np.isinf(prior.df):
        posterior, total = prior.var, 1e9  # t with that many df is the normal
    else:
        posterior = (prior.df * prior.var + df * variance) / (prior.df + df)
        total = prior.df + df
    shift = float(np.log(new).mean() - np.log(base).mean())
    se = float(np.sqrt(posterior * (1 / len(base) + 1 / len(new))))
    p = float(2 * stats.t.sf(abs(shift) / se, total)) if se > 0 else float(shift == 0)
    q = float(stats.t.ppf(0.975, total))
    return (float(np.exp(shift)), p, (float(np.exp(shift - q * se)), float(np.exp(shift + q * se))),
            se, float(total))


def _trigamma_inverse(x: float) -> float:
    """y with trigamma(y) = x, by Smyth's Newton iteration (limma's trigammaInverse)."""
    from scipy import special
    if x > 1e7:
        return 1 / np.sqrt(x)
    if x < 1e-6:
        return 1 / x
    y = 0.5 + 1 / x
    for _ in range(50):
        trigamma = float(special.polygamma(1, y))
        step = trigamma * (1 - trigamma / x) / float(special.polygamma(2, y))
        y += step
        if -step / y < 1e-8:
            break
    return y
