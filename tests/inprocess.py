"""The analysis commands (report, compare, merge) run by cli.main in the test's own process:
pandas and matplotlib are imported once per worker, not once per command (about a CPU second
each, and the suite runs some two hundred of them)."""

from __future__ import annotations

import io
import signal
import subprocess
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import IO

from faultbench import cli

# the commands that never touch the kernel, a knob or a signal handler: the same in-process
ANALYSIS = ("report", "compare", "merge")


class Hung(Exception):
    pass


def in_process(*argv: str | Path, stdout: IO[str] | None = None,
               timeout_s: int = 0) -> subprocess.CompletedProcess[str]:
    """cli.main here, as a CompletedProcess: a refusal is its one line and status 2, argparse's
    usage error its message and status 2; anything else raises here, as it would print a
    traceback. `timeout_s`: raise Hung past it (SIGALRM; 0: no limit)."""
    def hung(signum: int, frame: object) -> None:
        raise Hung(f"no answer within {timeout_s} s")

    out, err = stdout or io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, hung) if timeout_s else None
    if timeout_s:  # alarm(0) would cancel an alarm of the calling test's
        signal.alarm(timeout_s)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = cli.main([str(a) for a in argv])
            except SystemExit as exc:  # argparse
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        if previous is not None:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
    text = out.getvalue() if isinstance(out, io.StringIO) else ""
    return subprocess.CompletedProcess([str(a) for a in argv], code, text, err.getvalue())
