"""Round three of the hostile pass, second sweep: other users' text on root's terminal (process
names, a crafted kernel image's version), mount journals another user planted, `mount` not on
PATH, and control characters in the arguments an error line quotes. No guest boots."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from console import one_line
from groups import HOST
from images import image_version

from faultbench.analysis.report import machine_line
from faultbench.measurement import machine
from faultbench.measurement.booted.checkout import package_root
from faultbench.measurement.booted.jobs import jobs_record
from faultbench.measurement.knobs import sysfs
from faultbench.measurement.knobs.journal import JOURNAL_FORMAT

ESC = "\x1b]0;pwn\x07\x1b[2J"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mount journals are root's")


def fb(*args: str, env: dict[str, str] | None = None,
       cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "faultbench", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=120, check=False)


# ---- D4: other users' text


def test_busiest_process_names_are_escaped_where_shown_and_stored() -> None:
    """A process that renames itself (PR_SET_NAME) and spins is among the busiest: its name
    reaches meta.json and the machine line with escapes shown, never as raw control bytes."""
    code = ("import ctypes, time\n"
            f"ctypes.CDLL(None).prctl(15, {ESC.encode()!r})\n"
            "end = time.monotonic() + 20\n"
            "while time.monotonic() < end: pass\n")
    spinner = subprocess.Popen([sys.executable, "-c", code])
    try:
        for _ in range(50):  # until the renamed process shows under its new name
            state = machine.collect()
            names = [name for name, _ in state["others"]]
            if any("pwn" in name for name in names):
                break
        else:
            pytest.skip(f"the spinner was never among the busiest three: {names}")
    finally:
        spinner.kill()
        spinner.wait()
    assert not any("\x1b" in name or "\x07" in name for name in names), names
    state["others"] = [entry for entry in state["others"] if "pwn" in entry[0]]
    described = machine.describe(state)
    assert described is not None and "\x1b" not in described[0] and "\\x1b" in described[0]


def test_tampered_machine_state_is_escaped_in_the_report() -> None:
    state = {"load": [0.1, 0.1, 0.1], "cpus": 2, "others_cpu": 0.1,
             "others": [[ESC, 0.05]], "governor": "\x1b[31mperformance"}
    line = machine_line({"plane": "native", "machine_state": state})
    assert "\x1b" not in line and "\x07" not in line
    assert "\\x1b" in line


def test_a_crafted_image_version_is_printable(tmp_path: Path) -> None:
    """The version a bzImage carries is anyone's text: shown in `boot 1/1: ...` and stored as
    the kernel's label."""
    head = bytearray(0x1000)
    head[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", head, 0x20E, 0x400 - 0x200)
    version = b"6.1.0-evil \x1b]0;pwn\x07\x1b[2J (root@x) #1"
    head[0x400:0x400 + len(version)] = version
    image = tmp_path / "bzImage"
    image.write_bytes(bytes(head))
    shown = image_version(str(image))
    assert shown is not None and shown.startswith("6.1.0-evil ")
    assert shown.isprintable() and "\\x1b" in shown


# ---- D5 and M2: mount journals in a shared journal directory


def _mount_journal(path: Path, pid: int, targets: list[str]) -> None:
    path.write_text(json.dumps({"format": JOURNAL_FORMAT, "pid": pid, "pid_start": "1",
                                "argv": [], "knobs": [], "unmount": targets}))
    path.chmod(0o600)


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@HOST
@needs_root
def test_restore_skips_a_planted_mount_journal_and_restores_its_own(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # root's sticky directory, as /tmp: anyone may create files there
    pid = _dead_pid()
    empty = shared / f"faultbench-tmpfs-{pid}"
    empty.mkdir()
    _mount_journal(shared / f"mount-{pid}.json", pid, [str(empty)])
    _mount_journal(shared / f"mount-{pid + 1}.json", pid + 1, [])
    planted = shared / "mount-1\x1b[31m.json"
    _mount_journal(planted, 1, [])
    os.chown(planted, 1001, 1001)
    # --journal: the journals of other runs on this machine (the knob lock names the last
    # one) are not this test's
    done = fb("restore", "--journal", str(shared / "journal.json"))
    warning = one_line(done.stderr)
    assert done.returncode == 0, done.stderr
    assert "warning" in warning and "uid 1001" in warning and "\\x1b[31m" in warning
    assert "\x1b" not in warning
    restored = done.stdout.splitlines()
    assert restored == [
        f"restored mount-{pid}.json: empty mount point {empty} removed (nothing was mounted)",
        f"restored mount-{pid + 1}.json: nothing was left mounted; journal removed"]
    assert sorted(shared.iterdir()) == [planted]  # theirs is left to them


@HOST
@needs_root
def test_restore_fails_only_for_what_of_ours_it_could_not_restore(tmp_path: Path) -> None:
    pid = _dead_pid()
    (tmp_path / f"mount-{pid}.json").write_text("not JSON")
    (tmp_path / f"mount-{pid}.json").chmod(0o600)
    _mount_journal(tmp_path / f"mount-{pid + 1}.json", pid + 1, [])
    done = fb("restore", "--journal", str(tmp_path / "j.json"))
    assert done.returncode == 2
    assert "not JSON" in one_line(done.stderr)
    assert done.stdout == f"restored mount-{pid + 1}.json: nothing was left mounted; " \
                          "journal removed\n"


@HOST
@needs_root
def test_doctor_names_a_leftover_mount_journal(tmp_path: Path) -> None:
    pid = _dead_pid()
    _mount_journal(tmp_path / f"mount-{pid}.json", pid, [str(tmp_path / "faultbench-tmpfs-1")])
    code = ("from faultbench.measurement.doctor import knob_checks\n"
            "print([c.detail for c in knob_checks() if c.name == 'mount journal'])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env={**os.environ,
                                           "FAULTBENCH_JOURNAL": str(tmp_path / "j.json")})
    assert f"mount-{pid}.json" in done.stdout and "its tmpfs mount" in done.stdout
    assert "faultbench restore" in done.stdout


# ---- D6: no `mount` on PATH


def test_mount_not_on_path_is_a_faultbench_error(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(sysfs.MountError, match="cannot run mount: No such file"):
        sysfs._mount("tmpfs", str(tmp_path))
    assert sysfs.umount(str(tmp_path)) is False


@needs_root
def test_doctor_and_measure_without_mount_on_path(tmp_path: Path) -> None:
    env = {"PATH": "/nonexistent", "FAULTBENCH_JOURNAL": str(tmp_path / "j.json")}
    if sysfs.is_mounted(sysfs.DEBUGFS, "debugfs"):
        pytest.skip("debugfs is mounted here: doctor does not run mount")
    doctor = fb("doctor", env=env)
    assert doctor.returncode == 0 and "Traceback" not in doctor.stderr, doctor.stderr
    assert "debugfs: cannot tell: cannot run mount" in doctor.stdout
    measured = fb("measure", "--backing", "tmpfs", "--size", "1M", "--tmpfs-huge", "always",
                  env=env, cwd=tmp_path)
    assert "Traceback" not in measured.stderr, measured.stderr
    assert "unsupported: cannot run mount: No such file or directory" in measured.stdout
    assert list(tmp_path.iterdir()) == []


# ---- M9: arguments quoted in error lines


@pytest.mark.parametrize("args", [
    ("run", "quick", "--only", ESC),
    ("report", f"/nonexistent/{ESC}"),
    ("measure", "--dir", f"/tmp/x{ESC}"),
    ("measure", "--pattern", ESC),  # argparse's own error line
])
def test_error_lines_escape_the_arguments_they_quote(args: tuple[str, ...]) -> None:
    done = fb(*args)
    line = one_line(done.stderr)
    assert done.returncode == 2
    assert "\x1b" not in line and "\x07" not in line and "\\x1b]0;pwn\\x07" in line, line


# ---- M3: how many guests run at once


def test_no_more_guests_at_once_than_boots_to_run() -> None:
    record, warning = jobs_record(None, "icount", "64M", 1)  # by default one per CPU
    assert record["count"] == 1 and warning is None
    record, warning = jobs_record(4, "wall", "64M", 1)
    assert record["count"] == 1 and warning is None
    record, warning = jobs_record(2, "wall", "64M", 3)
    assert record == {"count": 2, "source": "--jobs"} and warning is not None


def test_the_watchdog_imports_the_faultbench_it_was_started_from() -> None:
    """guest.py starts the watchdog with PYTHONPATH at the directory holding the package: a
    faultbench run from a checkout, not installed, must find itself there. -S: no site, so
    no editable install's finder; site-packages only for the cffi backend."""
    site_dirs = [p for p in sys.path if p.endswith("site-packages")]
    done = subprocess.run(
        [sys.executable, "-S", "-P", "-m", "faultbench.measurement.booted.watchdog"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([package_root(), *site_dirs])})
    assert done.returncode == 0 and done.stderr == "", done.stderr
