"""`faultbench compare` on real runs: width, formats, the stated test, A/A, refusals."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from analysis_runs import Runs, faultbench, native_runs, tcg_run, width_ok
from scipy import stats

import faultbench as fb


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    return native_runs(tmp_path_factory)


def _csv(*args: str | Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(faultbench("compare", *args, "--format", "csv").stdout)))


def test_two_runs_text_fits_72_columns(runs: Runs) -> None:
    text = faultbench("compare", runs.tiny, runs.tiny2).stdout
    assert not width_ok(text)
    words = " ".join(text.split())
    assert "Mann-Whitney U, two-sided" in words
    assert "samples per row: base 8, new 8" in words
    assert "Two separate runs: the test knows only the spread within each run" in words
    assert "seq uffd=wp" in text


def test_marks_come_from_mann_whitney_on_the_samples(runs: Runs) -> None:
    rows = _csv(runs.tiny, runs.tiny2)
    base, new = fb.load(runs.tiny), fb.load(runs.tiny2)
    base, new = base[base["ok"]], new[new["ok"]]
    assert len(rows) > 20
    for row in rows:
        def pick(df, row=row):
            keep = df["mappers"].astype(str) == row["mappers"]
            for column in ("backing", "pattern", "uffd", "uffd_mappers", "map", "role"):
                keep &= df[column].astype(str) == row[column]
            if row["dir"]:
                keep &= df["dir"] == row["dir"]
            return df.loc[keep, "ns_per_page"]

        expected = stats.mannwhitneyu(pick(base), pick(new), alternative="two-sided").pvalue
        assert float(row["p"]) == pytest.approx(expected)
        assert (row["significant"] == "True") == (expected < 0.05)


def test_by_spec_field_within_one_run(runs: Runs) -> None:
    text = faultbench("compare", f"{runs.tiny}:none", f"{runs.tiny}:wp", "--by", "uffd").stdout
    assert not width_ok(text) and "Two separate runs" not in " ".join(text.split())
    rows = _csv(f"{runs.tiny}:none", f"{runs.tiny}:wp", "--by", "uffd")
    by_pattern = {row["label"]: row for row in rows}
    # without fault-around (uffd-wp) sequential reads fault on every page: slower, surely
    for label in ("seq", "seq x2 reg=later [later]"):
        row = by_pattern[label]
        assert row["significant"] == "True" and float(row["change_pct"]) > 100, label
    # the first mapper is not registered: it keeps fault-around whatever the later one does
    first = by_pattern["seq x2 reg=later [first]"]
    assert abs(float(first["change_pct"])) < 100


def test_a_a_flags_about_five_percent(runs: Runs) -> None:
    """The same configurations, interleaved in one run (two directories of one filesystem)."""
    rows = _csv(f"{runs.tiny}:{runs.dir_a}", f"{runs.tiny}:{runs.dir_b}", "--by", "dir")
    flagged = sum(row["significant"] == "True" for row in rows)
    assert len(rows) == 30
    # a test at 5% flags Binomial(rows, 0.05) rows when nothing changed; fail only when the
    # count is implausible for that (p < 0.1%), not on the 1-in-20 run that flags a few
    assert stats.binom.sf(flagged - 1, len(rows), 0.05) > 0.001, f"{flagged} of {len(rows)}"


def test_markdown(runs: Runs) -> None:
    text = faultbench("compare", runs.tiny, runs.tiny2, "--format", "markdown").stdout
    assert "| scenario | base |" in text and "Mann-Whitney" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("{tiny}", "{other}"), "no scenario in common"),
        (("{tiny}:4096", "{tiny}:65536", "--by", "fault_arund_bytes"), "unknown knob"),
        (("{tiny}", "{tiny}", "--by", "uffd"), "give RUN_DIR:VALUE"),
        (("{tiny}:none", "{tiny}:nothing", "--by", "uffd"), "no samples with uffd=nothing"),
        (("{tiny}", "{missing}"), "not a directory"),
        (("{tiny}", "{tiny}", "--metric", "speed"), "unknown --metric"),
    ],
)
def test_bad_input_one_line(runs: Runs, tmp_path: Path, args: tuple[str, ...],
                            message: str) -> None:
    paths = {"tiny": runs.tiny, "other": runs.other, "missing": tmp_path / "nope"}
    result = faultbench("compare", *(a.format(**paths) for a in args), check=False)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_planes_are_not_mixed(runs: Runs, tmp_path_factory: pytest.TempPathFactory) -> None:
    sweep = tcg_run(tmp_path_factory)
    result = faultbench("compare", runs.tiny, sweep, check=False)
    assert result.returncode == 2
    assert "native" in result.stderr and "tcg-guest" in result.stderr
    assert "--force" in result.stderr
    forced = faultbench("compare", runs.tiny, sweep, "--force", check=False)
    assert "not comparable" not in forced.stderr
