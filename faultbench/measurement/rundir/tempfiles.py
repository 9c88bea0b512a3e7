"""Temp files beside the file they replace: created new (O_EXCL, never through a link) under
an unguessable name that carries the writer's pid, so that one whose writer died can be
told from one being written, and removed. Standard library only."""

from __future__ import annotations

import contextlib
import os

TEMP_SUFFIX = ".tmp"
# The most temp_name adds to a name: a file may be replaced only where its name has this much
# room below NAME_MAX (a pid is at most PID_MAX_LIMIT, 2^22: seven digits)
TEMP_NAME_EXTRA = len(f"..{2**22}.{'0' * 8}{TEMP_SUFFIX}")


def create_exclusive(dir_fd: int, name: str, mode: int = 0o666) -> int:
    """A new file `name` in the directory, never an existing file or link (O_EXCL)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.open(name, flags, mode, dir_fd=dir_fd)


def temp_name(name: str) -> str:
    """A hidden, unguessable temp name beside `name` (a planted one cannot pre-empt it).
    os.urandom, as secrets.token_hex does, without importing secrets: that brings hashlib and
    OpenSSL in, about 0.1 s of a TCG guest's start (docs/scale.md)."""
    return f".{name}.{os.getpid()}.{os.urandom(4).hex()}{TEMP_SUFFIX}"


def remove_dead_temp_files(dir_fd: int, name: str = "") -> None:
    """Temp files (temp_name's, of `name` when given) whose writer is dead: the pid in the
    name has gone. Only faultbench's own pattern is touched, never through a link."""
    for entry in os.listdir(dir_fd):
        parts = entry.split(".")
        if (entry.startswith(f".{name}.") if name else entry.startswith(".")) and \
                entry.endswith(TEMP_SUFFIX) and len(parts) >= 5 and parts[-3].isascii() and \
                parts[-3].isdigit() and _is_token(parts[-2]) and not _alive(int(parts[-3])):
            with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
                os.unlink(entry, dir_fd=dir_fd)


def _is_token(text: str) -> bool:
    return len(text) == 8 and all(c in "0123456789abcdef" for c in text)


def _alive(pid: int) -> bool:
    return pid == os.getpid() or os.path.exists(f"/proc/{pid}")
