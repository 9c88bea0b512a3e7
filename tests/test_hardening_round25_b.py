"""Round twenty-five, the guest's scratch directory in $TMPDIR. A booted run (and `measure
--kernel`) made it in whatever $TMPDIR named and wrote its disk images and script there by
name: a user whose TMPDIR root kept (`sudo -E`) renamed root's directory away and planted
their own, and root formatted a file of theirs' choosing through a link and ran their run.sh
as root (R25-2). A $TMPDIR too full for the disks was blamed on the results directory and
left the boot `running` with no reason (R25-6). The real CLI and real directories; no guest
boots (every refusal and failure here comes before QEMU starts)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from images import require_boot_image
from test_hardening_round3_input import fb, refused

from faultbench.measurement.booted import scratch
from faultbench.measurement.booted.imagecheck import tmpdir_refusal

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the check is root's")
NOBODY = 65534
WORKLOAD = ('description = "x"\nrepetitions = 1\nwarmups = 0\n[defaults]\nbacking = "memfd"\n'
            'size = "1M"\n[[matrix]]\npattern = "seq"\n')
ADVICE = "unset TMPDIR, or point it at a directory only root can change"


def _owned_by_nobody(tmp: Path) -> str:
    os.chown(tmp, NOBODY, NOBODY)
    return f"{tmp} is owned by uid {NOBODY}"


def _writable(tmp: Path) -> str:
    tmp.chmod(0o777)  # no sticky bit: anyone may rename root's directory in it
    return f"{tmp} is writable by other users"


def _under_nobodys(tmp: Path) -> str:
    os.chown(tmp.parent, NOBODY, NOBODY)
    return f"its parent directory {tmp.parent} is owned by uid {NOBODY}"


@needs_root
@pytest.mark.parametrize("change", [_owned_by_nobody, _writable, _under_nobodys],
                         ids=["owned", "writable", "under"])
def test_a_tmpdir_another_user_can_change_is_refused_before_anything_is_made(
        tmp_path: Path, change: Callable[[Path], str]) -> None:
    """R25-2: refused in one line by `run --kernel` before its run directory is made, and by
    `measure --kernel` before it says it boots; nothing is made in $TMPDIR."""
    image = require_boot_image()
    workload = tmp_path / "w.toml"
    workload.write_text(WORKLOAD)
    tmp = tmp_path / "his" / "tmp"
    tmp.mkdir(parents=True, mode=0o700)
    why = change(tmp)
    env = {"TMPDIR": str(tmp)}
    line = refused(fb("run", workload, "--kernel", image, "--out", tmp_path / "run", env=env),
                   "run", why)
    assert line.startswith("faultbench run: TMPDIR, where a boot's scratch disks and script "
                           "go: ") and line.endswith(ADVICE), line
    assert not (tmp_path / "run").exists()
    refused(fb("measure", "--kernel", image, "--size", "1M", env=env), "measure",
            f"--kernel {image}: TMPDIR, where a boot's scratch disks and script go: ")
    assert os.listdir(tmp) == []


@needs_root
def test_tmp_and_a_roots_own_tmpdir_are_accepted(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """/tmp is sticky (no one else may rename root's directory there); a root 0700 one is
    root's alone."""
    own = tmp_path / "own"
    own.mkdir(mode=0o700)
    for tmp in ("/tmp", str(own)):
        monkeypatch.setattr(tempfile, "tempdir", tmp)
        assert tmpdir_refusal() is None


@contextlib.contextmanager
def _scratch_dir(tmp_path: Path) -> Iterator[Path]:
    """A boot's scratch directory; removed after, with the 2 GiB sparse disks made in it."""
    with tempfile.TemporaryDirectory(prefix="faultbench-guest-", dir=tmp_path) as made:
        yield Path(made)


@needs_root
@pytest.mark.parametrize("name", ["scratch-ext4.img", "scratch-xfs.img", "run.sh"])
def test_a_link_planted_in_place_of_a_scratch_file_is_not_followed(
        tmp_path: Path, name: str) -> None:
    """R25-2, in depth: a link in place of a disk image or the script is neither written
    nor formatted through (mkfs turned root's file into an XFS image)."""
    victim = tmp_path / "victim.txt"
    victim.write_text("root's file\n")
    with _scratch_dir(tmp_path) as where:
        (where / name).symlink_to(victim)
        with pytest.raises(FileExistsError):
            scratch.fill(str(where), ["true"], {})
    assert victim.read_text() == "root's file\n"


def test_a_link_planted_in_place_of_init_bin_is_not_followed(tmp_path: Path) -> None:
    """Nor in place of the stand-ins' directory: nothing is written into the directory the
    link names."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with _scratch_dir(tmp_path) as where:
        (where / scratch.INIT_BIN).symlink_to(elsewhere)
        fd = os.open(where, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with pytest.raises(FileExistsError):
                scratch.init_path(fd, str(where))
        finally:
            os.close(fd)
    assert os.listdir(elsewhere) == []


@contextlib.contextmanager
def _small_tmpfs(path: Path) -> Iterator[Path]:
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16M,mode=0700", "tmpfs", path],
                   check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", path], check=True)


@needs_root
def test_a_full_tmpdir_refuses_the_run_naming_tmpdir(tmp_path: Path) -> None:
    """R25-6: the boot failed naming the results directory (which has room), not $TMPDIR.
    Since R35-4 (virtme-ng's traceback when $TMPDIR was full, the kernel blamed) a $TMPDIR
    with under 128 MiB free refuses the run before its directory exists; nothing is left in
    TMPDIR. One another user can change is refused as well. (A file on XFS: a guest gets a
    scratch disk only for a scenario's file on it.)"""
    image = require_boot_image()
    workload = tmp_path / "w.toml"
    workload.write_text(WORKLOAD.replace('"memfd"', '"file"\ndir = "/var/tmp/xfs"'))
    run = tmp_path / "run"
    with _small_tmpfs(tmp_path / "small") as small:
        refused(fb("run", workload, "--kernel", image, "--out", run,
                   env={"TMPDIR": str(small)}), "run",
                f"TMPDIR {small} has 16.0 MiB and ")
        assert os.listdir(small) == []
    assert not run.exists()
    open_tmp = tmp_path / "open"
    open_tmp.mkdir()
    open_tmp.chmod(0o777)
    refused(fb("run", workload, "--kernel", image, "--out", run,
               env={"TMPDIR": str(open_tmp)}), "run", f"{open_tmp} is writable by other users")
    assert not run.exists()
