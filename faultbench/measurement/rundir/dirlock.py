"""One writer per results directory: a flock on `.lock`, a file inside the directory that
only its writer's user may open (0600). A lock on the directory itself would do for
exclusion, but anyone who can read the directory can take it (flock needs only a read-only
descriptor): another user could hold root's run directory for as long as they liked.
Standard library only.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from pathlib import Path

from faultbench.errors import printable
from faultbench.measurement.rundir.safefile import ResultsError, SafeDir
from faultbench.measurement.trust import owner_name

LOCK_NAME = ".lock"
_ATTEMPTS = 5


class DirLock:
    """The lock of one SafeDir; the file is removed while still locked when released (a
    later locker re-checks it locked the file still there), and left by a killed writer for
    the next one to take over."""

    def __init__(self, directory: SafeDir) -> None:
        self.dir = directory
        self._fd = -1

    def acquire(self, what: str) -> None:
        """ResultsError naming the holder when another process has it."""
        where = self.dir.path / LOCK_NAME
        for _ in range(_ATTEMPTS):
            try:
                fd = os.open(LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                             0o600, dir_fd=self.dir.fd)
            except OSError as exc:
                raise ResultsError(f"cannot lock {where}: {exc.strerror}{self._hint(exc)}") \
                    from None
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or \
                    st.st_uid != os.geteuid() or st.st_mode & 0o077:
                os.close(fd)
                raise ResultsError(f"{where} is not a lock file faultbench made (a regular "
                                   "file with one link, its writer's, mode 0600): remove it")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = flock_holder(fd)
                os.close(fd)
                raise ResultsError(f"{self.dir.path} is {what} by another faultbench process "
                                   f"({holder}); wait for it to finish") from None
            with contextlib.suppress(FileNotFoundError):
                if os.stat(LOCK_NAME, dir_fd=self.dir.fd,
                           follow_symlinks=False).st_ino == st.st_ino:
                    self._fd = fd
                    return
            os.close(fd)  # its last holder removed it after we opened it: take the new one
        raise ResultsError(f"cannot lock {where}: it keeps changing")

    def _hint(self, exc: OSError) -> str:
        """What to do about a lock file that cannot be opened: a directory (or lock file)
        of another user's is theirs to write, not something to remove; a link or a
        directory planted at .lock is."""
        if exc.errno in (errno.EACCES, errno.EPERM):
            owner = os.fstat(self.dir.fd).st_uid
            if owner == 0:
                return " (the directory is root's: run this as root)"
            return (f" (the directory belongs to {owner_name(owner)}: run this as that user)"
                    if owner != os.geteuid() else "")
        return " (a link or a directory there? remove it)"

    def release(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(LOCK_NAME, dir_fd=self.dir.fd)
            os.close(self._fd)
            self._fd = -1


def flock_holder(fd: int) -> str:
    """Who holds the flock on `fd`'s file, from /proc/locks: pid, command (escapes shown as
    text: it is another process's), since when."""
    st = os.fstat(fd)
    key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        with open("/proc/locks") as locks:
            pids = [line.split()[4] for line in locks
                    if line.split()[1:2] == ["FLOCK"] and line.split()[5:6] == [key]]
        pid = int(pids[0])
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as proc_stat:
            boot = next(int(line.split()[1]) for line in proc_stat if line.startswith("btime"))
    except (OSError, ValueError, IndexError, StopIteration):
        return "its pid could not be read from /proc/locks"
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ",
                          time.gmtime(boot + ticks / os.sysconf("SC_CLK_TCK")))
    shown = printable(command.decode(errors="replace").strip()[:200])
    return f"pid {pid}: `{shown}`, running since {since}"
