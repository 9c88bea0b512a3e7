"""Round five, minor defects on the machine: `doctor` names a live measurement's tmpfs mount
as that process's mount (not a knob change); `run` sets read_ahead_kb on the disk its files
are on, and refuses scenarios on two disks; knob values that would endanger the machine
(vm.panic_on_oom 1 or 2, vm.min_free_kbytes or vm.nr_hugepages beyond its memory) are
refused before anything is changed. Real commands, real knobs, a real second disk (a loop
device)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from console import one_line
from groups import HOST
from test_hardening_round4_mounts import ENV, measure_holding_tmpfs

from faultbench.measurement.knobs.catalog import read_ahead_path, read_value, resolve
from faultbench.measurement.measure import DEFAULT_DIRS, meminfo

# knob writes, tmpfs mounts, the doctor's probes: one at a time (tests/groups.py)
pytestmark = HOST

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="knobs and mounts need root")


def fb(*args: str | Path, env: dict[str, str] | None = None
       ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "faultbench", *map(str, args)],
                          capture_output=True, text=True, timeout=300, check=False, env=env)


# ---- doctor: a live measurement's tmpfs mount --------------------------------------------

# knob_checks() until one names the mount journal of `pid`, printed as JSON
DOCTOR_UNTIL_FOUND = """
import json, sys, time
from dataclasses import asdict
from faultbench.measurement.doctor import knob_checks
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    found = [asdict(c) for c in knob_checks() if c.name == "mount journal"
             and "mount-{pid}.json" in c.detail]
    if found:
        print(json.dumps(found))
        break
