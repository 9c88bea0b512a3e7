"""Round thirty: what a guest leaves in its boot's directory, boots/N.d, which the host
removes (R30-2, R30-4). A directory nest 1,100 deep made the recursive SafeDir.remove_tree
raise RecursionError right after the boot was recorded done, and on every resume after
(removing a done boot's directory, or setting a failed one's aside): the run never finished.
A directory where the host deletes its copy of the kernel image stopped the whole run, and
left the boot `running`. As in round twenty-eight (whose helpers these reuse), the last boot
of a copy of results/icount-aa is redone by a stand-in guest that writes where the guest
writes; the host's side is the real code."""

from __future__ import annotations

import fcntl
import json
import os
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from analysis_runs import faultbench
from test_hardening_round28_c import AA, LAST, _finish, _guest, _lines, _unfinished

from faultbench.measurement.rundir.results import ResultsError, RunDir

DEPTH = 1_100
FS_IOC_GETFLAGS, FS_IOC_SETFLAGS, FS_IMMUTABLE_FL = 0x80086601, 0x40086602, 0x10


def _nest(top: Path, outside: Path) -> None:
    """DEPTH directories, one in the other, made as a guest would (each relative to the one
    above: the path is longer than PATH_MAX), with a file and a link to `outside` at the
    bottom."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(DEPTH):
            os.mkdir("nest", dir_fd=fd)
            fd, above = os.open("nest", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd), fd
            os.close(above)
        os.close(os.open("file", os.O_WRONLY | os.O_CREAT, dir_fd=fd))
        os.symlink(outside, "link", dir_fd=fd)
    finally:
        os.close(fd)


def _with(boot: Callable[..., int], then: Callable[[Path], None]) -> Callable[..., int]:
    """The stand-in guest `boot`, which then does `then` to its boot's directory."""
    def guest(kernel: str, argv: list[str], rwdir: str, **kwargs: Any) -> int:
        status = boot(kernel, argv, rwdir, **kwargs)
        then(Path(rwdir))
        return status
    return guest


def _meta(run_dir: RunDir) -> dict[str, Any]:
    return json.loads((run_dir.path / "meta.json").read_text())


