"""The restore journal: every knob's original, written before the first knob is changed and
replayed by `faultbench restore` after a run was killed (SIGKILL, a crash, power to the
guest). Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from faultbench.measurement.knobs.catalog import (
    Knob,
    KnobError,
    read_value,
    reads_as,
)
from faultbench.measurement.knobs.knoblock import KnobLock, faultbench_command, recorded_journal
from faultbench.measurement.knobs.replay import journal_entries, put_back, reads_back_as
from faultbench.measurement.knobs.sysfs import DEBUGFS, mounted, release_own_tmpfs, umount
from faultbench.measurement.rundir.safefile import ResultsError, SafeDir
from faultbench.measurement.rundir.tempfiles import (
    create_exclusive,
    remove_dead_temp_files,
    temp_name,
)
from faultbench.measurement.trust import who_can_change

DEFAULT_JOURNAL = "/run/faultbench/journal.json"
# A real journal names a few knobs; anything larger is not one (and is not read whole).
JOURNAL_MAX_BYTES = 1 << 20
JOURNAL_FORMAT = "faultbench-journal/1"


def journal_path() -> str:
    return os.environ.get("FAULTBENCH_JOURNAL") or DEFAULT_JOURNAL


def process_start(pid: int) -> str | None:
    """The start time of `pid` (clock ticks since boot), which tells a reused pid apart;
    None when it has gone or is dead but not yet reaped (state Z or X: killed, its parent
    has not waited for it; it changes nothing any more)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]


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
        _check_journal_file(os.fstat(fd), path, fd)  # the file opened is the one checked
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


def _check_journal_file(st: os.stat_result, path: str, fd: int | None = None) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise KnobError(f"journal {path} is a symbolic link: faultbench reads a journal only "
                        "from a regular file; give the real path")
    if not stat.S_ISREG(st.st_mode):
        raise KnobError(f"journal {path} is not a regular file (a directory, FIFO or "
                        "device): check --journal or $FAULTBENCH_JOURNAL")
    who = who_can_change(st, where=path if fd is None else fd)
    if who:
        # found both by restore and by a run about to start: neither wrote anything
        raise KnobError(f"journal {path} is {who}: root does not restore knobs from a file "
                        "another user can write (it names what root writes to the kernel); "
                        "nothing was restored or changed: remove it, and keep root's journal "
                        "in a directory only root may write")


def _owner_alive(data: dict) -> bool:
    pid = data.get("pid")
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return False
    start = process_start(pid)
    return start is not None and start == data.get("pid_start")


def _writer(data: dict) -> str:
    """Which faultbench a journal's live writer is, from its recorded argv (untrusted: only
    names faultbench knows are said)."""
    argv = data.get("argv")
    words = [a for a in argv if isinstance(a, str)] if isinstance(argv, list) else []
    program = os.path.basename(words[0]) if words else ""
    if program == "worker.py":
        return "the measuring worker of a `faultbench run`"
    if faultbench_command(words) in ("measure", "run"):
        return f"`faultbench {words[1]}`"
    return "a process measuring with faultbench"


class LiveJournal(KnobError):
    """A journal whose writer is still running: in use, not left behind."""


def _holds_mount(data: dict) -> str | None:
    """What a live writer of a mount journal (tmpfs.py: no knob, a mount) holds, said as
    such: it changes no knob, and no knob writer waits for it."""
    if data.get("knobs") or not data.get("unmount"):
        return None
    return (f"{_writer(data)} (pid {data['pid']}) is still running and holds a tmpfs mount it "
            "releases itself when it ends")


def refuse_if_journal(path: str) -> None:
    data = _load_journal(path)
    if data is None:
        return
    if _owner_alive(data):
        if (held := _holds_mount(data)) is not None:
            raise LiveJournal(f"{held} (journal {path})")
        raise LiveJournal(
            f"{_writer(data)} (pid {data['pid']}) is changing kernel knobs (journal "
            f"{path}); wait for it to finish"
        )
    raise KnobError(f"{_left(data, path)}; run `faultbench restore` first")


