"""Round twenty-one's findings: a busy process named with escape sequences was shown cut
inside its escaped text (R21-8); a served userfaultfd range past its deadline said "0 of N
fault(s) left unserved" (R21-3); empty arguments were taken (`run ""` ran the default
workload) or answered with words of another option (R21-1, R21-5); compare named neither
of two runs' hosts (R21-7); merge said "differ in workload" for another --only
(R21-6); a Ctrl-C while the command imported gave a traceback (R21-2). Real processes, a
real measurement and the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from analysis_runs import measured_again
from console import one_line

from faultbench.measurement.machine import collect, describe

QUICK = Path(__file__).parents[1] / "results" / "native-quick"
NAME = "\x1b[31mRED\x07\n"  # 9 bytes: PR_SET_NAME keeps up to 15


def test_a_busy_process_named_with_escapes_is_shown_whole_and_escaped() -> None:
    spin = textwrap.dedent(f"""
        import ctypes, time
        ctypes.CDLL(None).prctl(15, {NAME.encode()!r})  # PR_SET_NAME
        end = time.monotonic() + 20
        while time.monotonic() < end:
            pass
    """)
    proc = subprocess.Popen([sys.executable, "-c", spin])
    try:
        for _ in range(5):  # among the three busiest, which other tests' guests may be too
            state = collect(host_knobs=False)
            mine = [o for o in state["others"] if o[0] == "\\x1b[31mRED\\x07\\n"]  # escaped
            if mine:
                break
    finally:
        proc.kill()
        proc.wait()
    assert mine, state["others"]
    # shown whole: other busy processes (another test's) may be busier, so it alone
    line, _ = describe({**state, "others": mine}) or ("", [])
    assert "(\\x1b[31mRED\\x07\\n " in line and "\x1b" not in line


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "faultbench", *args], capture_output=True,
                          text=True, timeout=300, check=False)


def test_a_served_range_past_its_deadline_says_what_was_served() -> None:
    done = _cli("measure", "--size", "64M", "--deadline", "0.001", "--repeat", "1",
                "--uffd", "missing", "--backing", "anon")
    assert done.returncode == 1
    assert "error: deadline exceeded: the touch loop did not finish in time (" in done.stdout
    assert "left unserved" not in done.stdout


@pytest.mark.parametrize(("args", "said"), [
    (["run", ""], "faultbench run: WORKLOAD '': give a path or name"),
    (["workloads", ""], "faultbench workloads: WORKLOAD '': give a path or name"),
    (["run", "quick", "--only", ""],
     "faultbench run: --only '': give FIELD=V1[,V2...] or a pattern on the scenario name"),
    (["run", "quick", "--set", ""], "faultbench run: --set '': give KNOB=V1[,V2...]"),
    (["compare", "a", "b", "--by", ""], "faultbench compare: --by '': give a knob or a spec field"),
])
def test_an_empty_argument_is_refused_in_the_options_words(args: list[str], said: str) -> None:
    done = _cli(*args)
    assert done.returncode == 2 and one_line(done.stderr) == said


def test_compare_of_two_machines_runs_names_both(tmp_path: Path) -> None:
    """R21-7: two native runs of different hosts were compared with neither named, the
    change reading as one machine's drift."""
    other = measured_again(QUICK, tmp_path / "other")
    meta = json.loads((other / "meta.json").read_text())
    meta["provenance"]["host"]["name"] = "m2"
    (other / "meta.json").write_text(json.dumps(meta))
    done = _cli("compare", str(QUICK), str(other))
    assert done.returncode == 0, done.stderr
    assert " on vm vs m2; plane native" in " ".join(done.stdout.split("\n\n")[0].split())
    assert " vs m2" not in _cli("compare", str(QUICK), str(measured_again(
        QUICK, tmp_path / "same-host"))).stdout


def test_merge_names_the_option_two_machines_runs_differ_in(tmp_path: Path) -> None:
    """R21-6: runs of one workload file made with another --only were refused as differing
    "in workload", which says nothing of what to change."""
    other = measured_again(QUICK, tmp_path / "other")
    meta = json.loads((other / "meta.json").read_text())
    meta["provenance"]["host"]["name"] = "m2"
    meta["workload"]["command_line"] = {"only": ["seq"]}
    (other / "meta.json").write_text(json.dumps(meta))
    done = _cli("merge", "--out", str(tmp_path / "merged"), str(QUICK), str(other))
    assert done.returncode == 2
    assert one_line(done.stderr) == (f"faultbench merge: {other} and {QUICK} differ in workload "
                                     "(--only): they are not parts of one run")


def test_the_command_quiets_signals_before_any_other_import() -> None:
    """R21-2: a Ctrl-C in the command's first milliseconds gave a traceback from imports run
    before its handlers (typing, and signals.py's contextlib, random, threading). The
    package's first import of its own is measurement/startup.py, which imports only os,
    signal and sys, with every signal held (by _signal, which the interpreter has loaded
    already: R28-6)."""
    import ast

    root = Path(__file__).parents[1] / "faultbench"
    package = ast.parse((root / "__init__.py").read_text())
    first, second = sorted((node for node in ast.walk(package)
                            if isinstance(node, ast.Import | ast.ImportFrom)),
                           key=lambda node: node.lineno)[:2]
    assert isinstance(first, ast.Import) and [a.name for a in first.names] == ["_signal"]
    assert isinstance(second, ast.ImportFrom) and second.module == "faultbench.measurement" \
        and [a.name for a in second.names] == ["startup"]
    startup = ast.parse((root / "measurement" / "startup.py").read_text())
    imported = {a.name for node in startup.body if isinstance(node, ast.Import)
                for a in node.names} | {node.module for node in startup.body
                                        if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "os", "signal", "sys", "types"}, imported
