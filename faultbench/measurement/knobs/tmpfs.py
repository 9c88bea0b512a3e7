"""A tmpfs of faultbench's own, mounted with `huge=` for one sample (spec `tmpfs_huge`).

The mount is journaled like a knob before it is made (a journal of its own, beside the knob
journal: `mount-PID.json`), then detached (`umount -l`) at once while a descriptor of its root
stays open: the backing file is created through that descriptor, and the kernel frees the
tmpfs when the last descriptor closes, on every exit path, SIGKILL included. It is mounted
in a mount namespace of the process's own (sysfs.private_namespace), so even a kill in the
milliseconds between mount and detach leaves nothing mounted: the journal then names only
its empty mount point for `faultbench restore`. Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from faultbench.errors import FaultbenchError, printable
from faultbench.measurement.knobs.journal import (
    DEFAULT_JOURNAL,
    JOURNAL_FORMAT,
    LiveJournal,
    drop_journal,
    journal_path,
    journals,
    process_start,
    refuse_if_journal,
    restore_journal,
    write_journal,
)
from faultbench.measurement.knobs.sysfs import (
    OWN_TMPFS_PREFIX,
    MountError,
    private_namespace,
    run_mount_tool,
    umount,
)
from faultbench.measurement.rundir.tempfiles import remove_dead_temp_files
from faultbench.measurement.signals import blocked

MOUNT_JOURNAL_PREFIX = "mount-"


def _mount_journal(pid: int | None = None) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(journal_path())),
                        f"{MOUNT_JOURNAL_PREFIX}{pid or os.getpid()}.json")


def release_killed(pid: int) -> None:
    """What process `pid`, killed by SIGKILL and reaped (the runner's worker, which cannot
    release anything itself), left of its tmpfs: its mount journal replayed, a temp file of
    that journal removed. Best effort: `faultbench restore` still finds what stays."""
    path = _mount_journal(pid)
    with contextlib.suppress(FaultbenchError, OSError):
        restore_journal(path)
    _remove_dead_temp_files(os.path.dirname(path), os.path.basename(path))


def _remove_dead_temp_files(directory: str, name: str = "") -> None:
    """The temp files of mount journal `name` (else of any mount journal) in `directory`
    whose writer is dead: a kill in the middle of write_journal leaves one, and nothing else
    would remove it. Only mount journals': the directory may be anyone's (--journal)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return
    try:
        names = {name} if name else {
            entry[1:].partition(".json.")[0] + ".json" for entry in os.listdir(fd)
            if entry.startswith(f".{MOUNT_JOURNAL_PREFIX}") and ".json." in entry}
        for each in names:
            remove_dead_temp_files(fd, each)
    except OSError:
        return
    finally:
        os.close(fd)
    if directory == os.path.dirname(DEFAULT_JOURNAL):  # empty now, it holds nothing of ours
        with contextlib.suppress(OSError):
            os.rmdir(directory)


