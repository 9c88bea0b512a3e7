"""Round nineteen's fix for R19-5 (two different profiles of one sample: neither is used)
made a kill between a profiled sample's two lines cost that sample its profile: the runner
writes the profile first, so the resume measures the sample again and writes a second,
different profile of it. The resume now cuts a last profile line no sample has. A real
profiled run; the kill's outcome made by removing the last sample line, as a kill leaves it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from inprocess import in_process

from faultbench.measurement.profile import unavailable

FAULTBENCH = [sys.executable, "-m", "faultbench"]
WORKLOAD = """
repetitions = 2
warmups = 0
profile = 1
[defaults]
backing = "memfd"
size = "1M"
[[matrix]]
uffd = ["none", "wp"]
"""


needs_profiles = pytest.mark.skipif(os.geteuid() != 0 or unavailable() is not None,
                                    reason=f"kernel profiles need root here: {unavailable()}")


def _killed(tmp_path: Path) -> tuple[Path, dict]:
    """A finished profiled run as a kill after its last profile line leaves it: that line's
    sample line missing, meta.json unsealed. The run, and the sample taken out."""
    (tmp_path / "w.toml").write_text(WORKLOAD)
    run = tmp_path / "run"
    subprocess.run([*FAULTBENCH, "run", tmp_path / "w.toml", "--out", run, "-q"], check=True,
                   capture_output=True, timeout=300)
    samples = (run / "samples.jsonl").read_text().splitlines(keepends=True)
    last = json.loads(samples[-1])
    assert last["profiled"]  # the profiled rounds come last; its profile is the last line
    (run / "samples.jsonl").write_text("".join(samples[:-1]))
    meta = json.loads((run / "meta.json").read_text())
    meta["finished_utc"] = None
    (run / "meta.json").write_text(json.dumps(meta))
    return run, last


def _resumed(run: Path) -> None:
    done = subprocess.run([*FAULTBENCH, "run", "--resume", run, "-q"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr


@needs_profiles
def test_a_resume_after_a_kill_between_a_profile_and_its_sample_keeps_the_profile(
        tmp_path: Path) -> None:
    run, last = _killed(tmp_path)
    _resumed(run)
    key = ("scenario", "round", "mapper")
    profiles = [json.loads(line) for line in (run / "profiles.jsonl").read_text().splitlines()]
    assert [p for p in profiles if all(p[k] == last[k] for k in key)], "its profile is gone"
    assert len({tuple(p[k] for k in key) for p in profiles}) == len(profiles)
    coverage = json.loads(in_process("report", run, "--json").stdout)["profile_coverage"]
    assert coverage["without_profile"] == 0 and coverage["skipped_lines"] == 0, coverage


@needs_profiles
def test_a_last_line_that_is_no_profile_is_left_to_the_readers(tmp_path: Path) -> None:
    """Only a profile no sample has is cut: a line of anything else stays, skipped and
    counted by whoever reads the file."""
    run, _ = _killed(tmp_path)
    profiles = run / "profiles.jsonl"
    kept = profiles.read_text().splitlines(keepends=True)[:-1]
    profiles.write_text("".join(kept) + '{"no": "profile"}\n')
    _resumed(run)
    assert '{"no": "profile"}\n' in profiles.read_text()
    coverage = json.loads(in_process("report", run, "--json").stdout)["profile_coverage"]
    assert coverage["without_profile"] == 0 and coverage["skipped_lines"] == 1, coverage
