"""Round three, the minor defects a fresh hostile pass found after the first fixes: restore
leaving an empty /run/faultbench, FIFOs called missing files, `--by machine` on one
machine's run, a mapper's error printed raw, and an interruption not naming its command.
Real commands, real files and signals; the default journal directory where restore owns it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from console import one_line
from groups import HOST

from faultbench.analysis.summary import unmeasured_note
from faultbench.measurement.knobs.journal import DEFAULT_JOURNAL, JOURNAL_FORMAT

RUN_DIR = Path(DEFAULT_JOURNAL).parent


def fb(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "faultbench", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=120, check=False)


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@HOST
@pytest.mark.skipif(os.geteuid() != 0, reason="/run/faultbench is root's")
def test_restore_of_several_mount_journals_leaves_no_empty_run_directory() -> None:
    if RUN_DIR.exists():
        pytest.skip(f"{RUN_DIR} is in use by another faultbench (a run's lock or journal)")
    RUN_DIR.mkdir(mode=0o700)
    try:
        pids = [_dead_pid(), _dead_pid()]
        for pid in pids:
            journal = RUN_DIR / f"mount-{pid}.json"
            journal.write_text(json.dumps({"format": JOURNAL_FORMAT, "pid": pid,
                                           "pid_start": "1", "argv": [], "knobs": [],
                                           "unmount": []}))
            journal.chmod(0o600)
        done = fb("restore")
        assert done.returncode == 0, done.stderr
        assert sorted(done.stdout.splitlines()) == sorted(
            f"restored mount-{pid}.json: nothing was left mounted; journal removed"
            for pid in pids)
        assert not RUN_DIR.exists(), list(RUN_DIR.iterdir())
    finally:
        if RUN_DIR.exists() and not any(RUN_DIR.iterdir()):
            RUN_DIR.rmdir()


def test_a_fifo_where_a_file_belongs_is_called_a_fifo(tmp_path: Path) -> None:
    for name in ("w.toml", "image"):
        os.mkfifo(tmp_path / name)
    run = tmp_path / "run"
    run.mkdir()
    os.mkfifo(run / "meta.json")
    (run / "samples.jsonl").touch()
    for args, quoted in ((("run", "w.toml"), "w.toml"),
                         (("measure", "--kernel", "image", "--size", "1M"), "image"),
                         (("run", "--resume", "run"), "run/meta.json"),
                         (("report", "run"), "run/meta.json")):
        done = fb(*args, cwd=tmp_path)
        line = one_line(done.stderr)
        assert done.returncode == 2 and quoted in line and "a FIFO" in line, line
        assert "no such" not in line and "not found" not in line, line


def test_compare_by_machine_on_one_machines_run_says_so(tmp_path: Path) -> None:
    workload = tmp_path / "w.toml"
    workload.write_text('repetitions = 2\n[defaults]\nbacking = "memfd"\nsize = "1M"\n'
                        '[[matrix]]\npattern = "seq"\n')
    run = tmp_path / "run"
    assert fb("run", workload, "--out", run, "-q").returncode == 0
    done = fb("compare", f"{run}:a", f"{run}:b", "--by", "machine")
    line = one_line(done.stderr)
    assert done.returncode == 2 and "one machine's run" in line and "merge" in line, line
    assert "machine=a" not in line


def test_a_mappers_error_text_is_escaped_in_the_no_valid_sample_note() -> None:
    """The error is text the mapper process wrote to shared memory: a report must not pass
    its escape sequences to the terminal."""
    df = pd.DataFrame({"scenario": ["memfd,1M,seq"] * 2, "warmup": [False] * 2,
                       "ok": [False] * 2, "status": ["error"] * 2,
                       "error": ["mapper: \x1b]0;pwn\x07\x1b[2Jbad", "other"]})
    note = unmeasured_note(df)
    assert "\x1b" not in note and "\x07" not in note
    assert "\\x1b]0;pwn\\x07\\x1b[2Jbad" in note and "memfd,1M,seq: error: mapper:" in note


def test_an_interrupted_command_names_itself(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "faultbench", "measure", "--size", "64M", "--repeat",
               "100000"]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    time.sleep(4)  # past the imports and into the samples
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 130
    assert stderr.splitlines()[-1] == "faultbench measure: interrupted", stderr
