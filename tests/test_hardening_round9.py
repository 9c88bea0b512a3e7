"""Round nine: --help and --version to a standard output that fails. Real commands, real
files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from console import one_line

TREE = Path(__file__).parents[1]


@pytest.mark.parametrize("args,command", [
    (["--help"], "faultbench"), (["--version"], "faultbench"),
    (["run", "--help"], "faultbench run"), (["merge", "--help"], "faultbench merge")])
@pytest.mark.parametrize("stdout,why", [("full", "No space left on device"),
                                        ("closed", "it is closed")])
def test_help_and_version_to_a_failing_stdout_are_one_line_and_status_2(
        args: list[str], command: str, stdout: str, why: str) -> None:
    """argparse prints them while parsing, before the command's error handling: they ended in
    an OutputError traceback and status 1."""
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "faultbench", *args], text=True,
                              stdout=full if stdout == "full" else None, stderr=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": str(TREE)}, timeout=120,
                              # closed: the child's descriptor 1 is closed before it starts
                              preexec_fn=(lambda: os.close(1)) if stdout == "closed" else None)
    assert done.returncode == 2, done.stderr
    assert one_line(done.stderr) == f"{command}: cannot write standard output: {why}"
