"""The runner against the real kernel: multi-mapper, knob axes, crash, kill -9 and resume,
pyperf compatibility. Tiny workloads, so the whole file takes seconds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyperf
import pytest
from analysis_runs import faultbench, tcg_run
from groups import ALONE, HOST, SWEEP_RUN

from faultbench.measurement.knobs.catalog import THP_DIR, read_value, resolve
from faultbench.measurement.knobs.sysfs import bracket_choices
from faultbench.measurement.rundir.results import PYPERF, SAMPLES, RunDir, sample_key
from faultbench.measurement.runner import Worker, WorkerLost, execute, start
from faultbench.measurement.spec import Spec
from faultbench.measurement.workload import KNOB_AXIS, load

THP_SHMEM = f"{THP_DIR}/shmem_enabled"

# Three processes map one warm shmem file in turn; only the later ones register with uffd.
# shmem THP is pinned to never so page-sized mappings are what is measured.
MULTI = """
description = "multi-mapper test"
repetitions = 2
warmups = 1
seed = 3

[defaults]
size = "16M"
cache = "warm"
pattern = "seq"
mappers = 3
uffd_mappers = "later"

[[matrix]]
backing = "memfd"
uffd = ["none", "missing", "wp"]
knobs."thp.shmem_enabled" = ["never"]
knobs.fault_around_bytes = [65536]

# the kernel refuses uffd on a disk file: measured once, then skipped with the reason
[[matrix]]
backing = "file"
uffd = ["none", "missing"]
uffd_mappers = "all"
"""

# Slow enough per sample (uffd-wp, random) to be killed mid-run; no knobs.
RESUMABLE = """
description = "resume test"
repetitions = 8
warmups = 1
seed = 11

