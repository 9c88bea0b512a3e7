"""`faultbench compare` on real runs: width, formats, the stated test, A/A, refusals."""

from __future__ import annotations

import csv
import io
import json
import re
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
from groups import KERNELS_RUN, SWEEP_RUN
from scipy import stats

import faultbench as fb
from faultbench._version import __version__
from faultbench.analysis.aa import aa_tables

# Shipped reference runs (results/): real data, the same on every machine.
QUICK = Path(__file__).parent.parent / "results" / "native-quick"
BREAK_EVEN = Path(__file__).parent.parent / "results" / "native-break-even"


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    return native_runs(tmp_path_factory)


def _csv(*args: str | Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(faultbench("compare", *args, "--format", "csv").stdout)))


def test_two_runs_text_fits_72_columns(runs: Runs) -> None:
    text = faultbench("compare", runs.tiny, runs.tiny2).stdout
    assert not width_ok(text)
    words = re.sub(r"(\w)- (\w)", r"\1-\2", " ".join(text.split()))  # Mann-\n Whitney
    assert "Mann-Whitney U on per-round medians: rounds as units" in words
    assert "Holm 1979" in words and "Welch" not in words
    assert "Two separate runs: the test knows only the spread within each run" in words
    assert "seq uffd=wp" in text
    # 8 rounds of 1 mapper, and of 2 later mappers: n counts rounds, samples beside
    # labels too long for one line are grouped under their common part, one row a line
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


def test_a_a_tables_mark_anything_at_most_about_five_percent(runs: Runs) -> None:
    """Holm bounds the chance that a table marks *any* row: the per-table rate is what an
    A/A measures, over many tables. Here 40, from one run's two directories of one
    filesystem, each round's two labels swapped at random (a real difference between the
    directories cancels)."""
    df = fb.load(runs.tiny)
    files = df[df["backing"] == "file"]
    keys = ["pattern", "map", "mappers", "role"]
    tables = aa_tables(files, keys, "ns_per_page", tables=40, seed=1, swap="dir")
    assert all(len(t) == 30 and (t["unit"] == "round").all() for t in tables)
    assert all((t["base_units"] == 8).all() and (t["new_units"] == 8).all() for t in tables)
    marked = sum(bool(t["significant"].any()) for t in tables)
    # a table-level 5% test: implausible only when P(Binomial(40, 0.05) >= marked) < 0.1%
    assert stats.binom.sf(marked - 1, 40, 0.05) > 0.001, f"{marked} of 40 tables marked"
    # the raw p-values, before Holm: about 5% below 0.05 (fewer: ties make U conservative)
    raw = [p for t in tables for p in t["p"]]
    assert len(raw) == 1200 and sum(p < 0.05 for p in raw) / len(raw) < 0.10
    # and no table is blind: each row could find a change of some size
    assert all(np_finite(t["detect"]) for t in tables)


def np_finite(values) -> bool:
    return bool(((values > 1) & (values < float("inf"))).all())


def test_a_a_of_the_shipped_break_even_run() -> None:
    """The shipped 25-round run split into 12 vs 13 rounds at random, 40 times."""
    df = fb.load(BREAK_EVEN)
    tables = aa_tables(df, ["pattern", "uffd", "populate", "role"], "ns_per_page",
                       tables=40, seed=2)
    assert {len(t) for t in tables} == {28}
    marked = sum(bool(t["significant"].any()) for t in tables)
    assert stats.binom.sf(marked - 1, 40, 0.05) > 0.001, f"{marked} of 40 tables marked"


def test_a_run_compared_with_itself_is_refused(runs: Runs) -> None:
    for args in ((runs.tiny, runs.tiny), (f"{runs.tiny}:none", f"{runs.tiny}:none", "--by",
                                          "uffd"),
                 (runs.tiny, Path(str(runs.tiny) + "/"))):
        result = faultbench("compare", *args, check=False)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.count("\n") == 1 and "same samples" in result.stderr


def test_change_is_the_estimate_of_its_interval_and_medians_are_labelled() -> None:
    rows = _csv(f"{QUICK}:none", f"{QUICK}:wp", "--by", "uffd")
    text = faultbench("compare", f"{QUICK}:none", f"{QUICK}:wp", "--by", "uffd").stdout
    words = " ".join(text.split())
    assert "medians of the per-round values" in words and "Hodges-Lehmann shift" in words
    for row in rows:
        low, change, high = (float(row[k]) for k in ("ci_lo_pct", "change_pct", "ci_hi_pct"))
        assert low <= change <= high
    # the HL shift is not the ratio of the medians printed beside it
    assert any(abs(float(r["change_pct"]) - 100 * (float(r["median_ratio"]) - 1)) > 1
               for r in rows)


