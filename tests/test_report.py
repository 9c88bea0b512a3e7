"""`faultbench report` and the runner's summary, on real runs (native, and TCG for a sweep)."""

from __future__ import annotations

import os
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

import faultbench as fb
from faultbench.analysis.summary import summary


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    return native_runs(tmp_path_factory)


@pytest.fixture(scope="session")
def kernels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return kernels_run(tmp_path_factory)


@pytest.fixture(scope="session")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tcg_run(tmp_path_factory)


@pytest.fixture(scope="module")
def tiny_report(runs: Runs) -> tuple[str, str]:
    """`faultbench report` of the tiny run, figures and all (seconds to draw), made once for
    the tests of what it writes: (its stdout, the report.txt it wrote)."""
    result = faultbench("report", runs.tiny)
    return result.stdout, (runs.tiny / "report.txt").read_text()


def test_report_writes_tables_and_figures(runs: Runs, tiny_report: tuple[str, str]) -> None:
    stdout, text = tiny_report
    assert text in stdout
    assert not width_ok(text)
    assert os.uname().release in text and "plane native" in " ".join(text.split())
    assert "95% CI: distribution-free order-statistic" in text
    # n counts rounds: the two later mappers of a 3-mapper round are one value, not two
    meta = fb.load(runs.tiny).attrs["meta"]["tiny"]
    later = table_row(text, "memfd shared seq uffd=none x3 [later]")
    assert later[5] == str(meta["workload"]["repetitions"]) == "8"  # ns, CI, flt, map, unmap, n
    # every valid scenario is a row: the wp rows show one fault per page
    for pattern in ("seq", "random", "sparse"):
        flt = table_row(text, f"memfd shared {pattern} uffd=wp")[2]
        assert float(flt) == pytest.approx(1, rel=0.01), pattern
    figures = runs.tiny / "figures"
    for name in ("uffd-modes", "mappers", "sparse", "distributions"):
        for suffix in (".png", ".svg"):
            assert (figures / f"{name}{suffix}").stat().st_size > 10_000
        svg = (figures / f"{name}.svg").read_text()
        assert os.uname().release in svg and "ns per page touched" in svg
        assert "EMULATED" not in svg
    # sparse.png says fault-around on or off from the pages each fault mapped, not settings
    sparse = (figures / "sparse.svg").read_text()
    assert "uffd=wp (fa off: 1 mapped/fault)" in sparse
    assert "uffd=none (fa on: 16 mapped/fault)" in sparse


def test_summary_shows_fault_around_as_measured(runs: Runs) -> None:
    """Pages mapped per fault, from the samples, not "on/off" from the settings: a kernel
    that behaves otherwise cannot make the label lie."""
    text = summary(runs.tiny)
    assert not width_ok(text)
    lines = text.splitlines()
    wp = table_row(text, "memfd shared seq uffd=wp")
    none = table_row(text, "memfd shared seq uffd=none")
    assert lines[0].startswith("Summary") and "map/flt" in text and " fa " not in text
    df = fb.load(runs.tiny)
    seq = df[df["ok"] & (df["scenario"].str.contains("seq")) & (df["mappers"] == 1)
             & (df["backing"] == "memfd") & (df["uffd"] == "none")]
    assert float(none[0]) == pytest.approx(
        (seq["pages_mapped"] / (seq["faults_per_page"] * seq["pages_touched"])).median(),
        rel=0.01) and float(none[0]) > 10
    assert float(wp[0]) == 1 and float(wp[1]) > 10 * float(none[1])


def test_report_json_has_every_column_of_the_table(runs: Runs) -> None:
    import json

    data = json.loads(faultbench("report", runs.tiny, "--json").stdout)
    text = faultbench("report", runs.tiny, "--no-figures").stdout
    assert data["time_unit"] == "ns" and data["plane"] == "native"
    by_label = {s["label"]: s for s in data["scenarios"]}
    row = by_label["memfd shared seq uffd=wp"]
    assert row["faults_per_page"] == pytest.approx(1) and row["mapped_per_touched"] == 1
    assert row["munmap_ns_per_page"] > 0 and row["n"] == 8 and row["valid_samples"] == 8
    assert 0 <= row["hit_samples"] <= row["valid_samples"]
    assert row["spec"]["uffd"] == "wp"
    cells = table_row(text, "memfd shared seq uffd=wp")
    assert cells[0] == f"{row['median']:.0f}"
    assert "per page touched: ns/page" in text


