"""Round thirty-two: the guest's scratch directory, which it gets read-write beside its boot's
directory, and what it leaves in a failed boot's directory. A nest 1,000 deep there made
the cleanup (tempfile's recursive rmtree) raise RecursionError, in the host and in the
watchdog (R32-1); its `status` was read through a link (the host's stdin: a hang; /dev/zero:
memory until MemoryError), and virtme-ng's virtme_ret, read back by name, sat beside it
(R32-2); it could chmod the directory, directly under /tmp, and plant a setuid-root program
another user ran (R32-3); a link it left in its failed boot's directory refused every
resume (R32-4). The host's side is the real code; vng is stood in for by a function that
does what a lying guest does to the directories it is given."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from images import require_boot_image
from test_hardening_round28_c import LAST, _finish, _guest, _redone, _unfinished

from faultbench.measurement.booted import guest
from faultbench.measurement.booted.scratch import STATUS, guest_status, remove_private

DEPTH = 1_100


def _nest(under: Path) -> None:
    fd = os.open(under, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(DEPTH):
        os.mkdir("n", dir_fd=fd)
        inner = os.open("n", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(fd)


@pytest.mark.parametrize(("made", "status"), [
    (lambda p: p.write_text("0\n"), 0),
    (lambda p: p.write_text("3\n"), 3),
    (lambda p: p.write_text("300\n"), None),
    (lambda p: p.write_text("x"), None),
    (lambda p: p.symlink_to("/dev/zero"), None),
    (lambda p: p.symlink_to("/proc/self/fd/0"), None),
    (lambda p: os.mkfifo(p), None),
    (lambda p: None, None),
])
def test_the_guests_status_is_read_as_the_guests(tmp_path: Path, made: Any,
                                                 status: int | None) -> None:
    made(tmp_path / STATUS)
    assert guest_status(str(tmp_path)) == status


def _lying_vng(seen: dict[str, Any]) -> Any:
    """guest.run_streaming as a guest that opens its scratch directory to everyone, plants
    a file there, leaves a nest 1,100 deep, and exits 0."""
    def run(command: list[str], timeout_s: float, watchdog_end: int, scratch: str,
            private: str, cancel: Any, stdout: Any, held: int) -> tuple[int, bool]:
        share = Path(scratch)
        share.chmod(0o777)
        (share / "planted").write_text("root's\n")
        _nest(share)
        (share / STATUS).write_text("0\n")
        seen["private"] = private
        seen["mode"] = Path(private).stat().st_mode & 0o777
        seen["others"] = subprocess.run(["cat", str(share / "planted")], capture_output=True,
                                        text=True, user=65534, group=65534)
        return 0, False
    return run


def test_a_guest_reaches_no_one_through_its_scratch_directory_and_leaves_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(guest, "run_streaming", _lying_vng(seen))
    assert guest.run_in_guest(require_boot_image(), ["true"], timeout_s=60) == 0
    assert seen["mode"] == 0o700
    assert seen["others"].returncode != 0 and "Permission denied" in seen["others"].stderr
    assert not Path(seen["private"]).exists()


def test_the_watchdog_removes_a_nest_the_guest_left(tmp_path: Path) -> None:
    """The host was killed (no `done`): the watchdog removes its scratch, however deep."""
    private = tmp_path / "faultbench-guest-x"
    private.mkdir()
    _nest(private)
    done = subprocess.run([sys.executable, "-P", "-m", "faultbench.measurement.booted.watchdog"],
                          input=f"scratch {private}\n".encode(), capture_output=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    assert (done.returncode, done.stderr) == (0, b"")
    assert not private.exists()


def test_remove_private_takes_any_depth(tmp_path: Path) -> None:
    _nest(tmp_path)
    remove_private(str(tmp_path / "n"))
    assert list(tmp_path.iterdir()) == []


def test_links_a_guest_left_in_its_failed_boots_directory_refuse_no_resume(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir, samples = _unfinished(tmp_path)
    honest = _guest(samples)

    def boot(kernel: str, argv: list[str], rwdir: str, **kwargs: Any) -> int:
        honest(kernel, argv, rwdir, **kwargs)
        own = Path(rwdir)
        (own / "samples.jsonl").unlink()
        (own / "samples.jsonl").symlink_to("/etc/hostname")
        os.link(own / "report.json", own / "profiles.jsonl")
        return 3
    assert _finish(run_dir, monkeypatch, boot)["status"] == "failed"
    _redone(run_dir, monkeypatch, samples)
    assert not (run_dir.path / "boots" / f"{LAST}.d").exists()
