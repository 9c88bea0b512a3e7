"""The estimators compare uses by default call scipy.special, not scipy.stats (whose import
costs more than the rest of a compare): their numbers must stay scipy.stats' to the bit, or
every p, CI and detectable change compare prints would move with this change. Held here
against scipy.stats on random inputs, ties, constant sides and extreme values."""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize, stats
from scipy.stats._mannwhitneyu import _MWU

from faultbench.analysis import estimators
from faultbench.analysis.estimators import (
    EXACT_PAIRS,
    POWER,
    Prior,
    mann_whitney_shift,
    moderated_t,
)

ROOT = Path(__file__).resolve().parent.parent


def test_compare_and_report_import_neither_scipy_stats_nor_optimize(tmp_path: Path) -> None:
    """Rounds (Mann-Whitney), boots (moderated t) and report: none imports them."""
    run = shutil.copytree(ROOT / "results" / "native-quick", tmp_path / "run",
                          ignore=shutil.ignore_patterns("figures"))  # report writes into it
    patch = ROOT / "results" / "uffd-2020-patch"
    code = (
        "import sys\n"
        "from faultbench.cli import main\n"
        f"main(['compare', '{run}:none', '{run}:wp', '--by', 'uffd', '--format', 'json'])\n"
        f"main(['compare', '{patch}', '--by', 'kernel', '--format', 'json'])\n"
        f"main(['report', '--no-figures', '{run}'])\n"
        "print(sorted(m for m in ('scipy.stats', 'scipy.optimize') if m in sys.modules),"
        " file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert '"method": "Mann-Whitney U on per-round medians"' in done.stdout
    assert '"method": "moderated t-test on log per-boot medians"' in done.stdout
    assert done.stderr.splitlines()[-1] == "[]"


def _sides(rng: np.random.Generator, kind: str) -> tuple[np.ndarray, np.ndarray]:
    sizes = rng.integers(1, 31, 2) if kind != "large" else rng.integers(40, 90, 2)
    if kind == "ties":
        return tuple(rng.integers(1, 4, n).astype(float) for n in sizes)
    if kind == "constant":
        return np.full(sizes[0], 3.0), rng.integers(2, 5, sizes[1]).astype(float)
    scale = {"huge": 600.0, "tiny": -600.0}.get(kind, 0.0)
    return tuple(np.exp(rng.normal(scale + rng.uniform(-1, 1), rng.uniform(1e-6, 1), n))
                 for n in sizes)


def _scipy_mann_whitney(base: np.ndarray, new: np.ndarray) -> float:
    no_ties = len(np.unique(np.concatenate([base, new]))) == len(base) + len(new)
    method = "exact" if no_ties and len(base) * len(new) <= EXACT_PAIRS else "asymptotic"
    return float(stats.mannwhitneyu(new, base, alternative="two-sided", method=method).pvalue)


@pytest.mark.parametrize("kind", ["spread", "ties", "constant", "huge", "tiny", "large"])
def test_mann_whitney_and_its_interval_are_scipys(kind: str) -> None:
    rng = np.random.default_rng(sum(map(ord, kind)))
    for _ in range(150):
        base, new = _sides(rng, kind)
        _, p, (low, high), _, _ = mann_whitney_shift(base, new)
        assert p == _scipy_mann_whitney(base, new)
        pairs = len(base) * len(new)
        if pairs > EXACT_PAIRS:  # the interval's normal approximation
            differences = np.sort((np.log(new)[:, None] - np.log(base)[None, :]).ravel())
            spread = np.sqrt(pairs * (len(base) + len(new) + 1) / 12)
            rank = int(np.floor(pairs / 2 - stats.norm.ppf(0.975) * spread))
            assert (low, high) == (np.exp(differences[rank - 1]), np.exp(differences[-rank]))


@pytest.mark.parametrize(("n1", "n2"), [(1, 1), (1, 30), (2, 7), (5, 5), (8, 9), (12, 40),
                                        (30, 30), (25, 100), (50, 50)])
def test_the_exact_null_distribution_is_scipys(n1: int, n2: int) -> None:
    top = n1 * n2 // 2
    assert np.array_equal(estimators._u_null_lower_cdf(n1, n2),
                          _MWU(n1, n2).cdf(np.arange(top + 1)))


@pytest.mark.parametrize("prior_df", [np.inf, 0.3, 4.0, 40.0, 3e5])
def test_the_moderated_t_is_scipys(prior_df: float) -> None:
    rng = np.random.default_rng(int(min(prior_df, 1e6) * 10))
    for _ in range(100):
        base, new = _sides(rng, str(rng.choice(["spread", "ties", "huge", "tiny"])))
        if min(len(base), len(new)) < 2:
            continue
        prior = Prior(prior_df, float(np.exp(rng.normal(-5, 3))))
        _, p, (low, high), se, total = moderated_t(base, new, prior)
        shift = float(np.log(new).mean() - np.log(base).mean())
        if se > 0:
            assert p == float(2 * stats.t.sf(abs(shift) / se, total))
        q = stats.t.ppf(0.975, total)
        assert (low, high) == (float(np.exp(shift - q * se)), float(np.exp(shift + q * se)))


def _scipy_noncentrality(df: float, level: float) -> float:
    critical = stats.t.ppf(1 - level / 2, df)

    def short(delta: float) -> float:
        lower = np.nan_to_num(stats.nct.cdf(-critical, df, delta))
        return float(stats.nct.sf(critical, df, delta) + lower - POWER)

    guess = critical + stats.t.ppf(POWER, df)
    return float(optimize.brentq(short, 0.0, 2 * guess))


@pytest.mark.parametrize("level", [0.05, 0.025, 0.01, 0.05 / 7, 0.05 / 40, 1e-4, 0.05 / 1000])
def test_the_noncentrality_is_scipys_root(level: float) -> None:
    with warnings.catch_warnings():
        # boost's series may not converge far in the tail, alike for both
        warnings.simplefilter("ignore", RuntimeWarning)
        for df in [1.0, 2.0, 3.0, 4.5, 7.0, 10.0, 22.0, 58.0, 137.0, 1000.0, 12345.6, 1e9]:
            assert estimators._noncentrality(df, level) == _scipy_noncentrality(df, level)
