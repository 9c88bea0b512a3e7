"""Statistics, round three: profiled samples out of every timing statistic, boot-level
splits, exact power, the cost model's verdict with intervals, counts, phases across kernels.

The shipped runs in results/ are real measurements; the tests read them as data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import faultbench
from faultbench.analysis.aa import aa_tables, distinct_halves
from faultbench.analysis.breakeven import break_even, cost_models
from faultbench.analysis.compare import compare_runs
from faultbench.analysis.dropped import dropped_notes
from faultbench.analysis.estimators import POWER, detectable, state_step
from faultbench.analysis.memory import count_totals, memory_section, sessions
from faultbench.analysis.profile import phase_costs
from faultbench.analysis.replicates import ICOUNT_STATE_STEP, compare_rows, footer_note
from faultbench.analysis.report import write_report

ROOT = Path(__file__).resolve().parent.parent
COST_MODEL = ROOT / "results" / "tcg-icount-cost-model"
SLOWER = 7.0  # what the profiled samples are made to cost: far outside any CI


def _copy(run: Path, to: Path, slow_profiled: bool) -> Path:
    """A copy of a shipped run; with slow_profiled, every profiled sample's times scaled by
    SLOWER, so that any timing statistic that reads one moves."""
    shutil.copytree(run, to, ignore=shutil.ignore_patterns("figures", "report.txt"))
    if slow_profiled:
        lines = []
        for line in (to / "samples.jsonl").read_text().splitlines():
            record = json.loads(line)
            if record.get("profiled"):
                for key in ("touch_ns", "munmap_ns"):
                    if record.get(key) is not None:
                        record[key] = round(record[key] * SLOWER)
                record["ns_per_page"] = record["touch_ns"] / record["pages_touched"]
            lines.append(json.dumps(record))
        (to / "samples.jsonl").write_text("\n".join(lines) + "\n")
    return to


def _load(run: Path) -> pd.DataFrame:
    df = faultbench.load(run)
    assert dropped_notes(df) == []  # every sample read, the slowed ones too
    return df


@pytest.fixture(scope="module")
def twins(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The shipped cost-model run as it is, and with its profiled samples made slower."""
    where = tmp_path_factory.mktemp("twins")
    return (_copy(COST_MODEL, where / "a" / "run", False),
            _copy(COST_MODEL, where / "b" / "run", True))


def test_the_shipped_run_has_profiled_rounds_to_leave_out() -> None:
    df = faultbench.load(COST_MODEL)
    profiled = df[df["profiled"] & ~df["warmup"]]
    timed = df[df["ok"]]
    assert len(profiled) and not set(profiled["round"]) & set(timed["round"])


def test_break_even_counts_and_resamples_only_timed_rounds(twins: tuple[Path, Path]) -> None:
    plain, slowed = (break_even(_load(run), replicates=200) for run in twins)
    timed_rounds = faultbench.load(twins[0]).query("ok")["round"].nunique()
    assert plain and all(b.rounds == timed_rounds for b in plain)
    assert [b.to_dict() for b in plain] == [b.to_dict() for b in slowed]


def test_cost_model_reads_no_profiled_time(twins: tuple[Path, Path]) -> None:
    keys = ("ns_per_fault", "ns_per_page_mapped", "ns_per_touch", "per_fault", "residual",
            "rounds", "touch_ns_by_stride")
    plain, slowed = ([{k: m.to_dict()[k] for k in keys} for m in
                      cost_models(_load(run), replicates=200)] for run in twins)
    assert plain and plain == slowed


@pytest.fixture(scope="module")
def reports(twins: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
            ) -> list[tuple[str, dict[str, bytes]]]:
    """Each twin's report (report_text's tables) and figures (name: SVG), written once:
    the report of the cost-model run takes seconds, its figures more."""
    out = tmp_path_factory.mktemp("reports")
    written = []
    for i, run in enumerate(twins):
        text, paths = write_report(run, out=out / str(i))
        written.append((text, {p.name: p.read_bytes() for p in paths if p.suffix == ".svg"}))
    return written


