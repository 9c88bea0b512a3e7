"""The estimators and tests `replicates.compare_rows` applies to one row's unit values:
numpy arrays in, numbers out. Analysis plane; nothing here touches the kernel.

All work on logs (timings vary multiplicatively), so every unit value must be > 0.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd

# scipy is imported by the functions that use it: a run's summary calls none of them. What
# compare does by default takes scipy.special only: scipy.stats and scipy.optimize take
# longer to import than the rest of the analysis plane together, so the functions below
# call the special functions scipy.stats calls, in the same arithmetic (bit for bit the
# same numbers: tests/test_estimators_scipy.py holds them to scipy.stats).

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
    from scipy import special
    critical = float(special.stdtrit(df, 1 - level / 2))  # stats.t.ppf
    upper_tail = _nct_sf()

    def short(delta: float) -> float:
        # far right of a large delta the lower tail is nil; scipy may give NaN for it
        lower = np.nan_to_num(special.nctdtr(df, delta, -critical))  # stats.nct.cdf
        with np.errstate(over="ignore"):  # as stats.nct.sf (scipy gh-17432)
            upper = np.clip(upper_tail(critical, df, delta), 0, 1)
        return float(upper + lower - POWER)

    # the normal-theory value falls short of POWER at few df and never by half
    guess = critical + float(special.stdtrit(df, POWER))
    return _brent_root(short, 0.0, 2 * guess)


def _nct_sf() -> Callable[[float, float, float], float]:
    """The survival function of the noncentral t as (x, df, nc): the private ufunc
    stats.nct.sf calls (1 - nctdtr loses digits); an older scipy without it in
    scipy.special, stats.nct.sf itself."""
    from scipy.special import _ufuncs
    if hasattr(_ufuncs, "_nct_sf"):
        return _ufuncs._nct_sf
    from scipy import stats
    return stats.nct.sf


def _brent_root(function: Callable[[float], float], low: float, high: float) -> float:
    """The root of `function` between `low` and `high` (where it changes sign) by Brent's
    method as scipy.optimize.brentq runs it (xtol 2e-12, rtol 4 eps, 100 iterations; its
    C steps in the same order), so that it stops on the same float."""
    tolerance, relative = 2e-12, 4 * np.finfo(float).eps

    def value(x: float) -> float:
        fx = function(x)
        if fx != fx:
            raise ValueError(f"the function value at x={x} is NaN")
        return fx

    previous, current = low, high
    f_previous, f_current = value(previous), value(current)
    if f_previous * f_current > 0:
        raise ValueError("f(a) and f(b) must have different signs")
    if f_previous == 0:
        return previous
    if f_current == 0:
        return current
    block = f_block = step_before = step = 0.0
    for _ in range(100):
        if f_previous * f_current < 0:
            block, f_block = previous, f_previous
            step_before = step = current - previous
        if abs(f_block) < abs(f_current):
            previous, current, block = current, block, current
            f_previous, f_current, f_block = f_current, f_block, f_current
        delta = (tolerance + relative * abs(current)) / 2
        bisection = (block - current) / 2
        if f_current == 0 or abs(bisection) < delta:
            return current
        if abs(step_before) > delta and abs(f_current) < abs(f_previous):
            if previous == block:  # secant
                trial = -f_current * (current - previous) / (f_current - f_previous)
            else:  # inverse quadratic
                d_previous = (f_previous - f_current) / (previous - current)
                d_block = (f_block - f_current) / (block - current)
                trial = (-f_current * (f_block * d_block - f_previous * d_previous)
                         / (d_block * d_previous * (f_block - f_previous)))
            limit = 3 * abs(bisection) - delta
            if 2 * abs(trial) < (abs(step_before) if abs(step_before) < limit else limit):
                step_before, step = step, trial
            else:
                step_before = step = bisection
        else:
            step_before = step = bisection
        previous, f_previous = current, f_current
        current += step if abs(step) > delta else (delta if bisection > 0 else -delta)
        f_current = value(current)
    raise RuntimeError("Brent's method did not converge in 100 iterations")


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
    10 vs 10 rounds would lose an order of magnitude), tie-corrected normal with continuity
    correction otherwise: scipy.stats.mannwhitneyu's numbers in its arithmetic."""
    from scipy import special
    values, inverse, ties = np.unique(np.concatenate([new, base]), return_inverse=True,
                                      return_counts=True)
    n1, n2 = len(new), len(base)
    # average ranks, doubled to stay integers
    doubled_ranks = 2 * (np.cumsum(ties) - ties) + ties + 1
    u1 = float(doubled_ranks[inverse[:n1]].sum()) / 2 - n1 * (n1 + 1) / 2
    u = max(u1, n1 * n2 - u1)
    if len(values) == n1 + n2 and n1 * n2 <= EXACT_PAIRS:
        p = _u_null_lower_cdf(*sorted((n1, n2)))[n1 * n2 - int(u)]
    else:
        n = n1 + n2
        tie_term = float((ties.astype(float) ** 3 - ties).sum())
        spread = np.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))))
        with np.errstate(divide="ignore", invalid="ignore"):
            p = special.ndtr(-((u - n1 * n2 / 2 - 0.5) / spread))
    return float(np.clip(p * 2, 0.0, 1.0))