def test_detect_column_and_the_blind_table_warning(runs: Runs) -> None:
    text = faultbench("compare", f"{QUICK}:none", f"{QUICK}:wp", "--by", "uffd").stdout
    head = next(line for line in text.splitlines() if line.startswith("scenario"))
    assert "detect" in head.split() and "NOTE: " not in text
    for row in _csv(f"{QUICK}:none", f"{QUICK}:wp", "--by", "uffd"):
        assert 0 < float(row["detect_pct"]) < 100
    # 8 vs 8 rounds over 30 rows of files: the smallest p passes Holm, but barely
    blind = faultbench("compare", f"{runs.tiny}:{runs.dir_a}", f"{runs.tiny}:{runs.dir_b}",
                       "--by", "dir").stdout
    rows = _csv(f"{runs.tiny}:{runs.dir_a}", f"{runs.tiny}:{runs.dir_b}", "--by", "dir")
    big = [float(r["detect_pct"]) >= 100 for r in rows]
    assert ("NOTE: " in blind) == any(big)
    if all(big):  # round 45 m3: "below 2x" only where some change could pass
        never = all(float(r["detect_pct"]) == float("inf") for r in rows)
        assert ("cannot detect any change: too few units" if never else
                "cannot detect a change below 2x in any tested row") in " ".join(blind.split())


def test_exact_rows_are_marked_exact_without_a_test() -> None:
    args = (f"{QUICK}:none", f"{QUICK}:wp", "--by", "uffd", "--metric", "faults_per_page")
    text = faultbench("compare", *args).stdout
    rows = {row["label"]: row for row in _csv(*args)}
    # sparse reads fault on every page either way; uffd-wp seq faults on every page
    assert rows["sparse"]["exact"] == "True" and rows["sparse"]["p"] == ""
    assert rows["sparse"]["mark"] == "="
    words = " ".join(text.split())
    assert "exact" in table_row(text, "sparse") and "exact: every sample" in words
    # fault counts: no hit column (preemption cannot change them), one precision
    head = next(line for line in text.splitlines() if line.startswith("scenario"))
    assert "hit%" not in head and "1.0000" in table_row(text, "sparse")


def test_natural_stride_order_and_units() -> None:
    text = faultbench("compare", f"{BREAK_EVEN}:none", f"{BREAK_EVEN}:wp", "--by",
                      "uffd").stdout
    strides = [line.split()[0] for line in text.splitlines() if line.startswith("stride:")]
    assert strides == [f"stride:{n}" for n in (1, 2, 4, 8, 16, 32, 64)]
    assert text.startswith("ns/page touched: ")


def test_brief_footer_is_one_line_of_method() -> None:
    full = faultbench("compare", f"{QUICK}:none", f"{QUICK}:wp", "--by", "uffd").stdout
    brief = faultbench("compare", f"{QUICK}:none", f"{QUICK}:wp", "--by", "uffd",
                       "--brief").stdout
    after = brief.split("\n")[brief.split("\n").index(next(
        line for line in brief.split("\n") if line.startswith("sparse"))) + 1:]
    method = " ".join(line for line in after if line)
    assert len(method) <= 2 * 72 and "Mann-Whitney U" in method and "Holm" in method
    assert len(brief.splitlines()) < len(full.splitlines()) - 8


def test_lkp_format_shows_every_metric_with_its_spread() -> None:
    text = faultbench("compare", f"{QUICK}:none", f"{QUICK}:wp", "--by", "uffd", "--format",
                      "lkp").stdout
    lines = text.splitlines()
    assert any(line.strip() == "%stddev     %change         %stddev" for line in lines)
    for metric in ("ns/page", "faults/page", "mapped/page", "munmap_ns/page"):
        assert any(line.endswith(f"  sparse.{metric}") for line in lines), metric
    faults = next(line for line in lines if line.endswith("seq.faults/page"))
    assert "\u00b1" not in faults and "+1500%" in faults  # 1 fault per 16 pages, then each
    times = next(line for line in lines if line.endswith("seq.ns/page"))
    assert "\u00b1" in times
    df = fb.load(QUICK)
    keep = df["ok"] & (df["pattern"] == "seq") & (df["mappers"] == 1) & (df["uffd"] == "none")
    rounds = df[keep].groupby("round")["ns_per_page"].median()
    assert times.split()[0] == f"{rounds.median():.0f}"  # the text table's base median