def test_report_tables_and_figures_read_no_profiled_time(
        twins: tuple[Path, Path], reports: list[tuple[str, dict[str, bytes]]]) -> None:
    """One test of both: in two, each xdist worker wrote the reports (about 40 s apiece)."""
    for run in twins:
        _load(run)
    # the profile section shows the profiled samples' own time, as such
    plain, slowed = (text.split("\nKernel profiles (")[0] for text, _ in reports)
    assert "medians over rounds (6)" in plain.replace("\n  ", " ")
    assert plain == slowed
    drawn = [svgs for _, svgs in reports]
    assert "break-even.svg" in drawn[0] and drawn[0] == drawn[1]


def test_compare_reads_no_profiled_time(twins: tuple[Path, Path]) -> None:
    def table(run: Path) -> str:
        text = compare_runs(f"{run}:4096", f"{run}:65536", by="fault_around_bytes")
        return text.replace(str(run), "RUN")

    plain, slowed = (table(run) for run in twins)
    assert plain == slowed


@pytest.mark.parametrize(("per_side", "tested"), [(3, 10), (3, 40), (5, 1)])
def test_detect_is_the_change_found_with_80_percent_power(per_side: int, tested: int) -> None:
    """A seeded simulation of the two-sample t-test on log values at Holm's first threshold:
    the change `detectable` prints is found in 80% of the draws, within 2 points."""
    rng = np.random.default_rng([30, per_side, tested])
    sigma, draws, level = 0.004, 40000, 0.05 / tested
    df = 2 * per_side - 2
    se = sigma * np.sqrt(2 / per_side)
    shift = np.log(detectable(se, df, level))
    base = rng.normal(0.0, sigma, (draws, per_side))
    new = rng.normal(shift, sigma, (draws, per_side))
    found = np.mean(stats.ttest_ind(new, base, axis=1).pvalue < level)
    assert abs(found - POWER) <= 0.02, found


def test_six_boots_split_ten_distinct_ways_each_once() -> None:
    boots = [f"b{i}" for i in range(6)]
    halves = distinct_halves(boots)
    assert len(halves) == 10
    assert len({frozenset(h) for h in halves} | {frozenset(set(boots) - h) for h in halves}) \
        == 20  # no split is another's mirror image
    assert len(distinct_halves(boots[:5])) == 10  # 2 vs 3: C(5,2)


def test_the_shipped_icount_aa_is_split_every_distinct_way() -> None:
    df = faultbench.load(ROOT / "results" / "icount-aa")
    df = df.assign(boot=df["kernel"].astype(str) + "/" + df["boot"].astype(str), kernel="one")
    keys = ["pattern", "uffd", "mappers", "role"]
    tables = aa_tables(df.assign(**{k: df[k].astype(str) for k in keys}), keys,
                       "ns_per_page", tables=200)
    assert len(tables) == 10
    assert all((t["base_units"] == 3).all() and (t["new_units"] == 3).all() for t in tables)


@pytest.mark.parametrize("epoch", [0, 1])
def test_boot_states_floor_detect_where_loops_were_not_tick_aligned(epoch: int) -> None:
    """Before harness epoch 1 an instruction-clock loop took a tick or not by the boot's
    phase: boots landed on two levels, which floors detect. From epoch 1 loops start after a
    tick, and the shipped A/A's rows detect well below that step."""
    df = faultbench.load(ROOT / "results" / "icount-aa")
    df.attrs["meta"] = {run: {**meta, "harness_epoch": epoch}
                        for run, meta in df.attrs["meta"].items()}
    keys = ["pattern", "uffd", "mappers", "role"]
    table = compare_rows(df[df["kernel"] == "a"], df[df["kernel"] == "b"], keys, "ns_per_page")
    tested = table[table["p"].notna()]
    assert len(tested)
    if epoch == 0:
        assert (tested["detect"] >= ICOUNT_STATE_STEP).all()
        assert "boot states" in footer_note(table)
    else:
        assert (tested["detect"] < ICOUNT_STATE_STEP).sum() > len(tested) / 2, tested["detect"]


def test_a_side_in_two_states_cannot_test_below_the_step() -> None:
    assert state_step(np.array([597.1, 597.3, 599.2])) == pytest.approx(599.2 / 597.3)
    assert np.isnan(state_step(np.array([597.1, 598.2, 599.2])))  # an even spread