[[matrix]]
backing = "memfd"
size = "32M"
pattern = ["seq", "random"]
uffd = ["none", "wp"]
"""


def records(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / SAMPLES).read_text().splitlines()]


def meta(run: Path) -> dict[str, Any]:
    return json.loads((run / "meta.json").read_text())


@pytest.fixture(scope="module")
def multi_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """(run dir, shmem THP setting before, after)."""
    tmp = tmp_path_factory.mktemp("multi")
    (tmp / "multi.toml").write_text(MULTI)
    before = Path(THP_SHMEM).read_text()
    done = faultbench("run", tmp / "multi.toml", "--out", tmp / "run", "-q", check=False)
    assert done.returncode == 0, done.stderr
    return tmp / "run", before, Path(THP_SHMEM).read_text()


@HOST
def test_later_mappers_fault_less_than_once_per_page_unless_uffd_wp(
    multi_run: tuple[Path, str, str],
) -> None:
    run, _, _ = multi_run
    later = [r for r in records(run)
             if r["mapper"] > 0 and r["status"] == "ok" and r["spec"]["backing"] == "memfd"]
    assert {r["spec"]["uffd"] for r in later} == {"none", "missing", "wp"}
    if "fault_around_bytes" not in later[0]["knobs"]:
        [axis] = [s for s in meta(run)["skipped"]
                  if s["scenario"] == f"{KNOB_AXIS}fault_around_bytes"]
        assert "fault_around_bytes" in axis["reason"]  # why it could not be set here
    for r in later:
        faults = r["faults_minor"] + r["faults_major"]
        assert r["knobs"]["thp.shmem_enabled"] == "never"
        if r["spec"]["uffd"] == "wp":
            # uffd-wp turns fault-around off: at least one fault per page
            assert faults >= r["pages_touched"], r
        else:
            # the page cache is warm from mapper 0, yet each later mapper's page table is
            # empty: fault-around fills it, uffd-missing registered or not
            assert faults < r["pages_touched"] / 4, r
    file_later = [r for r in records(run) if r["mapper"] > 0 and r["spec"]["backing"] == "file"
                  and r["spec"]["uffd"] == "none"]
    assert file_later and all(
        r["faults_minor"] + r["faults_major"] < r["pages_touched"] for r in file_later)


@HOST
def test_every_sample_is_keyed_and_warmups_flagged(multi_run: tuple[Path, str, str]) -> None:
    run, _, _ = multi_run
    info = meta(run)
    rows = records(run)
    keys = [sample_key(r) for r in rows]
    assert len(keys) == len(set(keys))
    measured = {s["name"] for s in info["scenarios"]} - {
        s["scenario"] for s in info["skipped"]}
    for name in measured:
        mine = [r for r in rows if r["scenario"] == name]
        assert Counter(r["round"] for r in mine) == {0: 3, 1: 3, 2: 3}
        assert all(r["warmup"] == (r["round"] == 0) for r in mine)
    assert info["finished_utc"] and info["format"] == "faultbench-run/1"


@HOST
def test_kernel_refusal_is_recorded_once_and_the_run_goes_on(
    multi_run: tuple[Path, str, str],
) -> None:
    run, _, _ = multi_run
    refused = [r for r in records(run) if r["spec"]["uffd"] == "missing"
               and r["spec"]["backing"] == "file"]
    assert refused and {r["status"] for r in refused} == {"unsupported"}
    assert {r["round"] for r in refused} == {min(r["round"] for r in refused)}
    assert sorted(r["mapper"] for r in refused) == [0, 1, 2]
    [skip] = [s for s in meta(run)["skipped"] if s["scenario"] == refused[0]["scenario"]]
    assert "refused" in skip["reason"] and refused[0]["error"] in skip["reason"]


@HOST
def test_knobs_are_read_back_and_restored(multi_run: tuple[Path, str, str]) -> None:
    _, before, after = multi_run
    assert after == before
    assert read_value(resolve("thp.shmem_enabled")) in before


@pytest.fixture(scope="module")
def resumable(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(uninterrupted run, killed-then-resumed run, the uninterrupted run's stderr)."""
    tmp = tmp_path_factory.mktemp("resume")
    workload = tmp / "resumable.toml"
    workload.write_text(RESUMABLE)
    whole = faultbench("run", workload, "--out", tmp / "whole", check=False)
    assert whole.returncode == 0, whole.stderr

    killed = tmp / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "faultbench", "run", str(workload),
                             "--out", str(killed), "-q"], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        path = killed / SAMPLES
        if path.exists() and path.read_text().count("\n") >= 10:
            break
        time.sleep(0.005)
    children = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert children, "the runner had no worker process"
    for pid in children:  # the worker dies with its parent
        _wait_gone(pid)
    assert meta(killed)["finished_utc"] is None, "the run finished before it was killed"
    lines = len(records(killed))
    resumed = faultbench("run", "--resume", killed, "-q", check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert len(records(killed)) > lines
    return tmp / "whole", killed, whole.stderr


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # gone since it was listed
        return b""


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists():
        stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}").exists() else ""
        if stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]:
            return  # dead, waiting for init to reap it
        assert time.monotonic() < deadline, f"worker {pid} outlived its killed runner"
        time.sleep(0.01)


def test_kill_9_then_resume_gives_the_uninterrupted_sample_set(
    resumable: tuple[Path, Path, str],
) -> None:
    whole, resumed, _ = resumable
    keys = [sample_key(r) for r in records(resumed)]
    assert len(keys) == len(set(keys)), "a resumed run duplicated samples"
    assert set(keys) == {sample_key(r) for r in records(whole)}
    assert all(r["status"] == "ok" for r in records(resumed))
    assert meta(resumed)["finished_utc"] and (resumed / PYPERF).exists()
    assert not list(resumed.glob(".*.tmp"))