@SWEEP_RUN
def test_sweep_report_in_a_booted_kernel(sweep: Path) -> None:
    faultbench("report", sweep)
    text = (sweep / "report.txt").read_text()
    assert not width_ok(text)
    words = " ".join(text.split())  # the header wraps at 72 columns
    assert "tcg-icount (instruction clock" in words and "QEMU instruction counts" in words
    assert "Sweep of fault_around_bytes" in text and "fa=4K" in text
    df = fb.load(sweep)
    ok = df[df["ok"] & (df["pattern"] == "seq")]
    faults = ok.groupby("fault_around_bytes")["faults_per_page"].median()
    # the knob read back in the guest: 16K maps 4 pages a fault, 64K maps 16
    assert faults[4096] == pytest.approx(1, rel=0.01)
    assert faults[16384] == pytest.approx(1 / 4, rel=0.05)
    assert faults[65536] == pytest.approx(1 / 16, rel=0.05)
    seq_4k = [line for line in text.splitlines() if line.startswith("4K ")]
    assert seq_4k and all("+0.0%" in line for line in seq_4k)
    against_16k = faultbench("report", sweep, "--no-figures", "--baseline", "16K").stdout
    assert "against fault_around_bytes=16K" in " ".join(against_16k.split())
    assert all("+0.0%" in line for line in against_16k.splitlines() if line.startswith("16K "))
    wrong = faultbench("report", sweep, "--baseline", "3K", check=False)
    assert wrong.returncode == 2 and "not a value of fault_around_bytes" in wrong.stderr
    svg = (sweep / "figures" / "sweep-fault_around_bytes.svg").read_text()
    assert "INSTRUCTION CLOCK" in svg and "fault_around_bytes (bytes, log2)" in svg


def test_report_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    result = faultbench("report", tmp_path, check=False)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "not a faultbench run directory" in result.stderr
    (tmp_path / "samples.jsonl").write_text("")
    result = faultbench("report", tmp_path, check=False)
    assert result.returncode == 2 and "no samples" in result.stderr


@KERNELS_RUN
def test_booted_run_rows_per_kernel_with_boots_and_rounds(kernels: Path) -> None:
    meta = fb.load(kernels).attrs["meta"]["kernels"]
    sha = meta["kernels"][0]["sha256"][:8]
    release = meta["kernels"][0]["release"]
    faultbench("report", kernels)
    text = (kernels / "report.txt").read_text()
    assert not width_ok(text)
    words = " ".join(text.split())
    assert f"kernels: a ({release}, sha {sha}), b ({release}, sha {sha}); 2 boot(s) per " \
           "kernel" in words
    assert "n: boots (b) / rounds (r)" in words and "boot-to-boot variation" in words
    rows = [line.split() for line in text.splitlines() if re.match(r"[ab]: (seq|sparse) ", line)]
    # 4 scenarios per kernel; 2 boots x 2 rounds each (4 repetitions split over 2 boots)
    assert sorted(row[0] for row in rows) == ["a:"] * 4 + ["b:"] * 4
    assert all("2b/4r" in row for row in rows)
    # `faultbench run --kernel a=.. --kernel b=..` ends with this summary: kernels apart
    short = summary(kernels)
    assert len([line for line in short.splitlines() if line.startswith(("a: ", "b: "))]) == 8
    assert all(line.split()[-1] == "2b/4r" for line in short.splitlines()
               if line.startswith(("a: ", "b: ")))
    # 4 rounds per row: the CI is unknown, and the figure draws no bar and says why
    svg = (kernels / "figures" / "uffd-modes.svg").read_text()
    assert "no error bar: 95% CI unknown (n &lt; 6 rounds)" in svg
    # the A/B figure: one row per scenario, both kernels on it, log axes
    svg = (kernels / "figures" / "kernels.svg").read_text()
    assert "Kernels compared: a vs b" in svg and "%: b against a" in svg
    rows = re.findall(r">((?:seq|sparse) uffd=\w+)  [+-]\d+%<", svg)  # label, change
    assert len(rows) == len(set(rows)) == 4
    assert (kernels / "figures" / "kernels.png").stat().st_size < 300_000  # mail-sized


def test_known_cis_need_no_legend_note(runs: Runs, tiny_report: tuple[str, str]) -> None:
    for name in ("uffd-modes", "mappers", "sparse"):
        assert "CI unknown" not in (runs.tiny / "figures" / f"{name}.svg").read_text()


def test_a_cpu_hog_on_the_workers_cpu_is_flagged(tmp_path_factory: pytest.TempPathFactory
                                                 ) -> None:
    run = hogged_run(tmp_path_factory)
    df = fb.load(run)
    hit = df[df["interfered"]]
    # the hog shares CPU 0 with the worker: the scheduler preempts loops of milliseconds
    assert len(hit) and (hit["nivcsw"] > 0).all()
    assert not df.loc[df["ok"] & ~df["interfered"], "nivcsw"].gt(0).any()
    text = faultbench("report", run, "--no-figures").stdout
    words = " ".join(text.split())
    assert f"{len(hit)} of {int(df['ok'].sum())} valid samples" in words
    assert "They are included; --strict excludes them" in words
    rows = [line.split() for line in text.splitlines() if line.startswith("size=")]
    assert len(rows) == 4
    # the hit% column: the share of the row's valid samples interfered with, 0 for none
    shares = [int(row[8]) for row in rows]
    assert all(0 <= share <= 100 for share in shares) and any(shares)
    assert "hit%" in next(line for line in text.splitlines() if line.startswith("scenario"))
    strict = faultbench("report", run, "--no-figures", "--strict").stdout
    assert "--strict: they are excluded from every number above" in " ".join(strict.split())
    kept = df[df["ok"] & ~df["interfered"]]
    # one mapper: a round is one sample, so the n column sums to the samples kept
    assert sum(int(line.split()[7]) for line in strict.splitlines()
               if line.startswith("size=")) == len(kept)
