"""Round sixteen, what `compare` and `report` leave out, and what `report` holds: rows only
one side of a comparison has vanished from it without a word, and a finished run missing
a scenario's samples was reported without it (R16-3); profiles.jsonl made `report` hold a
row per stack, ~34 times the file, whose cap is 1 GiB (R16-4). Copies of the shipped
results, edited as anyone can edit a run directory."""

from __future__ import annotations

import json
from pathlib import Path

from test_hardening_round4_input import fb
from test_hardening_round11 import _records, _rewritten, _words

RESULTS = Path(__file__).resolve().parent.parent / "results"
WP_SEQ = "memfd,64M,shared,read,warm,seq,uffd=wp,thp.shmem_enabled=never"


def _without_seq_wp(to: Path) -> Path:
    """native-quick (finished; 12 scenarios in meta.json) with no sample of WP_SEQ."""
    records = [r for r in _records(RESULTS / "native-quick") if r["scenario"] != WP_SEQ]
    return _rewritten(RESULTS / "native-quick", to, records)


def test_compare_names_the_rows_only_one_side_has(tmp_path: Path) -> None:
    """R16-3: the row NEW alone has is named in the text's notes and in --format json."""
    partial = _without_seq_wp(tmp_path / "partial")
    done = fb("compare", partial, RESULTS / "native-quick")
    assert done.returncode == 0, done.stderr
    assert "NOTE: 1 row only in NEW (seq uffd=wp) is not compared" in _words(done.stdout)
    done = fb("compare", RESULTS / "native-quick", partial, "--format", "json")
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
