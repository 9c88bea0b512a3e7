"""kernels/build's image cache, which can sit where other users write (--cache, or
$FAULTBENCH_KERNEL_CACHE): each entry is opened the way faultbench opens a results
directory (measurement/rundir/safefile.py), its files without following links, and an image is
handed out only when its sha256 is the one recorded when it was built.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from faultbench.errors import printable
from faultbench.measurement.rundir.safefile import (
    ForeignOwnerError,
    ResultsError,
    SafeDir,
    open_regular,
)
from faultbench.measurement.trust import who_can_change

META_MAX_BYTES = 1 << 20  # a few hundred bytes in a real entry
# The shipped patches are a few KiB: a patch over this is a mistake, or a (sparse) file
# planted for root to read gigabytes of, and is refused before anything of it is read.
MAX_PATCH_BYTES = 64 << 20


class BuildError(Exception):
    """A refusal or failure, said in one message for the user."""


class AskedError(BuildError):
    """What was asked cannot be had by this user here (an unreadable patch, a vng it cannot
    run): exit 2, as for a bad argument, even when a build finds it."""


def read_patch(path: Path) -> tuple[bytes, str]:
    """A patch file's bytes and their sha256, read once from one open: the name, in another
    user's directory, may be a FIFO by now, or other bytes by the time `patch` would read
    it again (what is applied is what was hashed into the cache key). AskedError when it
    cannot be read, is over
    MAX_PATCH_BYTES (said before it is read), or holds no diff header: `patch` applies
    nothing else, and any other file (a key, /etc/shadow) would be hashed into the cache key
    and fail only once a build has started."""
    shown = printable(str(path))
    try:
        fd = open_regular(path, MAX_PATCH_BYTES)
    except OSError as exc:
        if exc.errno == errno.EFBIG:
            raise AskedError(f"patch {shown} is {exc.strerror} bytes a patch may have: too "
                             "large to be one") from None
        raise AskedError(f"cannot read patch {shown}: {exc.strerror}") from None
    digest, content, previous, headers = hashlib.sha256(), bytearray(), b"", False
    with os.fdopen(fd, "rb") as stream:
        # line by line, each at most 64 KiB: a file without newlines is not one line in
        # memory
        while line := _read_line(stream, shown):
            digest.update(line)
            content += line
            headers = headers or line.startswith(b"diff --git ") or (
                previous.startswith(b"--- ") and line.startswith(b"+++ "))
            previous = line
            if len(content) > MAX_PATCH_BYTES:  # it grew after the check
                raise AskedError(f"patch {shown} is over the {MAX_PATCH_BYTES:,} bytes a "
                                 "patch may have: too large to be one")
    if not headers:
        raise AskedError(f"{shown} is not a patch: it has no diff headers (--- and +++, or "
                         "diff --git)")
    return bytes(content), digest.hexdigest()


def _read_line(stream: IO[bytes], shown: str) -> bytes:
    try:
        return stream.readline(1 << 16)
    except OSError as exc:
        raise AskedError(f"cannot read patch {shown}: {exc.strerror}") from None


def sha256_stream(stream: IO[bytes]) -> str:
    return hashlib.file_digest(stream, "sha256").hexdigest()


def sha256_file(path: Path) -> str:
    with open(path, "rb") as stream:
        return sha256_stream(stream)


def cache_root(option: str | None, variable: str, default: Path) -> Path:
    """Absolute, links not resolved: open_entry() walks it and decides which to follow."""
    return Path(os.path.abspath(option or os.environ.get(variable) or default))


def open_entry(root: Path, key: str, create: bool) -> SafeDir:
    """The cache entry `key`, checked as faultbench checks a results directory: as root, no
    link another user made or could replace on the way, and no directory on it another
    user can change (root builds in it, and boots what it finds there)."""
    try:
        return SafeDir.open(root / key, create=create)
    except ResultsError as exc:
        raise _refused(root, key, exc) from None


def _refused(root: Path, key: str, exc: ResultsError) -> BuildError:
    if isinstance(exc, ForeignOwnerError):
        return _foreign(root / key, exc.who)
    return BuildError(f"cache {root}: {exc}")


def _foreign(entry: Path, who: str, name: str | None = None) -> BuildError:
    """The entry, or its file `name`, is another user's to change. Not "make it root's", as
    for a results directory: its image would then be trusted as root's own build."""
    what, it = (f"cache entry {entry}", "it") if name is None else (entry / name, "the entry")
    return BuildError(f"{what} is {who}: root neither builds in nor boots from an entry "
                      "another user can change (its image could be theirs); remove "
                      f"{it} (rm -rf {entry}) and build again")


