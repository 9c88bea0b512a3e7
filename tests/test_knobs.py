"""Knob validation, the restore journal and `faultbench restore`, on this machine's real knobs.

fault_around_bytes itself needs a booted kernel here (test_guest.py); the journal machinery is
the same for every knob, so it is exercised natively on /proc/sys/vm and THP sysfs, which are
writable as root. Values are chosen so that concurrent measurements are not disturbed:
vm.swappiness (no swap involved) and thp.defrag (compaction policy of madvised anon THP).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from console import one_line
from groups import ALONE, HOST

from faultbench.measurement.knobs.catalog import KnobError, cross_product
from faultbench.measurement.knobs.journal import JOURNAL_FORMAT
from faultbench.measurement.knobs.requested import parse_set_options
from faultbench.measurement.knobs.session import KnobSession

FAULTBENCH = [sys.executable, "-m", "faultbench"]
# the machine's real knobs, and a securityfs mounted where every process sees it
# thp.defrag changes beside a native run of the other worker, which would lose samples to
# knob drift (the module fixture of test_hardening_round12_samples did): alone
pytestmark = [HOST, ALONE]
SWAPPINESS = "/proc/sys/vm/swappiness"
DEFRAG = "/sys/kernel/mm/transparent_hugepage/defrag"
PAGE = os.sysconf("SC_PAGE_SIZE")
MAX_FAULT_AROUND = (PAGE // 8) * PAGE  # PTRS_PER_PTE pages

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing kernel knobs needs root")


def _selected(path: str) -> str:
    text = Path(path).read_text()
    return text[text.index("[") + 1:text.index("]")]


def _state() -> tuple[str, str]:
    return Path(SWAPPINESS).read_text().strip(), _selected(DEFRAG)


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "journal.json"
    monkeypatch.setenv("FAULTBENCH_JOURNAL", str(path))
    return path


@pytest.fixture
def real_knobs(journal: Path) -> Iterator[dict[str, str]]:
    """New values for vm.swappiness and thp.defrag; the test's own guard restores originals
    whatever the code under test did."""
    swappiness, defrag = _state()
    choices = Path(DEFRAG).read_text().replace("[", "").replace("]", "").split()
    new = {"vm.swappiness": "13" if swappiness != "13" else "17",
           "thp.defrag": next(c for c in choices if c != defrag)}
    yield new
    Path(SWAPPINESS).write_text(swappiness)
    Path(DEFRAG).write_text(defrag)


def _cli(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FAULTBENCH, *argv], capture_output=True, text=True, timeout=timeout)


BAD = [
    ("fault_around_bytes=0", "not allowed"),
    ("fault_around_bytes=-4096", "negative"),
    ("fault_around_bytes=lots", "not a number"),
    (f"fault_around_bytes={2 * MAX_FAULT_AROUND}", f"maximum {MAX_FAULT_AROUND}"),
    (f"fault_around_bytes={3 * PAGE}", f"would use {2 * PAGE}"),
    ("fault_around_bytes=4096,0", "not allowed"),
    ("no_such_knob=1", "unknown knob"),
    ("/etc/hostname=x", "outside what faultbench may change"),
    ("/proc/sys/vm/../kernel/hostname=x", "outside what faultbench may change"),
    ("vm.no_such_sysctl=1", "unknown sysctl"),
    ("vm.swappiness=-5", "negative"),
    ("vm.swappiness=lots", "not a number"),
    ("vm.drop_caches=3", "write-only"),
    ("thp.enabled=sometimes", "not one of"),
    ("thp.hugepages-3kB.enabled=always", "no /sys/kernel/mm"),
    ("read_ahead_kb=-1", "negative"),
    ("fault_around_bytes", "NAME=V1"),
]


@needs_root
@pytest.mark.parametrize(("option", "why"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_refused_before_anything_is_written(
    option: str, why: str, real_knobs: dict[str, str], journal: Path
) -> None:
    before = _state()
    # A valid axis first: it must not be written either, since validation comes first.
    done = _cli("measure", "--size", "1M",
                "--set", f"thp.defrag={real_knobs['thp.defrag']}", "--set", option)
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert line.startswith("faultbench measure: ") and why in line, line
    assert _state() == before
    assert not journal.exists()
    assert done.stdout == ""


def test_set_values_are_normalized_and_crossed() -> None:
    axes = parse_set_options(["fault_around_bytes=4096,16K,2M", "thp.defrag=never,defer"])
    assert axes == [("fault_around_bytes", ["4096", "16384", "2097152"]),
                    ("thp.defrag", ["never", "defer"])]
    settings = cross_product(axes)
    assert len(settings) == 6
    assert settings[0] == {"fault_around_bytes": "4096", "thp.defrag": "never"}
    assert settings[-1] == {"fault_around_bytes": "2097152", "thp.defrag": "defer"}


def test_the_same_knob_twice_is_refused() -> None:
    with pytest.raises(KnobError, match="given twice"):
        parse_set_options(["vm.swappiness=1", "/proc/sys/vm/swappiness=2"])


def test_read_ahead_needs_a_block_device() -> None:
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm")
    with pytest.raises(KnobError, match="not on a block device"):
        parse_set_options(["read_ahead_kb=128"], file_dir="/dev/shm")


def _lockdown_mode() -> str | None:
    """The test's own reading of the lockdown state (securityfs, mounted here if needed)."""
    path = Path("/sys/kernel/security/lockdown")
    if path.exists():
        return _selected(str(path))
    if subprocess.run(["mount", "-t", "securityfs", "securityfs", "/sys/kernel/security"],
                      capture_output=True, check=False).returncode != 0:
        return None
    try:
        return _selected(str(path)) if path.exists() else None
    finally:
        subprocess.run(["umount", "/sys/kernel/security"], check=False)


