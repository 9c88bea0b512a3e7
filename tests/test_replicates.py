"""Replication units, boot-level tests and the boot plan.

Real data: results/native-quick (a native quick run, cut to 10 measured rounds per scenario; three
mappers in the x3 scenarios, so two `later` mappers per round). Synthetic frames only for
boot-level edge cases no run has yet (several boots, zero variance, a lost boot).
"""

from __future__ import annotations

from math import comb
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import faultbench
from faultbench.analysis.replicates import (
    BOOT_METHOD,
    EXACT_METHOD,
    FEW_BOOTS_METHOD,
    MODERATED_METHOD,
    NONPOSITIVE_METHOD,
    ROUND_METHOD,
    compare_rows,
    footer_note,
    holm,
    replicate_values,
)
from faultbench.measurement.booted.boot_order import BootPlanError, boot_order, split_rounds

pytestmark = pytest.mark.filterwarnings("error")  # no RuntimeWarning from zero variance etc.

NATIVE_QUICK = Path(__file__).resolve().parent.parent / "results" / "native-quick"
ROW_KEYS = ["scenario", "role"]


@pytest.fixture(scope="module")
def quick() -> pd.DataFrame:
    """The shipped run cut to its warm-ups and first 10 measured rounds: what these tests
    count (units, splits, Holm's reach) is stated for 10, whatever the shipped run's size."""
    df = faultbench.load(NATIVE_QUICK)
    measured = sorted(df.loc[~df["warmup"], "round"].unique())
    assert len(measured) >= 10, "the shipped run has fewer than 10 measured rounds"
    return df[df["warmup"] | df["round"].isin(measured[:10])]


# --- the boot plan ---------------------------------------------------------------------------

def test_two_kernels_three_boots_alternate_abba() -> None:
    assert boot_order(["A", "B"], 3) == [
        ("A", 0), ("B", 0), ("B", 1), ("A", 1), ("A", 2), ("B", 2)
    ]


@pytest.mark.parametrize("labels", [["a", "b"], ["a", "b", "c"], ["a", "b", "c", "d"]])
@pytest.mark.parametrize("boots", [2, 4, 6])
def test_even_boots_give_every_kernel_the_same_mean_position(labels: list[str],
                                                             boots: int) -> None:
    order = boot_order(labels, boots)
    assert len(order) == len(labels) * boots
    for label in labels:
        positions = [i for i, (name, _) in enumerate(order) if name == label]
        assert [order[i][1] for i in positions] == list(range(boots))
        assert sum(positions) == boots * (len(order) - 1) // 2


def test_boot_order_refuses_what_it_cannot_plan() -> None:
    with pytest.raises(BootPlanError, match="at least one --kernel"):
        boot_order([], 3)
    with pytest.raises(BootPlanError, match="base given twice"):
        boot_order(["base", "base"], 3)
    with pytest.raises(BootPlanError, match="at least 1"):
        boot_order(["a", "b"], 0)


def test_split_rounds_gives_each_boot_an_equal_consecutive_share() -> None:
    shares = split_rounds(12, 3)
    assert shares == [range(0, 4), range(4, 8), range(8, 12)]
    assert split_rounds(5, 1) == [range(0, 5)]


def test_split_rounds_refuses_unequal_shares_and_says_how_to_fix() -> None:
    with pytest.raises(BootPlanError, match=r"multiple of 3 \(e.g. 9 or 12\).*--boots 2 or "
                                            r"--boots 5"):
        split_rounds(10, 3)
    with pytest.raises(BootPlanError, match="repetitions to at least 4"):
        split_rounds(3, 4)


# --- replication units on a real run ---------------------------------------------------------

def test_later_mappers_of_one_round_are_one_value_their_median(quick: pd.DataFrame) -> None:
    later = quick[quick["ok"] & (quick["role"] == "later")]
    rounds = replicate_values(later, ROW_KEYS, "ns_per_page")
    per_scenario = rounds.groupby("scenario")
    assert (per_scenario.size() == 10).all()  # 10 rounds, not 20 samples
    assert (rounds["n_samples"] == 2).all()
    one = rounds.iloc[0]
    mappers = later[(later["scenario"] == one["scenario"]) & (later["round"] == one["round"])]
    assert len(mappers) == 2
    assert one["value"] == pytest.approx(mappers["ns_per_page"].median())


