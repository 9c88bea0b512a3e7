"""Issue 13, the files/knobs/signals half: root-safe writes, one knob lock per machine,
signal races, the journal as untrusted input, exit codes and leftovers.

Real files, real kernel knobs (thp.defrag, vm.swappiness: see test_knobs.py for why these),
real signals (strace injects one at an exact system call), a real booted guest for the
SIGKILL test. The symlink tests plant their links as `nobody`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from console import one_line
from groups import ALONE, HOST
from images import require_boot_image
from inprocess import in_process
from test_runner import _cmdline

from faultbench.measurement.knobs.journal import JOURNAL_FORMAT
from faultbench.measurement.knobs.knoblock import LOCK_PATH
from faultbench.measurement.knobs.session import KnobSession

FAULTBENCH = [sys.executable, "-m", "faultbench"]
DEFRAG = "/sys/kernel/mm/transparent_hugepage/defrag"
SWAPPINESS = "/proc/sys/vm/swappiness"
NOBODY = 65534

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="these are root's problems")

TINY = """
description = "hardening: tiny"
repetitions = {reps}
warmups = 0
seed = 1
{knobs}
[defaults]
backing = "memfd"
size = "1M"
access = "read"
cache = "warm"
[[matrix]]
pattern = ["seq", "random"]
"""


def _selected(path: str) -> str:
    text = Path(path).read_text()
    return text[text.index("[") + 1:text.index("]")]


def _state() -> tuple[str, str]:
    return Path(SWAPPINESS).read_text().strip(), _selected(DEFRAG)


def _cli(*argv: str, env: dict[str, str] | None = None, timeout: float = 120,
         user: int | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FAULTBENCH, *argv], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, user=user)


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "journal" / "journal.json"
    monkeypatch.setenv("FAULTBENCH_JOURNAL", str(path))
    return path


@pytest.fixture
def other_defrag() -> Iterator[str]:
    """A thp.defrag value other than the current one; the original is put back whatever
    the code under test did (and vm.swappiness too)."""
    swappiness, defrag = _state()
    choices = Path(DEFRAG).read_text().replace("[", "").replace("]", "").split()
    yield next(c for c in choices if c != defrag)
    Path(SWAPPINESS).write_text(swappiness)
    Path(DEFRAG).write_text(defrag)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory `nobody` can reach (pytest's tmp_path is root-only)."""
    base = Path(tempfile.mkdtemp(prefix="faultbench-harden-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def _workload(where: Path, reps: int = 2, knobs: str = "") -> Path:
    path = where / "tiny.toml"
    path.write_text(TINY.format(reps=reps, knobs=knobs))
    return path


def _as_nobody(*argv: str) -> None:
    subprocess.run(list(argv), check=True, user=NOBODY, group=65534)


def _secret(where: Path) -> Path:
    """A root-only file (in a root-only directory) that a planted link points at."""
    secret_dir = where / "secret"
    secret_dir.mkdir(mode=0o700)
    target = secret_dir / "target"
    target.write_text("root's own data, no trailing newline")
    return target


# 1. Root follows symlinks a user planted


def test_root_refuses_a_run_directory_nobody_owns_and_writes_through_no_link(
    shared_dir: Path,
) -> None:
    target = _secret(shared_dir)
    before = target.read_bytes()
    run = shared_dir / "run"
    done = _cli("run", str(_workload(shared_dir)), "--out", str(run), "-q")
    assert done.returncode == 0, done.stderr
    subprocess.run(["chown", "-R", f"{NOBODY}:65534", str(run)], check=True)
    # nobody plants links where root will write
    _as_nobody("ln", "-s", str(target), str(run / "report.txt"))
    _as_nobody("ln", "-s", str(shared_dir / "secret"), str(run / "figures"))
    report = in_process("report", run)  # what report writes, not its process: in this one
    assert report.returncode == 2
    assert f"owned by uid {NOBODY}" in one_line(report.stderr)
    _as_nobody("rm", str(run / "samples.jsonl"))
    _as_nobody("ln", "-s", str(target), str(run / "samples.jsonl"))
    resume = _cli("run", "--resume", str(run), "-q")
    assert resume.returncode == 2
    assert f"owned by uid {NOBODY}" in one_line(resume.stderr)
    assert target.read_bytes() == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["target"]


def test_links_and_hard_links_in_roots_own_directory_are_never_written_through(
    shared_dir: Path,
) -> None:
    target = _secret(shared_dir)
    before = target.read_bytes()
    run = shared_dir / "run"
    done = _cli("run", str(_workload(shared_dir)), "--out", str(run), "-q")
    assert done.returncode == 0, done.stderr
    # a replaced file is renamed over a planted link, never written through it
    (run / "report.txt").symlink_to(target)
    report = in_process("report", run, "--no-figures")
    assert report.returncode == 0, report.stderr
    assert target.read_bytes() == before
    assert not (run / "report.txt").is_symlink()
    # a link where a figure goes; and a hard link to the target as report.txt
    (run / "report.txt").unlink()
    os.link(target, run / "report.txt")
    (run / "figures").mkdir()
    (run / "figures" / "distributions.png").symlink_to(target)
    report = in_process("report", run)
    assert report.returncode == 0, report.stderr
    assert target.read_bytes() == before
    assert (run / "report.txt").read_text().startswith(report.stdout[:40])
    assert not (run / "figures" / "distributions.png").is_symlink()
    # samples.jsonl replaced by a link: --resume neither truncates nor appends to the target
    (run / "samples.jsonl").unlink()
    (run / "samples.jsonl").symlink_to(target)
    resume = _cli("run", "--resume", str(run), "-q")
    assert resume.returncode == 2
    assert "symbolic link" in one_line(resume.stderr)
    assert target.read_bytes() == before
    assert not list(run.glob(".*.tmp"))


@HOST
@ALONE
def test_the_journal_temp_file_is_never_a_planted_link(
    shared_dir: Path, other_defrag: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The old temp name was predictable (journal.json.PID.tmp): nobody plants it for the
    next pids, pointing at root's file. Once the session wrote around the links; now a
    journal directory other users may write, sticky or not, is refused before anything is
    written (round eight, R8-8)."""
    target = _secret(shared_dir)
    before = target.read_bytes()
    jdir = shared_dir / "journal"
    jdir.mkdir(mode=0o1777)
    jdir.chmod(0o1777)
    next_pid = int(Path("/proc/sys/kernel/ns_last_pid").read_text())
    _as_nobody("/usr/bin/python3", "-c", f"""
import os
for pid in range({next_pid + 1}, {next_pid + 5000}):
    os.symlink({str(target)!r}, {str(jdir)!r} + f"/journal.json.{{pid}}.tmp")
""")
    monkeypatch.setenv("FAULTBENCH_JOURNAL", str(jdir / "journal.json"))
    proc = subprocess.Popen([*FAULTBENCH, "measure", "--size", "1M", "--set",
                             f"thp.defrag={other_defrag}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate(timeout=120)
    assert next_pid < proc.pid < next_pid + 5000  # a link was planted for its pid
    assert proc.returncode == 2
    assert one_line(err) == (
        f"faultbench measure: cannot write the restore journal {jdir}/journal.json: {jdir} is "
        "writable by other users: root does not write into a directory another user can "
        "change (they could redirect the writes); keep root's journal in a directory only "
        "root may write (FAULTBENCH_JOURNAL)")
    assert target.read_bytes() == before
    assert not (jdir / "journal.json").exists()


# 2. One machine-wide lock


def _start_sweep(knob: str, value: str, env: dict[str, str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [*FAULTBENCH, "measure", "--size", "1M", "--repeat", "1000000", "--json",
         "--set", f"{knob}={value}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **env},
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if not line:
        proc.kill()
        pytest.fail(f"the sweep never measured: {proc.communicate()[1]}")
    return proc


def _stop(proc: subprocess.Popen[str], signum: int = signal.SIGINT) -> str:
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    return err


@HOST
@ALONE
def test_runs_with_different_journals_exclude_each_other(
    tmp_path: Path, other_defrag: str
) -> None:
    before = _state()
    first = _start_sweep("thp.defrag", other_defrag, {"FAULTBENCH_JOURNAL":
                                                      str(tmp_path / "a.json")})
    try:
        other = {"FAULTBENCH_JOURNAL": str(tmp_path / "b.json")}
        second = _cli("measure", "--size", "1M", "--set", "vm.swappiness=21", env=other)
        assert second.returncode == 2
        line = one_line(second.stderr)
        assert f"pid {first.pid}:" in line and "measure" in line and "since 20" in line, line
        assert _state()[0] == before[0]
        out = tmp_path / "run"
        refused = _cli("run", str(_workload(tmp_path, knobs='[knobs]\n"vm.swappiness" = "21"')),
                       "--out", str(out), env=other)
        assert refused.returncode == 2
        assert f"pid {first.pid}:" in one_line(refused.stderr)
        assert "--resume" not in refused.stderr
        assert not out.exists()
        # restore takes the lock too, whatever journal it is given
        (tmp_path / "b.json").write_text(json.dumps({
            "format": JOURNAL_FORMAT, "pid": 0, "knobs": [
                {"name": "vm.swappiness", "path": SWAPPINESS, "original": "22"}]}))
        restore = _cli("restore", env=other)
        # refused by the lock, or by the journal the lock records (first's)
        assert restore.returncode == 2 and f"pid {first.pid}" in one_line(restore.stderr)
        assert _state() == (before[0], other_defrag)
    finally:
        err = _stop(first)
    assert "kernel knobs restored" in err
    assert _state() == before
    assert not Path(LOCK_PATH).exists()


# 5. Races: signals while the journal is written; knobs changed by hand


@HOST
@ALONE
@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace to inject a signal")
@pytest.mark.parametrize("syscall", ["fsync", "linkat"])
def test_sigterm_while_the_journal_is_written_leaves_nothing(
    syscall: str, journal: Path, other_defrag: str
) -> None:
    """strace delivers SIGTERM exactly at the journal temp file's fsync / at the link that
    publishes it (before the session's handlers would have been installed)."""
    before = _state()
    done = subprocess.run(
        ["strace", "-f", "-qq", "-o", "/dev/null", "-e", f"trace={syscall}",
         "-e", f"inject={syscall}:signal=SIGTERM:when=1",
         *FAULTBENCH, "measure", "--size", "1M", "--set", f"thp.defrag={other_defrag}"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 143, done.stderr
    assert "Traceback" not in done.stderr
    assert not journal.exists()
    assert not journal.parent.exists()  # made for the journal, so removed with it
    assert _state() == before
    again = _cli("measure", "--size", "1M", "--set", f"thp.defrag={other_defrag}")
    assert again.returncode == 0, again.stderr


@HOST
@ALONE
def test_a_knob_changed_by_hand_is_marked_reported_and_restored(
    journal: Path, other_defrag: str
) -> None:
    before = _state()
    proc = _start_sweep("thp.defrag", other_defrag, {})
    by_hand = next(c for c in ("never", "defer", "madvise", "always")
                   if c not in (before[1], other_defrag))
    Path(DEFRAG).write_text(by_hand)
    assert proc.stdout is not None
    drifted = None
    for _ in range(1000):
        record = json.loads(proc.stdout.readline())
        if "knob_drift" in record:
            drifted = record
            break
    else:
        Path(DEFRAG).write_text(before[1])
        pytest.fail("no sample marked knob_drift")
    assert drifted["knob_drift"] == {"thp.defrag": [other_defrag, by_hand]}
    err = _stop(proc)
    assert "Traceback" not in err
    assert proc.returncode == 130
    assert "measured with a knob someone else had changed (marked knob_drift)" in err
    assert _state() == before


@HOST
@ALONE
def test_a_knob_changed_by_hand_is_not_silently_overwritten_at_exit(
    journal: Path, other_defrag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _state()
    by_hand = next(c for c in ("never", "defer", "madvise", "always")
                   if c not in (before[1], other_defrag))
    with KnobSession(["thp.defrag"]) as session:
        session.apply({"thp.defrag": other_defrag})
        assert session.drift() == {}
        Path(DEFRAG).write_text(by_hand)
        assert session.drift() == {"thp.defrag": [other_defrag, by_hand]}
    assert (f"thp.defrag had been changed to '{by_hand}' by someone else (faultbench had set "
            f"'{other_defrag}'); restoring its original") in capsys.readouterr().err
    assert _state() == before


@HOST
@ALONE
def test_a_run_marks_samples_measured_under_a_drifted_knob(
    tmp_path: Path, journal: Path, other_defrag: str
) -> None:
    before = _state()
    workload = _workload(tmp_path, reps=40, knobs=f'[knobs]\n"thp.defrag" = "{other_defrag}"')
    out = tmp_path / "run"
    proc = subprocess.Popen([*FAULTBENCH, "run", str(workload), "--out", str(out), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples = out / "samples.jsonl"
    deadline = time.monotonic() + 60
    while not (samples.exists() and samples.read_text().count("\n") >= 2):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    by_hand = next(c for c in ("never", "defer", "madvise", "always")
                   if c not in (before[1], other_defrag))
    Path(DEFRAG).write_text(by_hand)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    records = [json.loads(line) for line in samples.read_text().splitlines()]
    marked = [r for r in records if "knob_drift" in r]
    assert marked and all(r["knob_drift"] == {"thp.defrag": [other_defrag, by_hand]}
                          for r in marked)
    assert len(marked) < len(records)  # set again after the drift was seen
    assert "someone else changed kernel knobs during the run" in err
    assert _state() == before


def _handles_sigterm(pid: int) -> bool:
    """faultbench's own code is running (it catches SIGTERM; the interpreter does not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


BURSTS = [
    (0.0, [signal.SIGINT]),
    (0.05, [signal.SIGINT]),
    (0.3, [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]),
    (0.0, [signal.SIGTERM, signal.SIGINT, signal.SIGHUP]),
    (0.6, [signal.SIGHUP, signal.SIGTERM, signal.SIGINT]),
    (1.0, [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]),
    (1.5, [signal.SIGTERM, signal.SIGHUP, signal.SIGINT]),
    (2.5, [signal.SIGINT, signal.SIGHUP, signal.SIGTERM]),
]


@HOST
@ALONE
@pytest.mark.parametrize("command", ["measure", "run"])
def test_signal_bursts_and_ctrl_c_at_start_up_end_in_a_line_not_a_traceback(
    command: str, tmp_path: Path, journal: Path, other_defrag: str
) -> None:
    """Once faultbench's code runs (the interpreter's own start-up is out of its reach), a
    signal or a burst of three, a few ms apart, at any moment: no traceback, the first
    signal's status, knobs back, no journal, no lock left."""
    before = _state()
    workload = _workload(tmp_path, reps=150, knobs=f'[knobs]\n"thp.defrag" = "{other_defrag}"')
    failures = []
    for n, (delay, burst) in enumerate(BURSTS):
        argv = (["measure", "--size", "1M", "--repeat", "100000", "--set",
                 f"thp.defrag={other_defrag}"] if command == "measure"
                else ["run", str(workload), "--out", str(tmp_path / f"r{n}"), "-q"])
        proc = subprocess.Popen([*FAULTBENCH, *argv], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        start = time.monotonic()
        while not _handles_sigterm(proc.pid) and time.monotonic() - start < 10:
            time.sleep(0.001)
        time.sleep(delay)
        for signum in burst:
            proc.send_signal(signum)
            time.sleep(0.003)
        _, err = proc.communicate(timeout=60)
        # 0: it finished before the signals came
        statuses = {0} | {128 + int(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        if "Traceback" in err or proc.returncode not in statuses or _state() != before \
                or journal.exists() or Path(LOCK_PATH).exists():
            failures.append((delay, [signal.Signals(s).name for s in burst], proc.returncode,
                             _state(), err[-600:]))
            Path(DEFRAG).write_text(before[1])
    assert failures == []


def test_ctrl_c_inside_code_run_by_exec_keeps_the_status_faultbench_chose(
    tmp_path: Path,
) -> None:
    """scipy's imports run `exec("from numpy import *")`; CPython marks an exact
    KeyboardInterrupt leaving such code as unhandled, and a program run with -m (as the
    faultbench command is) is killed by SIGINT at exit (status -2), even though it caught the
    interruption. A CI run was interrupted there."""
    (tmp_path / "probe.py").write_text(textwrap.dedent("""
        import os, signal, sys
        from faultbench.measurement import signals
        signals.started()
        try:
            exec("os.kill(os.getpid(), signal.SIGINT)\\nfor _ in range(100): pass")
        except signals.INTERRUPTED as exc:
            sys.exit(signals.exit_status(exc))
    """))
    done = subprocess.run([sys.executable, "-m", "probe"], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.returncode == 128 + signal.SIGINT, done


# 7. The journal is untrusted input


def _bdi_read_ahead() -> str:
    """A read_ahead_kb that is not a block device's queue (a backing-dev-info's)."""
    found = sorted(Path("/sys/devices/virtual/bdi").glob("*/read_ahead_kb"))
    if not found:
        pytest.skip("no /sys/devices/virtual/bdi/*/read_ahead_kb here")
    return str(found[0])


BAD_JOURNALS = {
    "knobs-not-a-list": ({"knobs": {"name": "vm.swappiness"}}, "must be lists"),
    "entry-is-a-list": ({"knobs": [["vm.swappiness", SWAPPINESS, "60"]]}, "malformed"),
    "missing-original": ({"knobs": [{"name": "vm.swappiness", "path": SWAPPINESS}]},
                         "malformed"),
    "number-not-text": ({"knobs": [{"name": "vm.swappiness", "path": SWAPPINESS,
                                    "original": 60}]}, "malformed"),
    "name-path-mismatch": ({"knobs": [{"name": "thp.defrag", "path": SWAPPINESS,
                                       "original": "60"}]}, "which is vm.swappiness"),
    "out-of-range": ({"knobs": [{"name": "vm.swappiness", "path": SWAPPINESS,
                                 "original": "500"}]}, "accepts 0..200"),
    "bad-thp-choice": ({"knobs": [{"name": "thp.defrag", "path": DEFRAG,
                                   "original": "sometimes"}]}, "not one of"),
    "unmount-not-a-list": ({"unmount": "/sys/kernel/debug", "knobs": []}, "must be lists"),
    "bdi-read-ahead": (None, "outside what faultbench may change"),
    # round 43 m1: the last entry won, and the lines said "60 -> 55", "60 -> 70"
    "named-twice": ({"knobs": [{"name": "vm.swappiness", "path": SWAPPINESS, "original": "55"},
                               {"name": "vm.swappiness", "path": SWAPPINESS, "original": "70"}]},
                    "vm.swappiness named twice (a run journals each knob once"),
}


@HOST
@ALONE
@pytest.mark.parametrize("case", list(BAD_JOURNALS))
def test_restore_accepts_only_what_the_knob_rules_allow(
    case: str, journal: Path, other_defrag: str
) -> None:
    content, why = BAD_JOURNALS[case]
    if content is None:
        content = {"knobs": [{"name": "read_ahead_kb", "path": _bdi_read_ahead(),
                              "original": "4"}]}
    # a valid first entry: nothing may be written before every entry is checked
    valid = {"name": "thp.defrag", "path": DEFRAG, "original": other_defrag}
    knobs = content["knobs"]
    if isinstance(knobs, list):
        knobs = [valid, *knobs]
    journal.parent.mkdir()
    journal.write_text(json.dumps({"format": JOURNAL_FORMAT, "pid": 0, **content,
                                   "knobs": knobs}))
    reads_before = {p: Path(p).read_text() for p in (DEFRAG, SWAPPINESS)}
    if case == "bdi-read-ahead":
        reads_before[knobs[1]["path"]] = Path(knobs[1]["path"]).read_text()
    done = _cli("restore")
    assert done.returncode == 2
    assert why in one_line(done.stderr)
    assert {p: Path(p).read_text() for p in reads_before} == reads_before
    assert journal.exists()


# 8. Exit codes and leftovers


def test_measure_exits_non_zero_when_its_sample_is_an_error() -> None:
    done = _cli("measure", "--size", "1M", "--uffd", "minor", "--no-serve",
                "--deadline", "1")
    assert "error" in done.stdout, done.stdout
    assert done.returncode == 1
    assert "1 sample(s) failed" in done.stderr


@pytest.mark.parametrize(("option", "why"), [
    ("vm.swappiness=500", "accepts 0..200"),
    ("vm.overcommit_memory=3", "accepts 0..2"),
    ("vm.swappiness=" + "9" * 5000, "the largest number a kernel knob holds"),
])
def test_out_of_range_sysctls_are_refused_before_the_journal(
    option: str, why: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal path cannot be written: only a refusal that comes first can say why."""
    before = _state()
    monkeypatch.setenv("FAULTBENCH_JOURNAL", "/proc/no-such-dir/journal.json")
    done = _cli("measure", "--size", "1M", "--set", option)
    assert done.returncode == 2
    assert why in one_line(done.stderr)
    assert _state() == before


@HOST
def test_a_run_refused_over_a_stale_journal_leaves_no_directory(
    tmp_path: Path, journal: Path
) -> None:
    journal.parent.mkdir()
    journal.write_text(json.dumps({"format": JOURNAL_FORMAT, "pid": 0, "knobs": []}))
    out = tmp_path / "run"
    done = _cli("run", str(_workload(tmp_path, knobs='[knobs]\n"vm.swappiness" = "21"')),
                "--out", str(out))
    assert done.returncode == 2
    assert "faultbench restore" in one_line(done.stderr)
    assert "--resume" not in done.stderr
    assert not out.exists()


def _guest_leftovers(scratch_root: Path) -> tuple[list[str], list[int]]:
    dirs = [p.name for p in scratch_root.glob("faultbench-guest-*")]
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if str(scratch_root).encode() in cmdline:
            pids.append(int(proc.name))
    return dirs, pids


@pytest.mark.parametrize("when", ["scratch-disk", "qemu-running"])
def test_sigkill_during_kernel_leaves_no_scratch_image_and_no_qemu(
    when: str, tmp_path: Path
) -> None:
    image = require_boot_image()
    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    proc = subprocess.Popen(
        [*FAULTBENCH, "measure", "--kernel", image, "--size", "1M"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "TMPDIR": str(scratch_root)},
    )
    deadline = time.monotonic() + 120
    while True:
        dirs, pids = _guest_leftovers(scratch_root)
        if (dirs and when == "scratch-disk") or any(b"qemu-system" in _cmdline(p)
                                                    for p in pids):
            break
        assert time.monotonic() < deadline and proc.poll() is None, "the guest never started"
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 30
    while _guest_leftovers(scratch_root) != ([], []) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _guest_leftovers(scratch_root) == ([], [])


@HOST
@ALONE
@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace to inject a signal")
def test_a_journal_temp_file_left_by_sigkill_is_removed_by_the_next_run(
    journal: Path, other_defrag: str
) -> None:
    killed = subprocess.run(
        ["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=fsync",
         "-e", "inject=fsync:signal=SIGKILL:when=1",
         *FAULTBENCH, "measure", "--size", "1M", "--set", f"thp.defrag={other_defrag}"],
        capture_output=True, text=True, timeout=120,
    )
    assert killed.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL), killed.stderr
    assert [p.name.endswith(".tmp") for p in journal.parent.iterdir()] == [True]
    again = _cli("measure", "--size", "1M", "--set", f"thp.defrag={other_defrag}")
    assert again.returncode == 0, again.stderr
    assert list(journal.parent.iterdir()) == []
