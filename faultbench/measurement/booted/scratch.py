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
# virtme-ng-init (1.42) always runs udev coldplug and systemd-tmpfiles, with no option to skip
# them, and they were a quarter of a TCG boot (docs/scale.md). It runs both through PATH,
# which it extends rather than replaces, and the kernel hands `PATH=` from its command line to
# init as environment: so the guest's init finds these stand-ins first. Coldplug is narrowed
# to the virtio-ports subsystem: udev's rule for it makes the /dev/virtio-ports/virtme.*
# links init needs for the command's stdout, stderr and exit status. Nothing else in a
# measurement guest needs udev: devtmpfs makes the device nodes, and the one module a guest
# needs that only udev would load (virtio_blk, for the scratch disks) the script loads. The
# udev daemon is told to exit once that has settled, so no udev process runs beside the
# measurement.
INIT_BIN = "init-bin"
_SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
_INIT_STAND_INS = {
    "udevadm": ("#!/bin/sh\n"
                "# faultbench: coldplug only virtio-ports, then stop the daemon\n"
                f"PATH={_SYSTEM_PATH}\n"
                "case \"$1\" in\n"
                "trigger) exec udevadm \"$@\" --subsystem-match=virtio-ports ;;\n"
                "settle) udevadm \"$@\"; exec udevadm control --exit ;;\n"
                "esac\n"
                "exec udevadm \"$@\"\n"),
    "systemd-tmpfiles": "#!/bin/sh\n# faultbench: nothing in the guest needs tmpfiles.d\n",
}


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


def init_path(directory: str) -> str:
    """Write the stand-ins for the guest's init into `directory`; the `PATH=` kernel
    parameter that makes init find them ("" where a parameter cannot hold the path: init
    then runs udev as before)."""
    bin_dir = os.path.join(directory, INIT_BIN)
    if any(c.isspace() or c in "\"'" for c in bin_dir):
        return ""
    os.mkdir(bin_dir)
    for name, text in _INIT_STAND_INS.items():
        path = os.path.join(bin_dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o755)
    # the system's directories too: the initramfs's /init (busybox sh) runs with this PATH
    return f"PATH={bin_dir}:{_SYSTEM_PATH}"


def guest_script(argv: list[str], scratch: str, env: dict[str, str], disk: bool,
            xfs: bool = False) -> str:
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))
    # udev would have loaded virtio_blk on seeing the disk; none runs (init_path)
    mount = (
        "modprobe -q virtio_blk 2>/dev/null\n"
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
    # not the host's knob journal path: the guest's knobs are its own, journaled in its own
    # /run (the host's filesystem is read-only there)
    env = {k: v for k, v in os.environ.items()
           if k in _PASSED_ENV or (k.startswith("FAULTBENCH_") and k != "FAULTBENCH_JOURNAL")}
    env["PATH"] = f"{venv_bin()}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env