@cache
def _u_null_lower_cdf(n1: int, n2: int) -> np.ndarray:
    """P(U <= u) for u up to n1*n2/2 (n1 <= n2) as scipy's exact mannwhitneyu computes it
    (Loeffler's recurrence over integer counts, float once they pass 2^64), so that its p
    is scipy's to the bit; `_u_null_cdf` sums the same counts in another order."""
    from scipy import special
    top = n1 * n2 // 2
    sigma = np.zeros(top + 1, dtype=int)
    for d in range(1, n1 + 1):
        sigma[d::d] += d
    for d in range(n2 + 1, n2 + n1 + 1):
        sigma[d::d] -= d
    counts = np.zeros(top + 1, dtype=np.uint64)
    counts[0] = 1
    for u in range(1, top + 1):
        count = np.dot(counts[:u], sigma[u:0:-1]) / u
        if count > np.iinfo(np.uint64).max and counts.dtype == np.uint64:
            counts = counts.astype(float)
        counts[u] = count
    return np.cumsum(counts / special.binom(n1 + n2, n1))


def _hodges_lehmann_ratio_ci(base: np.ndarray, new: np.ndarray) -> tuple[float, float]:
    """95% CI of new/base as a shift of logs: order statistics of the pairwise log differences.

    The bounds are the C-th smallest and largest of the n1*n2 differences, C - 1 the largest u
    with P(U <= u) <= 2.5%: the CI that inverts the two-sided Mann-Whitney test. C comes from
    the exact null distribution of U up to EXACT_PAIRS pairs, from its normal approximation
    beyond. NaN when no such C exists (too few rounds) or a value is <= 0.
    """
    from scipy import special
    if not ((base > 0).all() and (new > 0).all()):
        return np.nan, np.nan
    pairs = len(base) * len(new)
    if pairs <= EXACT_PAIRS:
        cdf = _u_null_cdf(*sorted((len(base), len(new))))
        rank = int(np.searchsorted(cdf, 0.025, side="right"))
    else:
        spread = np.sqrt(pairs * (len(base) + len(new) + 1) / 12)
        rank = int(np.floor(pairs / 2 - special.ndtri(0.975) * spread))
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
    from scipy import special
    variance, df = pooled_log_variance(base, new)
    if np.isinf(prior.df):
        posterior, total = prior.var, 1e9  # t with that many df is the normal
    else:
        posterior = (prior.df * prior.var + df * variance) / (prior.df + df)
        total = prior.df + df
    shift = float(np.log(new).mean() - np.log(base).mean())
    se = float(np.sqrt(posterior * (1 / len(base) + 1 / len(new))))
    # stats.t.sf(x, df) is stdtr(df, -x), stats.t.ppf(q, df) stdtrit(df, q)
    p = float(2 * special.stdtr(total, -(abs(shift) / se))) if se > 0 else float(shift == 0)
    q = float(special.stdtrit(total, 0.975))
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
