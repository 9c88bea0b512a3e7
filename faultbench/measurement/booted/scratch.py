"""The guest's side of a boot: the scratch disks it mounts (ext4 on /var/tmp, XFS below it),
the environment its command sees, and the script that runs the command and leaves its
status. Standard library only."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys

from faultbench.measurement.rundir.tempfiles import create_exclusive

STARTED, STATUS = "started", "status"  # what the guest's script writes in its scratch dir
SCRIPT = "run.sh"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# The guest's root is the host's, read-only over 9p, and its /var/tmp a tmpfs: without a disk
# of its own the `file` backing would have no disk filesystem to measure. A sparse ext4 image
# (virtio-blk) is mounted on /var/tmp, the `file` backing's default directory.
SCRATCH_DISK_BYTES = 2 << 30
# What a boot's two images take in $TMPDIR: mkfs writes up to about 65 MB of each (ext4's
# journal, XFS's log; e2fsprogs 1.47, xfsprogs 6.1), and they grow as the guest writes to them
SCRATCH_NEEDS = "up to 140 MB there to start, more as the guest writes to them (2 GiB each at most)"
SCRATCH_MOUNT = "/var/tmp"
# A second, XFS image (large page-cache folios since 5.18) is mounted below it: `--dir
# /var/tmp/xfs` measures a file on XFS in the guest.
XFS_SCRATCH_MOUNT = "/var/tmp/xfs"
# What the script mounts once init has mounted the directories the host shares (init's own
# mounts, /tmp's overlay among them, come first and hide none of them).
GUEST_MOUNTS = (SCRATCH_MOUNT, XFS_SCRATCH_MOUNT)
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


def hidden_in_guest(path: str) -> str | None:
    """The mount point in GUEST_MOUNTS at or above the host directory `path` (as named, or
    resolved), or None: shared with the guest at its own path, it would be hidden there
    by the disk mounted over it, and nothing the guest writes in it would reach the host."""
    named, real = os.path.abspath(path), os.path.realpath(path)
    return next((point for point in GUEST_MOUNTS for p in (named, real)
                 if os.path.commonpath([p, point]) == point), None)


def venv_bin() -> str:
    """The bin directory of the running Python (the venv's, where pip put vng)."""
    return os.path.dirname(sys.executable)


def fill(scratch: str, argv: list[str], env: dict[str, str] | None) -> tuple[
        list[str], str, str]:
    """Write a boot's files into its new scratch directory `scratch`: (its disk images, the
    path of the script the guest runs, init_path's parameter). Each is created new (O_EXCL,
    never through a link) in the directory opened once, so nothing planted there is written,
    formatted or run. An OSError (a full $TMPDIR, a failed mkfs) leaves what was made for the
    caller to remove with the directory."""
    fd = os.open(scratch, _DIR_FLAGS)
    try:
        disk = scratch_disk(fd, scratch)
        xfs = scratch_disk(fd, scratch, "xfs") if disk else None
        with os.fdopen(create_exclusive(fd, SCRIPT), "w") as f:
            f.write(guest_script(argv, scratch, guest_env(env), disk is not None,
                                 xfs is not None))
        return [d for d in (disk, xfs) if d], os.path.join(scratch, SCRIPT), init_path(
            fd, scratch)
    finally:
        os.close(fd)


def scratch_disk(dir_fd: int, directory: str, fstype: str = "ext4") -> str | None:
    """A sparse image of `fstype` (ext4, xfs) made in `directory` (open at `dir_fd`) for the
    guest, or None without its mkfs. OSError when it cannot be made: a mkfs that fails (on a
    full disk) would otherwise leave the guest a filesystem other than the one asked for."""
    name = f"mkfs.{fstype}"
    mkfs = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if mkfs is None:
        return None
    image = f"scratch-{fstype}.img"
    fd = create_exclusive(dir_fd, image, 0o600)
    try:
        os.ftruncate(fd, SCRATCH_DISK_BYTES)
        try:
            # mkfs formats the file just created, through its descriptor, never a name
            done = subprocess.run([mkfs, "-q", "-F" if fstype == "ext4" else "-f",
                                   f"/dev/fd/{fd}"], capture_output=True, check=False,
                                  pass_fds=(fd,))
        except OSError:  # found but not executable: as if absent
            return None
    finally:
        os.close(fd)
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        raise OSError(f"{name} failed ({said[-1] if said else 'it said nothing'})")
    return os.path.join(directory, image)


def init_path(dir_fd: int, directory: str) -> str:
    """Write the stand-ins for the guest's init into `directory` (open at `dir_fd`); the
    `PATH=` kernel parameter that makes init find them ("" where a parameter cannot hold the
    path: init then runs udev as before)."""
    bin_dir = os.path.join(directory, INIT_BIN)
    if any(c.isspace() or c in "\"'" for c in bin_dir):
        return ""
    os.mkdir(INIT_BIN, dir_fd=dir_fd)
    bin_fd = os.open(INIT_BIN, _DIR_FLAGS, dir_fd=dir_fd)
    try:
        for name, text in _INIT_STAND_INS.items():
            with os.fdopen(create_exclusive(bin_fd, name), "w") as f:
                f.write(text)
                os.fchmod(f.fileno(), 0o755)
    finally:
        os.close(bin_fd)
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
