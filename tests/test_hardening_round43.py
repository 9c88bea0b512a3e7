"""Round forty-three: what a hostile pass on 3c1a60c found (no major finding). A run started
on one CPU (taskset) resumed on two, and pooled the samples of both (F3)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from analysis_runs import measuring
from console import one_line

FAULTBENCH = [sys.executable, "-m", "faultbench"]


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two usable CPUs")
def test_a_resume_on_other_usable_cpus_is_refused(tmp_path: Path) -> None:
    """F3: started under `taskset -c 0`, stopped, resumed on two CPUs: the rest was measured
    with another CPU free for everything else, pooled with the first under meta.json's
    `usable: 1`. Other CPU counts and models were refused already (round 39)."""
    workload = tmp_path / "w.toml"
    workload.write_text('repetitions = 2000\n[[matrix]]\nbacking = "memfd"\nsize = "1M"\n')
    run = tmp_path / "run"
    one = min(os.sched_getaffinity(0))
    proc = subprocess.Popen([*FAULTBENCH, "run", str(workload), "--out", str(run), "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=lambda: os.sched_setaffinity(0, {one}))
    measuring(run, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    before = (run / "samples.jsonl").read_text()
    done = subprocess.run([*FAULTBENCH, "run", "--resume", str(run), "-q"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert one_line(done.stderr) == (
        f"faultbench run: {run} was measured with 1 usable CPU(s) and this process may use "
        f"{len(os.sched_getaffinity(0))} (taskset, a cpuset, isolcpus): resuming here would "
        "pool samples of both under the first; resume it on the same CPUs, or start a new run")
    assert (run / "samples.jsonl").read_text() == before
