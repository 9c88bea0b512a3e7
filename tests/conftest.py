"""Shared fixtures."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from groups import ALONE, UNTOUCHED_BY_HOST_KNOBS, shared_dir


def _flock(path: Path, operation: int) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, operation)
    except BaseException:
        os.close(fd)
        raise
    return fd


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{ALONE.name}: runs with no other test beside it "
                            "(tests/groups.py)")
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # a non-interactive shell's background job (`scripts/test &`): the commands the
        # tests start would inherit it, and faultbench keeps an ignored signal ignored;
        # those that test Ctrl-C expect it delivered, as from a terminal
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups into the node ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A module-scoped fixture is made once on each worker that runs a test using it: the
    ungrouped tests using one are kept on one worker (a group per module), so that it is
    made once (test_stats_round3's two reports with figures took 40 s, on both workers)."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None or item.get_closest_marker("xdist_group") is not None:
            continue
        if any(d.scope == "module" for defs in info.name2fixturedefs.values() for d in defs):
            item.add_marker(pytest.mark.xdist_group(f"module:{item.module.__name__}"))


def _alone(item: pytest.Item | None) -> bool:
    return item is not None and item.get_closest_marker(ALONE.name) is not None


_alone_fds: list[int] = []  # held by this worker from its first HOST test to its last in a row


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Under pytest-xdist, ALONE tests (tests/groups.py) run alone: from the setup of the first
    of a row of them, module fixtures included, to the teardown of the last, the worker holds
    host.lock exclusively; every other test holds it shared, but for the groups no host knob
    touches (UNTOUCHED_BY_HOST_KNOBS). A worker waiting for it holds the turnstile, so that
    the other cannot keep the shared lock forever by taking it again test after test."""
    with _environment_kept():
        return (yield from _host_lock_held(item, nextitem))


@contextlib.contextmanager
def _environment_kept() -> Iterator[None]:
    """As root, cli.main cuts os.environ down to what it trusts (measurement/trust.py), as
    it should for the programs it starts. Run in a test's own process (tests/inprocess.py),
    that took PYTEST_XDIST_WORKER from the worker for the rest of the session: it stopped
    taking host.lock, and ALONE tests ran beside it (a native run lost its samples to
    thp.defrag changed under it). Each test, fixtures included, leaves it as it found it."""
    kept = dict(os.environ)
    try:
        yield
    finally:
        if os.environ != kept:
            os.environ.clear()
            os.environ.update(kept)


def _host_lock_held(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    group = item.get_closest_marker("xdist_group")
    if not os.environ.get("PYTEST_XDIST_WORKER") or (
            group is not None and group.args[0] in UNTOUCHED_BY_HOST_KNOBS):
        return (yield)
    where = shared_dir(Path(item.config.option.basetemp))
    turnstile, lock = where / "host-turnstile.lock", where / "host.lock"
    shared = -1
    if not _alone(item):
        gate = _flock(turnstile, fcntl.LOCK_SH)
        try:
            shared = _flock(lock, fcntl.LOCK_SH)
        finally:
            os.close(gate)
    elif not _alone_fds:
        gate = _flock(turnstile, fcntl.LOCK_EX)
        try:
            _alone_fds.extend((_flock(lock, fcntl.LOCK_EX), gate))
        except BaseException:
            os.close(gate)
            raise
    try:
        return (yield)
    finally:
        if shared >= 0:
            os.close(shared)
        elif not _alone(nextitem):
            while _alone_fds:
                os.close(_alone_fds.pop())


@pytest.fixture(scope="session")
def special_mounts() -> Callable[[], list[str]]:
    """Reads the debugfs/securityfs mounts: a run must leave them as it found them."""

    def read() -> list[str]:
        return sorted(line for line in Path("/proc/mounts").read_text().splitlines()
                      if line.split()[2] in ("debugfs", "securityfs"))

    return read


@pytest.fixture(scope="module")
def xfs_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An XFS filesystem in a loop-mounted image file, unmounted and removed after: a disk of
    its own (test_folios: XFS's large folios; round five: read_ahead_kb of another disk)."""
    if os.geteuid() != 0 or shutil.which("mkfs.xfs") is None:
        pytest.skip("an XFS loop mount needs root and mkfs.xfs (xfsprogs)")
    base = tmp_path_factory.mktemp("xfs")
    image, mount = base / "xfs.img", base / "mnt"
    subprocess.run(["truncate", "-s", "512M", str(image)], check=True)
    mount.mkdir()
    subprocess.run(["mkfs.xfs", "-q", "-f", str(image)], check=True)
    # attaching a file sets its loop device's read-ahead from the file's disk, and detaching
    # leaves it: put back as found
    read_ahead = {p: p.read_text() for p in Path("/sys/block").glob("loop*/queue/read_ahead_kb")}
    done = subprocess.run(["mount", "-o", "loop", str(image), str(mount)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot loop-mount XFS here: {done.stderr.strip()}")
    # A test of this worker may move it into a mount namespace of its own meanwhile (faultbench
    # unshares one before it mounts anything): unmount in the namespace the mount was made in,
    # or it outlives the suite there.
    made_in = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        yield str(mount)
    finally:
        subprocess.run(["nsenter", f"--mount=/proc/self/fd/{made_in}", "umount", str(mount)],
                       check=True, pass_fds=(made_in,))  # -o loop: the loop device goes too
        os.close(made_in)
        image.unlink()
        for path, value in read_ahead.items():
            if path.read_text() != value:
                path.write_text(value)
