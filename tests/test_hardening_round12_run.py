"""Round twelve, the `run` command: a signal ignored when faultbench started (nohup's SIGHUP,
a non-interactive shell's SIGINT for `cmd &`) interrupted the run (R12-2); `run` exited 0
when no measured sample was one a statistic reads, all drifted or only profiled ones valid
(R12-5); a run without knobs started while another faultbench held the knob lock was
measured at that one's knob values with no word (R12-9); one mapper's `mapper_kind` was left
out of the scenario name, so `["thread", "process"]` became one scenario, the kind kept
depending on axis order (R12-12). Real native runs, the real commands."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from analysis_runs import faultbench, make_run
from groups import HOST

from faultbench.measurement.knobs.knoblock import KnobLock
from faultbench.measurement.workload import load

TINY = """
repetitions = {reps}
warmups = 1
seed = 1
[defaults]
backing = "memfd"
size = "1M"
[[matrix]]
pattern = ["seq", "random"]
"""


def _records(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]


def _lines(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


def _ignored(pid: int) -> int:
    """The SigIgn mask of process `pid`."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(ln for ln in status.splitlines() if ln.startswith("SigIgn:")).split()[1], 16)


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGINT], ids=["HUP", "INT"])
def test_a_signal_ignored_at_start_stays_ignored(tmp_path: Path, signum: int) -> None:
    """R12-2: `nohup faultbench run ...` was interrupted by the hangup nohup protects it
    from, while importing ("SIGHUP while starting") or measuring ("interrupted"). Sent once
    at once, once mid-run: the run finishes every sample; its worker ignores it too."""
    workload = tmp_path / "w.toml"
    workload.write_text(TINY.format(reps=60))
    out = tmp_path / "run"
    run = subprocess.Popen(
        [sys.executable, "-m", "faultbench", "run", str(workload), "--out", str(out), "-q"],
        preexec_fn=lambda: signal.signal(signum, signal.SIG_IGN),  # as nohup, or `cmd &`
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.2)
        run.send_signal(signum)
        deadline = time.monotonic() + 120
        while _lines(out / "samples.jsonl") < 3:
            assert run.poll() is None and time.monotonic() < deadline, run.communicate()[1]
            time.sleep(0.005)
        workers = Path(f"/proc/{run.pid}/task/{run.pid}/children").read_text().split()
        run.send_signal(signum)
        assert workers and all(_ignored(int(pid)) & 1 << (signum - 1) for pid in workers)
        _, err = run.communicate(timeout=300)
    finally:
        run.kill()
        run.wait()
    assert run.returncode == 0, err
    assert "interrupted" not in err and "while starting" not in err, err
    assert len(_records(out)) == 2 * 61


@pytest.fixture(scope="module")
def profiled_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run: two scenarios, one warm-up, one measured and one profiled round."""
    run = make_run(tmp_path_factory.mktemp("round12"), "run", TINY.format(reps=1),
                   "--profile", "1")
    if not any(r["profiled"] for r in _records(run)):
        pytest.skip("no kernel profiles here")
    return run


def _resumed(source: Path, to: Path, change: Any) -> subprocess.CompletedProcess[str]:
    """`run --resume` of a copy of `source` with `change` applied to each sample and its
    first warm-up line removed (measured again: the measured samples stay as changed)."""
    shutil.copytree(source, to)
    records = [r for r in _records(source) if r["warmup"]][1:] + [
        r for r in _records(source) if not r["warmup"]]
    for record in records:
        change(record)
    (to / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (to / "pyperf.json").unlink()
    meta = json.loads((to / "meta.json").read_text())
    meta["finished_utc"] = None
    (to / "meta.json").write_text(json.dumps(meta))
    return faultbench("run", "--resume", to, "-q", check=False)


def test_a_run_whose_every_measured_sample_drifted_exits_1(profiled_run: Path,
                                                          tmp_path: Path) -> None:
    """R12-5: every measured sample marked as measured after someone else changed a knob
    (left out of every statistic since R11-1): the summary had nothing to show, status 0."""
    def drifted(record: dict[str, Any]) -> None:
        if not record["warmup"]:
            record["knob_drift"] = {"thp.shmem_enabled": ["never", "always"]}

    done = _resumed(profiled_run, tmp_path / "drifted", drifted)
    assert done.returncode == 1, done.stderr
    assert "faultbench run: none of the 4 measured samples is usable: 4 measured while " \
        "someone else had changed a knob" in done.stderr


def test_a_run_with_only_profiled_samples_valid_exits_1(profiled_run: Path,
                                                       tmp_path: Path) -> None:
    """R12-5: the timed samples failed and the profiled ones (no timing statistic reads
    them) succeeded: two errors of four measured samples was "not most failed", status 0."""
    def timed_failed(record: dict[str, Any]) -> None:
        if not record["warmup"] and not record["profiled"]:
            record.update(status="error", error="boom")

    done = _resumed(profiled_run, tmp_path / "timed-failed", timed_failed)
    assert done.returncode == 1, done.stderr
    assert "none of the 4 measured samples is usable: 2 failed, 2 profiled" in done.stderr


def test_one_drifted_sample_of_several_leaves_the_status_0(profiled_run: Path,
                                                           tmp_path: Path) -> None:
    """The rule stays "most": one sample of four measured at someone else's value."""
    first = next(r for r in _records(profiled_run) if not r["warmup"] and not r["profiled"])

    def one_drifted(record: dict[str, Any]) -> None:
        if record == first:
            record["knob_drift"] = {"thp.shmem_enabled": ["never", "always"]}

    done = _resumed(profiled_run, tmp_path / "one-drifted", one_drifted)
    assert done.returncode == 0, done.stderr


