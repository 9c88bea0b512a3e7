"""What root may trust: a path no other user can change, and an environment cut down to what
its programs need. Standard library only.

`sudo -E` keeps a user's environment, and what faultbench runs as root reads configuration
there, some of it code: virtme-ng's `default_opts` (an `exec`), git's `core.fsmonitor` (run
by `git status` for the provenance), matplotlib's `matplotlibrc` and the font cache it
writes, through links, QEMU's modules (`QEMU_MODULE_DIR`), mke2fs's and libmount's files,
every program on PATH. As root, faultbench keeps only the variables it and its programs need
(KEPT), replaces a HOME another user can change by root's own (as `sudo -H` would) and leaves
such directories out of PATH, saying so in one line (cli.py); and it refuses to go on when
Python has read such a place as it started.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
from pathlib import Path

from faultbench.errors import FaultbenchError

# As root, what of its environment faultbench keeps (the rest is dropped): its own
# variables, the locale and terminal, and what Python and its programs need to find their
# files. Every other variable some program it runs reads is an input no one vetted: under
# `sudo -E` a user's HOME, XDG_* and MPLCONFIGDIR (configuration and caches written through
# links), QEMU_MODULE_DIR (code), GIT_* (git's configuration, a core.fsmonitor program),
# MKE2FS_CONFIG (the guest's scratch disk's layout), LIBMOUNT_UTAB (a file mount creates),
# MAGIC (the database virtme-ng's `file` reads).
KEPT = frozenset(("PATH", "HOME", "TMPDIR", "LANG", "LANGUAGE", "TERM", "TZ", "USER",
                  "LOGNAME", "SHELL", "COLUMNS", "LINES", "NO_COLOR", "VIRTUAL_ENV",
                  "PYTHONPATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE",
                  "PYTHONIOENCODING", "PYTHONHASHSEED", "PYTHONFAULTHANDLER"))
KEPT_PREFIXES = ("FAULTBENCH_", "LC_", "SUDO_")
# Python's own, read when it starts, before any faultbench code: a place another user can
# change there may have run their code already, so a command is refused, not continued
PYTHON_STARTUP = ("PYTHONPATH", "PYTHONPYCACHEPREFIX", "PYTHONHOME", "PYTHONSTARTUP",
                  "PYTHONUSERBASE", "PYTHONPLATLIBDIR")
# where a booted guest runs faultbench as root: its environment is faultbench's own script's
GUEST_MARK = "faultbench.plane="


def owner_name(uid: int) -> str:
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def _others_can_write(st: os.stat_result, where: int | str | None) -> bool:
    """Write for others, or for a group other than root's; or for root's group where a
    POSIX ACL names users or groups (`where`: the file's descriptor or path): then the group
    bits are the ACL's mask, what it lets those entries have (`setfacl -m u:alice:rw`
    shows as `-rw-rw-r--+ root root`)."""
    if st.st_mode & stat.S_IWOTH:
        return True
    if not st.st_mode & stat.S_IWGRP:
        return False
    if st.st_gid != 0 or where is None:
        return st.st_gid != 0
    try:
        os.getxattr(where, "system.posix_acl_access")
    except OSError as exc:  # none (ENODATA), or a filesystem without ACLs
        return exc.errno not in (errno.ENODATA, errno.ENOTSUP)
    return True


def who_can_change(st: os.stat_result, sticky_ok: bool = False,
                   where: int | str | None = None) -> str | None:
    """As root, who other than root may change this file or directory ("owned by uid N
    (name)", "writable by other users"); None when no one (or not running as root).
    `where`, its descriptor or path, lets a POSIX ACL be read (_others_can_write)."""
    if os.geteuid() != 0:
        return None
    if st.st_uid != 0:
        return f"owned by {owner_name(st.st_uid)}"
    if _others_can_write(st, where) and not (sticky_ok and st.st_mode & stat.S_ISVTX):
        return "writable by other users"
    return None


def distrust(path: str, st: os.stat_result | None = None) -> str | None:
    """As root, who other than root could change what `path` names: it (`st`: its status
    from a descriptor, else stat'ed by name, links followed), or a directory above it or
    above where its links lead (a sticky one, /tmp, protects root's files); for a path not
    there yet, the first directory above it that is. None when no one, or not root."""
    here = Path(path)
    while st is None:
        try:
            st = os.stat(here)
        except (FileNotFoundError, NotADirectoryError):
            if here.parent == here:
                return None
            here = here.parent
    if who := who_can_change(st, where=str(here)):
        return f"{here} is {who}"
    for top in dict.fromkeys((here, Path(os.path.realpath(here)))):
        for parent in top.parents:
            if who := who_can_change(os.stat(parent), sticky_ok=True, where=str(parent)):
                return f"{path}: its directory {parent} is {who}"
    return None


class Untrusted(FaultbenchError):
    """Python read a place another user can change before faultbench started."""


def trusted_environment() -> list[str]:
    """As root on a machine of its own (not in a guest of faultbench's), this process's
    environment (so every program it starts) cut down to KEPT: HOME another user can change
    becomes root's own, as `sudo -H` gives; such PATH entries, and relative ones, are left
    out. What was changed, one phrase each ([] when nothing was, or not root). Untrusted
    when a PYTHON_STARTUP variable names such a place."""
    if os.geteuid() != 0 or _in_guest():
        return []
    for name in PYTHON_STARTUP:
        for entry in os.environ.get(name, "").split(":") if name == "PYTHONPATH" else \
                [os.environ.get(name, "")]:
            if entry and (why := _distrusted(entry)):
                raise Untrusted(f"{name} ({why}) was read by Python as it started, before "
                                "faultbench: it may have run code of another user's as root "
                                f"already; run without it (`sudo -E` keeps {name})")
    for name in list(os.environ):
        if name not in KEPT and not name.startswith(KEPT_PREFIXES):
            del os.environ[name]
    changed = []
    home = os.environ.get("HOME")
    if home is not None and (why := _distrusted(home)):
        os.environ["HOME"] = pwd.getpwuid(0).pw_dir
        changed.append(f"HOME ({why}): {os.environ['HOME']} instead")
    entries = os.environ.get("PATH", "").split(":")
    left = [entry for entry in entries if _distrusted(entry)]
    if left and os.environ.get("PATH"):
        os.environ["PATH"] = ":".join(e for e in entries if e not in left)
        changed.append(f"PATH entries {', '.join(e or repr(e) for e in left)}: left out")
    return changed


def _in_guest() -> bool:
    try:
        with open("/proc/cmdline") as cmdline:
            return GUEST_MARK in cmdline.read()
    except OSError:
        return False


def _distrusted(path: str) -> str | None:
    if not os.path.isabs(path):
        return f"{path or 'an empty path'} is relative"
    try:
        return distrust(path)
    except OSError as exc:  # a directory above it unreadable: nothing root can vouch for
        return f"{path}: {exc.strerror}"
