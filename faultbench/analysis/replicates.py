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
  (compare's footer says so for two separate runs). Not on the instruction clock: there a
  boot's rounds repeat to the instruction while boots of one image land a few instructions
  apart, so timings of one boot a side, the sides in different boots, are not tested.

Columns used: `round` (always; `faultbench.load` provides it), and whichever of `run`, `kernel`,
`boot` exist (`BOOT_COLUMNS`): a frame without them is one boot. Rows with `ok` False (warm-ups,
errors) and null metric values are dropped first.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb
from typing import Literal

import numpy as np
import pandas as pd

from faultbench.analysis.estimators import (
    POWER,
    Prior,
    detectable,
    holm,
    mann_whitney_shift,
    moderated_t,
    pooled_log_variance,
    state_step,
    variance_prior,
    welch_log,
)
from faultbench.analysis.frame import COUNT_METRICS

ALPHA = 0.05
# On the instruction clock, before loops started right after a tick (TICK_ALIGNED_EPOCH),
# whole boots of one image landed on levels this far apart (592.6 or 595.2 insn/page, a tick
# more or less per loop): a split along them passes any test, whatever a side's boots show.
ICOUNT_STATE_STEP = 595.2 / 592.6
TICK_ALIGNED_EPOCH = 1
# What tells one boot from another, outermost first. Absent columns are simply not used.
BOOT_COLUMNS = ("run", "kernel", "boot")
ROUND_COLUMN = "round"
Unit = Literal["round", "boot"]

BOOT_METHOD = "Welch t-test on log per-boot medians"
MODERATED_METHOD = "moderated t-test on log per-boot medians"
ROUND_METHOD = "Mann-Whitney U on per-round medians"
EXACT_METHOD = "exact: no variation within either side"
FEW_BOOTS_METHOD = "untested: one side has a single boot, the other several"
ONE_BOOT_APART_METHOD = "untested: one boot a side on the instruction clock"
NONPOSITIVE_METHOD = "untested: a unit value <= 0"
# One line per method for compare's footer; `footer_note` picks those a table used.
REFERENCES = {
    BOOT_METHOD: "boots as units, the summary-statistics approach to nested data (Aarts et "
                 "al. 2014, Nat Neurosci 17:491); 95% CI of the ratio from the same t",
    MODERATED_METHOD: "boots as units (Aarts et al. 2014, Nat Neurosci 17:491); each row's "
                      "boot-to-boot variance shrunk towards the distribution of all rows' "
                      "(empirical Bayes, Smyth 2004, Stat Appl Genet Mol Biol 3:3); 95% CI of "
                      "the ratio from the same t",
    ROUND_METHOD: "rounds as units, mappers of a round pooled by their median; 95% CI of the "
                  "ratio: Hodges-Lehmann, exact (Hollander & Wolfe 1999)",
    EXACT_METHOD: "exact: every sample of each side had the same value, so the change is "
                  "exact and no test is made (*: the sides differ; =: both sides equal)",
    FEW_BOOTS_METHOD: "?: one side has a single boot, so its boot-to-boot variation is "
                      "unknown; not tested, change is the ratio of medians",
    ONE_BOOT_APART_METHOD: "?: on the instruction clock a boot's rounds repeat to the "
                           "instruction, but boots of one image land a few instructions "
                           "apart: with one boot a side, in different boots, the change "
                           "cannot be told from the boots' own levels (--boots 2 or more "
                           "tests it); not tested, change is the ratio of medians",
    NONPOSITIVE_METHOD: "?: a unit value is <= 0, where the tests (on logs) do not apply; "
                        "not tested, change is the ratio of medians",
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
    return rounds if unit == "round" else _boot_values(rounds, [*keys, *boots])


def _boot_values(rounds: pd.DataFrame, keys_and_boots: list[str]) -> pd.DataFrame:
    """replicate_values' boot values from its round values."""
    return (
        rounds.groupby(keys_and_boots, sort=False, dropna=False)
        .agg(value=("value", "median"), n_rounds=("value", "count"),
             n_samples=("n_samples", "sum"))
        .reset_index()
    )


ROW_ID = "_row"  # compare_rows' column naming a row of keys


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
    per-round medians, mappers pooled), except timings on the instruction clock with the
    sides in different boots (ONE_BOOT_APART_METHOD); one boot against several is not
    tested (p NaN).

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

    Exact rows: when every valid *sample* (not only every unit) of each side has the same
    value, with >= 2 samples a side (fault counts often are), the change is known exactly:
    `exact` True, no test (p NaN), CI the ratio itself.

    A row with a unit value <= 0 is not tested (the tests work on logs): NONPOSITIVE_METHOD.

    Significance: p-values of the tested rows are Holm-adjusted across the rows of this
    table; `significant` is `p_adj < alpha`. Holm bounds the chance that an A/A comparison
    marks any row at all by alpha.

    Returns one row per group on both sides (none when no group is), in base's order, with
    columns:
      *keys;
      unit: "boot" or "round";
      base_boots, base_units, base_samples, base_dropped, base_median, base_spread_pct,
        base_gmean, base_sd_pct (and new_*): boots, units tested, valid samples, samples
        left out (failed, or a null value of the metric), median of the unit values, half
        the interquartile range of the unit values in % of that median, their geometric
        mean, their standard deviation in % of their mean;
      ratio: the estimate of new/base that the row's test and CI belong to: the ratio of
        geometric means of the per-boot values (Welch), the Hodges-Lehmann shift of the
        log per-round values (Mann-Whitney), the exact ratio (exact rows); the ratio of
        medians for untested rows; NaN when base is 0;
      median_ratio: new_median / base_median;
      ci_lo, ci_hi: 95% CI of the ratio (Welch for boots, Hodges-Lehmann for rounds; NaN
        when too few units or untested);
      p: raw two-sided p (NaN untested or exact); p_adj: Holm-adjusted p;
      min_p: the smallest raw p this row's test could give (2 / C(n1+n2, n1) for rounds,
        0 for boots);
      detect: the smallest ratio (> 1; a fall to 1/detect alike) this row's test finds with
        POWER at Holm's first threshold alpha/m (a lone change among the m tested rows),
        given its units and their spread (see `detectable`), and at least `state_step`;
        inf when the test cannot reach that threshold at all; NaN for exact and untested
        rows;
      state_step: for boot-level rows, the step between boot states: among one side's
        per-boot values (`estimators.state_step`, the larger of the sides), and at least
        ICOUNT_STATE_STEP on the instruction clock of a harness that did not align loops to
        the tick (`_tick_states`); 0 when there is none: a change below it
        cannot be told from a boot's state;
      exact, significant: bools;
      mark: "*" significant, "=" exactly equal, "?" untested or unable to reach alpha even
        as the table's smallest p, "" otherwise;
      method: one of BOOT_METHOD, ROUND_METHOD, EXACT_METHOD, FEW_BOOTS_METHOD,
        NONPOSITIVE_METHOD.
    `.attrs`: `alpha`, `tested` (the Holm family size), `significance` ("p_adj").
    """
    keys = list(keys)
    if not keys:
        raise ValueError("compare_rows needs at least one key column to tell rows apart")
    # the sides are grouped by one integer per row of keys, which are put back at the end:
    # grouping several times on the key columns themselves took most of a comparison's time
    key_rows = pd.concat([base_df[keys], new_df[keys]], ignore_index=True)
    row_ids = key_rows.groupby(keys, sort=False, dropna=False).ngroup().to_numpy()
    key_values = key_rows.assign(**{ROW_ID: row_ids}).drop_duplicates(ROW_ID).set_index(ROW_ID)
    base = _side_units(base_df.assign(**{ROW_ID: row_ids[:len(base_df)]}), metric)
    new = _side_units(new_df.assign(**{ROW_ID: row_ids[len(base_df):]}), metric)
    both = base.merge(new, on=ROW_ID, how="inner", suffixes=("_base", "_new"))
    records = [_units_of(row._asdict())
               for row in both.drop(columns=ROW_ID).itertuples(index=False)]
    spreads = [pooled_log_variance(*r[1:3]) for r in records if _boot_test(*r)]
    prior = variance_prior(*zip(*spreads, strict=True)) if spreads else None
    apart = metric not in COUNT_METRICS and _instruction_clock_boots_apart(base_df, new_df)
    rows = [_compare_one(*record, prior, apart) for record in records]
    sides = [f"{side}_{name}" for side in ("base", "new") for name in (
        "boots", "units", "samples", "dropped", "median", "spread_pct", "gmean", "sd_pct")]
    columns = ["unit", *sides, "ratio", "median_ratio", "ci_lo", "ci_hi", "p", "min_p",
               "exact", "method", "_se", "_df", "_states"]
    table = pd.concat(
        [key_values.loc[both[ROW_ID]].reset_index(drop=True), pd.DataFrame(rows, columns=columns)],
        axis=1)
    tested = table["p"].notna()
    table["p_adj"] = holm(table["p"])
    table["significant"] = (table["p_adj"] < alpha).fillna(False).astype(bool)
    family = int(tested.sum())
    level = alpha / max(family, 1)
    table["detect"] = [
        detectable(se, df, level, min_p) if ok else np.nan
        for se, df, min_p, ok in zip(table["_se"], table["_df"], table["min_p"], tested,
                                     strict=True)
    ]
    # a change below the step between boot states is no more than a boot in the other state
    table["state_step"] = np.where(table["unit"] == "boot", np.maximum(
        table["_states"], ICOUNT_STATE_STEP if _tick_states(base_df, new_df) else 0.0), 0.0)
    table["detect"] = table["detect"].where(
        ~(tested & (table["state_step"] > table["detect"])), table["state_step"])
    hopeless = (table["p"].isna() & ~table["exact"]) | (tested & (table["min_p"] >= level))
    equal = table["exact"] & (table["ratio"] == 1)
    # an exact row that changed is marked without a test: no test over boots could reach
    # significance there (a permutation's smallest p with 3 boots a side is 0.1)
    changed = table["exact"] & ~equal
    table["mark"] = np.select([table["significant"] | changed, equal, hopeless],
                              ["*", "=", "?"], "")
    order = [*keys, "unit", *sides, "ratio", "median_ratio", "ci_lo", "ci_hi", "p", "p_adj",
             "min_p", "detect", "state_step", "exact", "significant", "mark", "method"]
    table = table[list(dict.fromkeys(order))]
    table.attrs.update(alpha=alpha, tested=family, significance="p_adj", power=POWER)
    return table


def _pct_range(ratios: pd.Series) -> str:
    low, high = (f"{100 * (r - 1):.2g}" for r in (ratios.min(), ratios.max()))
    return f"{low}%" if low == high else f"{low}-{high}%"


def _instruction_clock_boots_apart(base_df: pd.DataFrame, new_df: pd.DataFrame) -> bool:
    """Whether both sides were timed on the instruction clock, each in boots of its own (a
    kernel against another, or two runs): a boot's rounds then repeat to the instruction,
    and one boot a side says nothing of how far apart boots land. Fault counts are not
    timings: a kernel's own, they repeat across boots."""
    sides = [df[df["ok"]] if "ok" in df else df for df in (base_df, new_df)]
    if not all(len(side) and "clock" in side and (side["clock"] == "icount").all()
               for side in sides):
        return False
    return any(set(sides[0][column]).isdisjoint(set(sides[1][column]))
               for column in boot_columns(sides[0]) if column in sides[1])