def _check_file(entry: SafeDir, name: str, stream: IO[bytes] | None) -> None:
    """As root, refuse the entry's open file `name` another user can change, as open_entry
    refuses the entry: root's entry may hold one (a `cp -a` of their build, a chmod)."""
    who = stream and who_can_change(os.fstat(stream.fileno()), where=stream.fileno())
    if who:
        raise _foreign(entry.path, who, name)


def _open_lock(entry: SafeDir, create: bool = True) -> int | None:
    """The entry's .lock, never truncated or reached through a link (None: there is none
    and `create` is off)."""
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    try:
        return os.open(".lock", flags, 0o600, dir_fd=entry.fd)
    except OSError as exc:
        if exc.errno == errno.ENOENT and not create:
            return None
        why = "a symbolic link" if exc.errno == errno.ELOOP else exc.strerror
        raise BuildError(f"cannot open {entry.path / '.lock'}: {why}; remove it") from None


def check_entry(root: Path, key: str) -> None:
    """What locked_entry() would refuse, refused in its words, with nothing made or locked
    (`kernels/build --check-only`)."""
    try:
        if SafeDir.would_create(root / key):
            return  # every directory on the way passed the checks made before a mkdir
    except ResultsError as exc:
        raise _refused(root, key, exc) from None
    with open_entry(root, key, create=False) as entry:  # checked as create=True checks it
        fd = _open_lock(entry, create=False)
        if fd is not None:
            os.close(fd)


@contextlib.contextmanager
def locked_entry(root: Path, key: str) -> Iterator[SafeDir]:
    """The entry, made if missing, for this process only: a second build of the same
    inputs waits for the first (flock on its .lock)."""
    with open_entry(root, key, create=True) as entry:
        fd = _open_lock(entry)
        assert fd is not None  # created if missing
        with os.fdopen(fd) as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print(f"kernels/build: another build of the same inputs holds {entry.path}; "
                      "waiting", file=sys.stderr, flush=True)
                fcntl.flock(lock, fcntl.LOCK_EX)
            yield entry


def cached_image(entry: SafeDir) -> Path | None:
    """The entry's bzImage, if it has one whose sha256 is the one its meta.json records;
    BuildError for one that is not (someone else's, or changed since it was built), or
    when another user can change either file."""
    if not entry.is_file("bzImage"):
        return None
    image = entry.path / "bzImage"
    try:
        record = entry.open_reading("meta.json", META_MAX_BYTES)
        with record or contextlib.nullcontext():
            _check_file(entry, "meta.json", record)
            meta = json.loads(record.read(META_MAX_BYTES + 1) if record else b"null")
        with os.fdopen(os.open("bzImage", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                               dir_fd=entry.fd), "rb") as stream:
            _check_file(entry, "bzImage", stream)  # before root reads it
            actual = sha256_stream(stream)
    except (ResultsError, OSError, ValueError):
        meta, actual = None, None
    if not isinstance(meta, dict) or meta.get("image_sha256") != actual or actual is None:
        raise BuildError(f"the cached image {image} is not the one its meta.json records (no "
                         "valid record, or another sha256): it was not built here, or was "
                         f"changed since; remove {entry.path} to build it again")
    return image


def write_meta(entry: SafeDir, metadata: dict[str, object]) -> None:
    try:
        entry.replace("meta.json", json.dumps(metadata, indent=2) + "\n")
    except ResultsError as exc:
        raise BuildError(str(exc)) from None
