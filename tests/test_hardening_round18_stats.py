"""Round eighteen, the median CI's rank (R18-6): `stats._lower_rank(n)` summed every C(n, k)
computed afresh, 8 s at 10,000 rounds of a row and about an hour at the 100,000 a workload
allows, so a report of a legitimate (or planted) run of many rounds never ended."""

from __future__ import annotations

import math

import pytest
from scipy import stats as scipy_stats

from faultbench.analysis.stats import _lower_rank


@pytest.mark.parametrize("n", [*range(0, 60), 101, 1001, 4096])
def test_the_rank_is_the_exact_binomial_quantile(n: int) -> None:
    total, rank = 0, -1
    for k in range(n + 1):
        total += math.comb(n, k)
        if 40 * total > 2**n:
            break
        rank = k
    assert _lower_rank(n) == rank


def test_the_rank_at_the_most_rounds_a_workload_allows() -> None:
    rank = _lower_rank(100_000)  # it did not return within ten minutes
    assert scipy_stats.binom.cdf(rank, 100_000, 0.5) <= 0.025
    assert scipy_stats.binom.cdf(rank + 1, 100_000, 0.5) > 0.025
