"""One module per `faultbench` command: `add_arguments(parser)` and `run(args) -> int`.

Commands parse arguments and call the planes; cli.py imports every one of them to build its
parser, so they import nothing heavy at module top. What arrives here is validated here, and
so is what the filesystem answers: both are the user's input, refused in one line.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from faultbench.errors import FaultbenchError, limit_hint
from faultbench.measurement.spec import SpecError, parse_float, parse_int, shown

# What a filesystem the user chose can answer to a write or a read: full, read-only, not
# ours, a directory where a file belongs, gone. Anything else is a bug and keeps its traceback.
FILESYSTEM_ERRNOS = frozenset({
    errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EISDIR,
    errno.ENOTDIR, errno.ENOENT, errno.EEXIST, errno.ENAMETOOLONG, errno.ELOOP, errno.EFBIG,
    errno.EIO, errno.EMLINK, errno.ETXTBSY, errno.ESTALE, errno.EMFILE, errno.ENFILE,
})


class ArgumentError(FaultbenchError, ValueError):
    """A command-line value that cannot be used; the message names the option."""


class FilesystemError(FaultbenchError, OSError):
    """A file faultbench had to read or write and could not; the message names it."""


def check_text(value: str | None, option: str, empty: bool = False,
               give: str = "a path or name") -> str | None:
    """`value` when a path or name may be made of it: no NUL byte (the kernel takes paths as
    C strings) and, unless `empty`, not empty (`give`: what the option takes instead)."""
    if value is not None and "\0" in value:
        raise ArgumentError(f"{option} {value!r}: a path, name or value has no NUL bytes")
    if value is not None and not value and not empty:
        raise ArgumentError(f"{option} '': give {give}")
    return value


def check_count(value: int | None, option: str, low: int, high: int) -> None:
    if value is not None and not low <= value <= high:
        raise ArgumentError(f"{option} must be from {low} to {high:,}, got {value:,}"
                            if abs(value) < 10**30 else
                            f"{option} must be from {low} to {high:,}, got a {len(str(value))}"
                            "-digit number")


@contextmanager
def filesystem_errors(where: str) -> Iterator[None]:
    """An OSError of the filesystem (disk full, read-only, ...) as one FilesystemError line
    naming the file, or `where` when the error does not (a failed write names no file)."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in FILESYSTEM_ERRNOS:
            raise
        raise FilesystemError(f"{exc.filename or where}: {exc.strerror}{limit_hint(exc)}"
                              ) from None


def integer(text: str) -> int:
    """argparse `type`: an integer in ASCII digits (spec.parse_int), echoed clipped."""
    try:
        return parse_int(text)
    except SpecError:
        raise argparse.ArgumentTypeError(f"invalid integer value: {shown(text)}") from None


def number(text: str) -> float:
    """argparse `type`: a number written in ASCII (spec.parse_float), echoed clipped."""
    try:
        return parse_float(text)
    except SpecError:
        raise argparse.ArgumentTypeError(f"invalid number value: {shown(text)}") from None


@contextmanager
def imported_meanwhile(module: str) -> Iterator[None]:
    """`module` imported in a thread while the block runs, and done by its end: for a block
    that mostly waits. An import that fails here is left to the one that uses the module,
    which raises it where it belongs."""
    def load() -> None:
        with contextlib.suppress(Exception):
            importlib.import_module(module)

    thread = threading.Thread(target=load, name=f"import {module}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()
