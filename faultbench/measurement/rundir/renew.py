"""A run taken over from another user: none of its files may be one they still hold open.

`chown -R root: DIR` (what faultbench advises root before resuming another user's run) changes
the owner of each file, not who holds it open: a descriptor the former owner opened for
writing before the chown still writes the file, and an owner check cannot see it. Nor can any
check of /proc (another pid namespace, a descriptor passed over a socket, a shared mapping).
So a resume writes no file as it found it: each file faultbench writes there is replaced by a
copy of itself, a new file no one else can have opened, and an old descriptor then writes a
file no longer in the directory. Nothing else there is copied, and nothing at all before
meta.json is checked and every refusal of the resume made (RunDir.existing): a refused resume
writes nothing. Standard library only."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator

from faultbench.measurement.rundir.runfiles import RUN_FILES_MOST, run_files
from faultbench.measurement.rundir.safefile import ResultsError, SafeDir

CHUNK = 1 << 20


def renew_files(directory: SafeDir, boots: int) -> None:
    """Every file faultbench writes in the run `directory` of `boots` boots (run_files), if
    there, replaced by a copy of itself, of its mode and times (SafeDir.replacing: created
    O_EXCL, renamed over it, durably); nothing else there is opened, and no directory but
    boots/ and boots/N.d/ is entered. Each is opened as an append opens one
    (SafeDir.open_existing): a link, a file with more links than one (a copy would publish
    the other name's content) or, as root, one another user can change is refused
    (ResultsError); a link, FIFO or directory where a run file should be is left, to be
    refused when it is used. A file over its cap, or all together over RUN_FILES_MOST bytes,
    is refused before any is copied. A copy keeps the holes of a sparse file: faultbench
    writes none, but a run copied with `cp` or `tar -S` may hold some (a refusal could go
    only by st_blocks, which compressing filesystems report smaller too), and written out
    they would take the disk's room that the original did not."""
    total = 0
    with contextlib.closing(_present(directory, boots)) as present:
        for folder, name, most in present:
            total += _size(folder, name, most)
            if total > RUN_FILES_MOST:
                raise _too_much(directory)
    total = 0  # again as they are copied: one may have grown since
    with contextlib.closing(_present(directory, boots)) as present:
        for folder, name, most in present:
            total += _renew(folder, name, most, RUN_FILES_MOST - total, directory)


def _too_much(directory: SafeDir) -> ResultsError:
    return ResultsError(f"{directory.path}: its run files hold more than {RUN_FILES_MOST:,} "
                        "bytes together, more than a run's files can; faultbench does not "
                        "copy them to resume")


def _present(directory: SafeDir, boots: int) -> Iterator[tuple[SafeDir, str, int]]:
    """The run_files(boots) that are regular files: the directory, name and cap of each."""
    opened: dict[tuple[str, ...], SafeDir | None] = {(): directory}
    try:
        for path, most in run_files(boots):
            *parents, name = path
            folder = _folder(opened, tuple(parents))
            if folder is not None and folder.is_file(name):
                yield folder, name, most
    finally:
        for parents, folder in opened.items():
            if parents and folder is not None:
                folder.close()


def _folder(opened: dict[tuple[str, ...], SafeDir | None], parents: tuple[str, ...]
            ) -> SafeDir | None:
    """The directory `parents` below the run's, None when there is none; each opened once,
    and closed when the next one as deep is opened (run_files names a boot's files together:
    a run of many boots holds one of its directories open at a time)."""
    if parents in opened:
        return opened[parents]
    outer = _folder(opened, parents[:-1])
    for other in [p for p in opened if len(p) == len(parents)]:
        if (done := opened.pop(other)) is not None:
            done.close()
    folder = outer.sub(parents[-1]) if outer is not None and outer.is_dir(parents[-1]) else None
    opened[parents] = folder
    return folder


def _size(directory: SafeDir, name: str, most: int) -> int:
    fd = directory.open_existing(name, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    return _within(directory, name, size, most)


def _within(directory: SafeDir, name: str, size: int, most: int) -> int:
    if size > most:
        raise ResultsError(f"{directory.path / name}: {size} bytes, more than any {name} a "
                           f"run holds ({most >> 20:,} MiB); faultbench does not copy it to "
                           "resume")
    return size


def _renew(directory: SafeDir, name: str, most: int, left: int, run: SafeDir) -> int:
    """`name` renewed if within `most` bytes and the `left` of the run's total; its size."""
    with os.fdopen(directory.open_existing(name, os.O_RDONLY), "rb") as old:
        was = os.fstat(old.fileno())
        if _within(directory, name, was.st_size, most) > left:
            raise _too_much(run)
        with directory.replacing(name, binary=True) as new:
            _copy_keeping_holes(old.fileno(), new.fileno(), was.st_size)
            # the same content, so the same mode and times
            os.fchmod(new.fileno(), stat.S_IMODE(was.st_mode) & 0o777)
            os.utime(new.fileno(), ns=(was.st_atime_ns, was.st_mtime_ns))
    return was.st_size


def _copy_keeping_holes(source: int, target: int, size: int) -> None:
    """The first `size` bytes of `source` written at the same offsets of `target`, its holes
    left holes (SEEK_DATA, SEEK_HOLE; a filesystem without them has no holes to keep)."""
    offset = 0
    while offset < size:
        try:
            start = os.lseek(source, offset, os.SEEK_DATA)
            end = min(os.lseek(source, start, os.SEEK_HOLE), size)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # a hole to the end
                break
            if exc.errno != errno.EINVAL:
                raise
            start, end = offset, size
        while start < end:
            data = os.pread(source, min(CHUNK, end - start), start)
            if not data:
                break
            start += os.pwrite(target, data, start)
        offset = end if start >= end else size  # else cut short: the rest a hole
    os.ftruncate(target, size)
