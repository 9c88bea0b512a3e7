"""Round four: a tmpfs_huge measurement stopped by a signal (measure's own, or run's worker
killed by the runner) leaves no mount journal, mount point or journal temp file behind; and
`restore` removes a temp file a killed writer left. Real commands, real signals, each
test's own journal directory (other faultbench runs may be using /run/faultbench)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from groups import HOST

# knob writes, tmpfs mounts and restore: one at a time (tests/groups.py)
pytestmark = HOST

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="tmpfs_huge mounts: needs root")
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}


def _leftovers(directory: Path, pid: int) -> list[str]:
    """What process `pid` left in `directory`: its mount journal, mount point, temp files."""
    if not directory.exists():
        return []
    return sorted(p.name for p in directory.iterdir()
                  if p.name == f"mount-{pid}.json"
                  or p.name.startswith((f"faultbench-tmpfs-{pid}.", f".mount-{pid}.json.")))


@needs_root
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_arriving_while_the_tmpfs_is_set_up_releases_it(
        tmp_path: Path, signum: int) -> None:
    """The signal is sent while own_tmpfs has it blocked (as it mounts): it is delivered as
    the mask is restored, and must unwind through the release."""
    code = ("import os, sys\n"
            "from faultbench.measurement import signals\n"
            "from faultbench.measurement.knobs import tmpfs\n"
            "signals.started()\n"
            "real = tmpfs.run_mount_tool\n"
            "def mount(argv):\n"
            f"    os.kill(os.getpid(), {int(signum)})\n"
            "    return real(argv)\n"
            "tmpfs.run_mount_tool = mount\n"
            "try:\n"
            "    with tmpfs.own_tmpfs('always'):\n"
            "        print('not interrupted')\n"
            "except BaseException as exc:\n"
            "    print(type(exc).__name__)\n")
    journal = tmp_path / "run" / "journal.json"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             env={**ENV, "FAULTBENCH_JOURNAL": str(journal)})
    out, err = child.communicate(timeout=60)
    assert out.strip() in ("Interrupted", "Terminated"), (out, err)
    assert _leftovers(journal.parent, child.pid) == []


def _workload(tmp_path: Path) -> Path:
    path = tmp_path / "w.toml"
    path.write_text('repetitions = 400\n[defaults]\nbacking = "tmpfs"\nsize = "2M"\n'
                    '[[matrix]]\ntmpfs_huge = ["never", "always"]\n')
    return path


def _mount_journal_of_worker(directory: Path, run: subprocess.Popen[str]) -> int:
    """The pid of the worker once it holds a mount journal in `directory`."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert run.poll() is None, run.communicate()
        for entry in directory.glob("mount-*.json") if directory.exists() else []:
            return int(entry.name.removeprefix("mount-").removesuffix(".json"))
        time.sleep(0.01)
    pytest.fail("the run's worker mounted no tmpfs within 120 s")


@needs_root
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_run_stopped_while_its_worker_holds_a_tmpfs_leaves_nothing(
        tmp_path: Path, signum: int) -> None:
    journal = tmp_path / "run" / "journal.json"
    run = subprocess.Popen([sys.executable, "-m", "faultbench", "run", str(_workload(tmp_path)),
                            "--out", str(tmp_path / "out"), "-q"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**ENV, "FAULTBENCH_JOURNAL": str(journal)})
    worker = _mount_journal_of_worker(journal.parent, run)
    run.send_signal(signum)
    _, err = run.communicate(timeout=120)
    assert run.returncode == (130 if signum == signal.SIGINT else 128 + signum), err
    assert _leftovers(journal.parent, worker) == []


@needs_root
def test_restore_removes_a_mount_journal_temp_file_its_dead_writer_left(
        tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    journal = tmp_path / "run" / "journal.json"
    journal.parent.mkdir(mode=0o700)
    stray = journal.parent / f".mount-{dead.pid}.json.{dead.pid}.0123abcd.tmp"
    stray.write_text(json.dumps({"format": "faultbench-journal/1"}))
    alive = journal.parent / f".mount-{os.getpid()}.json.{os.getpid()}.0123abcd.tmp"
    alive.write_text("{}")  # a writer still alive: not provably stale
    done = subprocess.run([sys.executable, "-m", "faultbench", "restore"], capture_output=True,
                          text=True, env={**ENV, "FAULTBENCH_JOURNAL": str(journal)},
                          timeout=120, check=False)
    # (it may also find the journal of another engineer's run, alive: not ours to judge)
    assert done.returncode == 0 or "still running" in done.stderr, done.stderr
    assert not stray.exists() and alive.exists()


def measure_holding_tmpfs(env: dict[str, str]) -> subprocess.Popen[str]:
    """A `faultbench measure` that mounts a tmpfs of its own for each of its many samples."""
    return subprocess.Popen([sys.executable, "-m", "faultbench", "measure", "--backing",
                             "tmpfs", "--size", "64M", "--tmpfs-huge", "always",
                             "--repeat", "100000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=env)


@needs_root
def test_restore_names_a_live_measure_holding_a_tmpfs_mount(tmp_path: Path) -> None:
    journal = tmp_path / "run" / "journal.json"
    env = {**ENV, "FAULTBENCH_JOURNAL": str(journal)}
    measure = measure_holding_tmpfs(env)
    try:
        # each sample mounts a tmpfs of its own: restore may come between two, and say
        # there is nothing to restore (or speak of another engineer's run); it is asked
        # again until it finds the mount
        deadline = time.monotonic() + 120
        while True:
            assert measure.poll() is None and time.monotonic() < deadline, measure.stderr
            done = subprocess.run([sys.executable, "-m", "faultbench", "restore"],
                                  capture_output=True, text=True, env=env, timeout=120,
                                  check=False)
            assert "Traceback" not in done.stderr, done.stderr
            if "holds a tmpfs mount" in done.stderr:
                break
        assert done.returncode == 2 and (
            f"`faultbench measure` (pid {measure.pid}) is still running and holds a tmpfs "
            "mount") in done.stderr, done.stderr
    finally:
        measure.send_signal(signal.SIGINT)
        measure.communicate(timeout=120)
    assert _leftovers(journal.parent, measure.pid) == []