@pytest.mark.parametrize("run", ["tcg-icount-profile-kernels", "native-profile"])
def test_no_phase_takes_a_row_by_misclassification(run: str) -> None:
    """Each kernel's fault path splits into phases named for it: 6.1 and 6.12 (and the
    native host's kernel) find the VMA, look the page up and enter the fault through
    functions of different names, and no row's loop goes to one phase for want of one."""
    costs = phase_costs(faultbench.load(ROOT / "results" / run))
    assert costs
    for row in costs:
        phase, share = max(row.shares.items(), key=lambda item: item[1])
        assert share <= 0.8, (row.label, row.kernel, phase, share)


def test_the_cost_model_verdict_has_intervals_on_both_sides() -> None:
    [model] = cost_models(faultbench.load(COST_MODEL), replicates=400)
    assert model.profile is not None
    for constant in model.profile.constants:
        low, high = constant.profile_ci
        assert low < constant.profile < high and constant.model_ci is not None
        apart = constant.model_ci[1] < low or high < constant.model_ci[0]
        assert constant.overlap is not apart
    a, b = model.profile.constants
    assert "VMA lookup" in a.phases and "lookup" in a.phases  # the fixed cost, like with like
    assert b.phases == ["fault-around", "rmap+memcg"]
    assert model.profile.units == 3  # the profiled rounds


def test_the_cost_models_misfit_is_reported_per_stride() -> None:
    df = faultbench.load(COST_MODEL)
    [model] = cost_models(df, replicates=200)
    strides = [row[0] for row in model.by_stride]
    assert strides == sorted(set(df.query("ok")["pattern"].str.removeprefix("stride:")
                                 .astype(float)))
    a_values = [row[1] for row in model.by_stride]
    # a moves with the stride by more than its own CI is wide: the error of the model
    assert model.ns_per_fault is not None and model.ns_per_fault.ci is not None
    assert max(a_values) - min(a_values) > np.diff(model.ns_per_fault.ci)[0]


def _sessions(counts: dict[int, list[int]], launches: int = 10) -> pd.DataFrame:
    """App-launch sessions as memory.sessions gives them: per setting, one row per session
    with its allocstalls per launch."""
    rows = [{"fault_around_bytes": setting, "allocstall": c / launches, "refault": 0.0,
             "launches_done": launches, "outcome": "ok"}
            for setting, cs in counts.items() for c in cs]
    return pd.DataFrame(rows)


def test_count_totals_sum_the_sessions_and_permute_them_exactly() -> None:
    table = count_totals(_sessions({4096: [0] * 6, 65536: [13, 0, 1, 0, 1, 2]}),
                         ["fault_around_bytes"], "allocstall")
    off, on = table.to_dict("records")
    assert (off["total"], on["total"], on["launches"], on["with_any"]) == (0, 17, 60, 4)
    assert on["rate"] == pytest.approx(17 / 60) and on["top"] == pytest.approx(13 / 17)
    # the 4 sessions with a count all on one side: 2 x C(8, 2) of C(12, 6) relabellings
    assert on["p"] == pytest.approx(2 * 28 / 924)
    assert on["ratio"] == np.inf and 0 < on["ci_lo"] < np.inf


def test_the_rate_ratio_interval_covers_the_truth() -> None:
    """Poisson counts per session at two rates: the exact interval covers the true ratio
    in about 95% of seeded draws (at least 95% for an exact interval, up to discreteness)."""
    rng = np.random.default_rng(306)
    covered = 0
    draws = 300
    for _ in range(draws):
        base = rng.poisson(0.5 * 10, 6).tolist()
        new = rng.poisson(1.5 * 10, 6).tolist()
        _, row = count_totals(_sessions({4096: base, 65536: new}), ["fault_around_bytes"],
                              "allocstall").to_dict("records")
        covered += row["ci_lo"] <= 3.0 <= row["ci_hi"]
    assert covered / draws >= 0.93


def test_the_shipped_memory_report_gives_totals_and_serial_dependence() -> None:
    df = faultbench.load(ROOT / "results" / "tcg-memory-256M")
    apps = sessions(df)
    table = count_totals(apps, ["fault_around_bytes"], "allocstall")
    valid = apps[apps["outcome"] == "ok"]
    assert table["total"].sum() == round((valid["allocstall"] * valid["launches_done"]).sum())
    text = memory_section(df)
    assert "totals over valid sessions" in text and "serially" in text.replace("\n  ", " ")
