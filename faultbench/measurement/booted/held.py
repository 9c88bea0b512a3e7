"""Private temp directories (a guest's scratch, `measure --kernel`'s copy of its image) that
outlive no run. The watchdog removes them when the run dies; a run killed together with its
watchdog (a kill of its whole cgroup or session) leaves them, a scratch disk of GiBs among
them. So each is held, flock on its HELD file, by the process that made it and by vng as
long as either lives, and a boot removes those of this user that nobody holds any more.
Standard library only."""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import sys
import tempfile

from faultbench.errors import printable
from faultbench.measurement.rundir.removal import remove_directory

HELD = ".held"
PREFIXES = ("faultbench-guest-", "faultbench-kernel-")
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def make_held(prefix: str, where: str | None = None) -> tuple[str, int]:
    """A new directory of `where` (default: $TMPDIR; only ours, 0700), and the fd that holds
    it: it is held until that fd, and every copy of it (vng's), is closed."""
    path = tempfile.mkdtemp(prefix=prefix, dir=where)
    fd = os.open(os.path.join(path, HELD + ".new"),
                 os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        # named HELD only once locked: another boot's sweep never takes it for left
        os.rename(os.path.join(path, HELD + ".new"), os.path.join(path, HELD))
    except BaseException:
        os.close(fd)
        raise
    return path, fd


def remove_left(where: str | None = None) -> None:
    """Removes the directories of PREFIXES in `where` (default: $TMPDIR) that are ours and
    that no live process holds, each said in one line. One without a HELD file (being made,
    or made by an older faultbench) is left alone."""
    where = where or tempfile.gettempdir()
    try:
        names = [n for n in os.listdir(where) if n.startswith(PREFIXES)]
    except OSError:
        return
    for name in names:
        path = os.path.join(where, name)
        try:
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or \
                    stat.S_IMODE(st.st_mode) != 0o700:
                continue
            if not _unheld(path):
                continue
            remove_held(path)
        except OSError:  # gone meanwhile (its watchdog), or not ours to judge
            continue
        print(printable(f"faultbench: removed {path}, which an earlier boot left (killed "
                        "with its watchdog, or its removal cut short)"), file=sys.stderr)


def remove_held(path: str) -> None:
    """The directory at `path` removed, its HELD file last: one a removal cut short (an
    fd limit, a kill) is still found and removed by a later boot."""
    remove_directory(path, last=HELD)


def _unheld(path: str) -> bool:
    directory = os.open(path, _OPEN_DIR)
    try:
        held = os.open(HELD, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                       dir_fd=directory)
    except FileNotFoundError:
        return False
    finally:
        os.close(directory)
    try:
        if not stat.S_ISREG(os.fstat(held).st_mode):
            return False
        with contextlib.suppress(BlockingIOError):
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        return False
    finally:
        os.close(held)
