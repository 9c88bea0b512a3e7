"""Round ten, signals (R10-6): signals.TERMINATING, said to be every catchable signal whose
default action ends the process, was a list of nine that lacked SIGQUIT (a terminal's
Ctrl-\\), SIGPWR, SIGIO, SIGSTKFLT and the real-time signals: a knob run they ended left
vm.swappiness at the swept value and its journal behind. The list is now derived from the
signals the platform has. A real native run, a real knob, the real signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from groups import HOST
from test_hardening_round5_knobs import _swappiness, signalled_once_set

# knob writes and the knob lock: one at a time (tests/groups.py)
pytestmark = [HOST, pytest.mark.skipif(os.geteuid() != 0, reason="knobs need root")]

TINY = """
repetitions = 50
warmups = 0
[defaults]
backing = "memfd"
size = "1M"
[[matrix]]
pattern = ["seq", "random"]
"""


@pytest.mark.parametrize("signum", [signal.SIGQUIT, signal.SIGPWR, signal.SIGRTMIN + 1],
                         ids=["QUIT", "PWR", "RTMIN+1"])
def test_a_signal_missing_from_the_old_list_restores_the_knobs(tmp_path: Path,
                                                              signum: int) -> None:
    before = _swappiness()
    values = [v for v in (61, 62, 63) if v != before][:2]
    journal = tmp_path / "j" / "journal.json"
    workload = tmp_path / "tiny.toml"
    workload.write_text(TINY)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]),
           "FAULTBENCH_JOURNAL": str(journal)}
    run = subprocess.Popen(
        [sys.executable, "-m", "faultbench", "run", workload, "--out", tmp_path / "out", "-q",
         "--set", f"vm.swappiness={values[0]},{values[1]}"],
        # as a terminal would deliver it: not ignored, as a shell's background job has it
        preexec_fn=lambda: signal.signal(signum, signal.SIG_DFL),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        err = signalled_once_set(run, values, signum, measuring=tmp_path / "out" / "worker.log")
    finally:
        run.kill()
        run.wait()
        journal_left = journal.exists()
        if journal_left:  # the knob left changed (the failure asserted below): put it back
            subprocess.run([sys.executable, "-m", "faultbench", "restore", "--journal", journal],
                           capture_output=True, timeout=60, check=False, env=env)
    assert run.returncode == 128 + signum, err
    name = "SIGRTMIN+1" if signum == signal.SIGRTMIN + 1 else signal.Signals(signum).name
    assert f"faultbench: {name}: kernel knobs restored" in err.splitlines(), err
    assert err.splitlines()[-1].startswith("faultbench run: interrupted;"), err
    assert "Traceback" not in err
    assert not journal_left
    assert _swappiness() == before