def _left(data: dict, path: str, names: str = "") -> str:
    """What the journal at `path` says its dead writer left changed (`names`, else all)."""
    knobs = data.get("knobs")
    names = names or ", ".join(str(k.get("name", "?")) if isinstance(k, dict) else "?"
                               for k in (knobs if isinstance(knobs, list) else []))
    return (f"a previous run (pid {data.get('pid')}) did not restore "
            f"{names or ('its tmpfs mount' if data.get('unmount') else 'its knobs')} "
            f"(journal {path})")


def knobs_left() -> str | None:
    """The knobs a killed run's journal names that do not read as their originals, in words;
    None for none, or no journal readable (as another user: /run/faultbench is root's)."""
    for path in journals():
        try:
            data = _load_journal(path)
        except KnobError:  # not a journal of ours: restore and doctor say why
            continue
        if data is None or not isinstance(data.get("knobs"), list) or _owner_alive(data):
            continue
        try:
            entries = journal_entries(data["knobs"], path)
            changed = [knob.name for knob, original in entries if not reads_back_as(knob, original)]
        except KnobError:
            return _left(data, path)  # restore says what is wrong with it
        if changed:
            return _left(data, path, ", ".join(changed))
    return None


def missing_dirs(directory: str) -> list[str]:
    """The directories (absolute, deepest first) os.makedirs(directory) would create."""
    missing = []
    here = os.path.abspath(directory)
    while not os.path.lexists(here):
        missing.append(here)
        here = os.path.dirname(here)
    return missing


def _journal_dir(path: str) -> SafeDir:
    """The journal's directory, made if missing, walked as a results directory is (as root:
    no link another user made or could replace, no directory another user can change): a
    journal there could be redirected, or deleted mid-run so that a kill leaves knobs no
    `restore` can find. Nor a sticky one (/tmp): another user could make the file at the
    journal's path, or at a mount journal's beside it (mount-PID.json, PIDs are guessed),
    and so stop every knob writer or tmpfs sample until root removes it."""
    where = Path(os.path.dirname(os.path.abspath(path)))
    try:
        directory = SafeDir.open(where, create=True, advice="keep root's journal in a "
                                 "directory only root may write (FAULTBENCH_JOURNAL)")
    except ResultsError as exc:
        raise KnobError(f"cannot write the restore journal {path}: {exc}") from None
    # /run/faultbench is root's alone (0700: who changes knobs, since when, is root's to
    # know), whichever writer made it, a mount journal's (umask's mode) or the lock's
    if directory.made_here or where == Path(DEFAULT_JOURNAL).parent:
        try:
            directory.make_private()
        except ResultsError as exc:
            directory.close()
            raise KnobError(str(exc)) from None
    return directory


def write_journal(path: str, data: dict) -> list[str]:
    """Atomically, durably and exclusively: the journal must exist before the first knob is
    written, and two runs starting together must not both think they own the knobs. The temp
    file is new (O_EXCL, unguessable name): a link planted beside the journal is not followed.
    Returns the directories it created (also in the journal as `made_dirs`), for
    drop_journal to remove."""
    name = os.path.basename(path)
    tmp = temp_name(name)
    made = missing_dirs(os.path.dirname(path) or ".")
    try:
        directory = _journal_dir(path)
    except KnobError:
        _remove_empty(made)
        raise
    dir_fd = directory.fd
    try:
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
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        _remove_empty(made)
        raise KnobError(
            f"cannot write the restore journal {path}: {exc.strerror}; set FAULTBENCH_JOURNAL "
            "to a writable path"
        ) from exc
    finally:
        directory.close()
    return made


