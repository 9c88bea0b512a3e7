"""Round twenty-five, kernel images booted by name. `measure --kernel PATH` checked the image
PATH resolved to, then handed PATH to vng: through a link in a directory another user
controls, that user repointed the link after the check and root booted their kernel (R25-1).
Each boot's private copy of its image was written 0644: a root-only (0600) kernel became
readable by every user while the boot ran (R25-5)."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from inprocess import in_process
from test_hardening_round17_images import fake_image

from faultbench.measurement.booted import guest
from faultbench.measurement.booted.imagecheck import IMAGE_COPY, pinned_copy, private_copy
from faultbench.measurement.rundir.safefile import SafeDir

ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="the copies are root's")
CHECKOUT = Path(__file__).parents[1]


def _two_images_and_a_link(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Root's image `a` (the one checked), `b` (the one swapped in) and a link to `a`."""
    images = tmp_path / "images"
    images.mkdir()
    checked, swapped = fake_image(images / "a", 1 << 17), fake_image(images / "b", 1 << 17)
    with swapped.open("r+b") as fh:
        fh.seek(1 << 16)
        fh.write(b"another kernel")
    (tmp_path / "links").mkdir()
    link = tmp_path / "links" / "k"
    link.symlink_to(checked)
    return checked, swapped, link


def _repoint(link: Path, to: Path) -> None:
    link.unlink()
    link.symlink_to(to)


def test_measure_boots_the_bytes_it_checked_not_what_a_link_names_later(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """R25-1: the link repointed as the guest starts (when vng opened the name)."""
    checked, swapped, link = _two_images_and_a_link(tmp_path)
    booted: list[bytes] = []

    def boot(kernel: str, *args: Any, **kw: Any) -> int:
        _repoint(link, swapped)
        booted.append(Path(kernel).read_bytes())
        return 0
    monkeypatch.setattr(guest, "run_cli_in_guest", boot)
    monkeypatch.setattr(guest, "requirements", lambda image: [])  # QEMU and vng not needed
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    done = in_process("measure", "--kernel", link, "--size", "1M")
    assert done.returncode == 0, done.stderr
    assert booted == [checked.read_bytes()]
    assert list((tmp_path / "tmp").iterdir()) == []  # the copy removed after the boot


@ROOT
def test_private_copy_is_roots_alone_and_outlives_no_swap(tmp_path: Path) -> None:
    """What measure boots: a copy, in a directory only root can read, that a link repointed
    after the check does not change; gone after."""
    checked, swapped, link = _two_images_and_a_link(tmp_path)
    with private_copy(os.path.realpath(link)) as (copy, entry):
        _repoint(link, swapped)
        assert Path(copy).read_bytes() == checked.read_bytes() and entry == "bzImage"
        assert stat.S_IMODE(os.stat(copy).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(Path(copy).parent).st_mode) == 0o700
        assert os.stat(copy).st_uid == 0
    assert not Path(copy).parent.exists()


@ROOT
def test_a_boots_pinned_copy_is_readable_by_root_only(tmp_path: Path) -> None:
    """R25-5: written 0644 (the umask's), as Debian's 0600 image's unpacked vmlinux was."""
    image = fake_image(tmp_path / "vmlinuz", 1 << 17)
    image.chmod(0o600)
    (tmp_path / "boot").mkdir()
    previous = os.umask(0)
    try:
        with SafeDir.open(tmp_path / "boot") as into:
            why, copy, _ = pinned_copy(str(image), hashlib.sha256(image.read_bytes())
                                       .hexdigest(), into, "RESUME")
    finally:
        os.umask(previous)
    assert why is None and copy == str(tmp_path / "boot" / IMAGE_COPY)
    assert stat.S_IMODE(os.stat(copy).st_mode) == 0o600


def test_the_watchdog_removes_every_directory_it_was_told(tmp_path: Path) -> None:
    """measure's copy of its image, as well as the guest's scratch, when the host dies."""
    told = [tmp_path / "scratch", tmp_path / "kernel"]
    for directory in told:
        directory.mkdir()
        (directory / "file").write_text("x")
    subprocess.run([sys.executable, "-P", "-m", "faultbench.measurement.booted.watchdog"],
                   input="".join(f"scratch {d}\n" for d in told).encode(), check=True,
                   env={**os.environ, "PYTHONPATH": str(CHECKOUT)}, timeout=60)
    assert not any(directory.exists() for directory in told)