@contextlib.contextmanager
def own_tmpfs(huge: str) -> Iterator[str]:
    """A directory on a fresh tmpfs mounted `huge=HUGE` (a /proc/self/fd path: the mount is
    already detached), for the block."""
    if os.geteuid() != 0:
        raise MountError(f"tmpfs_huge mounts a tmpfs (huge={huge}): that needs root, running "
                         f"as uid {os.geteuid()}")
    path = _mount_journal()
    # unguessable (temp_name's token): another user who may write the journal's directory
    # (a sticky one) cannot plant the mount point before it is made
    target = os.path.join(os.path.dirname(path),
                          f"{OWN_TMPFS_PREFIX}{os.getpid()}.{os.urandom(4).hex()}")
    fd = -1
    made: list[str] | None = None
    made_target = False
    # The release is armed before the mask goes: a signal that arrived while blocked is
    # delivered as the mask is restored, and must unwind through it, not past it.
    try:
        with blocked():  # a SIGTERM half-way would leave the mount; SIGKILL the journal
            made = write_journal(path, {
                "format": JOURNAL_FORMAT, "pid": os.getpid(),
                "pid_start": process_start(os.getpid()), "argv": sys.argv,
                "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "knobs": [], "unmount": [target],
            })
            try:
                os.mkdir(target, 0o700)  # fails if anything is there: never someone else's
            except OSError as exc:
                raise MountError(f"cannot make the tmpfs mount point {printable(target)}: "
                                 f"{exc.strerror}") from None
            made_target = True
            # in a namespace of our own: a SIGKILL before the detach takes the mount along
            # (the namespace ends with the process); the descriptor outlives both
            with private_namespace():
                done = run_mount_tool(["mount", "-t", "tmpfs", "-o", f"huge={huge},mode=0700",
                                       "faultbench", target])
                if done.returncode != 0:
                    raise MountError(f"cannot mount a tmpfs with huge={huge}: "
                                     f"{done.stderr.strip() or 'mount failed'}")
                try:
                    fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY |
                                 os.O_CLOEXEC)
                finally:
                    umount(target, lazy=True)
        yield f"/proc/self/fd/{fd}"
    finally:
        if made is not None:  # else write_journal failed, and removed what it made
            with blocked():
                _release(fd, target if made_target else None, path, made)


def _release(fd: int, target: str | None, path: str, made: list[str]) -> None:
    """The descriptor closed, the mount point removed if this process made it (`target`),
    the journal dropped."""
    if fd >= 0:
        os.close(fd)
    if target is not None:
        with contextlib.suppress(OSError):
            os.rmdir(target)
    drop_journal(path, made)


def _mount_journals(knob_journal: str) -> list[Path]:
    """The mount journals beside `knob_journal`."""
    directory = Path(os.path.dirname(os.path.abspath(knob_journal)))
    try:
        return sorted(p for p in directory.iterdir()
                      if p.name.startswith(MOUNT_JOURNAL_PREFIX) and p.name.endswith(".json"))
    except OSError:
        return []


def _foreign(path: Path) -> str | None:
    """Why a mount journal is not ours to replay (another user made it: in a shared sticky
    directory anyone can), None if it is root's or ours."""
    try:
        uid = path.lstat().st_uid
    except OSError:
        return None  # gone, or unreadable: replaying it says why
    if uid in (0, os.geteuid()):
        return None
    return (f"{printable(str(path))} is owned by uid {uid}, not by root or us: skipped "
            "(faultbench writes mount journals as root only; remove it)")


@dataclass
class MountRestore:
    done: list[str] = field(default_factory=list)  # what was undone, one line each
    skipped: list[str] = field(default_factory=list)  # other users' files, and why
    failed: list[str] = field(default_factory=list)  # ours, not restored: why


def restore_mounts(knob_journal: str) -> MountRestore:
    """Replay the mount journals beside `knob_journal` whose runs are gone (restore_journal
    unmounts and removes each journal's tmpfs); one journal's failure stops no other."""
    result = MountRestore()
    for path in _mount_journals(knob_journal):
        if (why := _foreign(path)) is not None:
            result.skipped.append(why)
            continue
        try:
            lines = restore_journal(str(path))
        except FaultbenchError as exc:
            result.failed.append(str(exc))
            continue
        result.done += [f"{path.name}: {line}" for line in lines] or [
            f"{path.name}: nothing was left mounted; journal removed"]
    _remove_dead_temp_files(os.path.dirname(os.path.abspath(knob_journal)))
    return result


def mount_journals_found() -> list[tuple[str, bool]]:
    """Each mount journal a run left or is using, as `doctor` says it, and whether a live
    process holds it (then it is that process's mount, nothing to restore)."""
    found = []
    for journal in journals():
        for path in _mount_journals(journal):
            live = False
            try:
                why = _foreign(path)
                refuse_if_journal(str(path))
            except LiveJournal as exc:
                why, live = str(exc), True
            except FaultbenchError as exc:
                why = str(exc)
            if why:
                found.append((why, live))
    return found