def _whole(run_dir: RunDir, outside: Path) -> None:
    """Every boot done, the run's samples the shipped ones, no boot directory left, nothing
    outside touched."""
    assert [b["status"] for b in _meta(run_dir)["boots"]] == ["ok"] * (LAST + 1)
    assert _lines(run_dir.path / "samples.jsonl") == _lines(AA / "samples.jsonl")
    assert sorted(p.name for p in (run_dir.path / "boots").iterdir()) == [
        f"{i}.json" for i in range(LAST + 1)]
    assert outside.read_text() == "kept"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file the links a guest leaves point to: never removed through them."""
    path = tmp_path / "outside"
    path.write_text("kept")
    return path


@pytest.fixture
def immutable() -> Iterator[Callable[[Path], None]]:
    """Makes a file root cannot unlink (FS_IMMUTABLE_FL): a tree remove_tree fails on;
    cleared again afterwards."""
    made: list[Path] = []

    def flag(path: Path, on: bool = True) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            flags = struct.unpack("l", fcntl.ioctl(fd, FS_IOC_GETFLAGS, struct.pack("l", 0)))[0]
            flags = flags | FS_IMMUTABLE_FL if on else flags & ~FS_IMMUTABLE_FL
            fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("l", flags))
        finally:
            os.close(fd)

    def make(directory: Path) -> None:
        path = directory / "stuck"
        path.write_text("")
        try:
            flag(path)
        except OSError as exc:
            pytest.skip(f"no immutable files here: {exc.strerror}")
        made.append(path)
    yield make
    for path in made:
        flag(path, on=False)


# ---- R30-2: a directory nest in boots/N.d -----------------------------------------------------

def test_a_nest_the_guest_leaves_goes_with_its_done_boots_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outside: Path) -> None:
    run_dir, samples = _unfinished(tmp_path)
    boot = _finish(run_dir, monkeypatch, _with(_guest(samples), lambda own: _nest(own, outside)))
    assert (boot["status"], boot["reason"]) == ("ok", None)
    _whole(run_dir, outside)


def test_a_resume_removes_a_nest_in_a_done_boots_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outside: Path) -> None:
    """Left by a kill after the boot was recorded done (_remove_done_dirs)."""
    run_dir, samples = _unfinished(tmp_path)
    (run_dir.path / "boots" / "0.d").mkdir()
    _nest(run_dir.path / "boots" / "0.d", outside)
    assert _finish(run_dir, monkeypatch, _guest(samples))["status"] == "ok"
    _whole(run_dir, outside)


def test_a_resume_sets_aside_a_failed_boots_directory_that_holds_a_nest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outside: Path) -> None:
    run_dir, samples = _unfinished(tmp_path)
    meta = _meta(run_dir)
    meta["boots"][LAST].update(status="failed", attempts=1, reason="the guest's run exited "
                               "with status 3")
    (run_dir.path / "meta.json").write_text(json.dumps(meta))
    (run_dir.path / "boots" / f"{LAST}.d").mkdir()
    _nest(run_dir.path / "boots" / f"{LAST}.d", outside)
    boot = _finish(run_dir, monkeypatch, _guest(samples))
    assert (boot["status"], boot["attempts"]) == ("ok", 2)
    _whole(run_dir, outside)


def test_a_done_boots_directory_that_cannot_be_removed_is_left_and_the_run_finishes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
        immutable: Callable[[Path], None]) -> None:
    run_dir, samples = _unfinished(tmp_path)
    own = run_dir.path / "boots" / f"{LAST}.d"
    boot = _finish(run_dir, monkeypatch, _with(_guest(samples), immutable))
    assert (boot["status"], boot["reason"]) == ("ok", None)
    assert _lines(run_dir.path / "samples.jsonl") == _lines(AA / "samples.jsonl")
    left = (f"faultbench run: boot {LAST + 1}/{LAST + 1} is done, and its directory was left: "
            f"cannot remove {own}: stuck: Operation not permitted; remove it (rm -rf {own})\n")
    assert capfd.readouterr().err == left
    # a resume has no boot to run: it says so again, and seals the run
    done = faultbench("run", "--resume", run_dir.path, "-q")
    assert done.stderr == left
    assert _meta(run_dir)["finished_utc"]


def test_a_failed_boots_directory_that_cannot_be_removed_refuses_the_resume_in_a_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        immutable: Callable[[Path], None]) -> None:
    run_dir, _ = _unfinished(tmp_path)
    meta = _meta(run_dir)
    meta["boots"][LAST].update(status="failed", attempts=1, reason="status 3")
    (run_dir.path / "meta.json").write_text(json.dumps(meta))
    own = run_dir.path / "boots" / f"{LAST}.d"
    own.mkdir()
    immutable(own)

    def never(*_: Any, **__: Any) -> int:
        raise AssertionError("booted")
    with pytest.raises(ResultsError) as refused:
        _finish(run_dir, monkeypatch, never)
    assert str(refused.value) == (f"cannot remove {own}: stuck: Operation not permitted; "
                                  f"remove it (rm -rf {own})")


# ---- R30-4: a directory at the boot's kernel-image -------------------------------------------

def _image_dir(own: Path) -> None:
    (own / "kernel-image").unlink()
    (own / "kernel-image").mkdir()
    (own / "kernel-image" / "x").write_text("")


def test_a_directory_the_guest_puts_at_its_kernel_image_stops_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outside: Path) -> None:
    run_dir, samples = _unfinished(tmp_path)
    boot = _finish(run_dir, monkeypatch, _with(_guest(samples), _image_dir))
    assert (boot["status"], boot["reason"]) == ("ok", None)
    _whole(run_dir, outside)


def test_a_failed_boot_with_a_directory_at_its_kernel_image_is_failed_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outside: Path) -> None:
    run_dir, samples = _unfinished(tmp_path)

    def failing(kernel: str, argv: list[str], rwdir: str, **_: Any) -> int:
        _image_dir(Path(rwdir))
        return 3
    boot = _finish(run_dir, monkeypatch, failing)
    assert (boot["status"], boot["reason"]) == (
        "failed", "the guest's run exited with status 3")
    _finish(RunDir(run_dir.path), monkeypatch, _guest(samples))
    _whole(run_dir, outside)


def test_an_exception_in_a_boots_end_records_the_boot_failed_with_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run stops, as for an error in its own files; the boot is not left `running`."""
    run_dir, _ = _unfinished(tmp_path)

    def broken(*_: Any, **__: Any) -> int:
        raise RuntimeError("the host's side broke")
    with pytest.raises(RuntimeError):
        _finish(run_dir, monkeypatch, broken)
    boot = _meta(run_dir)["boots"][LAST]
    assert (boot["status"], boot["reason"]) == ("failed", "the host's side broke")


def test_remove_tree_of_a_nest_keeps_few_fds_open(tmp_path: Path, outside: Path) -> None:
    """Whatever the depth, a bounded number of directories open (an fd limit of 100)."""
    (tmp_path / "top").mkdir()
    _nest(tmp_path / "top", outside)
    script = ("import resource, sys; from pathlib import Path; "
              "from faultbench.measurement.rundir.safefile import SafeDir; "
              "resource.setrlimit(resource.RLIMIT_NOFILE, (100, 100)); "
              "SafeDir.reading(Path(sys.argv[1])).remove_tree('top')")
    subprocess.run([sys.executable, "-c", script, tmp_path], check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside"]
    assert outside.read_text() == "kept"
