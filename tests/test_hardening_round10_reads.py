"""Round ten, reading runs (R10-2): the byte cap on samples.jsonl (1 GiB) did not bound what
reading one costs. Every line became a bytes object and a parsed dict before any was
checked, so a file of `{}` lines cost about 44 times its size: 50 MB of them took root's
`compare` of another user's run to 2.3 GB and two minutes, and the cap allowed 1 GiB (about
45 GB). A run's JSON-lines files are now read one bounded line at a time, and refused in
one line past the lines its meta.json's measurements can make. Real runs, real files, the
real command, its peak memory measured by the kernel (getrusage)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from analysis_runs import make_run, measured_again
from console import one_line
from test_hardening_round4_input import SMALL, fb
from test_hardening_round5_merge import _copy

# what the planted samples.jsonl may cost above a legitimate compare, in KiB; the 9 MB
# file below cost about 400 MB before
GROWTH_KIB = 200 << 10
PLANTED_LINES = 3_000_000

# runs the command as its only child and prints that child's peak resident set (KiB)
_PEAK = ("import resource, subprocess, sys\n"
         "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,"
         " text=True)\n"
         "sys.stderr.write(done.stderr)\n"
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
         "sys.exit(done.returncode)\n")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real run: 4 scenarios of 3 rounds, 12 samples."""
    return make_run(tmp_path_factory.mktemp("round10"), "run", SMALL)


def _peak(*args: str | Path) -> tuple[subprocess.CompletedProcess[str], int]:
    """`faultbench ARGS` and its peak resident set in KiB."""
    done = subprocess.run([sys.executable, "-c", _PEAK, sys.executable, "-m", "faultbench",
                           *map(str, args)], capture_output=True, text=True, timeout=900,
                          check=False)
    return done, int(done.stdout)


def _planted(run: Path, to: Path, content: bytes) -> Path:
    """A copy of `run` (another machine's, for merge) whose samples.jsonl is `content`."""
    _copy(run, to)
    (to / "samples.jsonl").write_bytes(content)
    return to


def test_a_run_of_many_tiny_lines_is_refused_in_little_memory(run: Path,
                                                               tmp_path: Path) -> None:
    legit, legit_peak = _peak("compare", measured_again(run, tmp_path / "same"), run)
    assert legit.returncode == 0, legit.stderr  # a legitimate run still loads
    planted = _planted(run, tmp_path / "many", b"{}\n" * PLANTED_LINES)
    done, peak = _peak("compare", planted, run)
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert line.startswith(f"faultbench compare: {planted / 'samples.jsonl'}: more than ")
    assert line.endswith(" lines, more than its run's measurements can make: not read")
    assert peak - legit_peak < GROWTH_KIB, (peak, legit_peak)


COMMANDS = {"report": ("report", "--json"), "compare": ("compare",), "merge": ("merge",)}
CONTENTS = {"objects": b"{}\n" * 100_000, "blank": b"\n" * 100_000,
            "one-long-line": b'{"a": "' + b"x" * (1 << 20) + b'"}\n'}


# merge reads strictly: its first `{}` line is refused as no sample, whatever follows it
@pytest.mark.parametrize(("command", "content"), [
    (command, content) for command in COMMANDS for content in CONTENTS
    if (command, content) != ("merge", "objects")])
def test_a_samples_file_no_run_can_have_is_refused(run: Path, tmp_path: Path, command: str,
                                                   content: str) -> None:
    planted = _planted(run, tmp_path / "planted", CONTENTS[content])
    args: list[str | Path] = [*COMMANDS[command], planted]
    if command != "report":
        args += [run]
    if command == "merge":
        args += ["--out", tmp_path / "merged"]
    done = fb(*args)
    assert done.returncode == 2
    where = planted / "samples.jsonl"
    assert one_line(done.stderr) == (
        f"faultbench {command}: {where}:1: a line over 1,048,576 bytes, longer than "
        "faultbench writes: not read" if content == "one-long-line" else
        f"faultbench {command}: {where}: more than 1,024 lines, more than its run's "
        "measurements can make: not read")


def test_a_profiles_file_no_run_can_have_is_refused(run: Path, tmp_path: Path) -> None:
    planted = _copy(run, tmp_path / "planted")
    (planted / "profiles.jsonl").write_bytes(b"{}\n" * 100_000)
    done = fb("merge", planted, run, "--out", tmp_path / "merged")
    assert done.returncode == 2
    assert one_line(done.stderr) == (
        f"faultbench merge: {planted / 'profiles.jsonl'}: more than 1,024 lines, more than "
        "its run's measurements can make: not read")
