"""A run taken over from another user: none of its files may be one they still hold open.

`chown -R root: DIR` (what faultbench advises root before resuming another user's run) changes
the owner of each file, not who holds it open: a descriptor the former owner opened for
writing before the chown still writes the file, and an owner check cannot see it. Nor can any
check of /proc (another pid namespace, a descriptor passed over a socket, a shared mapping).
So a resume writes no file as it found it: each is replaced by a copy of itself, a new file
no one else can have opened, and an old descriptor then writes a file no longer in the
directory. Standard library only."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable

from faultbench.measurement.rundir.safefile import ResultsError, SafeDir

# What faultbench writes goes no deeper than boots/N.d/; below that nothing is written, so
# nothing needs renewing, and a former owner's deep tree cannot exhaust the recursion.
DEEPEST = 2
# No file faultbench writes grows past its largest cap on read (samples.jsonl's): a larger
# one, a sparse file perhaps, would be copied out in full onto the disk.
LARGEST = 1 << 30


def renew_files(directory: SafeDir) -> None:
    """Every file in `directory` and below replaced by a copy of itself, of its mode and
    times (SafeDir.replacing: created O_EXCL, renamed over it, durably). Each is opened as
    an append opens one (SafeDir.open_existing): a link, a file with more links than one (a
    copy would publish the other name's content) or, as root, one another user can change
    is refused (ResultsError). Hidden names are left: the lock (its flock is on that file)
    and temp files, which nothing reads. Nothing else is opened, nor followed: a link or a
    FIFO where a run file should be is refused when it is used. Directories below DEEPEST are left.
    A file over LARGEST bytes is refused before any is copied."""
    _walk(directory, _check_size)
    _walk(directory, _renew)


def _walk(directory: SafeDir, act: Callable[[SafeDir, str], None], depth: int = 0) -> None:
    for name in sorted(os.listdir(directory.fd)):
        if name.startswith("."):
            continue
        if directory.is_dir(name):
            if depth < DEEPEST:
                with directory.sub(name) as inner:
                    _walk(inner, act, depth + 1)
        elif directory.is_file(name):
            act(directory, name)


def _check_size(directory: SafeDir, name: str) -> None:
    fd = directory.open_existing(name, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    if size > LARGEST:
        raise ResultsError(f"{directory.path / name}: {size} bytes, more than any file a run "
                           f"holds ({LARGEST >> 30} GiB); faultbench does not copy it to "
                           "resume")


def _renew(directory: SafeDir, name: str) -> None:
    with os.fdopen(directory.open_existing(name, os.O_RDONLY), "rb") as old, \
            directory.replacing(name, binary=True) as new:
        was = os.fstat(old.fileno())
        shutil.copyfileobj(old, new, 1 << 20)
        new.flush()
        # the same content, so the same mode and times: a resume refused after this leaves
        # the run as it found it (but for the inodes)
        os.fchmod(new.fileno(), stat.S_IMODE(was.st_mode) & 0o777)
        os.utime(new.fileno(), ns=(was.st_atime_ns, was.st_mtime_ns))