@needs_root
def test_native_fault_around_sweep_fails_fast_under_lockdown(
    journal: Path, special_mounts: Callable[[], list[str]]
) -> None:
    mode = _lockdown_mode()
    if mode in (None, "none"):
        pytest.skip(f"kernel not locked down (lockdown={mode}): the knob is settable here")
    mounts = special_mounts()
    started = time.monotonic()
    done = _cli("measure", "--size", "1M", "--set", "fault_around_bytes=4096,65536")
    assert time.monotonic() - started < 10
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert f"locked down (lockdown={mode})" in line
    assert "--kernel /boot/vmlinuz-" in line or "--kernel " in line
    assert done.stdout == ""
    assert special_mounts() == mounts
    assert not journal.exists()


@needs_root
def test_session_journals_first_reads_back_and_restores(
    real_knobs: dict[str, str], journal: Path
) -> None:
    original = _state()
    with KnobSession(list(real_knobs)) as session:
        entries = json.loads(journal.read_text())["knobs"]
        # vm.min_free_kbytes first: the kernel raises it when THP is switched, and restored
        # last first, it goes back after thp.defrag
        assert [(e["name"], e["original"]) for e in entries] == [
            ("vm.min_free_kbytes", Path("/proc/sys/vm/min_free_kbytes").read_text().strip()),
            ("vm.swappiness", original[0]), ("thp.defrag", original[1])]
        assert _state() == original  # journaled, nothing written yet
        read_back = session.apply(real_knobs)
        assert read_back == {"vm.swappiness": int(real_knobs["vm.swappiness"]),
                             "thp.defrag": real_knobs["thp.defrag"]}
        assert _state() == (real_knobs["vm.swappiness"], real_knobs["thp.defrag"])
    assert _state() == original
    assert not journal.exists()


@needs_root
def test_a_setting_puts_back_the_knobs_it_leaves_out(
    real_knobs: dict[str, str], journal: Path
) -> None:
    """Hostile round twelve, R12-10: a scenario setting no knob (or another one) after one
    that set vm.swappiness ran at the value that one left, and was recorded as unset."""
    original = _state()
    with KnobSession(list(real_knobs)) as session:
        session.apply({"vm.swappiness": real_knobs["vm.swappiness"]})
        assert _state() == (real_knobs["vm.swappiness"], original[1])
        session.apply({"thp.defrag": real_knobs["thp.defrag"]})
        assert _state() == (original[0], real_knobs["thp.defrag"])
        session.apply({})
        assert _state() == original and session.drift() == {}
    assert _state() == original


