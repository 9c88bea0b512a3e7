"""One module per `faultbench` command: `add_arguments(parser)` and `run(args) -> int`.

Commands parse arguments and call the planes; cli.py imports every one of them to build its
parser, so they import nothing heavy at module top. What arrives here is validated here, and
so is what the filesystem answers: both are the user's input, refused in one line.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

from faultbench.errors import FaultbenchError

# What a filesystem the user chose can answer to a write or a read: full, read-only, not
# ours, a directory where a file belongs, gone. Anything else is a bug and keeps its traceback.
FILESYSTEM_ERRNOS = frozenset({
    errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EISDIR,
    errno.ENOTDIR, errno.ENOENT, errno.EEXIST, errno.ENAMETOOLONG, errno.ELOOP, errno.EFBIG,
    errno.EIO, errno.EMLINK, errno.ETXTBSY, errno.ESTALE,
})


class ArgumentError(FaultbenchError, ValueError):
    """A command-line value that cannot be used; the message names the option."""


class FilesystemError(FaultbenchError, OSError):
    """A file faultbench had to read or write and could not; the message names it."""


def check_text(value: str | None, option: str) -> str | None:
    """`value` when a path or name may be made of it: no NUL byte (the kernel takes paths as
    C strings), not empty."""
    if value is not None and ("\0" in value or not value):
        raise ArgumentError(f"{option} {value!r}: give a non-empty path without NUL bytes")
    return value


def check_count(value: int | None, option: str, low: int, high: int) -> None:
    if value is not None and not low <= value <= high:
        raise ArgumentError(f"{option} must be from {low} to {high:,}, got {value:,}"
                            if abs(value) < 10**30 else
                            f"{option} must be from {low} to {high:,}, got a {len(str(value))}"
                            "-digit number")


@contextmanager
def filesystem_errors(hint: str = "") -> Iterator[None]:
    """An OSError of the filesystem (disk full, read-only, ...) as one FilesystemError line
    naming the file; `hint` is appended (e.g. how to resume)."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in FILESYSTEM_ERRNOS:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        raise FilesystemError(f"{where}{exc.strerror}{hint}") from None