def test_json_has_the_rows_and_footer_of_the_text() -> None:
    args = (f"{QUICK}:none", f"{QUICK}:wp", "--by", "uffd")
    data = json.loads(faultbench("compare", *args, "--format", "json").stdout)
    rows = _csv(*args)
    assert data["unit"] == "ns/page" and data["tested"] == len(rows) == len(data["rows"])
    for mine, theirs in zip(data["rows"], rows, strict=True):
        assert mine["label"] == theirs["label"]
        assert mine["change_pct"] == pytest.approx(float(theirs["change_pct"]))
        assert mine["base"]["units"] == int(theirs["base_units"])
        assert set(mine["base"]) >= {"median", "gmean", "sd_pct", "dropped", "samples"}
    assert "Hodges-Lehmann" in data["footer"]


def test_markdown(runs: Runs) -> None:
    text = faultbench("compare", runs.tiny, runs.tiny2, "--format", "markdown").stdout
    assert "| scenario | change | 95% CI | detect | n | base med | new med |" in text
    assert "Mann-Whitney" in re.sub(r"(\w)-\s+(\w)", r"\1-\2", text)


@KERNELS_RUN
def test_two_kernels_of_one_run_boots_as_units(tmp_path_factory: pytest.TempPathFactory
                                              ) -> None:
    run = kernels_run(tmp_path_factory)
    implied = faultbench("compare", run, "--by", "kernel").stdout
    assert implied == faultbench("compare", f"{run}:a", f"{run}:b", "--by", "kernel").stdout
    assert not width_ok(implied)
    words = " ".join(implied.split())
    assert "base kernel=a, new kernel=b (Linux 6." in words and "plane tcg-guest" in words
    assert "Welch t-test on log per-boot medians" in words and "Aarts et al. 2014" in words
    assert "Two separate runs" not in words
    rows = _csv(run, "--by", "kernel")
    df = fb.load(run)
    valid = df[df["ok"]]
    assert len(rows) == 4
    for row in rows:
        # on the instruction clock a row can be exactly the same in every sample: no test
        assert row["unit"] == "boot" and row["method"].startswith(("Welch", "exact"))
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
    assert head.split()[-1] == "hit%"
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


@SWEEP_RUN
def test_planes_are_not_mixed(runs: Runs, tmp_path_factory: pytest.TempPathFactory) -> None:
    sweep = tcg_run(tmp_path_factory)
    result = faultbench("compare", runs.tiny, sweep, check=False)
    assert result.returncode == 2
    assert "native" in result.stderr and "tcg-icount" in result.stderr
    assert "--force" in result.stderr
    forced = faultbench("compare", runs.tiny, sweep, "--force", check=False)
    assert "not comparable" not in forced.stderr


@SWEEP_RUN
def test_by_fault_around_bytes_takes_sizes_and_lists_values_numerically(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    sweep = tcg_run(tmp_path_factory)  # fault_around_bytes 4096, 16384, 65536 in a guest
    by = ("--by", "fault_around_bytes", "--metric", "faults_per_page")
    sizes = _csv(f"{sweep}:4K", f"{sweep}:64K", *by)
    assert sizes == _csv(f"{sweep}:4096", f"{sweep}:65536", *by) and len(sizes) == 2
    # the knob read back: 64K maps 16 pages a fault where 4K maps one
    seq = next(row for row in sizes if row["pattern"] == "seq")
    assert float(seq["change_pct"]) < -90
    wrong = faultbench("compare", f"{sweep}:4K", f"{sweep}:32K", *by, check=False)
    assert wrong.returncode == 2 and "(values: 4K, 16K, 64K)" in wrong.stderr


def test_runs_of_a_forked_and_an_exec_mapper_harness_say_so(runs: Runs, tmp_path: Path) -> None:
    """A run made before 0.4 (mappers forked from Python) against one made since (mappers
    exec the mapper program): the note says the harness alone moves counts."""
    older = tmp_path / "older"
    older.mkdir()
    for name in ("samples.jsonl", "meta.json"):
        (older / name).write_bytes((runs.tiny2 / name).read_bytes())
    meta = json.loads((older / "meta.json").read_text())
    meta["faultbench_version"] = "0.3.0"
    (older / "meta.json").write_text(json.dumps(meta))
    words = " ".join(faultbench("compare", older, runs.tiny).stdout.split())
    release = ".".join(__version__.split(".")[:2])  # NEW: this faultbench
    assert f"BASE was measured by faultbench 0.3.0 and NEW by {release}" in words
    assert "docs/overhead.md" in words
    same_harness = " ".join(faultbench("compare", runs.tiny2, runs.tiny).stdout.split())
    assert "was measured by faultbench" not in same_harness