@HOST  # holds the machine-wide knob lock: a knob-writing test beside it would be refused
@pytest.mark.skipif(os.geteuid() != 0, reason="the knob lock is root's")
def test_a_resume_beside_a_knob_writer_says_so_once_it_is_accepted(tmp_path: Path) -> None:
    """A resume refused for its files is that one line, whoever holds the knob lock (it was
    preceded by the warning that another faultbench did: a refusal two lines long, and
    every test of a refusal failed beside a knob-writing test); an accepted one says it
    before measuring, once."""
    finished = make_run(tmp_path, "run", TINY.format(reps=3))
    runs = {}
    for name in ("bad", "good"):
        runs[name] = tmp_path / name
        shutil.copytree(finished, runs[name])
        lines = (runs[name] / "samples.jsonl").read_text().splitlines(keepends=True)
        if name == "bad":  # a sample without its knobs: refused, naming line 2
            record = json.loads(lines[1])
            del record["knobs"]
            lines[1] = json.dumps(record) + "\n"
        (runs[name] / "samples.jsonl").write_text("".join(lines[:2]))
        meta = json.loads((runs[name] / "meta.json").read_text())
        (runs[name] / "meta.json").write_text(json.dumps({**meta, "finished_utc": None}))
    with KnobLock(str(tmp_path / "journal.json")):
        refused = faultbench("run", "--resume", runs["bad"], check=False)
        resumed = faultbench("run", "--resume", runs["good"], "-q", check=False)
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "samples.jsonl:2: " in refused.stderr, \
        refused.stderr
    assert resumed.returncode == 0, resumed.stderr
    warnings = [ln for ln in resumed.stderr.splitlines() if "knob lock" in ln]
    assert len(warnings) == 1 and warnings[0].startswith(
        f"faultbench run: WARNING: another faultbench (pid {os.getpid()}, "), resumed.stderr


@HOST  # holds the machine-wide knob lock: a knob-writing test beside it would be refused
@pytest.mark.skipif(os.geteuid() != 0, reason="the knob lock is root's")
def test_a_run_without_knobs_beside_a_knob_writer_says_so(tmp_path: Path) -> None:
    """R12-9: a run with knobs beside another knob writer is refused; one without started
    and was measured at the other's knob values, recorded as the machine's, with no word.
    The lock is held here as a knob-writing run holds it (this process: the holder)."""
    workload = tmp_path / "w.toml"
    workload.write_text(TINY.format(reps=1))
    with KnobLock(str(tmp_path / "journal.json")):
        done = faultbench("run", workload, "--out", tmp_path / "run", "-q", check=False)
    assert done.returncode == 0, done.stderr
    warning = next(ln for ln in done.stderr.splitlines() if "knob lock" in ln)
    assert warning.startswith(f"faultbench run: WARNING: another faultbench (pid {os.getpid()}, ")
    assert warning.endswith("held the knob lock: measured at the kernel knobs it had changed, "
                            "not the machine's own")
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["machine_state"]["knob_writer"]["pid"] == os.getpid()
    report = faultbench("report", tmp_path / "run", "--no-figures", "--out", tmp_path / "rep")
    assert f"another faultbench (pid {os.getpid()}," in " ".join(
        (tmp_path / "rep" / "report.txt").read_text().split())

    alone = faultbench("run", workload, "--out", tmp_path / "alone", "-q", check=False)
    assert alone.returncode == 0 and "knob lock" not in alone.stderr, alone.stderr
    assert report.returncode == 0


MAPPER_KINDS = """
repetitions = 2
warmups = 0
[defaults]
backing = "memfd"
size = "1M"
[[matrix]]
mapper_kind = {kinds}
uffd = ["none", "wp"]
uffd_mappers = ["all", "later"]
"""


def test_one_thread_mapper_is_a_scenario_of_its_own(tmp_path: Path) -> None:
    """R12-12: with one mapper, `mapper_kind = ["thread", "process"]` was one scenario (the
    kind listed first), though a thread faults in the Python caller's address space. And
    one mapper with `uffd_mappers = "later"` registers none: it was measured as uffd none
    under the name uffd=wp."""
    names = []
    for kinds in ('["thread", "process"]', '["process", "thread"]'):
        path = tmp_path / "kinds.toml"
        path.write_text(MAPPER_KINDS.format(kinds=kinds))
        workload = load(str(path))
        names.append(sorted(s.name for s in workload.scenarios))
        assert sorted(s["scenario"] for s in workload.skipped) == sorted(
            f"memfd,1M,read,seq,uffd=wp{kind}" for kind in ("", ",1xthread"))
        assert {s["reason"] for s in workload.skipped} == {
            "uffd_mappers 'later' registers every mapper but the first: with one mapper "
            "none, which measures uffd none, not wp"}
    base = "memfd,1M,shared,read,warm,seq,uffd="
    assert names[0] == names[1] == sorted(
        f"{base}{uffd}{kind}" for uffd in ("none", "wp") for kind in ("", ",1xthread"))

    done = faultbench("run", path, "--out", tmp_path / "run")
    mappings = {(r["scenario"], r["mappings"]) for r in _records(tmp_path / "run")}
    thread = {m for name, m in mappings if name.endswith("1xthread")}
    process = {m for name, m in mappings if not name.endswith("1xthread")}
    assert min(thread) > max(process)  # the Python process's mappings, not the mapper's
    rows = done.stdout.splitlines()
    assert any(row.startswith("uffd=none thread ") for row in rows), done.stdout
    assert any(row.startswith("uffd=none ") and " thread " not in row for row in rows)
