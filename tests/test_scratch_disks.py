"""A guest's scratch disks: only those its scenarios' files need (ext4 on /var/tmp, XFS on
/var/tmp/xfs). The booted tests that measure a file there (test_guest's ext4 file,
test_folios' XFS file, test_memory_guest's apps) show the disks a run asks for are mounted;
these show which are asked for, and that none is made or mounted otherwise."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from faultbench.measurement.booted import scratch
from faultbench.measurement.measure import backing_dir
from faultbench.measurement.spec import Spec


@pytest.mark.parametrize(("specs", "disks"), [
    ([Spec(backing="memfd"), Spec(backing="anon"), Spec(backing="tmpfs")], ()),
    ([Spec(backing="file")], ("ext4",)),
    ([Spec(backing="file", dir="/var/tmp/a/b")], ("ext4",)),
    ([Spec(backing="file", dir="/var/tmp/xfs")], ("xfs",)),
    ([Spec(backing="file", dir="/var/tmp/xfs/"), Spec(backing="file")], ("ext4", "xfs")),
    ([Spec(backing="tmpfs", dir="/var/tmp")], ("ext4",)),
    ([Spec(backing="file", dir="/var/tmpfoo"), Spec(backing="file", dir="/dev/shm")], ()),
])
def test_a_guest_gets_the_disks_its_scenarios_files_need(specs: list[Spec],
                                                          disks: tuple[str, ...]) -> None:
    assert scratch.disks_for(backing_dir(s) for s in specs) == disks


def test_a_relative_dir_is_taken_from_where_the_guest_starts(tmp_path: Path) -> None:
    """The guest's script starts in the host's working directory (the same path there)."""
    old = os.getcwd()
    os.chdir("/var")
    try:
        assert scratch.disks_for(["tmp/xfs"]) == ("xfs",)
        assert scratch.disks_for(["tmp"]) == ("ext4",)
    finally:
        os.chdir(old)


@pytest.mark.skipif(not (shutil.which("mkfs.xfs", path="/usr/sbin:/sbin:/usr/bin")
                         and shutil.which("mkfs.ext4", path="/usr/sbin:/sbin:/usr/bin")),
                    reason="needs mkfs.ext4 and mkfs.xfs")
@pytest.mark.parametrize("filesystems", [(), ("ext4",), ("xfs",), ("ext4", "xfs")])
def test_only_the_disks_asked_for_are_made_and_mounted(tmp_path: Path,
                                                       filesystems: tuple[str, ...]) -> None:
    with tempfile.TemporaryDirectory(prefix="faultbench-guest-", dir=tmp_path) as where:
        disks, script, _ = scratch.fill(where, ["true"], {}, filesystems)
        made = sorted(p.name for p in Path(where).glob("scratch-*.img"))
        text = Path(script).read_text()
    assert made == sorted(f"scratch-{fs}.img" for fs in filesystems)
    assert [os.path.basename(d) for d in disks] == [f"scratch-{fs}.img" for fs in filesystems]
    assert ("modprobe -q virtio_blk" in text) == bool(filesystems)
    for point, fs in scratch.SCRATCH_DISKS:
        assert (f"mount -t {fs} \"$dev\" {point} " in text) == (fs in filesystems)


def test_a_dir_reached_through_a_link_gets_the_disk_it_leads_to(tmp_path: Path) -> None:
    """R28-1: the guest resolves the host's links, so a `dir` that is a link to /var/tmp
    (or /var/tmp/xfs) lands on its scratch mount; without the disk it was a tmpfs there and
    every file scenario in it was skipped as unsupported."""
    (tmp_path / "vt").symlink_to("/var/tmp")
    (tmp_path / "vx").symlink_to("/var/tmp/xfs")
    assert scratch.disks_for([str(tmp_path / "vt")]) == ("ext4",)
    assert scratch.disks_for([str(tmp_path / "vx" / "sub")]) == ("xfs",)