def test_a_run_without_boot_columns_is_one_boot(quick: pd.DataFrame) -> None:
    boots = replicate_values(quick, ROW_KEYS, "ns_per_page", unit="boot")
    assert len(boots) == quick.loc[quick["ok"], ROW_KEYS].drop_duplicates().shape[0] == 15
    assert (boots["n_rounds"] == 10).all()
    assert set(boots.loc[boots["role"] == "later", "n_samples"]) == {20}
    assert set(boots.loc[boots["role"] != "later", "n_samples"]) == {10}


def test_warmups_and_errors_are_not_units(quick: pd.DataFrame) -> None:
    assert quick["warmup"].any()
    rounds = replicate_values(quick, ROW_KEYS, "ns_per_page")
    assert set(rounds["round"]) == set(quick.loc[quick["ok"], "round"])


def test_compare_counts_rounds_not_mappers(quick: pd.DataFrame) -> None:
    keys = ["pattern", "mappers", "role"]
    table = compare_rows(quick[quick["uffd"] == "none"], quick[quick["uffd"] == "wp"], keys,
                         "ns_per_page")
    later = table[table["role"] == "later"].iloc[0]
    assert later["unit"] == "round"
    assert (later["base_units"], later["base_samples"]) == (10, 20)
    assert (later["new_units"], later["new_samples"]) == (10, 20)
    assert later["min_p"] == pytest.approx(2 / comb(20, 10))
    assert later["method"] == ROUND_METHOD
    # uffd-wp switches fault-around off: several times slower, on every 1-mapper pattern but
    # sparse, and for the registered later mappers; the unregistered first mapper is unchanged
    marked = dict(zip(table["pattern"] + table["role"], table["significant"], strict=True))
    assert marked == {"seqonly": True, "randomonly": True, "sparseonly": True,
                      "seqlater": True, "seqfirst": False}
    assert (table.loc[table["significant"], "p_adj"] >= table.loc[table["significant"], "p"]).all()


