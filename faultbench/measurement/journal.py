"""The restore journal: every knob's original, written before the first knob is changed and
replayed by `faultbench restore` after a run was killed (SIGKILL, a crash, power to the
guest). Standard library only.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from faultbench.measurement.knobs import (
    Knob,
    KnobError,
    read_value,
    reads_as,
    resolve_path,
    validate,
    write,
)
from faultbench.measurement.safefile import (
    ResultsError,
    check_owner,
    create_exclusive,
    remove_dead_temp_files,
    temp_name,
    who_can_change,
)
from faultbench.measurement.sysfs import DEBUGFS, mounted, release_own_tmpfs, umount

DEFAULT_JOURNAL = "/run/faultbench/journal.json"
# A real journal names a few knobs; anything larger is not one (and is not read whole).
JOURNAL_MAX_BYTES = 1 << 20
JOURNAL_FORMAT = "faultbench-journal/1"
# One per machine (a booted guest has its own /run), wherever the journal is.
LOCK_PATH = "/run/faultbench/lock"
_LOCK_ATTEMPTS = 5


def journal_path() -> str:
    return os.environ.get("FAULTBENCH_JOURNAL") or DEFAULT_JOURNAL


def process_start(pid: int) -> str | None:
    """The start time of `pid` (clock ticks since boot), which tells a reused pid apart."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()[19]


