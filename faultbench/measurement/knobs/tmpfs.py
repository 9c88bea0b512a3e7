"""A tmpfs of faultbench's own, mounted with `huge=` for one sample (spec `tmpfs_huge`).

The mount is journaled like a knob before it is made (a journal of its own, beside the knob
journal: `mount-PID.json`), then detached (`umount -l`) at once while a descriptor of its root
stays open: the backing file is created through that descriptor, and the kernel frees the
tmpfs when the last descriptor closes, on every exit path, SIGKILL included. Only a kill in
the milliseconds between mount and detach leaves it mounted, and then the journal names it
for `faultbench restore`. Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from faultbench.errors import FaultbenchError
from faultbench.measurement.knobs.journal import (
    JOURNAL_FORMAT,
    drop_journal,
    journal_path,
    process_start,
    restore_journal,
    write_journal,
)
from faultbench.measurement.knobs.sysfs import OWN_TMPFS_PREFIX
from faultbench.measurement.signals import blocked

MOUNT_JOURNAL_PREFIX = "mount-"


class MountError(FaultbenchError):
    """The tmpfs could not be mounted here (not root, a kernel without THP for huge=)."""


def _mount_journal() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(journal_path())),
                        f"{MOUNT_JOURNAL_PREFIX}{os.getpid()}.json")


@contextlib.contextmanager
def own_tmpfs(huge: str) -> Iterator[str]:
    """A directory on a fresh tmpfs mounted `huge=HUGE` (a /proc/self/fd path: the mount is
    already detached), for the block."""
    if os.geteuid() != 0:
        raise MountError(f"tmpfs_huge mounts a tmpfs (huge={huge}): that needs root, running "
                         f"as uid {os.geteuid()}")
    path = _mount_journal()
    target = os.path.join(os.path.dirname(path), f"{OWN_TMPFS_PREFIX}{os.getpid()}")
    fd = -1
    with blocked():  # a SIGTERM half-way would leave the mount; SIGKILL leaves the journal
        made = write_journal(path, {
            "format": JOURNAL_FORMAT, "pid": os.getpid(),
            "pid_start": process_start(os.getpid()), "argv": sys.argv,
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "knobs": [], "unmount": [target],
        })
        try:
            os.mkdir(target, 0o700)
            done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"huge={huge},mode=0700",
                                   "faultbench", target], capture_output=True, text=True,
                                  check=False)
            if done.returncode != 0:
                raise MountError(f"cannot mount a tmpfs with huge={huge}: "
                                 f"{done.stderr.strip() or 'mount failed'}")
            try:
                fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW |
                             os.O_CLOEXEC)
            finally:
                subprocess.run(["umount", "-l", target], capture_output=True, check=False)
        except BaseException:
            _release(fd, target, path, made)
            raise
    try:
        yield f"/proc/self/fd/{fd}"
    finally:
        with blocked():
            _release(fd, target, path, made)


def _release(fd: int, target: str, path: str, made: list[str]) -> None:
    if fd >= 0:
        os.close(fd)
    with contextlib.suppress(OSError):
        os.rmdir(target)
    drop_journal(path, made)


def restore_mounts(knob_journal: str) -> list[str]:
    """Replay the mount journals beside `knob_journal` whose runs are gone: what was done,
    one line each (restore_journal unmounts and removes each journal's tmpfs)."""
    directory = Path(os.path.dirname(os.path.abspath(knob_journal)))
    try:
        names = sorted(p.name for p in directory.iterdir()
                       if p.name.startswith(MOUNT_JOURNAL_PREFIX) and p.name.endswith(".json"))
    except OSError:
        return []
    for name in names:
        restore_journal(str(directory / name))
    return [f"{name}: its tmpfs unmounted" for name in names]
