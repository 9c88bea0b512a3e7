"""Round forty-two: what a hostile pass on a741b5e found (no major finding). A knob every
row set was named nowhere in the report (F1); /run/faultbench was made with the umask's mode
by the first mount journal (m3); a run failing at a low `ulimit -n` named no limit (m1); a
`measure` beside a knob writer said nothing of its knobs (m2)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from analysis_runs import measuring
from console import one_line
from groups import HOST
from inprocess import in_process

FAULTBENCH = [sys.executable, "-m", "faultbench"]
RESULTS = Path(__file__).parents[1] / "results"
RUN_DIR = Path("/run/faultbench")


@HOST  # its tmpfs mount, and /run/faultbench, are the machine's
@pytest.mark.skipif(os.geteuid() != 0, reason="a tmpfs of its own needs root")
def test_run_faultbench_is_roots_alone_whoever_makes_it() -> None:
    """m3: `measure --tmpfs-huge` made /run/faultbench 0755 (umask 022) for its mount
    journal; a knob run's journal and lock then sat in a directory every user could list.
    docs/knobs.md: root's, 0700."""
    proc = subprocess.Popen([*FAULTBENCH, "measure", "--backing", "tmpfs", "--tmpfs-huge",
                             "always", "--size", "64M", "--repeat", "2000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: os.umask(0o022))
    try:
        deadline = time.monotonic() + 60
        while not (RUN_DIR.is_dir() and any(RUN_DIR.glob("mount-*.json"))):
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr
            time.sleep(0.005)
        assert stat.S_IMODE(RUN_DIR.stat().st_mode) == 0o700
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@HOST  # it sets vm.swappiness (which no other test's counts depend on), under the knob lock
@pytest.mark.skipif(os.geteuid() != 0, reason="setting a knob needs root")
def test_every_limit_on_open_files_is_named_and_a_left_run_can_be_resumed(
        tmp_path: Path) -> None:
    """m1: at `ulimit -n` 8 a run said "cannot run mount: Too many open files", at 12
    "cannot write the restore journal ...: Too many open files" and left a run directory
    (meta.json only) saying nothing of it. Each limit from 6 to 24 fails where it fails: the
    line names the limit, and a directory left behind is named with its resume command."""
    workload = tmp_path / "w.toml"
    workload.write_text('repetitions = 1\n[[matrix]]\nbacking = "memfd"\nsize = "1M"\n')
    failed = 0
    for limit in range(6, 25):
        run = tmp_path / f"run{limit}"
        done = subprocess.run(
            [*FAULTBENCH, "run", str(workload), "--set", "vm.swappiness=61", "--out", str(run),
             "-q"], capture_output=True, text=True, timeout=120, check=False,
            preexec_fn=lambda n=limit: resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)))
        if done.returncode == 0:
            continue
        failed += 1
        line = one_line(done.stderr)  # (a busy machine's warning aside)
        assert done.returncode == 2 and "(the limit on open files: raise `ulimit -n`)" in line
        if run.exists():
            assert line.endswith(f"; continue with: faultbench run --resume {run}"), line
            # round 43 m2: at 13 to 15 it said "samples so far are in" a run holding none
            samples = run / "samples.jsonl"
            held = samples.exists() and samples.stat().st_size > 0
            assert (f"; samples so far are in {run};" if held
                    else f"; {run} holds no sample yet;") in line, line
    assert failed  # the lowest limits fail


@HOST  # it holds the knob lock a while, setting vm.swappiness (no count depends on it)
@pytest.mark.skipif(os.geteuid() != 0, reason="setting a knob needs root")
def test_measure_beside_a_knob_writer_says_it_measured_at_its_knobs(tmp_path: Path) -> None:
    """m2: a plain `measure` beside a run holding the knob lock measured at that run's
    settings (shmem THP, in the report) and said nothing; `run` warns of it."""
    workload = tmp_path / "w.toml"
    workload.write_text('repetitions = 2000\n[[matrix]]\nbacking = "memfd"\nsize = "1M"\n')
    run = tmp_path / "run"
    writer = subprocess.Popen([*FAULTBENCH, "run", str(workload), "--set", "vm.swappiness=61",
                               "--out", str(run), "-q"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        measuring(run, writer)
        done = subprocess.run([*FAULTBENCH, "measure", "--size", "1M", "--repeat", "1"],
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        [line] = [line for line in done.stderr.splitlines() if "knob lock" in line]
        assert line.startswith(f"faultbench measure: WARNING: another faultbench (pid "
                               f"{writer.pid}, `"), done.stderr
        assert line.endswith("`) held the knob lock: measured at the kernel knobs it had "
                             "changed, not the machine's own"), done.stderr
        # round 45 F1: its command was cut at 80 characters, before the knob it sets
        assert "--set vm.swappiness=61 --out" in line, line
    finally:
        writer.terminate()
        writer.wait(timeout=60)


def test_a_knob_every_row_set_unlike_the_machine_is_said(tmp_path: Path) -> None:
    """F1: `--set thp.enabled=always` (every row) was named nowhere in report.txt: no row's
    label names a knob all rows share, and "All rows:" lists spec fields. A native run's
    provenance has the machine's own THP settings and fault_around_bytes: a knob every row
    set otherwise is said. (Here the machine's own is edited: the run pinned
    thp.shmem_enabled=never on a machine whose own is never.)"""
    run = Path(shutil.copytree(RESULTS / "native-quick", tmp_path / "run"))
    assert "Set for every row" not in in_process("report", run, "--no-figures").stdout
    meta = json.loads((run / "meta.json").read_text())
    meta["provenance"]["thp"]["thp.shmem_enabled"] = "advise"
    (run / "meta.json").write_text(json.dumps(meta))
    done = in_process("report", run, "--no-figures")
    assert done.returncode == 0, done.stderr
    assert "Set for every row: thp.shmem_enabled=never (this machine's own: advise)." in \
        " ".join(done.stdout.split())
