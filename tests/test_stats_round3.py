"""Statistics, round three: profiled samples out of every timing statistic, boot-level
splits, exact power, the cost model's verdict with intervals, counts, phases across kernels.

The shipped runs in results/ are real measurements; the tests read them as data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

import faultbench
from faultbench.analysis.breakeven import break_even, cost_models
from faultbench.analysis.compare import compare_runs
from faultbench.analysis.frame import dropped_notes
from faultbench.analysis.report import report_text, write_report

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


def test_report_tables_read_no_profiled_time(twins: tuple[Path, Path]) -> None:
    def timing_part(run: Path) -> str:
        df = _load(run)
        text = report_text(df, next(iter(df.attrs["meta"].values())))
        # the profile section shows the profiled samples' own time, as such
        return text.split("\nKernel profiles (")[0]

    plain, slowed = (timing_part(run) for run in twins)
    assert "medians over rounds (6)" in plain.replace("\n  ", " ")
    assert plain == slowed


def test_compare_reads_no_profiled_time(twins: tuple[Path, Path]) -> None:
    def table(run: Path) -> str:
        text = compare_runs(f"{run}:4096", f"{run}:65536", by="fault_around_bytes")
        return text.replace(str(run), "RUN")

    plain, slowed = (table(run) for run in twins)
    assert plain == slowed


def test_figures_draw_no_profiled_time(twins: tuple[Path, Path], tmp_path: Path) -> None:
    drawn = []
    for i, run in enumerate(twins):
        _, paths = write_report(run, out=tmp_path / str(i))
        drawn.append({p.name: p.read_bytes() for p in paths if p.suffix == ".svg"})
    assert "break-even.svg" in drawn[0] and drawn[0] == drawn[1]
