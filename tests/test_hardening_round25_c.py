"""Round 25, c: a booted run stopped (Ctrl-Z) past its boot's timeout collects a guest that
finished in time (R25-3); a resume sets aside the kernel profiles of an unfinished boot with
its samples (R25-4)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from faultbench.measurement.booted import guest, vngproc
from faultbench.measurement.booted.setaside import set_aside
from faultbench.measurement.rundir.results import RunDir
from faultbench.measurement.rundir.runfiles import DISCARDED_PROFILES


def _child(script: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sh", "-c", script], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def test_a_guest_that_ended_before_a_stop_past_the_deadline_is_collected(
        tmp_path: Path) -> None:
    """R25-3: the host stopped past the deadline resumes to find the guest's output and end
    of file waiting, the guest having exited in time: what it printed is read, not failed."""
    started = tmp_path / "started"
    started.touch()
    proc = _child("echo booted; echo its last line >&2")
    proc.wait()  # it ended while we were stopped
    try:
        tail = vngproc.copy_until_exit(proc, time.monotonic() - 100, vngproc.GuestError("late"),
                                      str(started), threading.Event(), sys.stdout)
    finally:
        vngproc.kill_group(proc)
    assert sorted(tail.splitlines()) == [b"booted", b"its last line"]


def test_a_guest_printing_on_past_the_deadline_is_late(tmp_path: Path) -> None:
    """R25-3: what waits past the deadline is read for a moment only, so a guest that never
    stops printing is still killed as late."""
    started = tmp_path / "started"
    started.touch()
    proc = _child("while :; do echo still going; done")
    begun = time.monotonic()
    try:
        with pytest.raises(guest.GuestError, match="late"):
            vngproc.copy_until_exit(proc, begun - 100, vngproc.GuestError("late"), str(started),
                                   threading.Event(), sys.stdout)
    finally:
        vngproc.kill_group(proc)
    assert time.monotonic() - begun < 10


SHIPPED = Path(__file__).resolve().parent.parent / "results" / "tcg-icount-profile-kernels"


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _append(path: Path, records: list[dict]) -> None:
    with path.open("a") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in records)


def test_a_resume_sets_aside_the_profiles_of_a_boot_killed_after_they_were_added(
        tmp_path: Path) -> None:
    """R25-4: a kill after bootresult._collect added a boot's profiles and samples, before the boot
    was recorded as done, leaves both in the run's files; the resume (set_aside) moves the
    profiles out with the samples, so the redone boot's profile is each sample's only one."""
    run = shutil.copytree(SHIPPED, tmp_path / "run")
    meta = json.loads((run / "meta.json").read_text())
    last = meta["boots"][-1]
    last.update(status="running", finished_utc=None, reason=None)
    meta["finished_utc"] = None
    (run / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    (run / "pyperf.json").unlink()
    boot = last["index"]
    profiles, samples = _lines(run / "profiles.jsonl"), _lines(run / "samples.jsonl")
    theirs = [p for p in profiles if p["boot"] == boot]
    assert theirs and len(theirs) < len(profiles)

    run_dir = RunDir.existing(run)  # as the resume opens it
    try:
        assert set_aside(run_dir, boot, "killed") == sum(s["boot"] == boot for s in samples)
    finally:
        run_dir.lock.release()
        run_dir.dir.close()
    assert _lines(run / "profiles.jsonl") == [p for p in profiles if p["boot"] != boot]
    assert _lines(run / DISCARDED_PROFILES) == [{**p, "discarded": "killed"} for p in theirs]

    # the redone boot appends its own profiles (measured again: they differ), then samples
    redone = [{**p, "loop": {**p["loop"], "throttled": p["loop"]["throttled"] + 1}}
              for p in theirs]
    _append(run / "profiles.jsonl", redone)
    _append(run / "samples.jsonl", [s for s in samples if s["boot"] == boot])
    last.update(status="ok", finished_utc=meta["boots"][0]["finished_utc"])
    (run / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    done = subprocess.run([sys.executable, "-m", "faultbench", "report", str(run), "--json"],
                          capture_output=True, text=True, check=True)
    coverage = json.loads(done.stdout)["profile_coverage"]
    assert coverage["profiled_samples"] == len(profiles)
    assert (coverage["without_profile"], coverage["skipped_lines"],
            coverage["unmatched_lines"]) == (0, 0, 0)