"""


@needs_root
def test_doctor_names_a_live_measures_tmpfs_as_its_mount(tmp_path: Path) -> None:
    journal = tmp_path / "run" / "journal.json"
    env = {**ENV, "FAULTBENCH_JOURNAL": str(journal)}
    measure = measure_holding_tmpfs(env)
    try:
        # each sample mounts a tmpfs of its own: asked until one is there
        done = subprocess.run([sys.executable, "-c", DOCTOR_UNTIL_FOUND.format(pid=measure.pid)],
                              capture_output=True, text=True, env=env, timeout=180, check=True)
    finally:
        measure.send_signal(signal.SIGINT)
        measure.communicate(timeout=120)
    assert done.stdout, f"no mount journal of pid {measure.pid} within 120 s: {done.stderr}"
    [check] = json.loads(done.stdout)
    assert check["detail"] == (
        f"`faultbench measure` (pid {measure.pid}) is still running and holds a tmpfs mount "
        f"it releases itself when it ends (journal {journal.parent}/mount-{measure.pid}.json)")
    assert check["ok"] is None  # a fact: nothing to restore or fix


# ---- read_ahead_kb: the disk the run's files are on ---------------------------------------

def _read_ahead(directory: str) -> tuple[str, int]:
    path = read_ahead_path(directory)
    return path, int(Path(path).read_text())


def _workload(tmp_path: Path, dirs: list[str], value: int, repetitions: int) -> Path:
    path = tmp_path / "w.toml"
    path.write_text(f'repetitions = {repetitions}\nwarmups = 0\n[defaults]\nbacking = "file"\n'
                    f'size = "1M"\n[knobs]\nread_ahead_kb = [{value}]\n[[matrix]]\n'
                    f"dir = {json.dumps(dirs)}\n")
    return path


def _other_value(*taken: int) -> int:
    return next(v for v in (512, 1024, 2048) if v not in taken)


@needs_root
def test_run_sets_read_ahead_on_the_disk_of_its_files(tmp_path: Path, xfs_dir: str) -> None:
    (loop, loop_before), (disk, disk_before) = _read_ahead(xfs_dir), _read_ahead(
        DEFAULT_DIRS["file"])
    assert loop != disk, (loop, disk)
    value = _other_value(loop_before, disk_before)
    run = subprocess.Popen([sys.executable, "-m", "faultbench", "run",
                            str(_workload(tmp_path, [xfs_dir], value, 60)), "--out",
                            str(tmp_path / "out"), "-q"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    seen_loop, seen_disk = set(), set()
    while run.poll() is None:
        seen_loop.add(int(Path(loop).read_text()))
        seen_disk.add(int(Path(disk).read_text()))
        time.sleep(0.001)
    _, err = run.communicate()
    assert run.returncode == 0, err
    assert value in seen_loop and seen_disk == {disk_before}, (seen_loop, seen_disk)
    assert _read_ahead(xfs_dir)[1] == loop_before
    samples = [json.loads(line) for line in
               (tmp_path / "out" / "samples.jsonl").read_text().splitlines()]
    assert {s["knobs"]["read_ahead_kb"] for s in samples} == {value}


@needs_root
def test_a_run_whose_files_are_on_two_disks_is_refused(tmp_path: Path, xfs_dir: str) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (loop, loop_before), (disk, disk_before) = _read_ahead(xfs_dir), _read_ahead(str(other))
    assert loop != disk, (loop, disk)
    workload = _workload(tmp_path, [xfs_dir, str(other)], _other_value(loop_before, disk_before),
                         2)
    done = fb("run", workload, "--out", tmp_path / "out", "-q", env=ENV)
    line = one_line(done.stderr)
    assert done.returncode == 2, line
    assert line.startswith("faultbench run: read_ahead_kb: the scenarios' files are on 2 disks")
    assert f"{xfs_dir} on loop" in line and f"{other} on " in line, line
    assert "(--only dir=DIR)" in line, line
    assert not (tmp_path / "out").exists()
    assert (_read_ahead(xfs_dir)[1], _read_ahead(str(other))[1]) == (loop_before, disk_before)


# ---- knob values that would endanger the machine ------------------------------------------

def _beyond_memory() -> list[tuple[str, str, str]]:
    info = meminfo()
    total, huge = info["MemTotal"], info["Hugepagesize"]
    return [("vm.panic_on_oom", "1", "faultbench sets only 0; 1 or 2 panics the machine"),
            ("vm.panic_on_oom", "2", "faultbench sets only 0; 1 or 2 panics the machine"),
            ("vm.min_free_kbytes", str(total // 4 + 1), "more than 1/4 of this machine's memory"),
            ("vm.nr_hugepages", str(total // 2 // huge + 1),
             f"{total // 2 // huge + 1} x {huge} kB is more than 1/2 of this machine's memory")]


@needs_root
@pytest.mark.parametrize("knob,value,words", _beyond_memory())
def test_knob_values_that_endanger_the_machine_are_refused_before_anything(
        tmp_path: Path, knob: str, value: str, words: str) -> None:
    """With --kernel first: a refused value costs no boot (and, the image missing, a value
    that were accepted would be refused for the image, never set here); then natively."""
    before = read_value(resolve(knob))
    missing = tmp_path / "no-such-image"
    for args in (("measure", "--size", "1M", "--kernel", missing),
                 ("run", "quick", "--out", tmp_path / "out", "--kernel", missing),
                 ("measure", "--size", "1M")):
        done = fb(*args, "--set", f"{knob}={value}")
        line = one_line(done.stderr)
        assert done.returncode == 2 and f"{knob}={value}: {words}" in line, line
        assert read_value(resolve(knob)) == before
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("knob,value", [("vm.panic_on_oom", "0"),
                                        ("vm.min_free_kbytes", str(meminfo()["MemTotal"] // 4))])
def test_knob_values_within_the_bounds_are_accepted(tmp_path: Path, knob: str, value: str) -> None:
    """Checked with a missing --kernel image: accepted, the value goes as far as the boot."""
    done = fb("measure", "--size", "1M", "--set", f"{knob}={value}", "--kernel",
              tmp_path / "no-such-image")
    line = one_line(done.stderr)
    assert done.returncode == 2 and knob not in line and "no-such-image" in line, line
