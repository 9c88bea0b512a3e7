"""The kernel's pseudo-filesystems: the mount table, mounting debugfs/securityfs for a while,
lockdown, CPU flags, and the `[selected]` choice files of /sys.

Standard library only: this runs inside emulated guests too.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faultbench.errors import FaultbenchError, limit_hint

DEBUGFS = "/sys/kernel/debug"
SECURITYFS = "/sys/kernel/security"
MOUNTINFO = "/proc/self/mountinfo"
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def read_text(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def bracket_choices(text: str) -> tuple[list[str], str | None]:
    """('always madvise [never]') -> (['always', 'madvise', 'never'], 'never')."""
    choices, selected = [], None
    for token in text.split():
        if token.startswith("[") and token.endswith("]"):
            token = token[1:-1]
            selected = token
        choices.append(token)
    return choices, selected


@dataclass(frozen=True)
class Mount:
    device: str  # major:minor
    mount_point: str
    fs_type: str
    source: str


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as \\ooo."""
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def mounts() -> list[Mount]:
    """This process's mount table (/proc/self/mountinfo); empty when it cannot be read."""
    try:
        lines = Path(MOUNTINFO).read_text().splitlines()
    except OSError:
        return []
    table = []
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 2:
            continue
        table.append(Mount(fields[2], _unescape(fields[4]), tail[0], _unescape(tail[1])))
    return table


def is_mounted(target: str, fstype: str) -> bool:
    return any(m.mount_point == target and m.fs_type == fstype for m in mounts())


def mount_of(path: str) -> Mount | None:
    """The mount holding `path` (the innermost one of its device)."""
    try:
        dev = os.stat(path).st_dev
    except OSError:
        return None
    real = os.path.realpath(path)
    want = f"{os.major(dev)}:{os.minor(dev)}"
    best: Mount | None = None
    for entry in mounts():
        point = entry.mount_point
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if entry.device == want and inside and (
            best is None or len(point) >= len(best.mount_point)
        ):
            best = entry
    return best


def kernel_has_fs(fstype: str) -> bool:
    try:
        return any(line.split()[-1] == fstype
                   for line in Path("/proc/filesystems").read_text().splitlines() if line)
    except OSError:
        return False


_CLONE_NEWNS = 0x00020000
_MS_REC, _MS_SLAVE = 0x4000, 0x80000
_namespace_users = 0
_original_namespace: int | None = None  # a descriptor of it, while we are in our own
_original_cwd: int | None = None  # the working directory there (setns resets it to /)


def _libc() -> tuple[types.ModuleType, Any]:
    import ctypes  # here: most processes never mount, and ctypes is slow to import in a guest

    return ctypes, ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def private_namespace() -> Iterator[None]:
    """This process (and the children it starts meanwhile) in a mount namespace of its own
    for the block: what it mounts no other process sees, so no other faultbench finds it
    "already mounted" or loses it when this one unmounts it. Slave propagation: where / is
    a shared mount the machine's later mounts and unmounts show here, and ours do not show
    there. Where / is private (containers, some hosts) nothing propagates: a filesystem
    unmounted outside during the block stays alive (its device busy, a loop device not
    freed) until the block ends and the process is back in the machine's namespace
    (docs/knobs.md). Nested blocks share one namespace. (Python 3.11 has no os.unshare.)"""
    global _namespace_users, _original_namespace, _original_cwd
    if _namespace_users == 0:
        ctypes, libc = _libc()
        original = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
        cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        if libc.unshare(_CLONE_NEWNS) != 0 or libc.mount(
                None, b"/", None, ctypes.c_ulong(_MS_REC | _MS_SLAVE), None) != 0:
            error = ctypes.get_errno()
            os.close(original)
            os.close(cwd)
            raise FaultbenchError(f"cannot make a private mount namespace: {os.strerror(error)}")
        _original_namespace, _original_cwd = original, cwd
    _namespace_users += 1
    try:
        yield
    finally:
        _namespace_users -= 1
        if _namespace_users == 0 and _original_namespace is not None:
            # the private namespace, and its copies of the machine's mounts, end here (should
            # setns fail, the process stays in it until it exits, as before round seven)
            _, libc = _libc()
            if libc.setns(_original_namespace, _CLONE_NEWNS) == 0 and _original_cwd is not None:
                os.fchdir(_original_cwd)  # relative paths (results/...) mean what they meant
            os.close(_original_namespace)
            if _original_cwd is not None:
                os.close(_original_cwd)
            _original_namespace = _original_cwd = None


