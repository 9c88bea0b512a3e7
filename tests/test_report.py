"""`faultbench report` and the runner's summary, on real runs (native, and TCG for a sweep)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from analysis_runs import Runs, faultbench, native_runs, tcg_run, width_ok

import faultbench as fb
from faultbench.analysis.report import summary


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    return native_runs(tmp_path_factory)


@pytest.fixture(scope="session")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tcg_run(tmp_path_factory)


def test_report_writes_tables_and_figures(runs: Runs) -> None:
    result = faultbench("report", runs.tiny)
    text = (runs.tiny / "report.txt").read_text()
    assert text in result.stdout
    assert not width_ok(text)
    assert os.uname().release in text and "plane native" in " ".join(text.split())
    assert "95% CI: distribution-free order-statistic" in text
    # every valid scenario is a row: the wp rows show one fault per page
    wp_rows = [line for line in text.splitlines()
               if re.match(r"(memfd shared \w+ uffd=wp) +\d", line)]
    assert wp_rows
    assert all(float(row.split()[-4]) == pytest.approx(1, rel=0.01) for row in wp_rows)
    figures = runs.tiny / "figures"
    for name in ("uffd-modes", "mappers", "sparse", "distributions"):
        for suffix in (".png", ".svg"):
            assert (figures / f"{name}{suffix}").stat().st_size > 10_000
        svg = (figures / f"{name}.svg").read_text()
        assert os.uname().release in svg and "ns per page touched" in svg
        assert "EMULATED" not in svg


def test_summary_shows_fault_around_on_and_off(runs: Runs) -> None:
    text = summary(runs.tiny)
    assert not width_ok(text)
    rows = {" ".join(line.split()[:-4]): line.split()[-4:] for line in text.splitlines()[4:]}
    wp, none = rows["memfd shared seq uffd=wp"], rows["memfd shared seq uffd=none"]
    assert wp[0] == "off" and none[0] == "on"
    assert float(wp[1]) > 10 * float(none[1])


def test_sweep_report_in_a_booted_kernel(sweep: Path) -> None:
    faultbench("report", sweep)
    text = (sweep / "report.txt").read_text()
    assert not width_ok(text)
    assert "tcg-guest (emulated timings)" in text and "TCG emulation" in text
    assert "Sweep of fault_around_bytes" in text and "fault_around_bytes=4K" in text
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
    assert "EMULATED" in svg and "fault_around_bytes (bytes, log2)" in svg


def test_report_refuses_bad_input_in_one_line(tmp_path: Path) -> None:
    result = faultbench("report", tmp_path, check=False)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "not a faultbench run directory" in result.stderr
    (tmp_path / "samples.jsonl").write_text("")
    result = faultbench("report", tmp_path, check=False)
    assert result.returncode == 2 and "no samples" in result.stderr
