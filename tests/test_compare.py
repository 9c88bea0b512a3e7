"""`faultbench compare` on real runs: width, formats, the stated test, A/A, refusals."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from analysis_runs import (
    Runs,
    faultbench,
    hogged_run,
    kernels_run,
    native_runs,
    table_row,
    tcg_run,
    width_ok,
)
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
    assert "Mann-Whitney U on per-round medians: rounds as units" in words
    assert "Holm 1979" in words and "Welch" not in words
    assert "Two separate runs: the test knows only the spread within each run" in words
    assert "seq uffd=wp" in text
    # 8 rounds of 1 mapper, and of 2 later mappers: n counts rounds, samples beside
    assert "8r/16" in table_row(text, "memfd shared seq uffd=none x3 [later]")
    assert "8r/8" in table_row(text, "memfd shared seq uffd=wp")


def test_marks_come_from_mann_whitney_on_round_medians_holm_adjusted(runs: Runs) -> None:
    rows = _csv(runs.tiny, runs.tiny2)
    base, new = fb.load(runs.tiny), fb.load(runs.tiny2)
    base, new = base[base["ok"]], new[new["ok"]]
    assert len(rows) > 20
    raw = []
    for row in rows:
        def pick(df, row=row):
            keep = df["mappers"].astype(str) == row["mappers"]
            for column in ("backing", "pattern", "uffd", "uffd_mappers", "map", "role"):
                keep &= df[column].astype(str) == row[column]
            if row["dir"]:
                keep &= df["dir"] == row["dir"]
            return df[keep].groupby("round")["ns_per_page"].median()

        b, n = pick(base), pick(new)
        assert (int(row["base_units"]), int(row["new_units"])) == (len(b), len(n)) == (8, 8)
        assert row["unit"] == "round" and row["method"].startswith("Mann-Whitney")
        # exact without ties, as documented; the tie-corrected normal approximation with them
        method = "exact" if len(set(b) | set(n)) == len(b) + len(n) else "asymptotic"
        expected = stats.mannwhitneyu(n, b, alternative="two-sided", method=method).pvalue
        assert float(row["p"]) == pytest.approx(expected)
        raw.append(expected)
    # Holm, computed here: the k-th smallest p times (m - k + 1), running maximum, capped at 1
    order = sorted(range(len(raw)), key=lambda i: raw[i])
    adjusted, running = [0.0] * len(raw), 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (len(raw) - k) * raw[i]))
        adjusted[i] = running
    for row, p_adj in zip(rows, adjusted, strict=True):
        assert float(row["p_adj"]) == pytest.approx(p_adj)
        assert (row["significant"] == "True") == (p_adj < 0.05)


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
    assert len(rows) == 30 and {row["unit"] for row in rows} == {"round"}
    # a test at 5% flags Binomial(rows, 0.05) rows when nothing changed; fail only when the
    # count is implausible for that (p < 0.1%), not on the 1-in-20 run that flags a few
    assert stats.binom.sf(flagged - 1, len(rows), 0.05) > 0.001, f"{flagged} of {len(rows)}"


def test_markdown(runs: Runs) -> None:
    text = faultbench("compare", runs.tiny, runs.tiny2, "--format", "markdown").stdout
    assert "| scenario | base | new | change | 95% CI | n |" in text and "Mann-Whitney" in text


def test_two_kernels_of_one_run_boots_as_units(tmp_path_factory: pytest.TempPathFactory
                                              ) -> None:
    run = kernels_run(tmp_path_factory)
    implied = faultbench("compare", run, "--by", "kernel").stdout
    assert implied == faultbench("compare", f"{run}:a", f"{run}:b", "--by", "kernel").stdout
    assert not width_ok(implied)
    words = " ".join(implied.split())
    assert "base kernel=a, new kernel=b (Linux 6." in words and "plane tcg-icount" in words
    assert "Welch t-test on log per-boot medians" in words and "Aarts et al. 2014" in words
    assert "Two separate runs" not in words
    rows = _csv(run, "--by", "kernel")
    df = fb.load(run)
    valid = df[df["ok"]]
    assert len(rows) == 4
    for row in rows:
        assert row["unit"] == "boot" and row["method"].startswith("Welch")
        assert (row["base_boots"], row["base_units"], row["new_boots"]) == ("2", "2", "2")
        keep = (valid["pattern"] == row["pattern"]) & (valid["uffd"] == row["uffd"])
        per_kernel = valid[keep].groupby("kernel").size()
        assert (int(row["base_samples"]), int(row["new_samples"])) == (
            per_kernel["a"], per_kernel["b"])
        # the boot is the unit: its value is the median of its round medians
        boots = valid[keep & (valid["kernel"] == "a")].groupby("boot")["ns_per_page"].median()
        assert float(row["base_median"]) == pytest.approx(boots.median())
        assert f"2b/{row['base_samples']}" in table_row(implied, row["label"])
    wrong = faultbench("compare", f"{run}:a", f"{run}:c", "--by", "kernel", check=False)
    assert wrong.returncode == 2 and "no samples with kernel=c (values: a, b)" in wrong.stderr


def test_hits_are_flagged_and_strict_leaves_them_out(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    run = hogged_run(tmp_path_factory)  # a CPU hog shared the worker's CPU: loops preempted
    df = fb.load(run)
    args = (f"{run}:none", f"{run}:wp", "--by", "uffd")
    counted = faultbench("compare", *args).stdout
    hit = df[df["interfered"]]
    assert len(hit)
    words = " ".join(counted.split())
    assert f"{len(hit)} of {int(df['ok'].sum())} valid samples" in words
    assert "They are included; --strict excludes them" in words
    head = next(line for line in counted.splitlines() if line.startswith("scenario "))
    assert head.split()[-2:] == ["n", "hit"]
    assert sum(int(row["interfered"]) for row in _csv(*args)) == len(hit)
    strict = faultbench("compare", *args, "--strict").stdout
    assert "--strict: they are excluded" in " ".join(strict.split())
    rows = _csv(*args, "--strict")
    kept = df[df["ok"] & ~df["interfered"]].groupby(["size", "uffd"]).size()
    # 1M loops take a tenth of a millisecond: the hog rarely hits all four of a row. A row
    # whose every sample on one side was hit is gone.
    assert rows
    for row in rows:
        size = int(row["size"])
        assert (int(row["base_samples"]), int(row["new_samples"])) == (
            kept[(size, "none")], kept[(size, "wp")])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("{tiny}", "{other}"), "no scenario in common"),
        (("{tiny}:4096", "{tiny}:65536", "--by", "fault_arund_bytes"), "unknown knob"),
        (("{tiny}", "{tiny}", "--by", "uffd"), "give RUN_DIR:VALUE"),
        (("{tiny}",), "give BASE and NEW"),
        (("{tiny}", "--by", "kernel"), "needs a run of two kernels (this one has: none)"),
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
    assert "native" in result.stderr and "tcg-icount" in result.stderr
    assert "--force" in result.stderr
    forced = faultbench("compare", runs.tiny, sweep, "--force", check=False)
    assert "not comparable" not in forced.stderr
