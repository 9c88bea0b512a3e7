"""What a user meets at the terminal, with real runs on the running kernel: --version,
`run --set/--only/--repetitions`, the machine-state line, progress off a terminal, strides in
numeric order, and `report` redrawing a tracked reference result byte for byte."""

from __future__ import annotations

import filecmp
import json
import re
import shutil
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from analysis_runs import faultbench
from groups import ALONE, HOST

import faultbench as package
from faultbench.measurement.knobs.catalog import read_value, resolve

ROOT = Path(__file__).resolve().parent.parent

# Small and fast: a 4M memfd, strides given out of order, uffd none and wp. The THP knob is
# writable natively, so --set is tested without booting a kernel.
STRIDES = """
description = "terminal test"
repetitions = 3
warmups = 1
seed = 5

[defaults]
backing = "memfd"
size = "4M"

[[matrix]]
pattern = ["stride:16", "stride:2", "seq", "stride:4"]
uffd = ["none", "wp"]
"""


def test_version_is_the_package_version() -> None:
    done = faultbench("--version")
    assert done.stdout == f"faultbench {package.__version__}\n"
    assert version("faultbench") == package.__version__


@pytest.fixture(scope="module")
def set_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """`run --set` over a THP knob, filtered to uffd none and one repetition fewer."""
    tmp = tmp_path_factory.mktemp("terminal")
    workload = tmp / "strides.toml"
    workload.write_text(STRIDES)
    before = read_value(resolve("thp.shmem_enabled"))
    done = faultbench("run", workload, "--out", tmp / "run", "--set",
                      "thp.shmem_enabled=never,always", "--only", "uffd=none",
                      "--repetitions", "2", check=False)
    assert done.returncode == 0, done.stderr
    assert read_value(resolve("thp.shmem_enabled")) == before  # restored
    return tmp / "run", done


def _meta(run: Path) -> dict[str, Any]:
    return json.loads((run / "meta.json").read_text())


def _samples(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]


@ALONE
@HOST
def test_run_set_adds_a_knob_axis_and_only_filters(set_run) -> None:
    run, _ = set_run
    meta = _meta(run)
    assert meta["workload"]["command_line"] == {
        "set": {"thp.shmem_enabled": ["never", "always"]}, "repetitions": 2,
        "only": ["uffd=none"]}
    assert meta["workload"]["repetitions"] == 2
    scenarios = meta["scenarios"]
    assert len(scenarios) == 4 * 2  # 4 patterns x 2 knob values; uffd=wp filtered out
    assert {s["spec"]["uffd"] for s in scenarios} == {"none"}
    assert {s["knobs"]["thp.shmem_enabled"] for s in scenarios} == {"never", "always"}
    samples = _samples(run)
    assert len(samples) == 8 * 3  # 1 warm-up + 2 rounds
    # the knob was really set: shmem THP maps 2M per fault, 4K pages need one fault per 64K
    seq = {s["knobs"]["thp.shmem_enabled"]: s["faults_minor"] for s in samples
           if s["spec"]["pattern"] == "seq" and not s["warmup"]}
    assert seq["always"] <= 3 < 60 <= seq["never"]


@HOST
def test_run_set_refuses_a_bad_value_before_running(tmp_path: Path) -> None:
    done = faultbench("run", "quick", "--out", tmp_path / "r", "--set", "thp.shmem_enabled=maybe",
                      check=False)
    assert done.returncode == 2
    assert done.stderr.startswith("faultbench run: ") and "maybe" in done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "r").exists()
    done = faultbench("run", "quick", "--out", tmp_path / "r", "--only", "uffd=minor",
                      check=False)
    assert done.returncode == 2 and "none of the 12 scenarios" in done.stderr
    assert not (tmp_path / "r").exists()


@ALONE
@HOST
def test_machine_state_is_said_and_recorded(set_run) -> None:
    run, done = set_run
    [line] = [ln for ln in done.stderr.splitlines() if "machine: load" in ln]
    assert re.fullmatch(r"faultbench run: machine: load \d+\.\d\d on \d+ CPUs; others used "
                        r"\d+\.\d CPU.*", line)
    assert len(line) < 100
    state = _meta(run)["machine_state"]
    assert state["cpus"] >= 1 and len(state["load"]) == 3
    assert (state["governor"] is None) == ("governor" in state["null_reasons"])
    busy = any("WARNING: busy enough to bend timings" in ln for ln in done.stderr.splitlines())
    report = faultbench("report", run, "--no-figures").stdout
    assert "At the start, machine: load" in report
    assert ("WARNING: busy" in report) == busy


@ALONE
@HOST
def test_progress_off_a_terminal_is_short_with_counts_and_eta(set_run) -> None:
    _, done = set_run
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("[")]
    assert len(lines) == 24
    for number, line in enumerate(lines, 1):
        assert len(line) < 100, line
        assert re.match(rf"\[{number}/24\] ETA \d+:\d\d (warm-up )?r\d ", line), line
        assert re.search(r": [\d.-]+ flt/pg [\d-]+ ns/pg$", line), line


@ALONE
@HOST
def test_strides_are_listed_in_numeric_order(set_run) -> None:
    run, _ = set_run
    report = faultbench("report", run, "--no-figures").stdout
    rows = [ln.split()[0] for ln in report.splitlines()
            if re.match(r"(seq|stride:\d+)(\s|$)", ln)]
    patterns = list(dict.fromkeys(rows))
    assert patterns == ["seq", "stride:2", "stride:4", "stride:16"]
    summary = [ln.split()[0] for ln in set_run[1].stdout.splitlines()
               if re.match(r"(seq|stride:\d+) ", ln)]
    assert list(dict.fromkeys(summary)) == patterns


def test_report_redraws_a_tracked_reference_byte_for_byte(tmp_path: Path) -> None:
    reference = ROOT / "results" / "example"
    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", "results/example"],
                             capture_output=True, text=True, check=True).stdout.split()
    made = [name for name in tracked if name.endswith((".txt", ".png", ".svg"))]
    assert any(name.endswith(".svg") for name in made) and "results/example/report.txt" in made
    copy = tmp_path / "example"
    shutil.copytree(reference, copy)
    faultbench("report", copy)
    different = [name for name in made if not filecmp.cmp(
        ROOT / name, copy / Path(name).relative_to("results/example"), shallow=False)]
    assert different == [], "faultbench report results/example changes tracked files"
    # --out leaves the run directory alone and writes the same bytes elsewhere
    faultbench("report", reference, "--out", tmp_path / "out")
    assert filecmp.cmp(copy / "report.txt", tmp_path / "out" / "report.txt", shallow=False)
    assert filecmp.cmp(copy / "figures" / "sparse.svg", tmp_path / "out" / "figures" /
                       "sparse.svg", shallow=False)