def _even_odd(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    ok = df[df["ok"]]
    return ok[ok["round"] % 2 == 0], ok[ok["round"] % 2 == 1]


def _pseudo_boots(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each measured round becomes one boot of kernel A or B, in the runner's boot order."""
    ok = df[df["ok"]]
    rounds = sorted(ok["round"].unique())
    plan = boot_order(["A", "B"], len(rounds) // 2)
    kernel = dict(zip(rounds, plan, strict=True))
    ok = ok.assign(kernel=ok["round"].map(lambda r: kernel[r][0]),
                   boot=ok["round"].map(lambda r: kernel[r][1]))
    return ok[ok["kernel"] == "A"], ok[ok["kernel"] == "B"]


def test_aa_split_of_rounds_marks_nothing(quick: pd.DataFrame) -> None:
    base, new = _even_odd(quick)
    table = compare_rows(base, new, ROW_KEYS, "ns_per_page")
    assert len(table) == 15
    assert (table["unit"] == "round").all() and (table["base_units"] == 5).all()
    assert not table["significant"].any()
    # 5 vs 5 rounds: the smallest p is 2/252, which Holm over 15 rows cannot pass
    assert (table["mark"] == "?").all()


def test_aa_split_into_interleaved_boots_marks_nothing(quick: pd.DataFrame) -> None:
    base, new = _pseudo_boots(quick)
    table = compare_rows(base, new, ROW_KEYS, "ns_per_page")
    # 15 boot-level rows: their spreads are pooled (moderated t)
    assert (table["unit"] == "boot").all() and (table["method"] == MODERATED_METHOD).all()
    assert (table["base_units"] == 5).all() and (table["new_units"] == 5).all()
    assert set(table.loc[table["role"] == "later", "base_samples"]) == {10}
    assert table["p"].between(0, 1).all() and (table["ci_lo"] < table["ci_hi"]).all()
    # Holm holds the chance of any false mark to 5% over many A/As, not in each one: in the
    # shipped run one row (seq uffd=missing, whose pseudo-boots differ by 1.33x, a quarter
    # of its samples preempted) is marked; benchmarks/aa_check.py measures the rate
    assert table["significant"].sum() <= 1


@pytest.mark.parametrize("split", [_even_odd, _pseudo_boots])
def test_a_real_slowdown_is_marked_in_every_row(quick: pd.DataFrame, split) -> None:
    base, new = split(quick)
    if split is _even_odd:  # all 10 rounds a side, or 5 vs 5 could not pass Holm over 15 rows
        base = new = quick[quick["ok"]]
    # 5 one-round pseudo-boots a side have less power: on the busy host that made
    # results/native-quick (a sixth of its samples preempted) they are tested with a 3x change
    factor = 1.5 if split is _even_odd else 3.0
    slower = new.assign(ns_per_page=new["ns_per_page"] * factor)
    table = compare_rows(base, slower, ROW_KEYS, "ns_per_page")
    assert ((table["ci_lo"] < table["ratio"]) & (table["ratio"] < table["ci_hi"])).all()
    # the split's own difference (an A/A, which may differ from 1 in a row) times the factor:
    # the estimate and its interval move by exactly that
    same = compare_rows(base, new, ROW_KEYS, "ns_per_page")
    for column in ("ratio", "ci_lo", "ci_hi"):
        assert np.allclose(table[column].to_numpy(), same[column].to_numpy() * factor), column
    assert (table.loc[table["significant"], "mark"] == "*").all()
    if split is _even_odd:
        assert table["significant"].all()
    else:
        # 5 one-round boots a side: a round the busy host slowed (sparse uffd=wp, round 4:
        # 3615 ns/page against ~2250) is a whole boot here and may hide 1.5x in its row, as
        # it should in a test that counts boots; the other rows are marked
        assert table["significant"].mean() >= 0.9


def test_fault_counts_that_never_vary_are_exact(quick: pd.DataFrame) -> None:
    base, new = _pseudo_boots(quick)
    table = compare_rows(base, new, ROW_KEYS, "faults_per_page")
    assert table["exact"].all() and (table["method"] == EXACT_METHOD).all()
    # no test: an exact row has no p and never counts in Holm's family
    assert table["p"].isna().all() and (table["mark"] == "=").all()
    assert (table["ratio"] == 1).all() and table.attrs["tested"] == 0


def test_exactness_is_checked_on_samples_not_unit_medians() -> None:
    # every boot's median is 129, but single samples jitter by one fault: not exact
    jitter = [129, 129, 128, 129] * 3
    base = _samples("a", [1.0, 1.0, 1.0], jitter=0).assign(ns_per_page=jitter)
    new = _samples("b", [1.0, 1.0, 1.0], jitter=0).assign(ns_per_page=[2048.0] * 12)
    row = compare_rows(base, new, ROW_KEYS, "ns_per_page").iloc[0]
    assert base.groupby("boot")["ns_per_page"].median().nunique() == 1
    assert not row["exact"] and row["method"] == BOOT_METHOD
    constant = compare_rows(base.assign(ns_per_page=129.0), new, ROW_KEYS,
                            "ns_per_page").iloc[0]
    assert constant["exact"] and constant["ratio"] == pytest.approx(2048 / 129)
    assert np.isnan(constant["p"]) and constant["mark"] == "*"


def test_the_change_is_the_estimate_its_interval_belongs_to(quick: pd.DataFrame) -> None:
    """Rounds: the Hodges-Lehmann ratio (median of pairwise log ratios), not the ratio of
    medians; boots: the ratio of geometric means, the centre of the Welch interval."""
    none, wp = quick[quick["ok"] & (quick["uffd"] == "none")], quick[
        quick["ok"] & (quick["uffd"] == "wp")]
    keys = ["pattern", "mappers", "role"]
    table = compare_rows(none, wp, keys, "ns_per_page")
    for row in table.itertuples():
        pick = [(df["pattern"] == row.pattern) & (df["role"] == row.role)
                for df in (none, wp)]
        b = none[pick[0]].groupby("round")["ns_per_page"].median().to_numpy()
        n = wp[pick[1]].groupby("round")["ns_per_page"].median().to_numpy()
        hl = np.exp(np.median(np.log(n)[:, None] - np.log(b)[None, :]))
        assert row.ratio == pytest.approx(hl) and row.ci_lo <= row.ratio <= row.ci_hi
        assert row.median_ratio == pytest.approx(np.median(n) / np.median(b))
    assert (table["ratio"] != table["median_ratio"]).any()
    base = _samples("a", [100, 130, 90], seed=11)
    new = _samples("b", [150, 140, 200], seed=12)
    row = compare_rows(base, new, ROW_KEYS, "ns_per_page").iloc[0]
    b = base.groupby("boot")["ns_per_page"].median()
    n = new.groupby("boot")["ns_per_page"].median()
    geometric = np.exp(np.log(n).mean() - np.log(b).mean())
    assert row["ratio"] == pytest.approx(geometric)
    assert row["ratio"] == pytest.approx(np.sqrt(row["ci_lo"] * row["ci_hi"]))


def test_detectable_change_follows_n_and_spread(quick: pd.DataFrame) -> None:
    """A row's detect shrinks with more units and grows with spread; a change that large is
    found, in the row's own test."""
    base, new = _even_odd(quick)
    half = compare_rows(base, new, ROW_KEYS, "ns_per_page")
    # 5 vs 5 rounds cannot pass Holm over 15 rows at all (smallest p 2/252)
    assert (half["detect"] == np.inf).all()
    ok = quick[quick["ok"]]
    full = compare_rows(ok, ok.assign(ns_per_page=ok["ns_per_page"] * 1.01), ROW_KEYS,
                        "ns_per_page")
    assert np.isfinite(full["detect"]).all() and (full["detect"] > 1).all()
    wide = _samples("a", [100, 140, 70], seed=13), _samples("b", [100, 140, 70], seed=14)
    narrow = _samples("a", [100, 101, 99], seed=13), _samples("b", [100, 101, 99], seed=14)
    assert compare_rows(*wide, ROW_KEYS, "ns_per_page")["detect"].iloc[0] > \
        5 * (compare_rows(*narrow, ROW_KEYS, "ns_per_page")["detect"].iloc[0] - 1) + 1
    factor = full["detect"].max()
    found = compare_rows(ok, ok.assign(ns_per_page=ok["ns_per_page"] * factor * 1.5),
                         ROW_KEYS, "ns_per_page")
    assert found["significant"].all()


def test_dropped_samples_are_counted_per_row(quick: pd.DataFrame) -> None:
    ok = quick[quick["ok"]]
    lost = ok.index[(ok["pattern"] == "sparse") & (ok["uffd"] == "wp")][:3]
    failed = quick.copy()
    failed.loc[lost[:2], ["ok", "status"]] = [False, "error"]
    failed.loc[lost[2], "ns_per_page"] = np.nan
    table = compare_rows(failed, ok, ROW_KEYS, "ns_per_page")
    row = table[table["scenario"] == quick.loc[lost[0], "scenario"]].iloc[0]
    assert (row["base_dropped"], row["new_dropped"], row["base_samples"]) == (3, 0, 7)
    assert (table["base_dropped"].sum(), table["new_dropped"].sum()) == (3, 0)


# --- boot-level edge cases (synthetic: no multi-boot run exists yet) ---------------------------

def _samples(kernel: str, boot_levels: list[float], rounds: int = 4, mappers: int = 1,
             jitter: float = 0.01, seed: int = 0) -> pd.DataFrame:
    """Samples of one scenario: per boot a level, rounds around it, mappers per round."""
    rng = np.random.default_rng(seed)
    rows = [
        {"scenario": "s", "role": "only", "kernel": kernel, "boot": boot, "round": round_,
         "mapper": mapper, "ok": True,
         "ns_per_page": level * (1 + jitter * rng.standard_normal())}
        for boot, level in enumerate(boot_levels)
        for round_ in range(boot * rounds, (boot + 1) * rounds)
        for mapper in range(mappers)
    ]
    return pd.DataFrame(rows)


def test_boots_not_rounds_are_the_unit_between_kernels() -> None:
    # boots differ by +-20%, rounds within a boot by 1%: the kernels do not differ
    base = _samples("base", [100, 120, 80], rounds=10, mappers=3, seed=1)
    new = _samples("new", [110, 90, 125], rounds=10, mappers=3, seed=2)
    row = compare_rows(base, new, ROW_KEYS, "ns_per_page").iloc[0]
    assert (row["unit"], row["base_units"], row["base_samples"]) == ("boot", 3, 90)
    assert not row["significant"] and row["p"] > 0.3
    assert row["ci_lo"] < 1 < row["ci_hi"]
    # pooling the 30 rounds of each side as if independent would "find" a difference
    pooled = compare_rows(base.drop(columns="boot"), new.drop(columns="boot"), ROW_KEYS,
                          "ns_per_page").iloc[0]
    assert pooled["unit"] == "round" and pooled["significant"]


def test_three_boots_each_can_show_a_real_difference() -> None:
    base = _samples("base", [100, 101, 99], seed=3)
    new = _samples("new", [110, 111, 109], seed=4)
    row = compare_rows(base, new, ROW_KEYS, "ns_per_page").iloc[0]
    assert row["method"] == BOOT_METHOD and row["significant"] and row["p"] < 0.01
    assert row["ci_lo"] < row["ratio"] < row["ci_hi"] and row["ci_lo"] > 1.05


def test_zero_variance_equal_and_different() -> None:
    one = _samples("a", [1.0, 1.0, 1.0], jitter=0)
    same = _samples("b", [1.0, 1.0, 1.0], jitter=0)
    fewer = _samples("c", [0.0625, 0.0625, 0.0625], jitter=0)
    equal = compare_rows(one, same, ROW_KEYS, "ns_per_page").iloc[0]
    assert (equal["exact"], equal["significant"], equal["mark"]) == (True, False, "=")
    differ = compare_rows(one, fewer, ROW_KEYS, "ns_per_page").iloc[0]
    # exact, not "significant": no test was made (3 boots a side could reach p 0.1 at best),
    # yet marked: the change is known without one
    assert (differ["exact"], differ["significant"], differ["mark"]) == (True, False, "*")
    assert np.isnan(differ["p"]) and np.isnan(differ["p_adj"])
    assert differ["ratio"] == differ["ci_lo"] == differ["ci_hi"] == 0.0625


def test_one_side_constant_the_other_varying_is_tested() -> None:
    constant = _samples("a", [1.0, 1.0, 1.0], jitter=0)
    varying = _samples("b", [1.0, 1.1, 0.9], seed=5)
    row = compare_rows(constant, varying, ROW_KEYS, "ns_per_page").iloc[0]
    assert row["method"] == BOOT_METHOD and not row["exact"] and 0 < row["p"] <= 1


def test_values_at_or_below_zero_are_not_tested_on_another_scale() -> None:
    zero = _samples("a", [0.0, 0.0, 0.0], jitter=0)
    some = _samples("b", [0.5, 0.6, 0.4], seed=6)
    row = compare_rows(zero, some, ROW_KEYS, "ns_per_page").iloc[0]
    assert np.isnan(row["ratio"]) and np.isnan(row["ci_lo"])
    # not a raw-scale t-test in disguise: untested, and said so
    assert row["method"] == NONPOSITIVE_METHOD and np.isnan(row["p"]) and row["mark"] == "?"


def test_one_boot_a_side_falls_back_to_rounds() -> None:
    base = _samples("base", [100], rounds=8, mappers=2, seed=7)
    new = _samples("new", [130], rounds=8, mappers=2, seed=8)
    row = compare_rows(base, new, ROW_KEYS, "ns_per_page").iloc[0]
    assert (row["unit"], row["base_units"], row["base_samples"]) == ("round", 8, 16)
    assert row["method"] == ROUND_METHOD and row["significant"]


def test_a_lost_boot_leaves_the_row_untested_not_pooled() -> None:
    base = _samples("base", [100], rounds=8, seed=9)
    new = _samples("new", [100, 101, 99], rounds=8, seed=10)
    other = pd.concat([_samples("base", [1, 1, 1]), _samples("new", [2, 2, 2])])
    table = compare_rows(pd.concat([base, other[other["kernel"] == "base"].assign(scenario="t")]),
                         pd.concat([new, other[other["kernel"] == "new"].assign(scenario="t")]),
                         ROW_KEYS, "ns_per_page")
    lost = table[table["scenario"] == "s"].iloc[0]
    assert (lost["base_boots"], lost["new_boots"]) == (1, 3)
    assert lost["method"] == FEW_BOOTS_METHOD and np.isnan(lost["p"]) and lost["mark"] == "?"
    assert np.isnan(lost["p_adj"]) and not lost["significant"]
    assert table.attrs["tested"] == 1
    assert "single boot" in footer_note(table)


def test_rows_only_on_one_side_are_left_out() -> None:
    base = pd.concat([_samples("a", [1, 2]), _samples("a", [1, 2]).assign(scenario="only-a")])
    table = compare_rows(base, _samples("b", [1, 2]), ROW_KEYS, "ns_per_page")
    assert list(table["scenario"]) == ["s"]


def test_holm_steps_down_and_keeps_nan_out_of_the_count() -> None:
    adjusted = holm(np.array([0.01, 0.04, np.nan, 0.03, 0.005]))
    np.testing.assert_allclose(adjusted, [0.03, 0.06, np.nan, 0.06, 0.02])
    assert np.isnan(holm(np.array([np.nan]))).all()