@needs_root
def test_an_exception_inside_the_session_restores(
    real_knobs: dict[str, str], journal: Path
) -> None:
    original = _state()
    with pytest.raises(RuntimeError, match="boom"), KnobSession(list(real_knobs)) as s:
        s.apply(real_knobs)
        raise RuntimeError("boom")
    assert _state() == original
    assert not journal.exists()


def _start_sweep(real_knobs: dict[str, str]) -> subprocess.Popen[str]:
    """`faultbench measure` looping under the new values; returns once they are in place."""
    proc = subprocess.Popen(
        [*FAULTBENCH, "measure", "--size", "1M", "--repeat", "1000000",
         "--set", f"vm.swappiness={real_knobs['vm.swappiness']}",
         "--set", f"thp.defrag={real_knobs['thp.defrag']}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    want = (real_knobs["vm.swappiness"], real_knobs["thp.defrag"])
    deadline = time.monotonic() + 30
    while _state() != want:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the sweep never set the knobs: {proc.communicate()[1]}")
        time.sleep(0.02)
    return proc


@needs_root
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=lambda s: signal.Signals(s).name)
def test_a_signal_restores_the_knobs(
    signum: int, real_knobs: dict[str, str], journal: Path
) -> None:
    original = _state()
    proc = _start_sweep(real_knobs)
    assert journal.exists()
    refused = _cli("measure", "--size", "1M", "--set", "vm.swappiness=20")
    assert refused.returncode == 2
    # the holder named as what it is (R21-4: every one was "faultbench run")
    assert f"another faultbench measure (pid {proc.pid}:" in one_line(refused.stderr)
    live = _cli("restore")
    assert live.returncode == 2 and f"`faultbench measure` (pid {proc.pid}) is still running " \
        "and restores its knobs itself when it ends" in one_line(live.stderr)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == (130 if signum == signal.SIGINT else 128 + signum), err
    assert "kernel knobs restored" in err
    assert _state() == original
    assert not journal.exists()


@needs_root
def test_sigkill_then_restore(real_knobs: dict[str, str], journal: Path) -> None:
    original = _state()
    proc = _start_sweep(real_knobs)
    proc.kill()
    proc.communicate(timeout=30)
    changed = (real_knobs["vm.swappiness"], real_knobs["thp.defrag"])
    assert _state() == changed
    assert journal.exists()

    refused = _cli("measure", "--size", "1M", "--set", "vm.swappiness=20")
    assert refused.returncode == 2
    assert "run `faultbench restore` first" in one_line(refused.stderr)
    assert _state() == changed

    restored = _cli("restore")
    assert restored.returncode == 0, restored.stderr
    assert f"restored vm.swappiness: {changed[0]} -> {original[0]}" in restored.stdout
    assert f"restored thp.defrag: {changed[1]} -> {original[1]}" in restored.stdout
    assert _state() == original
    assert not journal.exists()
    again = _cli("restore")
    assert again.returncode == 0 and "nothing to restore" in again.stdout


@needs_root
def test_restore_refuses_a_journal_pointing_outside_the_allowed_knobs(journal: Path) -> None:
    target = Path("/etc/hostname")
    before = target.read_bytes()
    journal.write_text(json.dumps({
        "format": JOURNAL_FORMAT, "pid": 0, "pid_start": None, "unmount": [],
        "knobs": [{"name": "x", "path": str(target), "original": "pwned"}],
    }))
    done = _cli("restore")
    assert done.returncode == 2
    assert "outside what faultbench may change" in one_line(done.stderr)
    assert target.read_bytes() == before
    assert journal.exists()


class _Stop(Exception):
    pass


@needs_root
def test_a_signal_goes_on_to_the_handler_the_session_displaced(
    real_knobs: dict[str, str], journal: Path
) -> None:
    """A caller's own SIGTERM handler (the workload runner's) still decides how to unwind."""
    original = _state()

    def callers_handler(signum: int, frame: object) -> None:
        raise _Stop

    previous = signal.signal(signal.SIGTERM, callers_handler)
    try:
        with pytest.raises(_Stop), KnobSession(list(real_knobs)) as session:
            session.apply(real_knobs)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises long before this ends
        assert _state() == original
        assert not journal.exists()
        assert signal.getsignal(signal.SIGTERM) is callers_handler
    finally:
        signal.signal(signal.SIGTERM, previous)
