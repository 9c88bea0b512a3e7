"""Round eleven: samples measured while someone else had changed a knob (knob_drift) were
counted in every statistic with no word (R11-1); a sample whose `knobs` named one of the
analysis frame's own columns (`ok`, `role`, `interfered`) ended `compare` in a traceback
(R11-3); a run interrupted after it made its results directory and before meta.json left the
directory holding only its lock (R11-6). Real native runs, the real commands."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from analysis_runs import make_run, measured_again
from console import one_line
from groups import ALONE, HOST
from test_hardening_round4_input import fb
from test_hardening_round8 import SHMEM_THP, one_scenario, other_shmem_thp, run_while_changed

LEFT_OUT = "sample(s) were left out: measured while someone else had changed thp.shmem_enabled"


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("round11"), "run", one_scenario(6))


def _records(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]


def _rewritten(source: Path, to: Path, records: list[dict[str, Any]],
               swept: bool = False) -> Path:
    """A copy of `source` with `records` as its samples. `swept`: records given other knob
    values than their scenarios set (a sweep made of a run that swept nothing) each get a
    scenario of that setting in meta.json, as a run of that sweep has them: a line whose
    knobs are not its scenario's is invalid (checks.knob_setting_problem)."""
    shutil.copytree(source, to)
    if swept:
        meta = json.loads((to / "meta.json").read_text())
        given = {scenario["name"]: scenario for scenario in meta["scenarios"]}
        scenarios: dict[str, dict[str, Any]] = {}
        for record in records:
            scenario, knobs = given[record["scenario"]], record["knobs"]
            name = scenario["name"] if knobs in (scenario["knobs"], {}) else ",".join(
                [scenario["name"], *(f"{knob}={value}" for knob, value in knobs.items())])
            scenarios.setdefault(name, {**scenario, "name": name, "knobs": knobs})
            record["scenario"] = name
        meta["scenarios"] = list(scenarios.values())
        (to / "meta.json").write_text(json.dumps(meta))
    (to / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return to


def _words(text: str) -> str:
    return " ".join(text.split())


def test_samples_marked_knob_drift_are_left_out_and_counted_in_a_note(
        base: Path, tmp_path: Path) -> None:
    """R11-1: three of the row's six samples marked as the runner marks a sample measured
    after someone else set shmem THP to `always` (runner.execute: knob_drift {name:
    [expected, found]}); report, report --json and compare counted them in the row."""
    records = _records(base)
    for record in records[:3]:
        record["knob_drift"] = {"thp.shmem_enabled": ["never", "always"]}
    drifted = _rewritten(base, tmp_path / "drifted", records)

    done = fb("report", drifted, "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    [row] = data["scenarios"]
    assert row["n"] == 3
    assert row["median"] == statistics.median(r["ns_per_page"] for r in records[3:])
    assert data["knob_drift"] == {"left_out": 3, "knobs": {"thp.shmem_enabled": 3}}

    done = fb("report", drifted, "--no-figures", "--out", tmp_path / "report")
    assert done.returncode == 0, done.stderr
    assert f"NOTE: 3 {LEFT_OUT} (knob_drift in samples.jsonl)." in _words(
        (tmp_path / "report" / "report.txt").read_text())

    apart = measured_again(base, tmp_path / "apart")  # a copy shares the run's samples
    done = fb("compare", apart, drifted)
    assert done.returncode == 0, done.stderr
    assert f"NEW: NOTE: 3 {LEFT_OUT}" in _words(done.stdout)
    done = fb("compare", apart, drifted, "--format", "json")
    assert done.returncode == 0, done.stderr
    assert f"NEW: NOTE: 3 {LEFT_OUT}" in json.loads(done.stdout)["footer"]


@ALONE  # shmem THP switched on changes every memfd's faults for a test beside it
@HOST
@pytest.mark.skipif(os.geteuid() != 0, reason="THP settings need root")
def test_a_run_leaves_out_samples_measured_after_someone_changed_thp(tmp_path: Path) -> None:
    """R11-1 as it happens: shmem THP set to another value for a few samples of a run that
    does not set it; the run's summary, its pyperf.json and its report leave those samples
    out, and the summary says so."""
    found, other = other_shmem_thp()
    workload = tmp_path / "w.toml"
    workload.write_text(one_scenario(300))
    out = tmp_path / "run"
    try:
        run = run_while_changed(workload, out, other, 5)
    finally:
        SHMEM_THP.write_text(found)
    stdout, stderr = run.communicate(timeout=300)
    assert run.returncode == 0, stderr
    marked = sum("knob_drift" in r for r in _records(out))
    assert marked
    assert f"NOTE: {marked} {LEFT_OUT}" in _words(stdout)
    [benchmark] = json.loads((out / "pyperf.json").read_text())["benchmarks"]
    assert sum(len(r.get("values", [])) for r in benchmark["runs"]) == 300 - marked
    done = fb("report", out, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["scenarios"][0]["n"] == 300 - marked


@pytest.mark.parametrize("knobs", [{"ok": 1}, {"role": "x"}, {"interfered": 1}],
                         ids=["ok", "role", "interfered"])
def test_a_knob_named_like_a_column_is_an_invalid_line(
        base: Path, tmp_path: Path, knobs: dict[str, Any]) -> None:
    """R11-3: the knob became a column beside the frame's own one of that name; compare
    ended in a pandas traceback. The line is invalid: dropped and counted where a run is
    read leniently, refused in one line where it is read strictly (merge)."""
    records = _records(base)
    records[0]["knobs"] = knobs
    odd = _rewritten(base, tmp_path / "odd", records)
    name = next(iter(knobs))
    dropped = (f"1 invalid sample(s) in samples.jsonl were dropped, e.g. 1 with knobs names "
               f"'{name}', not a knob.")
    apart = measured_again(base, tmp_path / "apart")  # a copy shares the run's samples
    for command in (("compare", odd, apart), ("report", odd, "--no-figures", "--out",
                                              tmp_path / "report")):
        done = fb(*command)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        assert dropped in _words(done.stdout)
    done = fb("merge", "--out", tmp_path / "merged", odd, base)
    assert done.returncode == 2
    assert one_line(done.stderr).endswith(f"knobs names '{name}', not a knob")


@pytest.fixture
def interrupting_provenance(tmp_path: Path) -> dict[str, str]:
    """An environment in which `run` is sent SIGTERM while it collects the provenance that
    goes into meta.json: after it made and locked its results directory, before meta.json
    (the tool it asks first, systemd-detect-virt, signals it)."""
    tools = tmp_path / "bin"
    tools.mkdir()
    tool = tools / "systemd-detect-virt"
    tool.write_text("#!/bin/sh\nkill -TERM $PPID\nexec sleep 30\n")
    tool.chmod(0o755)
    return {**os.environ, "PATH": f"{tools}:{os.environ['PATH']}"}


def _interrupted_run(out: Path, env: dict[str, str], tmp_path: Path) -> None:
    workload = tmp_path / "w.toml"
    workload.write_text(one_scenario(2))
    done = subprocess.run([sys.executable, "-m", "faultbench", "run", str(workload), "--out",
                           str(out), "-q"], capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    assert done.returncode == 143, done.stderr
    assert one_line(done.stderr) == "faultbench run: interrupted"


def test_an_interrupt_before_meta_json_leaves_no_directory(
        tmp_path: Path, interrupting_provenance: dict[str, str]) -> None:
    """R11-6: the directory the run made was left holding only its 0-byte .lock."""
    out = tmp_path / "out"
    _interrupted_run(out, interrupting_provenance, tmp_path)
    assert not out.exists()


def test_an_interrupt_before_meta_json_leaves_a_given_empty_directory_empty(
        tmp_path: Path, interrupting_provenance: dict[str, str]) -> None:
    """A directory that was there before the run is the user's: left, as empty as it was."""
    out = tmp_path / "out"
    out.mkdir()
    _interrupted_run(out, interrupting_provenance, tmp_path)
    assert out.is_dir() and not any(out.iterdir())
