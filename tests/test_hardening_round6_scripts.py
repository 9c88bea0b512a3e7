"""Round six, scripts/reference-results: its --help says its whole first sentence, a NAME it
does not know is echoed with control characters escaped, and a NAME given twice is run once.
Real script (--dry-run: nothing is run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "reference-results"


def reference_results(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          timeout=60, check=False)


def test_help_says_the_whole_first_sentence() -> None:
    done = reference_results("--help")
    assert done.returncode == 0
    assert ("each with the command that made it, then its report and the comparisons shipped "
            "beside it.") in " ".join(done.stdout.split())


def test_an_unknown_name_is_echoed_escaped() -> None:
    done = reference_results("--dry-run", "\x1b[31mx")
    assert done.returncode == 2
    assert "\x1b" not in done.stderr
    assert done.stderr.splitlines()[-1] == ("reference-results: error: not a shipped run: "
                                            "'\\x1b[31mx' (see --list)")


def test_a_name_given_twice_is_run_once() -> None:
    once = reference_results("--dry-run", "native-quick")
    twice = reference_results("--dry-run", "native-quick", "native-quick")
    assert once.returncode == twice.returncode == 0
    assert once.stdout and twice.stdout == once.stdout