class MountError(FaultbenchError):
    """Something could not be mounted here: not root, no `mount` to run, a kernel without
    the filesystem or the option asked for."""


def run_mount_tool(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """`mount` or `umount` run to completion; MountError when it cannot be started at all
    (not on PATH, not executable)."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise MountError(f"cannot run {argv[0]}: {exc.strerror}{limit_hint(exc)}") from None


def _mount(fstype: str, target: str) -> None:
    done = run_mount_tool(["mount", "-t", fstype, fstype, target])
    if done.returncode != 0:
        raise MountError(f"cannot mount {fstype} on {target}: {done.stderr.strip()}")


def umount(target: str, lazy: bool = False) -> bool:
    """Whether `umount` ran and succeeded. What it leaves mounted in our own namespace goes
    with this process; elsewhere the journal keeps it for `faultbench restore`."""
    try:
        done = run_mount_tool(["umount", *(["-l"] if lazy else []), target])
    except MountError:
        return False
    return done.returncode == 0


# the mount point of a tmpfs of faultbench's own (measurement/knobs/tmpfs.py), beside its journal
OWN_TMPFS_PREFIX = "faultbench-tmpfs-"


def release_own_tmpfs(target: object, journal: str) -> str | None:
    """Unmount and remove a journal's own tmpfs mount point: only a directory named so beside
    the journal (the journal is untrusted input), and only a tmpfs mounted there. What was
    done, None if nothing; MountError if the tmpfs stays mounted."""
    if not isinstance(target, str) or os.path.dirname(target) != os.path.dirname(
            os.path.abspath(journal)) or not os.path.basename(target).startswith(
            OWN_TMPFS_PREFIX):
        return None
    was_mounted = is_mounted(target, "tmpfs")
    if was_mounted and not umount(target):
        raise MountError(f"cannot unmount the tmpfs at {target}")
    try:
        # a directory another user made there (the run was killed before making its own)
        # is not ours to remove
        removed = os.lstat(target).st_uid == os.geteuid()
        if removed:
            os.rmdir(target)
    except OSError:
        removed = False
    if was_mounted:
        return f"tmpfs {target} unmounted" + (" and its mount point removed" if removed else "")
    return f"empty mount point {target} removed (nothing was mounted)" if removed else None


@contextlib.contextmanager
def mounted(fstype: str, target: str) -> Iterator[bool]:
    """`fstype` mounted at `target` for the block, in a mount namespace of this process's own
    (see private_namespace); unmounted there again if we mounted it.

    Yields whether it is mounted. Without root or kernel support it yields False.
    """
    if is_mounted(target, fstype):
        yield True
        return
    if os.geteuid() != 0 or not kernel_has_fs(fstype) or not os.path.isdir(target):
        yield False
        return
    with private_namespace():
        try:
            _mount(fstype, target)
        except FaultbenchError:
            if not is_mounted(target, fstype):
                raise
            # mounted since the check above by a process outside faultbench (the machine's
            # mounts still reach this namespace): theirs to unmount, not ours
            yield True
            return
        try:
            yield True
        finally:
            umount(target)


def lockdown() -> str | None:
    """'none', 'integrity' or 'confidentiality'; None when securityfs cannot tell."""
    path = f"{SECURITYFS}/lockdown"
    try:
        with mounted("securityfs", SECURITYFS):
            _, selected = bracket_choices(read_text(path))
    except (OSError, MountError):
        return None
    return selected


def cpuinfo_fields() -> dict[str, str]:
    """The first processor's /proc/cpuinfo fields."""
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return fields
    for line in text.split("\n\n", 1)[0].splitlines():
        name, _, value = line.partition(":")
        fields[name.strip()] = value.strip()
    return fields


def cpu_flags() -> set[str]:
    return set(cpuinfo_fields().get("flags", "").split())
