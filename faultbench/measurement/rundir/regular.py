"""Opening a file to read only if it is a regular file, decided on the descriptor opened
(a FIFO opened by name would block root; a name checked, then opened, may be another file
by then). Standard library only."""

from __future__ import annotations

import errno
import os
import stat

from faultbench.errors import file_kind


class NotRegularFile(OSError):
    """open_regular's refusal; strerror says what the file is."""


def open_regular(path: str | os.PathLike[str], limit: int | None = None, follow: bool = True,
                 dir_fd: int | None = None) -> int:
    """A descriptor to read the regular file `path` from, opened once: a name checked and
    opened again may be a FIFO by then (a blocking open of it hangs root) or another file.
    O_NONBLOCK: a FIFO opens at once, and fstat refuses it. OSError: the open's (ELOOP: a
    link, unless `follow`), NotRegularFile, or EFBIG when over `limit` bytes."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC |
                 (0 if follow else os.O_NOFOLLOW), dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(errno.EINVAL, f"{file_kind(st.st_mode)}, not a regular file")
        if limit is not None and st.st_size > limit:
            raise OSError(errno.EFBIG, f"{st.st_size:,} bytes, over the {limit:,}")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd
