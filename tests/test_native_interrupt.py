"""A signal ends a sample blocked in an unserved userfaultfd fault within about a second."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from faultbench import Spec, SpecError

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="userfaultfd here needs root")


def _default_signals() -> None:
    # a shell's background job starts with SIGINT ignored; Python then keeps it ignored
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def _descendants(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(entry))
    return found


@needs_root
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
@pytest.mark.parametrize("mappers", ["1", "2"])
def test_signal_ends_a_blocked_sample(signum, mappers):
    proc = subprocess.Popen(
        [sys.executable, "-m", "faultbench", "measure", "--size", "4M", "--uffd", "minor",
         "--no-serve", "--deadline", "600", "--mappers", mappers, "--warmups", "0", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_signals,
    )
    try:
        time.sleep(2.0)  # past start-up: the mapper is blocked in its first fault by now
        assert proc.poll() is None
        children = _descendants(proc.pid)
        assert len(children) == 1  # the first mapper process, blocked (one mapper too)
        assert len(os.listdir(f"/proc/{children[0]}/task")) == 2  # toucher + uffd server
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=3)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # one line and the status a shell gives (128 + signal), once the sample is cleaned up
    assert proc.returncode == 128 + signum, err
    assert "interrupted" in err
    for child in children:
        assert not os.path.exists(f"/proc/{child}"), "a mapper process outlived the run"
    del out


# Python runs its SIGINT handler at the first bytecode after fb_run returns; a no-op handler
# lets the child see the sample that fb_run recorded.
HELD_SIGINT = """
import json, os, signal, threading
from faultbench import Spec, measure
signal.signal(signal.SIGINT, lambda signum, frame: None)
threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()
sample = measure(Spec(backing="memfd", size=4 << 20, uffd="minor", uffd_serve=False,
                      deadline_s=600))
threading.Event().wait(0.2)  # the Timer thread ends
try:
    os.waitpid(-1, os.WNOHANG)
    mapper_left = True
except ChildProcessError:
    mapper_left = False
print(json.dumps([sample.status, sample.error, len(os.listdir("/proc/self/task")), mapper_left]))
"""


@needs_root
def test_interrupted_sample_is_an_error_naming_the_signal():
    result = subprocess.run([sys.executable, "-c", HELD_SIGINT], capture_output=True,
                            text=True, timeout=30, check=False, preexec_fn=_default_signals)
    assert result.returncode == 0, result.stderr
    status, error, threads, mapper_left = json.loads(result.stdout)
    assert status == "error"
    assert "interrupted by SIGINT" in error
    assert threads == 1  # no uffd server thread left running
    assert not mapper_left  # the mapper process (with its uffd server) was reaped


@pytest.mark.parametrize("deadline", [0, -1, 3601, 1e9])
def test_deadline_is_bounded(deadline):
    with pytest.raises(SpecError, match="deadline_s"):
        Spec(deadline_s=deadline).normalized()
