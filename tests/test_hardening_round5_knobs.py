"""Round five, knob minors: every catchable signal that would end a run restores its knobs
first (as SIGTERM does); a per-size shmem THP knob is refused where it cannot act (memfd,
private anon) as read_ahead_kb is for a backing without a disk; vm.stat_refresh (reads back
empty) is refused as write-only; a restore that finds another restore holding the knob lock
says so. Real commands, real knobs."""

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

from faultbench.measurement.knobs.catalog import THP_DIR, read_value, resolve

# knob writes and the knob lock: one at a time (tests/groups.py)
pytestmark = [HOST, pytest.mark.skipif(os.geteuid() != 0, reason="knobs need root")]

ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}


def fb(*args: str | Path, env: dict[str, str] = ENV) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "faultbench", *map(str, args)],
                          capture_output=True, text=True, timeout=300, check=False, env=env)


def _swappiness() -> int:
    return int(Path("/proc/sys/vm/swappiness").read_text())


def signalled_once_set(command: subprocess.Popen[str], values: list[int], signum: int,
                       measuring: Path | None = None) -> str:
    """The stderr of `command`, sent `signum` once it has set vm.swappiness to one of
    `values` (and, with `measuring`, once that file exists: a run sets each value once
    before its directory exists, to refuse two the kernel reads back alike)."""
    deadline = time.monotonic() + 60
    while (_swappiness() not in values or (measuring and not measuring.exists())) and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    assert _swappiness() in values, "the run never set the knob"
    command.send_signal(signum)
    return command.communicate(timeout=120)[1]


@pytest.mark.parametrize("signum", [signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM,
                                    signal.SIGXCPU, signal.SIGPROF, signal.SIGVTALRM])
def test_every_catchable_fatal_signal_restores_the_knobs(tmp_path: Path, signum: int) -> None:
    before = _swappiness()
    values = [v for v in (61, 62, 63) if v != before][:2]
    env = {**ENV, "FAULTBENCH_JOURNAL": str(tmp_path / "j" / "journal.json")}
    measure = subprocess.Popen(
        [sys.executable, "-m", "faultbench", "measure", "--size", "1M", "--repeat", "100000",
         "--set", f"vm.swappiness={values[0]},{values[1]}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        err = signalled_once_set(measure, values, signum)
    finally:
        measure.kill()
    assert measure.returncode == 128 + signum, err
    assert f"faultbench: {signal.Signals(signum).name}: kernel knobs restored" in err
    assert "Traceback" not in err
    assert _swappiness() == before and not (tmp_path / "j" / "journal.json").exists()


@pytest.mark.parametrize("backing,mapping,what", [("memfd", "shared", "backing memfd"),
                                                  ("anon", "private",
                                                   "backing anon with map private")])
def test_a_per_size_shmem_knob_is_refused_where_it_cannot_act(
        backing: str, mapping: str, what: str) -> None:
    sizes = sorted(p.name for p in Path(THP_DIR).glob("hugepages-*kB")
                   if (p / "shmem_enabled").exists())
    if not sizes:
        pytest.skip("no per-size shmem THP knobs (Linux < 6.11)")
    name = f"thp.{sizes[0]}.shmem_enabled"
    before = read_value(resolve(name))
    done = fb("measure", "--backing", backing, "--map", mapping, "--size", "4M",
              "--set", f"{name}=never")
    assert done.returncode == 2 and done.stdout == ""
    assert one_line(done.stderr) == (
        f"faultbench measure: {name}: per-size shmem THP governs anonymous shared memory "
        f"only (backing anon, map shared), not {what}; a memfd follows thp.shmem_enabled, a "
        "tmpfs file its mount's huge=")
    assert read_value(resolve(name)) == before


def test_a_sysctl_that_reads_back_empty_is_refused_as_write_only() -> None:
    if not Path("/proc/sys/vm/stat_refresh").exists():
        pytest.skip("no vm.stat_refresh")
    done = fb("measure", "--size", "1M", "--set", "vm.stat_refresh=1")
    assert done.returncode == 2 and done.stdout == ""
    assert one_line(done.stderr) == ("faultbench measure: vm.stat_refresh is write-only: its "
                                     "original cannot be read, so faultbench could not "
                                     "restore it")


HOLD_AS_RESTORE = """
import sys, time
sys.argv = ["/usr/bin/faultbench", "restore"]
from faultbench.measurement.knobs.knoblock import KnobLock
with KnobLock(sys.stdin.readline().strip()):
    print("held", flush=True)
    sys.stdin.readline()
"""


def test_a_restore_behind_another_restore_says_so(tmp_path: Path) -> None:
    journal = tmp_path / "journal.json"
    journal.write_text(json.dumps({
        "format": "faultbench-journal/1", "pid": 999999999, "pid_start": "1", "argv": [],
        "knobs": [{"name": "vm.swappiness", "path": "/proc/sys/vm/swappiness",
                   "original": str(_swappiness())}]}))
    journal.chmod(0o600)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_AS_RESTORE], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.write(f"{journal}\n")
        holder.stdin.flush()
        assert holder.stdout.readline() == "held\n"
        done = fb("restore", "--journal", journal)
    finally:
        holder.communicate("\n", timeout=60)
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert line.startswith(f"faultbench restore: another `faultbench restore` (pid "
                           f"{holder.pid}: `/usr/bin/faultbench restore`, since "), line
    assert line.endswith(") is putting kernel knobs back; wait for it to finish"), line
    assert fb("restore", "--journal", journal).returncode == 0
    assert not journal.exists()
