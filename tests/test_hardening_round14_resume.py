"""Round fourteen, `run --resume`: as root, after the advised `chown -R root: DIR` of another
user's partial run, a descriptor that user opened on a run file before the chown still wrote
the file root's resume went on adding to: its owner check cannot see a descriptor already open
(R14-4). A real native run, the real command, a second user (a uid no account has) holding the
descriptor in its own process."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from analysis_runs import faultbench, make_run
from test_hardening_round8 import one_scenario
from test_hardening_round13_resume import STRANGER, _interrupted, needs_root


def _hold(directory: Path, name: str) -> tuple[int, int, int]:
    """The former owner, a process of uid STRANGER: it opens `name` in `directory`
    read-write (through a descriptor of the directory: the path's parents may be closed to
    it, a pytest temp directory is root's 0700), says so, and once told writes an X over
    the file's first byte through it and reports the file's link count. Its pid, and pipes:
    one to tell it, one to hear it."""
    told, tell = os.pipe()
    hear, says = os.pipe()
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:
            os.setgroups([])
            os.setgid(STRANGER)
            os.setuid(STRANGER)
            fd = os.open(name, os.O_RDWR, dir_fd=dir_fd)
            os.write(says, b"open\n")
            os.read(told, 1)
            os.pwrite(fd, b"X", 0)
            os.write(says, f"{os.fstat(fd).st_nlink}\n".encode())
        finally:
            os._exit(0)
    for fd in (told, says, dir_fd):
        os.close(fd)
    return pid, tell, hear


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("round14"), "run", one_scenario(4))


def _chown_tree(top: Path, uid: int) -> None:
    for path in (top, *top.rglob("*")):
        os.chown(path, uid, uid, follow_symlinks=False)


@needs_root
# boots/N.json: a native run has no boots, and its resume neither reads nor writes one
# (round19_renew renews a booted run's)
@pytest.mark.parametrize("name", ["samples.jsonl", "meta.json", "worker.log",
                                  "profiles.jsonl", "discarded.jsonl"])
def test_a_descriptor_the_former_owner_holds_writes_none_of_roots_files(
        finished: Path, tmp_path: Path, name: str) -> None:
    """R14-4: the resume replaces every file of the run with a copy of itself (a new file,
    created O_EXCL and renamed over the old one) before it reads or adds to any: what the
    former owner writes through a descriptor opened before the chown goes to a file no longer
    in the directory, and root's run reads as the resume left it."""
    run = _interrupted(finished, tmp_path / "run")
    (run / name).parent.mkdir(exist_ok=True)
    if not (run / name).exists():
        (run / name).write_text("{}\n" if name.endswith(".json") else "")
    _chown_tree(run, STRANGER)
    pid, tell, hear = _hold((run / name).parent, Path(name).name)
    try:
        with os.fdopen(hear) as said:
            assert said.readline() == "open\n"
            _chown_tree(run, 0)  # the advice, verbatim: chown -R root: DIR; chmod -R go-w DIR
            subprocess.run(["chmod", "-R", "go-w", run], check=True)
            done = faultbench("run", "--resume", run, "-q", check=False)
            assert done.returncode == 0, done.stderr
            resumed = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
            os.write(tell, b"\n")
            links = said.readline()
    finally:
        os.close(tell)
        assert os.waitpid(pid, 0)[1] == 0
    assert links == "0\n"  # it wrote a file no longer linked anywhere
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == resumed
    assert len((run / "samples.jsonl").read_text().splitlines()) == 4
    assert all(p.stat().st_uid == 0 for p in run.rglob("*"))


@needs_root
def test_a_run_file_linked_elsewhere_is_not_copied(finished: Path, tmp_path: Path) -> None:
    """R14-4: the copy is made as an append opens a file: one with a second link (made before
    the chown, to a file outside the run that a copy would then publish) is refused."""
    run = _interrupted(finished, tmp_path / "run")
    os.link(run / "meta.json", tmp_path / "elsewhere")
    done = faultbench("run", "--resume", run, "-q", check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr == (f"faultbench run: {run}/meta.json is linked 2 times (a hard link "
                           "to another file?): faultbench does not write it; remove it\n")
    assert len((run / "samples.jsonl").read_text().splitlines()) == 2


def test_a_file_larger_than_a_run_holds_is_refused_not_copied(finished: Path,
                                                              tmp_path: Path) -> None:
    """The copy is bounded: a sparse worker.log of 2 GiB (a few blocks on disk, 2 GiB once
    copied) is refused before anything is copied, and the run is left as it was."""
    run = _interrupted(finished, tmp_path / "run")
    with open(run / "worker.log", "ab") as log:
        log.truncate(2 << 30)
    before = (run / "samples.jsonl").stat().st_ino
    done = faultbench("run", "--resume", run, "-q", check=False)
    assert (done.returncode, done.stderr) == (2, (
        f"faultbench run: {run}/worker.log: {2 << 30} bytes, more than any worker.log a run "
        "holds (1,024 MiB); faultbench does not copy it to resume\n"))
    assert not [p for p in run.rglob(".*") if p.name != ".lock"]  # no temp copy left
    assert (run / "samples.jsonl").stat().st_ino == before


def test_directories_below_what_a_run_writes_are_left(finished: Path, tmp_path: Path) -> None:
    """Nothing is written deeper than boots/N.d/: a tree below that is not walked (a deep
    one would exhaust the recursion) and its files are not copied."""
    run = _interrupted(finished, tmp_path / "run")
    (run / "boots" / "d" / "d").mkdir(parents=True)
    (run / "boots" / "d" / "d" / "f").write_text("y")
    inode = (run / "boots" / "d" / "d" / "f").stat().st_ino
    fd = os.open(run / "boots" / "d" / "d", os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(1200):  # a path too long to name: made one directory descriptor at a time
        os.mkdir("d", dir_fd=fd)
        fd, parent = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd), fd
        os.close(parent)
    os.close(fd)
    try:
        done = faultbench("run", "--resume", run, "-q", check=False)
        assert done.returncode == 0, done.stderr
        assert (run / "boots" / "d" / "d" / "f").stat().st_ino == inode
        assert len((run / "samples.jsonl").read_text().splitlines()) == 4
    finally:
        _flatten(run / "boots" / "d" / "d")


def _flatten(top: Path) -> None:
    """Removes a chain of directories `d` below `top` one level at a time from the top: no
    recursion (pytest's cleanup, shutil.rmtree, recurses once a level)."""
    while (top / "d").exists():
        if (top / "d" / "d").exists():
            (top / "d" / "d").rename(top / "lower")
        (top / "d").rmdir()
        if (top / "lower").exists():
            (top / "lower").rename(top / "d")
