"""Round twenty, whether two runs are one measurement (R20-1, R20-2), and whether a scenario
meta.json records as skipped was measured (R20-5). Runs were told apart by
a digest of every sample line, warm-ups and profiled rounds included, which no table uses:
a copy of a run with one warm-up's context-switch count bumped, or one profiled line cut,
and its host name edited, merged as a second machine, every row 0% apart; a copy without
its first line (a warm-up) compared as a second run. Now each measured sample is what makes
it one measurement (identity.measurements), and no sample may be on both sides. Copies of
shipped runs and the real commands."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from analysis_runs import faultbench
from console import one_line

RESULTS = Path(__file__).parents[1] / "results"
QUICK, PROFILED = RESULTS / "native-quick", RESULTS / "native-profile"


def _copy(src: Path, to: Path, edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
          host: str | None = "vm2") -> Path:
    shutil.copytree(src, to)
    records = [json.loads(line) for line in (src / "samples.jsonl").open()]
    (to / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in edit(records)))
    if host is not None:
        meta = json.loads((to / "meta.json").read_text())
        meta["provenance"]["host"]["name"] = host
        (to / "meta.json").write_text(json.dumps(meta))
    return to


def _warmup_bumped(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    next(r for r in records if r["warmup"])["nivcsw"] += 1
    return records


def _last_profiled_cut(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    last = max(i for i, r in enumerate(records) if r["profiled"])
    return records[:last] + records[last + 1:]


def _measured(run: Path) -> int:
    return sum(r["status"] == "ok" and not r["warmup"] and not r["profiled"]
               for r in map(json.loads, (run / "samples.jsonl").open()))


def test_a_copy_with_a_warm_up_edited_is_not_a_second_machine(tmp_path: Path) -> None:
    copy = _copy(QUICK, tmp_path / "copy", _warmup_bumped)
    done = faultbench("merge", "--out", tmp_path / "merged", QUICK, copy, check=False)
    assert done.returncode == 2 and not (tmp_path / "merged").exists()
    assert one_line(done.stderr) == (
        f"faultbench merge: {QUICK} and {copy} share {_measured(QUICK):,} measured sample(s): "
        "a copy of one run, or a run and a part of it, is not a second measurement; merge runs "
        "measured apart")


def test_a_copy_with_a_profiled_line_cut_is_not_a_second_machine(tmp_path: Path) -> None:
    copy = _copy(PROFILED, tmp_path / "copy", _last_profiled_cut)
    done = faultbench("merge", "--out", tmp_path / "merged", PROFILED, copy, check=False)
    assert done.returncode == 2 and "share" in done.stderr and "measured sample" in done.stderr


def test_a_copy_without_its_first_warm_up_is_not_a_second_run(tmp_path: Path) -> None:
    copy = _copy(QUICK, tmp_path / "copy", lambda records: records[1:], host=None)
    assert json.loads((QUICK / "samples.jsonl").open().readline())["warmup"]
    done = faultbench("compare", QUICK, copy, check=False)
    assert done.returncode == 2 and not done.stdout
    assert f"BASE and NEW are the same samples ({QUICK} and {copy})" in one_line(done.stderr)


def test_two_resumes_of_one_run_share_what_was_measured_before_it_stopped(
        tmp_path: Path) -> None:
    """Two copies of one interrupted run, each resumed: the rounds measured before the stop
    are on both sides (here the second copy's later rounds are measured again)."""
    def later_rounds_again(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for r in records:
            if r["round"] >= 3 and r["status"] == "ok" and not r["warmup"]:
                r["touch_ns"] += 1
                r["ns_per_page"] = r["touch_ns"] / r["pages_touched"]
        return records
    fork = _copy(QUICK, tmp_path / "fork", later_rounds_again, host=None)
    shared = sum(r["round"] < 3 for r in map(json.loads, (QUICK / "samples.jsonl").open())
                 if r["status"] == "ok" and not r["warmup"] and not r["profiled"])
    done = faultbench("compare", QUICK, fork, check=False)
    assert done.returncode == 2
    assert f"share {shared:,} of their {_measured(QUICK):,} measured samples" in done.stderr


def test_a_scenario_recorded_as_skipped_has_no_measured_sample(tmp_path: Path) -> None:
    """R20-5: meta.json's `skipped` was never checked against the samples: the report printed
    a scenario's rows and, under them, that the kernel had refused it."""
    copy = _copy(QUICK, tmp_path / "copy", lambda records: records, host=None)
    meta = json.loads((copy / "meta.json").read_text())
    name = meta["scenarios"][0]["name"]
    meta["skipped"] = [{"scenario": name, "reason": "the kernel refused it: EINVAL"}]
    (copy / "meta.json").write_text(json.dumps(meta))
    done = faultbench("report", copy, "--no-figures", "--out", tmp_path / "out", check=False)
    assert done.returncode == 2 and not (tmp_path / "out").exists()
    assert one_line(done.stderr) == (
        f"faultbench report: {copy / 'samples.jsonl'}: has measured samples of scenario "
        f"{name}, which its meta.json records as skipped (not measured): the two files are "
        "from different runs")
    # the control: a knob axis the run could not apply, which no sample names, is a note
    meta["skipped"] = [{"scenario": "knob axis vm.nonexistent", "reason": "no such sysctl"}]
    (copy / "meta.json").write_text(json.dumps(meta))
    done = faultbench("report", copy, "--no-figures", "--out", tmp_path / "out")
    assert "skipped knob axis vm.nonexistent: no such sysctl" in done.stdout
