"""The machine-wide knob lock, and the journal it remembers.

Every command that writes kernel knobs holds it while it does, whatever journal it uses
(FAULTBENCH_JOURNAL, --journal). The lock file records the holder's journal, and stays when
the holder is killed: so a later knob writer, `restore` and `doctor` find a journal left
anywhere, not only at the default path. Standard library only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import sys
import time

from faultbench.errors import printable
from faultbench.measurement.knobs.catalog import KnobError
from faultbench.measurement.rundir.safefile import ResultsError, check_owner
from faultbench.measurement.spec import clipped
from faultbench.measurement.trust import who_can_change

# One per machine (a booted guest has its own /run), wherever the journal is.
LOCK_PATH = "/run/faultbench/lock"
_LOCK_ATTEMPTS = 5
# A record is a pid, a time, a clipped command and a path (PATH_MAX 4096).
_RECORD_MAX = 8192


def _record(text: bytes) -> dict:
    """The lock file's record, {} when it is not one (empty, cut short, or an older
    faultbench's)."""
    try:
        data = json.loads(text[:_RECORD_MAX])
    except (ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _holder(record: dict) -> str:
    pid, command, since = record.get("pid"), record.get("command"), record.get("since")
    if not (isinstance(pid, int) and isinstance(command, str) and isinstance(since, str)):
        return f"see {LOCK_PATH}"  # the holder is between taking the lock and saying who
    return f"pid {pid}: `{printable(clipped(command))}`, since {printable(clipped(since, 40))}"


def faultbench_command(words: list[str]) -> str | None:
    """The faultbench command (`run`, `measure`, `restore`) a recorded command line is of,
    or None: untrusted (a lock's or a journal's), only read to choose the words."""
    known = len(words) > 1 and os.path.basename(words[0]) in ("faultbench", "__main__.py") \
        and words[1] in ("run", "measure", "restore")
    return words[1] if known else None


def _subcommand(record: dict) -> str | None:
    return faultbench_command(str(record.get("command", "")).split())


def _is_restore(record: dict) -> bool:
    return _subcommand(record) == "restore"


def _who(record: dict) -> str:
    return f"faultbench {command}" if (command := _subcommand(record)) else "faultbench process"


def _journal_of(record: dict) -> str | None:
    journal = record.get("journal")
    return journal if isinstance(journal, str) and os.path.isabs(journal) else None


def _lock_file() -> tuple[os.stat_result, dict]:
    """The lock file's status, and its record read as untrusted input: {} unless a regular
    file root owns and only root may write. OSError when it cannot be opened."""
    fd = os.open(LOCK_PATH, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        trusted = stat.S_ISREG(st.st_mode) and not who_can_change(st, where=fd)
        return st, _record(f.read(_RECORD_MAX)) if trusted else {}


def recorded_journal() -> str | None:
    """The journal the lock file names, when that journal still exists: the last knob
    writer's, left when it was killed (or is still writing)."""
    try:
        journal = _journal_of(_lock_file()[1])
    except OSError:
        return None
    return journal if journal and os.path.lexists(journal) else None


def live_holder() -> dict | None:
    """Who holds the knob lock now, {"pid", "command"}: the pid as the kernel lists the lock
    in /proc/locks, the command as the holder recorded it (None when the record is not that
    pid's, or others could have written it). None when no live process holds it: a killed
    holder's record is left with its journal, unlocked. OSError when it cannot be told (as
    another user: /run/faultbench is root's, 0700). Reads only: taking the lock, even
    shared for a moment, could make a knob writer starting then refuse."""
    try:
        st, record = _lock_file()
    except FileNotFoundError:
        return None
    # /proc/locks: "1: FLOCK  ADVISORY  WRITE PID MAJOR:MINOR:INODE 0 EOF" (a waiter's
    # line has "->" in the second field)
    lock_id = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    with open("/proc/locks") as locks:
        for line in locks:
            fields = line.split()
            if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == lock_id and \
                    fields[4] != str(os.getpid()):
                # -1: a process of another pid namespace
                pid = int(fields[4]) if fields[4].isdigit() else None
                command = record.get("command") if pid and record.get("pid") == pid else None
                return {"pid": pid, "command": command if isinstance(command, str) else None}
    return None


class KnobLock:
    """flock on LOCK_PATH, so runs with different journals cannot change knobs under each
    other. The holder writes who it is and its `journal` into the file, for a refusal to
    name it; it removes the file when done (a later locker re-checks it locked the file
    still there), unless its journal is kept for `restore` (`keep_record`). A journal
    another writer left (killed) refuses the lock until `faultbench restore` has put its
    knobs back."""

    def __init__(self, journal: str) -> None:
        self.journal = journal
        self.keep_record = False
        self._dir_fd = -1
        self._fd = -1

    def __enter__(self) -> KnobLock:
        directory, name = os.path.split(LOCK_PATH)
        for _ in range(_LOCK_ATTEMPTS):
            try:
                self._open(directory, name)
            except FileNotFoundError:
                continue  # the last holder removed the directory as we opened it
            except ResultsError:
                self._close()
                raise
            except OSError as exc:
                self._close()
                if os.geteuid() != 0:
                    raise KnobError(f"changing kernel knobs needs root (running as uid "
                                    f"{os.geteuid()})") from None
                raise KnobError(f"cannot take the knob lock {LOCK_PATH}: {exc.strerror}") \
                    from None
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _record(os.pread(self._fd, _RECORD_MAX, 0))
                self._close()  # not ours to remove
                if _is_restore(holder):  # two restores of one journal: one does it
                    raise KnobError(f"another `faultbench restore` ({_holder(holder)}) is "
                                    "putting kernel knobs back; wait for it to finish") \
                        from None
                raise KnobError(f"another {_who(holder)} ({_holder(holder)}) is changing "
                                "kernel knobs; wait for it to finish") from None
            try:
                same = os.stat(name, dir_fd=self._dir_fd, follow_symlinks=False).st_ino == \
                    os.fstat(self._fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._refuse_left_journal()
                os.ftruncate(self._fd, 0)
                os.pwrite(self._fd, json.dumps({
                    "pid": os.getpid(), "journal": os.path.abspath(self.journal),
                    "command": clipped(" ".join(sys.argv)),
                    "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }).encode(), 0)
                return self
            self._close()  # the holder removed it after we opened it: take the new one
        raise KnobError(f"cannot take the knob lock {LOCK_PATH}: it keeps changing")

    def _refuse_left_journal(self) -> None:
        """KnobError (the record kept) when the last holder was killed leaving a journal
        elsewhere than ours: its originals would be taken for the machine's."""
        record = _record(os.pread(self._fd, _RECORD_MAX, 0))
        left = _journal_of(record)
        if left and left != os.path.abspath(self.journal) and os.path.lexists(left):
            self._close()
            raise KnobError(f"a {_who(record)} that did not end ({_holder(record)}) left "
                            f"kernel knobs changed, journal {printable(left)}; run "
                            "`faultbench restore` first")

    def _open(self, directory: str, name: str) -> None:
        self._close()
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self._dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW |
                               os.O_CLOEXEC)
        check_owner(self._dir_fd, directory)
        self._fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                           dir_fd=self._dir_fd)

    def _close(self) -> None:
        for fd in (self._fd, self._dir_fd):
            if fd >= 0:
                os.close(fd)
        self._fd = self._dir_fd = -1

    def __exit__(self, *exc: object) -> None:
        """Released; unless `keep_record`, the file is removed while still locked, then its
        directory if empty."""
        if self._fd >= 0 and not self.keep_record:
            directory, name = os.path.split(LOCK_PATH)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=self._dir_fd)
            self._close()
            with contextlib.suppress(OSError):
                os.rmdir(directory)
        self._close()
