"""Round twelve, the `run` command: a signal ignored when faultbench started (nohup's SIGHUP,
a non-interactive shell's SIGINT for `cmd &`) interrupted the run (R12-2); `run` exited 0
when no measured sample was one a statistic reads, all drifted or only profiled ones valid
(R12-5); a run without knobs started while another faultbench held the knob lock was
measured at that one's knob values with no word (R12-9); one mapper's `mapper_kind` was left
out of the scenario name, so `["thread", "process"]` became one scenario, the kind kept
depending on axis order (R12-12). Real native runs, the real commands."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

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