def _tick_states(*frames: pd.DataFrame) -> bool:
    """Whether an instruction-clock frame is of a harness that did not align loops to the
    tick (or of no known epoch): its boots land on levels ICOUNT_STATE_STEP apart."""
    epochs = [[m.get("harness_epoch", 0) for m in f.attrs.get("meta", {}).values()]
              for f in frames if "clock" in f and (f["clock"] == "icount").any()]
    return any(not e or min(e) < TICK_ALIGNED_EPOCH for e in epochs)


def footer_note(table: pd.DataFrame) -> str:
    """One line for compare's footer: the units and methods this table used, with references."""
    used = [method for method in REFERENCES if (table["method"] == method).any()]
    alpha = table.attrs.get("alpha", ALPHA)
    parts = [f"{method}: {REFERENCES[method]}"
             if method in (BOOT_METHOD, MODERATED_METHOD, ROUND_METHOD)
             else REFERENCES[method] for method in used]
    tested = table.attrs.get("tested", 0)
    states = table["state_step"] if "state_step" in table else pd.Series(dtype=float)
    raised = states[(states > 1) & (states == table["detect"])]
    if len(raised):
        parts.append(f"boot states: in {len(raised)} row(s) boots land on levels "
                     f"{_pct_range(raised)} apart (docs/icount.md), more than the "
                     "test's detect; a change below that step is not testable with these "
                     "boots (a split along the levels passes any test), so detect shows the "
                     "step there")
    if tested:
        parts.append(f"*: Holm-adjusted p < {alpha} over the {tested} tested rows "
                     f"({HOLM_REFERENCE})")
    return "; ".join(parts) + "."


