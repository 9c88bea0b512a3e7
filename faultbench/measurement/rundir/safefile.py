"""Writing files where another user may have planted a link: the one way faultbench does it.

faultbench runs as root, and a results directory can sit where other users write. So a
directory is opened once and everything in it is reached through that descriptor (a
directory renamed or swapped for a link afterwards cannot redirect the writes); no file is
opened through a symbolic link (O_NOFOLLOW); new content goes to a fresh temp file
(O_EXCL, a random name) renamed over the old one, so neither a planted link nor a hard link
to someone else's file is ever opened for writing; appends check the file is a regular one
with a single link, and, as root, root's alone (another user could rewrite root's lines in
place afterwards). As root, a directory another user owns (or may write) is refused: its
owner could swap files between our checks and our writes; so is one under any directory
another user can change, its parent or one further up (they could rename what is below away
and put a link in its place before a later command opens it). The path to a directory is
walked one component at a time: as root, a symbolic link on it is followed only when root
owns it and no one else can replace it. Files are read the same way: never through a link,
regular files only. Standard library only.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from faultbench.errors import FaultbenchError, limit_hint, printable, shell_word
from faultbench.measurement.rundir.regular import NotRegularFile, open_regular
from faultbench.measurement.rundir.removal import remove_tree
from faultbench.measurement.rundir.tempfiles import (
    create_exclusive,
    remove_dead_temp_files,
    temp_name,
)
from faultbench.measurement.trust import owner_name, who_can_change

_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class ResultsError(FaultbenchError, ValueError):
    """A results directory that cannot be written or resumed; the message says why."""


def _why(exc: OSError, path: Path) -> str:
    if exc.errno == errno.ELOOP:
        return (f"{path} is a symbolic link; faultbench never writes through one (someone "
                "may have planted it): remove it")
    if exc.errno == errno.EISDIR:
        return f"{path} is a directory, not a file: remove or rename it"
    return f"cannot write {path}: {exc.strerror}"


class ForeignOwnerError(ResultsError):
    """A directory someone other than root can change (check_owner); `who` says who."""

    def __init__(self, message: str, who: str) -> None:
        super().__init__(message)
        self.who = who


def check_owner(fd: int, path: Path | str, sticky_ok: bool = False,
                advice: str | None = None) -> None:
    """As root, refuse a directory someone else can change (see the module's docstring);
    with `sticky_ok` a sticky one (/tmp) is accepted: for files created only O_EXCL and
    linked into place, which no one else may then rename or remove. `advice`: what the
    refusal says to do instead of making the directory root's."""
    st = os.fstat(fd)
    who = who_can_change(st, sticky_ok, fd)
    if who:
        shared = st.st_uid == 0 and st.st_mode & stat.S_ISVTX  # /tmp: never to be chmodded
        advice = advice or (f"give a directory of your own in it (mkdir {path}/NAME)"
                            if shared else f"run as its owner, or make it root's first "
                            f"(chown -R root: {path}; chmod go-w {path})")
        raise ForeignOwnerError(f"{path} is {who}: root does not write into a directory "
                                f"another user can change (they could redirect the writes); "
                                f"{advice}", who)


def check_parent(parent_fd: int, path: Path, advice: str | None = None) -> None:
    """As root, refuse a directory whose parent another user can change: they could rename
    it away and plant a link in its place. A sticky parent (/tmp) is safe: only root may
    rename root's directory there. `advice`: as check_owner's."""
    who = who_can_change(os.fstat(parent_fd), sticky_ok=True, where=parent_fd)
    if who:
        advice = advice or (f"choose another place, or make the parent root's (chown root: "
                            f"{path.parent}; chmod go-w {path.parent})")
        raise ResultsError(f"{path}: its parent directory {path.parent} is {who}, who could "
                           f"swap {path} for a link between commands: root does not write "
                           f"under it; {advice}")


def _link_distrust(dir_fd: int, name: str) -> str | None:
    """Why root may not follow the link `name` (someone else made it, or could replace it),
    or None."""
    link = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if link.st_uid != 0:
        return f"owned by {owner_name(link.st_uid)}"
    who = who_can_change(os.fstat(dir_fd), sticky_ok=True, where=dir_fd)
    return f"in a directory {who}" if who else None


class _WouldMake(Exception):
    """walk(dry=True) reached a component it would make."""


def walk(path: Path, create: bool, checked: bool, dry: bool = False,
         advice: str | None = None) -> tuple[int, int, str | None]:
    """(parent's fd, directory's fd, its name in the parent if this walk made it, else None)
    of `path`, opened one component at a time from / or
    the working directory; with `create`, missing components are made (never through a
    link) and the last one is never a link. `checked` (root, writing its own results): the
    walk starts at / (a relative path is made absolute), a link on the way is followed only
    if _link_distrust finds nothing, and every directory on the way is check_parent'ed (its
    owner could rename what follows away and plant a link), all before anything is made in
    it (ResultsError naming the owner). `dry` (with `create`): the first missing component
    raises _WouldMake once the checks made before making it have passed; nothing is made.
    `advice`: see check_owner."""
    if checked:
        path = Path(os.path.abspath(path))
    parts = [p for p in path.parts if p != path.anchor and p != "."]
    fd = os.open(path.anchor or ".", _DIR_FLAGS)
    parent = os.dup(fd)
    made = None
    try:
        for index, name in enumerate(parts):
            where = Path(path.anchor, *parts[:index + 1])
            try:
                step = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                if checked:
                    check_parent(fd, where, advice)
                if dry:
                    raise _WouldMake(where) from None
                try:
                    os.mkdir(name, dir_fd=fd)
                    made = name if index == len(parts) - 1 else None
                except FileExistsError:
                    pass
                step = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR) or not stat.S_ISLNK(
                        os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                    raise
                if create and index == len(parts) - 1:
                    raise ResultsError(f"cannot open the directory {where}: it is a symbolic "
                                       "link, and faultbench writes into no directory through "
                                       "a link (someone may have planted it); give the real "
                                       "path") from None
                distrust = _link_distrust(fd, name) if checked else None
                if distrust:
                    raise ResultsError(f"{where} is a symbolic link {distrust}: root does not "
                                       "follow it (it could lead anywhere); give the real path") \
                        from None
                step = os.open(name, _DIR_FLAGS, dir_fd=fd)
            if checked:
                try:
                    check_parent(fd, where, advice)
                except ResultsError:
                    os.close(step)
                    raise
            os.close(parent)
            parent, fd = fd, step
    except BaseException:
        os.close(fd)
        os.close(parent)
        raise
    return parent, fd, made


class SafeDir:
    """A directory opened once; files in it written without following links."""

    def __init__(self, path: Path, fd: int, made: tuple[int, str] | None = None,
                 any_owner: bool = False) -> None:
        self.path = path
        self.fd = fd
        self.any_owner = any_owner  # see open(): its files' owners are not checked either
        # when opening made the directory: the parent's fd and its name there (remove_if_made)
        self._made = made

    @classmethod
    def open(cls, path: Path, create: bool = False, any_owner: bool = False,
             sticky_ok: bool = False, dry: bool = False,
             advice: str | None = None) -> SafeDir:
        """The directory at `path` (see walk()); with `create`, made if missing and then
        never a link itself. `any_owner` skips the owner checks and follows every link (a
        guest writing the host's directory: the host checked it); `sticky_ok`, `advice`: see
        check_owner; `dry`: see would_create."""
        try:
            parent, fd, made = walk(path, create, checked=not any_owner and os.geteuid() == 0,
                                    dry=dry, advice=advice)
        except OSError as exc:
            if exc.errno == errno.ENOTDIR:
                raise ResultsError(f"{path} is not a directory") from None
            raise ResultsError(f"cannot open the directory {path}: {exc.strerror}"
                               f"{limit_hint(exc)}") from None
        if made is None:
            os.close(parent)
        safe = cls(path, fd, None if made is None else (parent, made), any_owner)
        if not any_owner:
            try:
                check_owner(fd, path, sticky_ok, advice)
            except ResultsError:
                safe.close()
                raise
        return safe

    @classmethod
    def would_create(cls, path: Path) -> bool:
        """A dry run of open(path, create=True): what it would refuse, refused with its
        words (ResultsError), and nothing made. True: `path` would be made (the checks made
        before each mkdir passed); False: it exists, and passed every check."""
        try:
            cls.open(path, create=True, dry=True).close()
        except _WouldMake:
            return True
        return False

    @classmethod
    def reading(cls, path: Path) -> SafeDir:
        """The directory at `path`, to read files from (anyone's; never through a link)."""
        try:
            return cls(path, os.open(path, _DIR_FLAGS))
        except OSError as exc:
            if exc.errno == errno.ENOTDIR:
                raise ResultsError(f"{path} is not a directory") from None
            raise ResultsError(f"cannot open the directory {path}: {exc.strerror}"
                               f"{limit_hint(exc)}") from None

    def __enter__(self) -> SafeDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def make_private(self) -> None:
        """The directory its owner's alone (0700); ResultsError when it cannot be."""
        try:
            os.fchmod(self.fd, 0o700)
        except OSError as exc:
            raise ResultsError(f"cannot make {self.path} private: {exc.strerror}") from None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self._made is not None:
            os.close(self._made[0])
            self._made = None

    made_here = property(lambda self: self._made is not None, doc="Whether opening made it.")

    def remove_if_made(self) -> None:
        """The directory removed if opening it made it and it is empty again (rmdir removes
        no other: not a link, not a directory someone put in its place, not one that holds
        anything), then closed: what a run cut short before it wrote anything leaves."""
        if self._made is not None:
            parent, name = self._made
            with contextlib.suppress(OSError):
                here = os.fstat(self.fd)
                there = os.stat(name, dir_fd=parent, follow_symlinks=False)
                if (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino):
                    os.rmdir(name, dir_fd=parent)
        self.close()

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
        sub = SafeDir(path, fd, any_owner=self.any_owner)
        try:
            check_owner(fd, path)
        except ResultsError:
            sub.close()
            raise
        return sub

    @contextlib.contextmanager
    def replacing(self, name: str, binary: bool = False, mode: int = 0o666) -> Iterator[IO[Any]]:
        """A file object whose content replaces `name` when the block ends without error:
        atomically and durably (readers see the old file or the new one, even after power
        loss). Written to a fresh temp file (`mode`), so nothing planted at `name` is opened."""
        try:
            if stat.S_ISDIR(os.stat(name, dir_fd=self.fd, follow_symlinks=False).st_mode):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        except FileNotFoundError:
            pass
        except OSError as exc:  # refused before anything is created in the directory
            raise ResultsError(_why(exc, self.path / name)) from None
        tmp = temp_name(name)
        try:
            fd = create_exclusive(self.fd, tmp, mode)
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

    def open_existing(self, name: str, flags: int, mode: int = 0o666) -> int:
        """`name` opened with `flags`, refused unless a regular file with one link."""
        try:
            # O_NONBLOCK: a FIFO planted here must not block the open (with no reader it
            # fails with ENXIO instead, and is refused as not a regular file)
            fd = os.open(name, flags | os.O_NONBLOCK | _NOFOLLOW, mode, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                raise ResultsError(f"{self.path / name} is not a regular file: faultbench "
                                   "does not write it; remove it") from None
            raise ResultsError(_why(exc, self.path / name)) from None
        os.set_blocking(fd, True)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            os.close(fd)
            what = "not a regular file" if not stat.S_ISREG(st.st_mode) else (
                f"linked {st.st_nlink} times (a hard link to another file?)")
            raise ResultsError(f"{self.path / name} is {what}: faultbench does not write "
                               "it; remove it")
        if foreign := self._foreign_file(st, name):
            os.close(fd)
            raise ResultsError(foreign)
        return fd

    def check_file_owner(self, name: str) -> None:
        """As root, refuse the regular file `name` when its owner would refuse appending to
        it (anything else there is refused, in its own words, when opened)."""
        with contextlib.suppress(FileNotFoundError):
            st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
            if stat.S_ISREG(st.st_mode) and (foreign := self._foreign_file(st, name)):
                raise ResultsError(foreign)

    def _foreign_file(self, st: os.stat_result, name: str) -> str | None:
        """Why root may not append to this file: unlike one replaced, it keeps its owner, who
        could rewrite root's lines later (a partial run `cp -a`'d in, a `chown root:` of DIR)."""
        who = None if self.any_owner else who_can_change(
            st, where=f"/proc/self/fd/{self.fd}/{name}")
        return who and (f"{self.path / name} is {who}: root does not add to a file another "
                        "user can change (they could rewrite its lines afterwards); make the "
                        f"run root's (chown -R root: {self.path}; chmod -R go-w {self.path})")

    def appending(self, name: str, binary: bool = False) -> IO[Any]:
        """`name` opened for appending (created if missing); the caller closes it."""
        fd = self.open_existing(name, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        return os.fdopen(fd, "ab" if binary else "a", encoding=None if binary else "utf-8")

    def read_bytes(self, name: str, limit: int | None = None) -> bytes | None:
        """The content of `name`, None if it does not exist; a link, anything but a regular
        file, or (with `limit`) a file over `limit` bytes is refused."""
        fh = self.open_reading(name, limit)
        if fh is None:
            return None
        with fh:
            try:
                return fh.read() if limit is None else fh.read(limit + 1)[:limit]
            except OSError as exc:
                raise ResultsError(f"cannot read {self.path / name}: {exc.strerror}") from None

    def open_reading(self, name: str, limit: int | None = None) -> IO[bytes] | None:
        """`name` opened for reading as read_bytes reads it (the caller closes it), None if
        it does not exist."""
        where = self.path / name
        try:
            fd = open_regular(name, limit, follow=False, dir_fd=self.fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            why = {errno.ELOOP: "a symbolic link: faultbench does not read results through "
                   "one; remove it", errno.EFBIG: f"{exc.strerror} faultbench reads of such a "
                   "file (the ones it writes are far smaller): not read"}.get(exc.errno)
            if isinstance(exc, NotRegularFile):
                why = f"{exc.strerror}: faultbench reads only a regular file there"
            raise ResultsError(f"{where} is {why}" if why else
                               f"cannot read {where}: {exc.strerror}") from None
        return os.fdopen(fd, "rb")

    def is_file(self, name: str) -> bool:
        """Whether `name` is a regular file here (a link is not)."""
        try:
            return stat.S_ISREG(os.stat(name, dir_fd=self.fd, follow_symlinks=False).st_mode)
        except FileNotFoundError:
            return False

    def is_dir(self, name: str) -> bool:
        """Whether `name` is a directory here (a link is not)."""
        try:
            return stat.S_ISDIR(os.stat(name, dir_fd=self.fd, follow_symlinks=False).st_mode)
        except FileNotFoundError:
            return False

    def remove_tree(self, name: str) -> None:
        """Directory `name` and everything in it removed, however deep (removal.remove_tree:
        no link followed, a link itself removed). Missing: nothing to do."""
        where = self.path / name
        try:
            remove_tree(self.fd, name)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # `name` is a link (inside, links are unlinked)
                raise ResultsError(_why(exc, where)) from None
            raise ResultsError(printable(
                f"cannot remove {where}: {exc.filename}: {exc.strerror}; remove it (rm -rf "
                f"{shell_word(where)})")) from None

    def truncate(self, name: str, size: int) -> None:
        fd = self.open_existing(name, os.O_WRONLY)
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        finally:
            os.close(fd)

    def remove_temp_files(self) -> None:
        """Temp files an interrupted replacement left (unlinking never follows a link)."""
        remove_dead_temp_files(self.fd)
