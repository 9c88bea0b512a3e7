"""Round sixteen, what `compare` and `report` leave out, and what `report` holds: rows only
one side of a comparison has vanished from it without a word, and a finished run missing
a scenario's samples was reported without it (R16-3); profiles.jsonl made `report` hold a
row per stack, ~34 times the file, whose cap is 1 GiB (R16-4). Copies of the shipped
results, edited as anyone can edit a run directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from analysis_runs import measured_again
from test_hardening_round4_input import fb
from test_hardening_round11 import _records, _rewritten, _words

from faultbench.analysis import profile
from faultbench.analysis.profile import read_profiles
from faultbench.measurement.rundir.checks import MAX_PROFILE_STACKS

RESULTS = Path(__file__).resolve().parent.parent / "results"
WP_SEQ = "memfd,64M,shared,read,warm,seq,uffd=wp,thp.shmem_enabled=never"


def _without_seq_wp(to: Path) -> Path:
    """native-quick (finished; 12 scenarios in meta.json) with no sample of WP_SEQ."""
    records = [r for r in _records(RESULTS / "native-quick") if r["scenario"] != WP_SEQ]
    return _rewritten(RESULTS / "native-quick", to, records)


def test_compare_names_the_rows_only_one_side_has(tmp_path: Path) -> None:
    """R16-3: the row NEW alone has is named in the text's notes and in --format json."""
    partial = _without_seq_wp(tmp_path / "partial")
    apart = measured_again(RESULTS / "native-quick", tmp_path / "apart")  # not a copy
    done = fb("compare", partial, apart)
    assert done.returncode == 0, done.stderr
    assert "NOTE: 1 row only in NEW (seq uffd=wp) is not compared" in _words(done.stdout)
    done = fb("compare", apart, partial, "--format", "json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["only_in"] == {"BASE": ["seq uffd=wp"], "NEW": []}
    assert "1 row only in BASE (seq uffd=wp)" in shown["footer"]


def test_compare_by_a_column_names_the_row_one_value_lacks(tmp_path: Path) -> None:
    """R16-3: with --by, `seq` measured at uffd=none but not at uffd=wp is named: the
    constants line (`random`) describes the rows compared, not the run."""
    partial = _without_seq_wp(tmp_path / "partial")
    done = fb("compare", f"{partial}:none", f"{partial}:wp", "--by", "uffd")
    assert done.returncode == 0, done.stderr
    words = _words(done.stdout)
    assert "NOTE: 1 row only in BASE (seq) is not compared" in words
    assert "only in NEW" not in words


def test_compare_of_the_same_rows_has_no_such_note() -> None:
    """R16-3: nothing is said when both sides have every row."""
    done = fb("compare", RESULTS / "native-quick:none", RESULTS / "native-quick:wp",
              "--by", "uffd", "--format", "json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["only_in"] == {"BASE": [], "NEW": []} and "only in" not in shown["footer"]


def test_report_of_a_finished_run_names_scenarios_without_a_sample(tmp_path: Path) -> None:
    """R16-3: meta.json says finished and lists 12 scenarios; one has no sample left."""
    partial = _without_seq_wp(tmp_path / "partial")
    done = fb("report", "--no-figures", "--out", tmp_path / "out", partial)
    assert done.returncode == 0, done.stderr
    assert (f"NOTE: 1 of meta.json's 12 scenarios has no valid sample and no row ({WP_SEQ}); "
            "faultbench run --resume DIR measures the samples missing.") in _words(done.stdout)


def _profiles(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "profiles.jsonl").read_text().splitlines()]


def test_a_profile_with_more_distinct_stacks_than_any_measured_is_skipped(
        tmp_path: Path) -> None:
    """R16-4: a profile line of 100000 distinct stacks made report hold a row for each
    (1.26 GB and 28 s for eight such lines); one past the cap is skipped and counted."""
    copy = tmp_path / "run"
    shutil.copytree(RESULTS / "native-profile", copy)
    lines = _profiles(copy)
    stacks = {f"asm_exc_page_fault;exc_page_fault;f{i}": 1 for i in range(MAX_PROFILE_STACKS + 1)}
    lines[0]["loop"].update(stacks=stacks, samples=len(stacks), unresolved=0, user=0)
    (copy / "profiles.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    records, bad = read_profiles(copy, json.loads((copy / "meta.json").read_text()))
    assert (len(records), bad) == (len(lines) - 1, 1)
    done = fb("report", "--no-figures", "--out", tmp_path / "out", copy)
    assert done.returncode == 0, done.stderr
    assert "1 line(s) of profiles.jsonl skipped" in _words(done.stdout)


def test_profiles_past_the_stacks_a_report_holds_are_skipped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """R16-4: many lines each under the per-line cap still add up; lines past
    MAX_STACK_ROWS in all are skipped (lowered here: the real bound is 500000 rows)."""
    meta = json.loads((RESULTS / "native-profile" / "meta.json").read_text())
    records, bad = read_profiles(RESULTS / "native-profile", meta)
    assert bad == 0
    first = sum(len(r[p]["stacks"]) for r in records[:3] for p in ("loop", "munmap") if r.get(p))
    monkeypatch.setattr(profile, "MAX_STACK_ROWS", first)
    kept, bad = read_profiles(RESULTS / "native-profile", meta)
    assert kept == records[:3] and bad == len(records) - 3
