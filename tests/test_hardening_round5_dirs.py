"""Round five, directories another user shares: the tmpfs_huge mount point beside the journal
has an unguessable name, made exclusively, and what faultbench did not make is never removed
(since round eight the journal's directory may not be sticky either); a tmpfs/file backing's
`dir` gets a results directory's owner and link checks (no other user's link followed, no
directory another user may change); a link where a directory is written is refused in words
that say so. Real commands; links and directories
planted as `nobody`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from console import one_line
from groups import HOST

from faultbench.measurement.knobs.sysfs import MountError

# tmpfs mounts and knob writes: one at a time (tests/groups.py)
pytestmark = [HOST, pytest.mark.skipif(os.geteuid() != 0, reason="root's problems, planted "
                                        "by nobody")]

NOBODY = 65534
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}


def fb(*args: str | Path, env: dict[str, str] = ENV) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "faultbench", *map(str, args)],
                          capture_output=True, text=True, timeout=300, check=False, env=env)


def as_nobody(*argv: str | Path) -> None:
    subprocess.run([str(a) for a in argv], check=True, user=NOBODY, group=NOBODY)


@pytest.fixture
def sticky() -> Iterator[Path]:
    """Root's sticky directory anyone may create in, as /tmp (pytest's tmp_path is
    root-only)."""
    base = Path(tempfile.mkdtemp(prefix="faultbench-r5-"))
    base.chmod(0o755)
    (base / "s").mkdir(mode=0o1777)
    (base / "s").chmod(0o1777)
    yield base / "s"
    shutil.rmtree(base, ignore_errors=True)


# ---- R5-3: the tmpfs_huge mount point -------------------------------------------------------

def test_a_tmpfs_sample_with_its_journal_in_a_sticky_directory_is_refused(
        sticky: Path) -> None:
    """There another user could plant a directory at the mount point, or a file at the mount
    journal's PID-named path; round eight refuses such a journal directory outright."""
    env = {**ENV, "FAULTBENCH_JOURNAL": str(sticky / "journal.json")}
    done = fb("measure", "--backing", "tmpfs", "--tmpfs-huge", "always", "--size", "4M",
              env=env)
    assert done.returncode == 2 and done.stdout == ""
    assert f"{sticky} is writable by other users" in one_line(done.stderr)
    assert list(sticky.iterdir()) == []


def test_a_clash_at_the_mount_point_is_one_line_and_removes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory at the mount point's name (a guessed token; no other user may write the
    journal's directory any more): one line, and it stays."""
    from faultbench.measurement.knobs import tmpfs

    monkeypatch.setenv("FAULTBENCH_JOURNAL", str(tmp_path / "journal.json"))
    monkeypatch.setattr(tmpfs.os, "urandom", lambda n: b"\0" * n)  # the name, guessed
    planted = tmp_path / f"faultbench-tmpfs-{os.getpid()}.00000000"
    planted.mkdir()
    with pytest.raises(MountError) as refused, tmpfs.own_tmpfs("always"):
        pass
    assert str(refused.value) == f"cannot make the tmpfs mount point {planted}: File exists"
    assert sorted(p.name for p in tmp_path.iterdir()) == [planted.name]


def test_restore_leaves_a_mount_point_another_user_made(sticky: Path) -> None:
    """A run killed after writing its mount journal, before making its mount point: a
    directory of that name another user made is theirs."""
    planted = sticky / "faultbench-tmpfs-1.0badf00d"
    as_nobody("mkdir", planted)
    journal = sticky / "mount-999999999.json"
    journal.write_text('{"format": "faultbench-journal/1", "pid": 999999999, "knobs": [], '
                       f'"unmount": ["{planted}"]}}')
    journal.chmod(0o600)
    done = fb("restore", "--journal", sticky / "journal.json")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ("restored mount-999999999.json: nothing was left mounted; journal "
                           "removed\n")
    assert planted.is_dir() and not journal.exists()


# ---- R5-5: the backing's dir ---------------------------------------------------------------

@pytest.fixture
def planted(sticky: Path) -> Iterator[dict[str, Path]]:
    """nobody's link to a full 1M tmpfs root owns, nobody's own directory, and a directory
    anyone may write without the sticky bit."""
    victim = sticky.parent / "victim"
    victim.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "faultbench-r5", str(victim)],
                   check=True)
    try:
        as_nobody("ln", "-s", victim, sticky / "dlink")
        as_nobody("mkdir", sticky / "edir")
        (sticky.parent / "wdir").mkdir()
        (sticky.parent / "wdir").chmod(0o777)
        yield {"link": sticky / "dlink", "owned": sticky / "edir",
               "writable": sticky.parent / "wdir", "victim": victim}
    finally:
        subprocess.run(["umount", str(victim)], check=True)


WHY = {"link": "{d} is a symbolic link owned by uid 65534 (nobody): root does not follow it "
               "(it could lead anywhere); give the real path",
       "owned": "{d} is owned by uid 65534 (nobody): root does not write into a directory",
       "writable": "{d} is writable by other users: root does not write into a directory"}


@pytest.mark.parametrize("backing", ["tmpfs", "file"])
@pytest.mark.parametrize("kind", list(WHY))
def test_measure_refuses_a_backing_dir_another_user_can_redirect(
        planted: dict[str, Path], backing: str, kind: str) -> None:
    directory = planted[kind]
    done = fb("measure", "--backing", backing, "--dir", directory, "--size", "4M")
    assert done.returncode == 2 and done.stdout == ""
    line = one_line(done.stderr)
    assert line.startswith(f"faultbench measure: dir: {WHY[kind].format(d=directory)}"), line
    assert list(planted["victim"].iterdir()) == []


def test_run_refuses_a_workload_dir_through_another_users_link(
        planted: dict[str, Path], tmp_path: Path) -> None:
    workload = tmp_path / "w.toml"
    workload.write_text(f'repetitions = 1\n[defaults]\nbacking = "file"\nsize = "4M"\n'
                        f'dir = "{planted["link"]}"\n[[matrix]]\npattern = ["seq"]\n')
    done = fb("run", workload, "--out", tmp_path / "out", "-q")
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert WHY["link"].format(d=planted["link"]) in line, line
    assert not (tmp_path / "out").exists()


# ---- R5-11: a link where faultbench makes a directory --------------------------------------

def test_a_link_where_a_directory_is_written_is_refused_in_words_that_say_so(
        tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "jlink").symlink_to(tmp_path / "real")
    env = {**ENV, "FAULTBENCH_JOURNAL": str(tmp_path / "jlink" / "journal.json")}
    done = fb("measure", "--size", "1M", "--set", "vm.swappiness=61", env=env)
    assert done.returncode == 2
    assert one_line(done.stderr).endswith(
        f"cannot open the directory {tmp_path}/jlink: it is a symbolic link, and faultbench "
        "writes into no directory through a link (someone may have planted it); give the "
        "real path")
