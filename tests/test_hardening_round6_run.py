"""Round six, runs and their directories: a SIGTERM that lands after a run sealed its
meta.json says the run finished (not "continue with --resume", which would find nothing to
resume); merge refuses a shard's sample labelled with a kernel its meta.json does not list.
Real commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from console import said

ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}


def test_sigterm_after_the_run_finished_says_it_finished(tmp_path: Path) -> None:
    workload = tmp_path / "w.toml"
    workload.write_text('repetitions = 1\nwarmups = 0\n[defaults]\nsize = "1M"\n'
                        '[[matrix]]\npattern = "seq"\n')
    out = tmp_path / "r"
    for _ in range(5):  # the window (the report's imports) is a second or so: retried if missed
        run = subprocess.Popen([sys.executable, "-m", "faultbench", "run", workload, "--out",
                                out, "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=ENV)
        while run.poll() is None:
            try:
                sealed = json.loads((out / "meta.json").read_text()).get("finished_utc")
            except (OSError, ValueError):
                sealed = None
            if sealed:
                run.send_signal(signal.SIGTERM)
                break
            time.sleep(0.005)
        _, stderr = run.communicate(timeout=120)
        if run.returncode == 128 + signal.SIGTERM:
            break
        subprocess.run(["rm", "-rf", out], check=True)
    else:
        pytest.skip("the SIGTERM never landed between the sealing and the exit")
    assert "Traceback" not in stderr
    assert said(stderr)[-1] == (f"faultbench run: interrupted after the run finished: every "
                                f"sample is in {out}; see them with: faultbench report {out}")