def check_journal_writable(path: str) -> None:
    """KnobError now if the journal could not be written at `path` (before a run makes its
    directory): a file is created there and removed, with any directory made for it."""
    made = missing_dirs(os.path.dirname(path) or ".")
    try:
        with _journal_dir(path) as directory:
            probe = temp_name(os.path.basename(path))
            os.close(create_exclusive(directory.fd, probe, 0o600))
            os.unlink(probe, dir_fd=directory.fd)
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
    """The journal gone, and the directories made for it (and the default journal's, which
    also holds the mount journals and the knob lock) once empty."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    _remove_empty(list(made_dirs))
    if os.path.dirname(path) == os.path.dirname(DEFAULT_JOURNAL):
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


def journals() -> list[str]:
    """Where a killed run may have left a journal: the one the knob lock records (a run
    with its own FAULTBENCH_JOURNAL), then this process's."""
    return list(dict.fromkeys(p for p in (recorded_journal(), journal_path()) if p))


def journal_problems() -> list[str]:
    """Each journal a run left (or is writing), said as a knob writer would refuse it."""
    problems = []
    for path in journals():
        try:
            refuse_if_journal(path)
        except KnobError as exc:
            problems.append(str(exc))
    return problems


def _put_back_line(knob: Knob, original: str, written: dict[str, set[str]] | None) -> str:
    now = read_value(knob)
    line = f"{knob.name}: {now} -> {original}"
    if written is None:
        return line
    if any(str(now).split() == value.split() for value in written.get(knob.name, ())):
        return f"{line} (left by the interrupted run)"
    # someone set it after the kill: the original goes back as a live run's restore does
    return f"{line} ({now} is no value the interrupted run set: someone changed it since)"


def restore_journal(path: str | None = None,
                    written: dict[str, set[str]] | None = None) -> list[str]:
    """Replay a stale journal (`path`, or each of journals()): the restored knobs as
    'name: now -> original' lines ('name: original, already as found' for one that was).
    `written`: the values the killed run could have set, by knob (a resume knows them from
    its meta.json): each line says whether the value it found is one of them.

    Raises KnobError if the run that wrote it is alive or something could not be restored
    (the journal is kept then, so the restore can be retried).
    """
    if path is None:
        return [line for found in journals() for line in restore_journal(found, written)]
    data = _load_journal(path)
    if data is None:
        return []
    if _owner_alive(data):
        if (held := _holds_mount(data)) is not None:
            raise KnobError(f"{held}; stop it (kill {data['pid']}) instead")
        raise KnobError(
            f"{_writer(data)} (pid {data['pid']}) is still running and restores its knobs "
            f"itself when it ends; stop it (kill {data['pid']}) instead"
        )
    # `unmount`: what a run of faultbench 0.4 or before mounted for all to see (later
    # runs mount in a namespace of their own, which ends with them)
    knobs, unmount = data.get("knobs"), data.get("unmount", [])
    if not isinstance(knobs, list) or not isinstance(unmount, list):
        raise KnobError(f"journal {path}: `knobs` and `unmount` must be lists; nothing was "
                        "restored")
    entries = journal_entries(knobs, path)
    done: list[str] = []
    problems: list[str] = []
    # a journal of mounts only (tmpfs.py) writes no knob: it need not wait for the knob lock,
    # which another run may hold for minutes
    with KnobLock(path) if entries else contextlib.nullcontext() as lock, \
            contextlib.ExitStack() as stack:
        if any(k.kind == "fault_around" for k, _ in entries):
            stack.enter_context(mounted("debugfs", DEBUGFS))
        for knob, original in entries:
            with contextlib.suppress(OSError):
                # a knob the run had not changed yet (or the partner of one) is not
                # written: "never -> never" would say it was
                done.append(f"{knob.name}: {original}, already as found"
                            if reads_as(knob, original)
                            else _put_back_line(knob, original, written))
        problems = put_back(entries)
        if lock is not None:
            lock.keep_record = bool(problems)  # the journal is kept: a later restore finds it
    for target in unmount:
        if target == DEBUGFS:
            umount(target)
        elif (what := release_own_tmpfs(target, path)) is not None:
            done.append(what)
    if problems:
        raise KnobError(f"could not restore from {path}: {'; '.join(problems)}")
    drop_journal(path, made_dirs(data, path))
    return done
