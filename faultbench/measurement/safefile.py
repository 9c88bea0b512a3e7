"""Writing files where another user may have planted a link: the one way faultbench does it.

faultbench runs as root, and a results directory can sit where other users write. So a
directory is opened once and everything in it is reached through that descriptor (a
directory renamed or swapped for a link afterwards cannot redirect the writes); no file is
opened through a symbolic link (O_NOFOLLOW); new content goes to a fresh temp file
(O_EXCL, a random name) renamed over the old one, so neither a planted link nor a hard link
to someone else's file is ever opened for writing; appends check the file is a regular one
with a single link. As root, a directory another user owns (or may write) is refused: its
owner could swap files between our checks and our writes. Standard library only.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from faultbench.errors import FaultbenchError

_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
TEMP_SUFFIX = ".tmp"


class ResultsError(FaultbenchError, ValueError):
    """A results directory that cannot be written or resumed; the message says why."""


def _why(exc: OSError, path: Path) -> str:
    if exc.errno == errno.ELOOP:
        return (f"{path} is a symbolic link; faultbench never writes through one (someone "
                "may have planted it): remove it")
    if exc.errno == errno.EISDIR:
        return f"{path} is a directory, not a file: remove or rename it"
    return f"cannot write {path}: {exc.strerror}"


def check_owner(fd: int, path: Path | str) -> None:
    """As root, refuse a directory someone else can change (see the module's docstring)."""
    if os.geteuid() != 0:
        return
    st = os.fstat(fd)
    others = st.st_mode & stat.S_IWOTH or (st.st_mode & stat.S_IWGRP and st.st_gid != 0)
    if st.st_uid != 0 or others:
        who = f"owned by uid {st.st_uid}" if st.st_uid != 0 else "writable by other users"
        raise ResultsError(
            f"{path} is {who}: root does not write into a directory another user can change "
            f"(they could redirect the writes); run as its owner, or make it root's first "
            f"(chown -R root: {path}; chmod go-w {path})"
        )


def create_exclusive(dir_fd: int, name: str, mode: int = 0o666) -> int:
    """A new file `name` in the directory, never an existing file or link (O_EXCL)."""
    return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, mode, dir_fd=dir_fd)


def temp_name(name: str) -> str:
    """A hidden, unguessable temp name beside `name` (a planted one cannot pre-empt it)."""
    return f".{name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}"


class SafeDir:
    """A directory opened once; files in it written without following links."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd

    @classmethod
    def open(cls, path: Path, create: bool = False, any_owner: bool = False) -> SafeDir:
        """The directory at `path` (followed as named); with `create`, made if missing and
        then never a link itself. `any_owner` skips the owner check (a guest writing the
        host's directory: the host checked it)."""
        try:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(FileExistsError):
                    path.mkdir()
            fd = os.open(path, _DIR_FLAGS | (os.O_NOFOLLOW if create else 0))
        except OSError as exc:
            if exc.errno == errno.ENOTDIR and not path.is_symlink():
                raise ResultsError(f"{path} is not a directory") from None
            raise ResultsError(
                f"cannot open the directory {path}: " + (
                    "it is a symbolic link (faultbench does not follow one it creates)"
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR) else str(exc.strerror))
            ) from None
        safe = cls(path, fd)
        if not any_owner:
            try:
                check_owner(fd, path)
            except ResultsError:
                safe.close()
                raise
        return safe

    def __enter__(self) -> SafeDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def sub(self, name: str) -> SafeDir:
        """Subdirectory `name`, made if missing; refused if it is a link or someone else's."""
        path = self.path / name
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, dir_fd=self.fd)
            fd = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise ResultsError(f"{path} is not a directory (a link or a file): remove "
                                   "it") from None
            raise ResultsError(f"cannot create {path}: {exc.strerror}") from None
        sub = SafeDir(path, fd)
        try:
            check_owner(fd, path)
        except ResultsError:
            sub.close()
            raise
        return sub

    @contextlib.contextmanager
    def replacing(self, name: str, binary: bool = False) -> Iterator[IO[Any]]:
        """A file object whose content replaces `name` when the block ends without error:
        atomically and durably (readers see the old file or the new one, even after power
        loss). Written to a fresh temp file, so nothing planted at `name` is opened."""
        try:
            if stat.S_ISDIR(os.stat(name, dir_fd=self.fd, follow_symlinks=False).st_mode):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        except FileNotFoundError:
            pass
        except OSError as exc:  # refused before anything is created in the directory
            raise ResultsError(_why(exc, self.path / name)) from None
        tmp = temp_name(name)
        try:
            fd = create_exclusive(self.fd, tmp)
        except OSError as exc:
            raise ResultsError(_why(exc, self.path / name)) from None
        try:
            with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else
                           "utf-8") as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            os.rename(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
            os.fsync(self.fd)
        except OSError as exc:
            raise ResultsError(_why(exc, self.path / name)) from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=self.fd)

    def replace(self, name: str, text: str) -> None:
        with self.replacing(name) as fh:
            fh.write(text)

    def _open_existing(self, name: str, flags: int, mode: int = 0o666) -> int:
        """`name` opened with `flags`, refused unless a regular file with one link."""
        try:
            fd = os.open(name, flags | _NOFOLLOW, mode, dir_fd=self.fd)
        except OSError as exc:
            raise ResultsError(_why(exc, self.path / name)) from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            os.close(fd)
            what = "not a regular file" if not stat.S_ISREG(st.st_mode) else (
                f"linked {st.st_nlink} times (a hard link to another file?)")
            raise ResultsError(f"{self.path / name} is {what}: faultbench does not write "
                               "it; remove it")
        return fd

    def appending(self, name: str, binary: bool = False) -> IO[Any]:
        """`name` opened for appending (created if missing); the caller closes it."""
        fd = self._open_existing(name, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        return os.fdopen(fd, "ab" if binary else "a", encoding=None if binary else "utf-8")

    def read_bytes(self, name: str) -> bytes | None:
        """The content of `name`, None if it does not exist; a link is refused."""
        try:
            fd = os.open(name, os.O_RDONLY | _NOFOLLOW, dir_fd=self.fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise ResultsError(f"{self.path / name} is a symbolic link: faultbench does "
                                   "not read results through one; remove it") from None
            raise ResultsError(f"cannot read {self.path / name}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ResultsError(f"{self.path / name} is not a regular file")
            try:
                return fh.read()
            except OSError as exc:
                raise ResultsError(f"cannot read {self.path / name}: {exc.strerror}") \
                    from None

    def truncate(self, name: str, size: int) -> None:
        fd = self._open_existing(name, os.O_WRONLY)
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        finally:
            os.close(fd)

    def remove_temp_files(self) -> None:
        """Temp files an interrupted replacement left (unlinking never follows a link)."""
        for entry in os.listdir(self.fd):
            if entry.startswith(".") and entry.endswith(TEMP_SUFFIX):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry, dir_fd=self.fd)