def _load_journal(path: str) -> dict | None:
    """The journal at `path`, None if there is none. Read as untrusted input: as root only
    a file root owns and only root may write (its content decides what root writes to the
    kernel), only a regular file (a FIFO or a device is refused before it is opened: it
    would block or never end), at most JOURNAL_MAX_BYTES."""
    try:
        st = os.lstat(path)
        _check_journal_file(st, path)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise KnobError(f"journal {path}: cannot read it: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        _check_journal_file(os.fstat(fd), path)  # the file opened is the one checked
        try:
            text = f.read(JOURNAL_MAX_BYTES + 1)
        except OSError as exc:
            raise KnobError(f"journal {path}: cannot read it: {exc.strerror}") from None
    not_ours = (f"{path} is not a faultbench journal ({{}}); nothing was restored: check "
                "--journal or $FAULTBENCH_JOURNAL")
    if len(text) > JOURNAL_MAX_BYTES:
        raise KnobError(not_ours.format(f"over {JOURNAL_MAX_BYTES:,} bytes"))
    try:
        data = json.loads(text.decode("utf-8"))
    except (ValueError, RecursionError):
        raise KnobError(not_ours.format("not JSON")) from None
    if not isinstance(data, dict) or data.get("format") != JOURNAL_FORMAT:
        raise KnobError(not_ours.format(f"no \"format\": \"{JOURNAL_FORMAT}\""))
    return data


def _check_journal_file(st: os.stat_result, path: str) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise KnobError(f"journal {path} is a symbolic link: faultbench reads a journal only "
                        "from a regular file; give the real path")
    if not stat.S_ISREG(st.st_mode):
        raise KnobError(f"journal {path} is not a regular file (a directory, FIFO or "
                        "device): check --journal or $FAULTBENCH_JOURNAL")
    who = who_can_change(st)
    if who:
        raise KnobError(f"journal {path} is {who}: root does not restore knobs from a file "
                        "another user can write (it names what root writes to the kernel); "
                        "nothing was restored")


def _owner_alive(data: dict) -> bool:
    pid = data.get("pid")
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return False
    start = process_start(pid)
    return start is not None and start == data.get("pid_start")


class KnobLock:
    """The machine-wide lock every command that writes kernel knobs holds while it does
    (flock on LOCK_PATH), so runs with different journals cannot change knobs under each
    other. The holder writes who it is into the file, for the refusal to name it; it
    removes the file when done (a later locker re-checks it locked the file still there)."""

    def __init__(self) -> None:
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
                holder = os.pread(self._fd, 4096, 0)
                self._close()  # not ours to remove
                raise KnobError(f"another faultbench run ({_holder(holder)}) is changing "
                                "kernel knobs; wait for it to finish") from None
            try:
                same = os.stat(name, dir_fd=self._dir_fd, follow_symlinks=False).st_ino == \
                    os.fstat(self._fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(self._fd, 0)
                os.pwrite(self._fd, json.dumps({
                    "pid": os.getpid(), "argv": sys.argv,
                    "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                }).encode(), 0)
                return self
            self._close()  # the holder removed it after we opened it: take the new one
        raise KnobError(f"cannot take the knob lock {LOCK_PATH}: it keeps changing")

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
        """Released; the file removed while still locked, then its directory if empty."""
        if self._fd >= 0:
            directory, name = os.path.split(LOCK_PATH)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=self._dir_fd)
            self._close()
            with contextlib.suppress(OSError):
                os.rmdir(directory)
        self._close()


def _holder(text: bytes) -> str:
    try:
        data = json.loads(text)
        command = " ".join(map(str, data["argv"]))
        return f"pid {int(data['pid'])}: `{command}`, since {data['since']}"
    except (ValueError, KeyError, TypeError):
        return f"see {LOCK_PATH}"  # the holder is between taking the lock and saying who


def refuse_if_journal(path: str) -> None:
    data = _load_journal(path)
    if data is None:
        return
    if _owner_alive(data):
        raise KnobError(
            f"another faultbench run (pid {data['pid']}) is changing kernel knobs (journal "
            f"{path}); wait for it to finish"
        )
    knobs = data.get("knobs")
    names = ", ".join(str(k.get("name", "?")) if isinstance(k, dict) else "?"
                      for k in (knobs if isinstance(knobs, list) else []))
    raise KnobError(
        f"a previous run (pid {data.get('pid')}) did not restore {names or 'its knobs'} "
        f"(journal {path}); run `faultbench restore` first"
    )


def missing_dirs(directory: str) -> list[str]:
    """The directories (absolute, deepest first) os.makedirs(directory) would create."""
    missing = []
    here = os.path.abspath(directory)
    while not os.path.lexists(here):
        missing.append(here)
        here = os.path.dirname(here)
    return missing


def write_journal(path: str, data: dict) -> list[str]:
    """Atomically, durably and exclusively: the journal must exist before the first knob is
    written, and two runs starting together must not both think they own the knobs. The temp
    file is new (O_EXCL, unguessable name): a link planted beside the journal is not followed.
    Returns the directories it created (also in the journal as `made_dirs`), for
    drop_journal to remove."""
    directory = os.path.dirname(path) or "."
    name = os.path.basename(path)
    tmp = temp_name(name)
    dir_fd = -1
    made = missing_dirs(directory)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        remove_dead_temp_files(dir_fd, name)
        with os.fdopen(create_exclusive(dir_fd, tmp, 0o600), "w") as f:
            json.dump({**data, "made_dirs": made}, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        try:
            # fails if another run created its journal meanwhile; never follows a link
            os.link(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        except FileExistsError:
            refuse_if_journal(path)
            raise
        finally:
            os.unlink(tmp, dir_fd=dir_fd)
        os.fsync(dir_fd)
    except OSError as exc:
        if dir_fd >= 0:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
        _remove_empty(made)
        raise KnobError(
            f"cannot write the restore journal {path}: {exc.strerror}; set FAULTBENCH_JOURNAL "
            "to a writable path"
        ) from exc
    finally:
        if dir_fd >= 0:
            os.close(dir_fd)
    return made


def check_journal_writable(path: str) -> None:
    """KnobError now if the journal could not be written at `path` (before a run makes its
    directory): a file is created there and removed, with any directory made for it."""
    made = missing_dirs(os.path.dirname(path) or ".")
    try:
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        probe = os.path.join(os.path.dirname(path), temp_name(os.path.basename(path)))
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
        os.unlink(probe)
    except OSError as exc:
        raise KnobError(f"cannot write the restore journal {path}: {exc.strerror}; set "
                        "FAULTBENCH_JOURNAL to a writable path") from None
    finally:
        _remove_empty(made)


def _remove_empty(dirs: list[str]) -> None:
    """Each directory (deepest first) removed if empty; a non-empty one stops nothing."""
    for directory in dirs:
        with contextlib.suppress(OSError):
            os.rmdir(directory)


def drop_journal(path: str, made_dirs: Sequence[str] = ()) -> None:
    """The journal gone, and the directories made for it (and the default journal's) once
    empty."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    _remove_empty(list(made_dirs))
    if path == DEFAULT_JOURNAL:
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(path))


def made_dirs(data: dict, path: str) -> list[str]:
    """The journal's `made_dirs` that are ancestors of its own path (it is untrusted: it
    must not make restore remove any other directory, even an empty one)."""
    made = data.get("made_dirs")
    if not isinstance(made, list):
        return []
    here = os.path.abspath(path)
    return [d for d in made if isinstance(d, str) and os.path.isabs(d)
            and here.startswith(d.rstrip("/") + "/")]


def _block_read_ahead_paths() -> set[str]:
    """read_ahead_kb of every whole block device: the only ones faultbench changes."""
    try:
        devices = os.listdir("/sys/block")
    except OSError:
        return set()
    return {os.path.realpath(f"/sys/block/{d}/queue/read_ahead_kb") for d in devices}


def _journal_entry(entry: object, path: str) -> tuple[Knob, str]:
    """A journal entry's knob and original, re-checked by the knob rules: the journal is a
    file on disk, and it must not make `restore` write anything a run could not have set."""
    if not isinstance(entry, dict) or not all(
        isinstance(entry.get(key), str) for key in ("name", "path", "original")
    ):
        raise KnobError(f"journal {path}: entry {str(entry)[:80]} is malformed (wants name, "
                        "path and original as strings); nothing was restored")
    name, knob_path, original = entry["name"], entry["path"], entry["original"]
    if name == "read_ahead_kb":
        if os.path.realpath(knob_path) not in _block_read_ahead_paths():
            raise KnobError(f"journal {path}: {knob_path} is outside what faultbench may "
                            "change (read_ahead_kb of a whole block device); nothing was "
                            "restored")
        knob = Knob(name, knob_path, "read_ahead")
    else:
        try:
            knob = resolve_path(knob_path, None)
        except KnobError as exc:
            raise KnobError(f"journal {path}: {exc}; nothing was restored") from None
        if knob.name != name:
            raise KnobError(f"journal {path}: entry {name} names {knob_path}, which is "
                            f"{knob.name}; nothing was restored")
    try:
        return knob, validate(knob, original)
    except KnobError as exc:
        raise KnobError(f"journal {path}: original {exc}; nothing was restored") from None


def put_back(knobs: list[tuple[Knob, str]]) -> list[str]:
    """Write every original back (last set first), verify; the problems, one line each."""
    problems = []
    for knob, original in reversed(knobs):
        try:
            write(knob, original)
            if not reads_as(knob, original):
                problems.append(f"{knob.name} reads {read_value(knob)!r}, not {original!r}")
        except (KnobError, OSError) as exc:
            problems.append(f"{knob.name}: {exc}")
    return problems


def restore_journal(path: str | None = None) -> list[str]:
    """Replay a stale journal: the restored knobs as 'name: now -> original' lines.

    Raises KnobError if the run that wrote it is alive or something could not be restored
    (the journal is kept then, so the restore can be retried).
    """
    path = path or journal_path()
    data = _load_journal(path)
    if data is None:
        return []
    if _owner_alive(data):
        raise KnobError(
            f"faultbench run pid {data['pid']} is still running and restores its knobs itself "
            f"when it ends; stop it (kill {data['pid']}) instead"
        )
    knobs, unmount = data.get("knobs"), data.get("unmount", [])
    if not isinstance(knobs, list) or not isinstance(unmount, list):
        raise KnobError(f"journal {path}: `knobs` and `unmount` must be lists; nothing was "
                        "restored")
    entries = [_journal_entry(e, path) for e in knobs]
    done = []
    with contextlib.ExitStack() as stack:
        stack.enter_context(KnobLock())
        if any(k.kind == "fault_around" for k, _ in entries):
            stack.enter_context(mounted("debugfs", DEBUGFS))
        for knob, original in entries:
            with contextlib.suppress(OSError):
                done.append(f"{knob.name}: {read_value(knob)} -> {original}")
        problems = put_back(entries)
    for target in unmount:
        if target == DEBUGFS:
            umount(target)
        else:
            release_own_tmpfs(target, path)
    if problems:
        raise KnobError(f"could not restore from {path}: {'; '.join(problems)}")
    drop_journal(path, made_dirs(data, path))
    return done