@ALONE  # shmem THP switched on changes every memfd's faults for a test beside it
@HOST
@pytest.mark.parametrize("by_hand", [False, True])
def test_resume_after_kill_9_puts_the_journaled_knob_back_first(
        tmp_path: Path, by_hand: bool) -> None:
    """With `by_hand`, an admin set the knob after the kill to a value the run never set
    (round 41: the resume said it "restored" it as left by the interrupted run)."""
    choices, current = bracket_choices(Path(THP_SHMEM).read_text())
    values = [c for c in ("advise", "always", "never") if c in choices and c != current][:2]
    hand = next(c for c in ("within_size", "advise", "always", "never")
                if c in choices and c not in (current, *values))
    (tmp_path / "knob.toml").write_text(
        'repetitions = 40\n[[matrix]]\nbacking = "memfd"\nsize = "8M"\nuffd = "wp"\n'
        f'knobs."thp.shmem_enabled" = {json.dumps(values)}\n')
    env = {**os.environ, "FAULTBENCH_JOURNAL": str(tmp_path / "journal.json")}
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "faultbench", "run", str(tmp_path / "knob.toml"),
                             "--out", str(run), "-q"], stdout=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 60
    while not ((run / SAMPLES).exists() and (run / SAMPLES).read_text().count("\n") >= 3):
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (tmp_path / "journal.json").exists()
    left = read_value(resolve("thp.shmem_enabled"))
    assert left in values  # left changed by the kill
    if by_hand:
        Path(THP_SHMEM).write_text(hand)
    done = subprocess.run([sys.executable, "-m", "faultbench", "run", "--resume", str(run), "-q"],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert (f"faultbench run: restored thp.shmem_enabled: {hand} -> {current} ({hand} is no "
            "value the interrupted run set: someone changed it since)\n" if by_hand else
            f"faultbench run: restored thp.shmem_enabled: {left} -> {current} (left by the "
            "interrupted run)\n") in done.stderr, done.stderr
    assert read_value(resolve("thp.shmem_enabled")) == current
    assert not (tmp_path / "journal.json").exists()
    assert len(records(run)) == 2 * 41


def test_progress_is_one_plain_line_per_measurement_off_a_terminal(
    resumable: tuple[Path, Path, str],
) -> None:
    whole, _, stderr = resumable
    total = len(meta(whole)["scenarios"]) * 9
    lines = [ln for ln in stderr.splitlines() if ln.startswith("[")]
    assert len(lines) == total
    assert lines[-1].startswith(f"[{total}/{total}] ETA 0:00 r8 ")
    assert all(len(ln) < 100 for ln in lines), max(lines, key=len)
    assert all(" ETA " in ln and ("ns/pg" in ln or "error" in ln) for ln in lines)
    assert all(ln.split()[0] == f"[{i}/{total}]" for i, ln in enumerate(lines, 1))


def test_pyperf_json_is_a_suite_compare_to_accepts(resumable: tuple[Path, Path, str]) -> None:
    whole, resumed, _ = resumable
    suite = pyperf.BenchmarkSuite.load(str(whole / PYPERF))
    names = {s["name"] for s in meta(whole)["scenarios"]}
    assert set(suite.get_benchmark_names()) == names
    by_name = {}
    for r in records(whole):
        if not r["warmup"]:
            by_name.setdefault(r["scenario"], []).append(r["ns_per_page"] * 1e-9)
    for bench in suite.get_benchmarks():
        assert sorted(bench.get_values()) == pytest.approx(sorted(by_name[bench.get_name()]))
        assert [len(run.warmups or ()) for run in bench.get_runs()][:2] == [1, 0]
        assert bench.get_unit() == "second"
    done = subprocess.run(
        [sys.executable, "-m", "pyperf", "compare_to", str(whole / PYPERF),
         str(resumed / PYPERF), "--table"], capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert all(name in done.stdout for name in names)


def run_with_a_crash(tmp_path: Path) -> RunDir:
    """A run of 2 scenarios x 3 rounds x 2 mappers whose worker is killed (SIGKILL) in its
    third measurement; the directory still locked by this process."""
    path = tmp_path / "crash.toml"
    path.write_text('repetitions = 3\nwarmups = 0\n[[matrix]]\nsize = "4M"\n'
                    'mappers = 2\npattern = ["seq", "random"]\n')
    run_dir = start(load(str(path)), tmp_path / "run")
    seen: list[int] = []

    def kill_the_worker_at_the_third(unit: object) -> None:
        seen.append(1)
        if len(seen) == 3:
            # this process's worker: another test of this xdist worker may have left a child
            [worker] = [pid for pid in _children(os.getpid())
                        if b"faultbench.measurement.worker" in _cmdline(pid)]
            os.kill(worker, signal.SIGKILL)

    execute(run_dir, quiet=True, on_unit=kill_the_worker_at_the_third)
    return run_dir


def test_a_crashed_worker_costs_one_measurement(tmp_path: Path) -> None:
    run_dir = run_with_a_crash(tmp_path)
    rows = records(run_dir.path)
    lost = [r for r in rows if r["status"] == "error"]
    assert len(rows) == 2 * 3 * 2 and len(lost) == 2  # both mappers of one measurement
    assert {r["mapper"] for r in lost} == {0, 1}
    assert "SIGKILL" in lost[0]["error"]
    assert all(r["status"] == "ok" for r in rows if r not in lost)
    assert not _children(os.getpid())


def test_a_hung_worker_is_killed_at_the_deadline() -> None:
    worker = Worker()
    spec = Spec(size=64 << 20, uffd="wp", pattern="random").normalized()
    try:
        with pytest.raises(WorkerLost, match="no result within"):
            worker.measure(spec, timeout_s=0.001)
        assert worker.pid is None and not _children(os.getpid())
        [sample] = worker.measure(spec, timeout_s=60)
        assert sample["status"] == "ok"
    finally:
        worker.close()
    assert not _children(os.getpid())


def test_a_matrix_beyond_memory_is_refused_with_the_figure(tmp_path: Path) -> None:
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    available_kb = next(int(ln.split()[1]) for ln in meminfo if ln.startswith("MemAvailable:"))
    size = f"{available_kb // 2**20 + 1}G"  # more than all of it
    path = tmp_path / "huge.toml"
    path.write_text(f'[[matrix]]\nbacking = "memfd"\nsize = "{size}"\n'
                    '[[matrix]]\nbacking = "memfd"\nsize = "1M"\n')
    done = faultbench("run", path, "--out", tmp_path / "out", check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"memfd,{size}," in done.stderr and " MiB is available" in done.stderr
    assert "available" in done.stderr
    assert not (tmp_path / "out").exists()


def test_resume_refuses_a_directory_that_is_not_a_run(tmp_path: Path) -> None:
    done = faultbench("run", "--resume", tmp_path, check=False)
    assert done.returncode == 2 and "not a faultbench run directory" in done.stderr
    assert RunDir(tmp_path).read_samples() == []


@SWEEP_RUN
def test_kernel_runs_the_whole_workload_in_one_boot_with_the_knob_axis(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The booted run shared with the analysis tests: a fault_around_bytes sweep, which this
    machine's locked-down kernel cannot do natively."""
    run = tcg_run(tmp_path_factory)
    info = meta(run)
    assert info["plane"] in ("tcg-icount", "kvm-guest") and info["finished_utc"]
    # under TCG the default clock is QEMU's instruction counter, and meta.json says so
    clock = info["clock"]
    assert clock["name"] == ("wall" if info["plane"] == "kvm-guest" else "icount")
    assert clock["name"] == "wall" or clock["qemu_opts"] == "-icount shift=0,sleep=on"
    assert not [s for s in info["skipped"] if s["scenario"].startswith(KNOB_AXIS)]
    wanted = {s["name"]: s["knobs"]["fault_around_bytes"] for s in info["scenarios"]}
    assert len(set(wanted.values())) > 1
    seq = [r for r in records(run) if r["status"] == "ok" and r["spec"]["pattern"] == "seq"]
    assert seq and all(r["plane"] == info["plane"] for r in seq)
    for r in seq:
        fault_around = r["knobs"]["fault_around_bytes"]
        assert str(fault_around) == wanted[r["scenario"]]  # read back from the kernel
        # each fault maps the naturally aligned fault_around_bytes block around it
        expected = r["pages_touched"] * r["page_size"] / fault_around
        assert abs(r["faults_minor"] + r["faults_major"] - expected) <= 2, r
    suite = pyperf.BenchmarkSuite.load(str(run / PYPERF))
    bench = suite.get_benchmark(seq[0]["scenario"])
    assert bench.get_metadata()["knob_fault_around_bytes"] == wanted[seq[0]["scenario"]]
