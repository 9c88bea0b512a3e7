"""What root may trust: a path no other user can change, and an environment cut down to such
paths. Standard library only.

`sudo -E` keeps a user's HOME, XDG directories and other variables, and what faultbench runs
as root reads its configuration there, some of it code: virtme-ng's `default_opts` (an
`exec`), git's `core.fsmonitor` (run by `git status` for the provenance), matplotlib's
`matplotlibrc` and the font cache it writes, through links, QEMU's modules
(`QEMU_MODULE_DIR`), every program on PATH, and Python's own (`PYTHONPYCACHEPREFIX`: the
bytecode of the Pythons faultbench starts). As root, faultbench replaces a HOME another
user can change by root's own (as `sudo -H` would), unsets the other such variables and
leaves such directories out of PATH, saying so in one line (cli.py).
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
import sys
from pathlib import Path

# variables naming where a program faultbench runs (or matplotlib, in this process) reads
# its configuration or code, or writes its cache
LOCATIONS = ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME",
             "MPLCONFIGDIR", "QEMU_MODULE_DIR", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM",
             "GIT_EXEC_PATH", "GIT_TEMPLATE_DIR", "GIT_DIR", "GIT_WORK_TREE",
             "PYTHONPYCACHEPREFIX", "PYTHONHOME", "PYTHONUSERBASE", "PYTHONSTARTUP")
# ... and lists of them: the programs and Python modules the processes it starts run (its
# worker, watchdog and guests are Pythons too; this one read its own at its start)
SEARCH_PATHS = ("PATH", "PYTHONPATH")


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


def trusted_environment() -> list[str]:
    """As root, HOME, PATH and the LOCATIONS without what another user can change, in this
    process's environment (so in every program it starts): HOME becomes root's own home,
    such PATH entries (and relative ones) are left out, the other variables unset. What was
    changed, one phrase each; [] when nothing was, or not root."""
    if os.geteuid() != 0:
        return []
    changed = []
    home = os.environ.get("HOME")
    if home is not None and (why := _distrusted(home)):
        os.environ["HOME"] = pwd.getpwuid(0).pw_dir
        changed.append(f"HOME ({why}): {os.environ['HOME']} instead")
    for name in LOCATIONS:
        value = os.environ.get(name)
        if value is not None and (why := _distrusted(value)):
            del os.environ[name]
            changed.append(f"{name} ({why}): unset")
    if "PYTHONPYCACHEPREFIX" not in os.environ:
        sys.pycache_prefix = None  # what this process imports from now on
    for name in SEARCH_PATHS:
        entries = os.environ.get(name, "").split(":")
        left = [entry for entry in entries if _distrusted(entry)]
        if left and os.environ.get(name):
            os.environ[name] = ":".join(e for e in entries if e not in left)
            changed.append(f"{name} entries {', '.join(e or repr(e) for e in left)}: left out")
    return changed


def _distrusted(path: str) -> str | None:
    if not os.path.isabs(path):
        return f"{path or 'an empty path'} is relative"
    try:
        return distrust(path)
    except OSError as exc:  # a directory above it unreadable: nothing root can vouch for
        return f"{path}: {exc.strerror}"
