"""faultbench.load and the statistics, on real runs of `faultbench run`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from analysis_runs import Runs, kernels_run, native_runs
from groups import KERNELS_RUN
from scipy import stats

import faultbench
from faultbench.analysis.frame import AnalysisError, run_info
from faultbench.analysis.labels import label_columns
from faultbench.analysis.stats import median_ci


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    return native_runs(tmp_path_factory)


def test_one_row_per_sample_with_spec_flattened(runs: Runs) -> None:
    lines = (runs.tiny / "samples.jsonl").read_text().splitlines()
    meta = json.loads((runs.tiny / "meta.json").read_text())
    df = faultbench.load(runs.tiny)
    assert len(df) == len(lines)
    assert {"backing", "pattern", "uffd", "mappers", "scenario", "round", "warmup"} <= set(df)
    assert "run" not in df
    # one warm-up round: each scenario's mappers once
    mappers = sum(s["spec"]["mappers"] for s in meta["scenarios"])
    assert df["warmup"].sum() == mappers * meta["workload"]["warmups"]
    assert not df.loc[df["warmup"], "ok"].any()
    assert df.attrs["meta"]["tiny"]["provenance"]["kernel"]["release"] == os.uname().release


def test_fault_around_column_follows_the_kernel_rules(runs: Runs) -> None:
    df = faultbench.load(runs.tiny)
    ok = df[df["ok"]]
    wp = ok[(ok["uffd"] == "wp") & (ok["role"] != "first")]
    assert (wp["fault_around"] == "off").all()
    # with uffd_mappers = "later" the first mapper is not registered and keeps fault-around
    unregistered = ok[(ok["uffd"] == "wp") & (ok["role"] == "first")]
    assert len(unregistered) and (unregistered["fault_around"] == "on").all()
    assert (unregistered["faults_per_page"] < 0.5).all()
    # fault-around off: one fault per page touched, as uffd_disable_fault_around() says
    assert (wp["faults_per_page"] >= 0.99).all()
    on = ok[(ok["backing"] == "memfd") & (ok["uffd"] != "wp") & (ok["pattern"] == "seq")]
    assert (on["fault_around"] == "on").all()
    assert (on["faults_per_page"] < 0.5).all()
    assert set(ok.loc[ok["mappers"] == 2, "role"]) == {"first", "later"}
    assert set(ok.loc[ok["mappers"] == 1, "role"]) == {"only"}


def test_several_runs_get_a_run_column(runs: Runs) -> None:
    df = faultbench.load([runs.tiny, runs.tiny2])
    assert set(df["run"]) == {"tiny", "tiny2"}
    assert len(df) == len(faultbench.load(runs.tiny)) + len(faultbench.load(runs.tiny2))
    assert set(df.attrs["meta"]) == {"tiny", "tiny2"}


def test_median_ci_is_the_order_statistic_interval(runs: Runs) -> None:
    df = faultbench.load(runs.tiny)
    table = median_ci(df, ["scenario", "mapper"], "ns_per_page")
    valid = df[df["ok"]]
    for row in table.itertuples():
        values = np.sort(valid.loc[(valid["scenario"] == row.scenario)
                                   & (valid["mapper"] == row.mapper), "ns_per_page"])
        n = len(values)
        assert row.n == n and row.median == pytest.approx(np.median(values))
        # l = largest count with P(Bin(n, 1/2) <= l) <= 2.5 %, computed independently
        low = max(k for k in range(-1, n) if k < 0 or stats.binom.cdf(k, n, 0.5) <= 0.025)
        if low < 0:
            assert np.isnan(row.ci_lo)
        else:
            assert (row.ci_lo, row.ci_hi) == (values[low], values[n - 1 - low])
            assert row.ci_lo <= row.median <= row.ci_hi


def test_median_ci_counts_rounds_not_mappers(runs: Runs) -> None:
    """Two later mappers of one round share its machine state: one value, their median."""
    df = faultbench.load(runs.tiny)
    table = median_ci(df, ["scenario", "role"], "ns_per_page").set_index(["scenario", "role"])
    valid = df[df["ok"]]
    three = valid[valid["mappers"] == 3]
    later = three[three["role"] == "later"]
    assert len(later) == 2 * later["round"].nunique() == 16
    per_round = np.sort(later.groupby("round")["ns_per_page"].median().to_numpy())
    row = table.loc[(later["scenario"].iloc[0], "later")]
    assert (row["n"], row["n_samples"], row["n_boots"]) == (8, 16, 1)
    assert row["median"] == pytest.approx(np.median(per_round))
    # n = 8: l = 0 (P(Bin(8, 1/2) <= 0) = 0.4% <= 2.5% < P(<= 1) = 3.5%)
    assert (row["ci_lo"], row["ci_hi"]) == (per_round[0], per_round[-1])


def test_native_runs_are_one_kernel_one_boot(runs: Runs) -> None:
    df = faultbench.load(runs.tiny)
    assert df["kernel"].isna().all() and df["boot"].isna().all()
    assert "kernel" not in label_columns(df)


@KERNELS_RUN
def test_booted_run_carries_kernel_and_boot(tmp_path_factory: pytest.TempPathFactory) -> None:
    run = kernels_run(tmp_path_factory)
    df = faultbench.load(run)
    meta = df.attrs["meta"]["kernels"]
    assert [k["label"] for k in meta["kernels"]] == ["a", "b"]
    plan = {b["index"]: b["kernel"] for b in meta["boots"]}
    assert sorted(plan.values()) == ["a", "a", "b", "b"]
    # Debian's image (CONFIG_PVH) is booted without its decompressor (measurement/booted/pvh.py)
    assert {b["entry"] for b in meta["boots"]} == {"pvh"}
    # a guest is a VM whatever container its host's root (its own, over 9p) is in: round 44
    # m2, "docker" here
    if shutil.which("systemd-detect-virt"):
        assert {b["guest"]["virtualization"]["systemd_detect_virt"] for b in meta["boots"]} \
            == {"qemu"}
    # every sample's kernel is the one its boot booted
    assert (df["boot"].map(plan) == df["kernel"]).all()
    assert label_columns(df)[0] == "kernel"
    info = run_info(meta, df)
    release = meta["kernels"][0]["release"]
    assert info.kernel == release and info.boots_per_kernel == 2
    assert info.kernels == ", ".join(f"{k['label']} ({release}, sha {k['sha256'][:8]})"
                                     for k in meta["kernels"])


def test_import_faultbench_does_not_import_pandas() -> None:
    code = "import sys, faultbench; assert 'pandas' not in sys.modules; faultbench.load"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bad_input_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AnalysisError, match="not a faultbench run directory"):
        faultbench.load(tmp_path)
    (tmp_path / "samples.jsonl").write_text("")
    with pytest.raises(AnalysisError, match="no samples"):
        faultbench.load(tmp_path)
    with pytest.raises(AnalysisError, match="not a directory"):
        faultbench.load(tmp_path / "missing")


def test_a_partial_last_line_is_counted_not_fatal(runs: Runs, tmp_path: Path) -> None:
    """A run killed mid-write leaves half a line; load keeps the rest and says so."""
    copy = tmp_path / "killed"
    copy.mkdir()
    for name in ("meta.json", "samples.jsonl"):
        (copy / name).write_bytes((runs.tiny / name).read_bytes())
    with (copy / "samples.jsonl").open("a") as handle:
        handle.write('{"spec": {"backing": "mem')
    df = faultbench.load(copy)
    assert len(df) == len(faultbench.load(runs.tiny))
    assert df.attrs["bad_lines"] == {"killed": 1}
    report = subprocess.run(
        [sys.executable, "-m", "faultbench", "report", str(copy), "--no-figures"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "1 unreadable line(s)" in " ".join(report.split())