def _side_units(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per row (ROW_ID), as `replicate_values` makes them: the round values, the boot values,
    the valid sample count, whether every valid sample had one value, and how many samples
    were left out (failed or null). In numpy over one sort per level: pandas' grouping took
    most of a comparison's time (an A/A check makes hundreds)."""
    ok = df["ok"].to_numpy(dtype=bool) if "ok" in df else np.ones(len(df), dtype=bool)
    values = df[metric].to_numpy(dtype=float, na_value=np.nan)
    failed = ~ok  # not warm-ups, nor samples --strict excluded
    for column in ("warmup", "interfered"):
        if column in df:
            failed &= ~df[column].to_numpy(dtype=bool)
    lost = failed | (ok & np.isnan(values))
    valid = ok & ~np.isnan(values)
    units = df.loc[valid, [ROW_ID, *(c for c in boot_columns(df) if c != ROW_ID)]]
    boot_ids = units.groupby(list(units.columns), sort=False, dropna=False).ngroup().to_numpy()
    round_ids = units.assign(**{ROUND_COLUMN: df.loc[valid, ROUND_COLUMN]}).groupby(
        [*units.columns, ROUND_COLUMN], sort=False, dropna=False).ngroup().to_numpy()
    rows = units[ROW_ID].to_numpy()
    round_values, first = _group_medians(round_ids, values[valid])
    boot_values, boot_first = _group_medians(boot_ids[first], round_values)
    row_of_round, row_of_boot = rows[first], rows[first][boot_first]
    out = pd.DataFrame({ROW_ID: pd.unique(rows)})
    per_row = out[ROW_ID].to_numpy()
    out["round_values"] = [round_values[row_of_round == r].tolist() for r in per_row]
    out["boot_values"] = [boot_values[row_of_boot == r].tolist() for r in per_row]
    all_rows = df[ROW_ID].to_numpy()
    size = int(all_rows.max()) + 1 if len(all_rows) else 0
    samples = np.bincount(rows, minlength=size)
    lowest, highest = np.full(size, np.inf), np.full(size, -np.inf)
    np.minimum.at(lowest, rows, values[valid])
    np.maximum.at(highest, rows, values[valid])
    out["samples"] = samples[per_row].astype(int)
    out["constant"] = (samples >= 2)[per_row] & (lowest == highest)[per_row]
    out["dropped"] = np.bincount(all_rows, weights=lost, minlength=size)[per_row].astype(int)
    return out


def _group_medians(ids: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The median of `values` per id (ids numbered 0.. in order of first appearance, as
    `ngroup(sort=False)` gives them), in id order; and per id, the index of its first value."""
    order = np.lexsort((values, ids))
    ids_sorted, values_sorted = ids[order], values[order]
    starts = np.flatnonzero(np.diff(ids_sorted, prepend=-1))  # ids are >= 0
    counts = np.diff(np.append(starts, len(values_sorted)))
    medians = (values_sorted[starts + (counts - 1) // 2] + values_sorted[starts + counts // 2]) / 2
    first = np.full(len(starts), len(ids))
    np.minimum.at(first, ids, np.arange(len(ids)))
    return medians, first


Units = tuple[str, np.ndarray, np.ndarray, dict[str, object]]


def _units_of(row: dict[str, object]) -> Units:
    """The unit of a row (boot with several boots on either side, else round) and the unit
    values of each side."""
    base_boots = np.asarray(row["boot_values_base"], dtype=float)
    new_boots = np.asarray(row["boot_values_new"], dtype=float)
    if len(base_boots) == len(new_boots) == 1:
        return ("round", np.asarray(row["round_values_base"], dtype=float),
                np.asarray(row["round_values_new"], dtype=float), row)
    return "boot", base_boots, new_boots, row


def _boot_test(unit: str, base: np.ndarray, new: np.ndarray, row: dict[str, object]) -> bool:
    """Whether the row is tested at the boot level (its spread then enters the prior)."""
    return (unit == "boot" and min(len(base), len(new)) >= 2
            and not (row["constant_base"] and row["constant_new"])
            and bool((base > 0).all() and (new > 0).all()))


def _compare_one(unit: str, base: np.ndarray, new: np.ndarray, row: dict[str, object],
                 prior: Prior | None, apart: bool) -> tuple[object, ...]:
    """`apart`: _instruction_clock_boots_apart, which leaves a row of one boot a side
    untested, constant or not."""
    base_boots, new_boots = row["boot_values_base"], row["boot_values_new"]
    base_median, new_median = float(np.median(base)), float(np.median(new))
    median_ratio = _ratio(new_median, base_median)
    ratio, p, ci, min_p, se, df = median_ratio, np.nan, (np.nan, np.nan), np.nan, np.nan, np.nan
    exact = bool(row["constant_base"]) and bool(row["constant_new"]) and not (
        apart and unit == "round")
    if apart and unit == "round":
        method = ONE_BOOT_APART_METHOD
    elif exact:
        ci, min_p, method = (ratio, ratio), 0.0, EXACT_METHOD
    elif unit == "boot" and min(len(base), len(new)) < 2:
        method = FEW_BOOTS_METHOD
    elif not ((base > 0).all() and (new > 0).all()):
        method = NONPOSITIVE_METHOD
    elif unit == "boot" and prior is not None:
        ratio, p, ci, se, df = moderated_t(base, new, prior)
        min_p, method = 0.0, MODERATED_METHOD
    elif unit == "boot":
        ratio, p, ci, se, df = welch_log(base, new)
        min_p, method = 0.0, BOOT_METHOD
    else:
        ratio, p, ci, se, df = mann_whitney_shift(base, new)
        min_p = min(1.0, 2 / comb(len(base) + len(new), len(base)))
        method = ROUND_METHOD
    return (unit, len(base_boots), len(base), int(row["samples_base"]),
            int(row["dropped_base"]), base_median, _spread_pct(base), *_mean_sd(base),
            len(new_boots), len(new), int(row["samples_new"]), int(row["dropped_new"]),
            new_median, _spread_pct(new), *_mean_sd(new),
            ratio, median_ratio, ci[0], ci[1], p, min_p, exact, method, se, df,
            np.nanmax([state_step(base), state_step(new), 0.0]) if unit == "boot" else 0.0)


def _mean_sd(values: np.ndarray) -> tuple[float, float]:
    """The geometric mean of unit values (NaN unless all > 0) and their standard deviation
    in % of their mean (0 for one unit): what test-robot tables print."""
    mean = float(np.exp(np.log(values).mean())) if (values > 0).all() else np.nan
    sd = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return mean, 100 * sd / abs(values.mean()) if values.mean() else np.nan


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
