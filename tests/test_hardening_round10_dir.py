"""Round ten, R10-5: a workload's relative `dir` is made absolute when the workload is loaded,
so that a resume started elsewhere measures in the same directory; a run recorded with a
relative one (before this) is refused rather than measured into error samples; and a run
whose samples failed says so on stderr, with a status that is not 0 when most did."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from test_hardening_round2 import FAULTBENCH, cli, refused
from test_runner import run_with_a_crash

from faultbench.commands.run import _report
from faultbench.measurement.rundir.results import META, SAMPLES
from faultbench.measurement.workload import load

RELATIVE = """
description = "round ten: a relative dir"
repetitions = {reps}
warmups = 0
seed = 1
[defaults]
backing = "file"
size = "1M"
cache = "warm"
dir = "{dir}"
[[matrix]]
pattern = ["seq"]
"""


def _records(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / SAMPLES).read_text().splitlines()]


def _meta(run: Path) -> dict[str, Any]:
    return json.loads((run / META).read_text())


def _interrupted_run(tmp_path: Path) -> tuple[Path, Path]:
    """A run of RELATIVE started in tmp_path/started (which holds `tmpd`), interrupted with
    SIGINT once it has a few samples: (its directory, the directory it started in)."""
    started = tmp_path / "started"
    (started / "tmpd").mkdir(parents=True)
    (started / "rel.toml").write_text(RELATIVE.format(reps=100, dir="tmpd"))
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [*FAULTBENCH, "run", "rel.toml", "--out", str(run), "-q"], cwd=started,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        # a background job's SIGINT is ignored, and Python keeps it so: the default back
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while not ((run / SAMPLES).exists() and (run / SAMPLES).read_text().count("\n") >= 3):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGINT, stderr
    assert _meta(run)["finished_utc"] is None  # interrupted, so there is something to resume
    return run, started


def test_a_resume_from_another_directory_measures_in_the_run_s_dir(tmp_path: Path) -> None:
    run, started = _interrupted_run(tmp_path)
    elsewhere = tmp_path / "elsewhere"  # no tmpd here: a relative dir would name nothing
    elsewhere.mkdir()
    done = cli("run", "--resume", run, "-q", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert "samples failed" not in done.stderr
    records = _records(run)
    assert len(records) == 100
    assert {r["status"] for r in records} == {"ok"}, {r["error"] for r in records}
    wanted = str(started / "tmpd")
    assert {r["spec"]["dir"] for r in records} == {wanted}
    meta = _meta(run)
    assert [s["spec"]["dir"] for s in meta["scenarios"]] == [wanted]
    assert meta["provenance"]["file"]["dir"] == wanted
    assert meta["workload"]["axes"]["defaults"]["dir"] == "tmpd"  # the file as written


@pytest.mark.parametrize("written", ["./tmpd/", "tmpd"])
def test_a_relative_dir_and_its_filter_resolve_against_the_working_directory(
        tmp_path: Path, written: str, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tmpd").mkdir()
    path = tmp_path / "rel.toml"
    path.write_text(RELATIVE.format(reps=1, dir=written))
    monkeypatch.chdir(tmp_path)
    workload = load(str(path)).select(["dir=tmpd"])
    [scenario] = workload.scenarios
    assert scenario.spec.dir == str(tmp_path / "tmpd")
    assert scenario.name.endswith(f",dir={tmp_path / 'tmpd'}")


def test_a_run_recorded_with_a_relative_dir_is_refused_up_front(tmp_path: Path) -> None:
    run, started = _interrupted_run(tmp_path)
    # as a run made before dirs were made absolute records it (meta.json and every sample)
    for name in (META, SAMPLES):
        text = (run / name).read_text()
        (run / name).write_text(text.replace(str(started / "tmpd"), "tmpd"))
    before = (run / SAMPLES).read_text()
    for where in (tmp_path, started):  # also from where it started: nothing says it did
        refused(cli("run", "--resume", run, "-q", cwd=where), "run", "relative dir 'tmpd'",
                "a resume could measure in another directory", f"faultbench report {run}")
    assert (run / SAMPLES).read_text() == before
    assert _meta(run)["finished_utc"] is None


def test_a_resume_whose_samples_mostly_fail_says_so_and_exits_1(tmp_path: Path) -> None:
    run, started = _interrupted_run(tmp_path)
    # the directory went (an unmounted disk, a cleaned scratch); it may hold the empty file
    # of the sample the interrupt's SIGKILL of the worker cut between create and unlink
    shutil.rmtree(started / "tmpd")
    done = cli("run", "--resume", run, "-q", cwd=started)
    assert done.returncode == 1, done.stderr
    records = _records(run)
    failed = [r for r in records if r["status"] == "error"]
    assert 0 < len(records) - len(failed) < len(failed)
    [line] = [ln for ln in done.stderr.splitlines() if "samples failed" in ln]
    assert line.startswith(f"faultbench run: {len(failed)} of {len(records)} samples failed")
    assert "the first: " in line and "cannot open the directory" in line


def test_one_lost_worker_is_said_and_leaves_the_status_0(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = run_with_a_crash(tmp_path)  # both mappers of one measurement of 6 lost
    try:
        capsys.readouterr()
        assert _report(run_dir) == 0
    finally:
        run_dir.lock.release()
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("faultbench run: 2 of 12 samples failed")
    assert "SIGKILL" in line


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace to see the opens")
def test_the_backing_file_never_has_a_name_that_a_killed_worker_could_leave(
        tmp_path: Path) -> None:
    """A file backing is opened O_TMPFILE: with mkostemp and then unlink, a worker SIGKILLed
    between the two (an interrupted run) left an empty faultbench.XXXXXX in the user's dir."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    trace = tmp_path / "trace"
    done = subprocess.run(
        ["strace", "-f", "-qq", "-o", str(trace), "-e", "trace=openat,open,unlink,unlinkat",
         *FAULTBENCH, "measure", "--backing", "file", "--dir", str(scratch), "--size", "1M"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    opens = [line for line in trace.read_text().splitlines() if str(scratch) in line]
    assert opens and all("O_TMPFILE" in line or "O_DIRECTORY" in line for line in opens), opens
    assert not any("faultbench." in line for line in trace.read_text().splitlines()
                   if "unlink" in line)
    assert list(scratch.iterdir()) == []
