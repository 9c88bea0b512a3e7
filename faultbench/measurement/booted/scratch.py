"""The guest's side of a boot: the scratch disks it mounts (ext4 on /var/tmp, XFS below it),
the environment its command sees, and the script that runs the command and leaves its
status. Standard library only."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys

STARTED, STATUS = "started", "status"  # what the guest's script writes in its scratch dir
# The guest's root is the host's, read-only over 9p, and its /var/tmp a tmpfs: without a disk
# of its own the `file` backing would have no disk filesystem to measure. A sparse ext4 image
# (virtio-blk) is mounted on /var/tmp, the `file` backing's default directory.
SCRATCH_DISK_BYTES = 2 << 30
SCRATCH_MOUNT = "/var/tmp"
# A second, XFS image (large page-cache folios since 5.18) is mounted below it: `--dir
# /var/tmp/xfs` measures a file on XFS in the guest.
XFS_SCRATCH_MOUNT = "/var/tmp/xfs"
_PASSED_ENV = ("HOME", "LANG", "LC_ALL", "TERM", "PYTHONPATH", "VIRTUAL_ENV")


def venv_bin() -> str:
    """The bin directory of the running Python (the venv's, where pip put vng)."""
    return os.path.dirname(sys.executable)


def scratch_disk(directory: str, fstype: str = "ext4") -> str | None:
    """A sparse image of `fstype` (ext4, xfs) in `directory` for the guest, or None without
    its mkfs."""
    name = f"mkfs.{fstype}"
    mkfs = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if mkfs is None:
        return None
    image = os.path.join(directory, f"scratch-{fstype}.img")
    with open(image, "wb") as f:
        f.truncate(SCRATCH_DISK_BYTES)
    force = "-F" if fstype == "ext4" else "-f"
    try:
        done = subprocess.run([mkfs, "-q", force, image], capture_output=True, check=False)
    except OSError:  # found but not executable: as if absent
        return None
    return image if done.returncode == 0 else None


def guest_script(argv: list[str], scratch: str, env: dict[str, str], disk: bool,
            xfs: bool = False) -> str:
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))
    mount = (
        "for dev in /dev/vd? /dev/sd?; do "
        f"mount -t ext4 \"$dev\" {SCRATCH_MOUNT} 2>/dev/null && break; done\n"
    ) if disk else ""
    if disk and xfs:
        mount += (f"mkdir -p {XFS_SCRATCH_MOUNT} && for dev in /dev/vd? /dev/sd?; do "
                  f"mount -t xfs \"$dev\" {XFS_SCRATCH_MOUNT} 2>/dev/null && break; done\n")
    return (
        "#!/bin/sh\n"
        f": > {shlex.quote(os.path.join(scratch, STARTED))}\n"
        f"{mount}"
        f"{exports}"
        f"cd {shlex.quote(os.getcwd())} 2>/dev/null || cd /\n"
        f"{shlex.join(argv)}\n"
        f"echo $? > {shlex.quote(os.path.join(scratch, STATUS))}\n"
    )


def guest_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment the command sees in the guest (the guest resets PATH otherwise)."""
    env = {k: v for k, v in os.environ.items()
           if k in _PASSED_ENV or k.startswith("FAULTBENCH_")}
    env["PATH"] = f"{venv_bin()}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env
