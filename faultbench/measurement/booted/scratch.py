"""The guest's side of a boot: the scratch disks it mounts (ext4 on /var/tmp, XFS below it),
the environment its command sees, and the script that runs the command and leaves its
status, and, once it has ended, that status and the removal of what it left. Standard
library only."""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import sys
from collections.abc import Collection, Iterable

from faultbench.errors import printable
from faultbench.measurement.booted.held import remove_held
from faultbench.measurement.rundir.tempfiles import create_exclusive

STARTED, STATUS = "started", "status"  # what the guest's script writes in its scratch dir
GUEST_SHARE = "shared"  # the guest's scratch directory, in its boot's private one
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
# What the script mounts, in this order (XFS's below ext4's), once init has mounted the
# directories the host shares (init's own mounts, /tmp's overlay among them, come first and
# hide none of them): a disk's mount point and filesystem.
SCRATCH_DISKS = ((SCRATCH_MOUNT, "ext4"), (XFS_SCRATCH_MOUNT, "xfs"))
GUEST_MOUNTS = tuple(point for point, _ in SCRATCH_DISKS)
SCRATCH_FILESYSTEMS = tuple(fs for _, fs in SCRATCH_DISKS)
_PASSED_ENV = ("HOME", "LANG", "LC_ALL", "TERM", "PYTHONPATH", "VIRTUAL_ENV")
# virtme-ng-init (1.42) always runs udev coldplug and systemd-tmpfiles, with no option to skip
# them, and they were a quarter of a TCG boot (docs/scale.md). It runs both through PATH,
# which it extends rather than replaces, and the kernel hands `PATH=` from its command line to
# init as environment: so the guest's init finds these stand-ins first. Coldplug becomes
# the /dev/virtio-ports/virtme.* links init needs for the command's stdout, stderr and exit
# status, made as udev's rule for virtio-ports would (a port not named yet: that subsystem's
# coldplug), 1 s of a TCG boot less than udev's trigger and settle. Nothing else in a
# measurement guest needs udev: devtmpfs makes the device nodes, and the one module a guest
# needs that only udev would load (virtio_blk, for the scratch disks) the script loads. The
# udev daemon is told to exit, so no udev process runs beside the measurement. The root, the
# host's over 9p with no cache, reads no ahead (v9fs sets none): every page of every program
# and library a guest starts came in a 9p request of its own (1,041 for `python -S -c pass`)
# until tmpfiles' stand-in set the root's read-ahead; the only 9p mount by then.
INIT_BIN = "init-bin"
_SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
_INIT_STAND_INS = {
    "udevadm": ("#!/bin/sh\n"
                "# faultbench: make udev's virtio-ports links, then stop the daemon\n"
                f"PATH={_SYSTEM_PATH}\n"
                "case \"$1\" in\n"
                "trigger)  # called twice, for subsystems and for devices\n"
                "  [ -d /dev/virtio-ports ] && exit 0\n"
                "  mkdir /dev/virtio-ports\n"
                "  for port in /sys/class/virtio-ports/vport*; do\n"
                "    read -r name < \"$port/name\" && [ -n \"$name\" ] &&\n"
                "      ln -sfn \"../${port##*/}\" \"/dev/virtio-ports/$name\" ||\n"
                "      { udevadm trigger --action=add --subsystem-match=virtio-ports\n"
                "        exec udevadm settle; }\n"
                "  done\n"
                "  exit 0 ;;\n"
                "settle) exec udevadm control --exit ;;\n"
                "esac\n"
                "exec udevadm \"$@\"\n"),
    "systemd-tmpfiles": ("#!/bin/sh\n# faultbench: nothing in the guest needs tmpfiles.d;\n"
                         "# the root (9p) reads ahead\n"
                         "for ra in /sys/class/bdi/9p-*/read_ahead_kb; do\n"
                         "  echo 512 > \"$ra\" 2>/dev/null\n"
                         "done\n"),
}


def hidden_in_guest(path: str) -> str | None:
    """The mount point in GUEST_MOUNTS at or above the host directory `path` (as named, or
    resolved), or None: shared with the guest at its own path, it would be hidden there
    by the disk mounted over it, and nothing the guest writes in it would reach the host."""
    named, real = os.path.abspath(path), os.path.realpath(path)
    return next((point for point in GUEST_MOUNTS for p in (named, real)
                 if os.path.commonpath([p, point]) == point), None)


def disks_for(directories: Iterable[str]) -> tuple[str, ...]:
    """The scratch disks (SCRATCH_FILESYSTEMS) a guest needs to create files in
    `directories` (its scenarios' backing directories, "" for none): ext4 for one under
    /var/tmp, XFS for one under /var/tmp/xfs. A guest creating none there gets none: making
    and mounting both took 4-5 s of a 30 s TCG boot, and moved no instruction count
    (docs/scale.md)."""
    wanted = set()
    for directory in filter(None, directories):
        # as named (relative: to the cwd the guest's script starts in) and resolved: the
        # guest sees the host's links, so a link to /var/tmp leads to its scratch mount too
        for path in {os.path.abspath(directory), os.path.realpath(directory)}:
            holding = [fs for point, fs in SCRATCH_DISKS
                       if os.path.commonpath([path, point]) == point]
            wanted.update(holding[-1:])  # the deepest mount holding it: XFS's below ext4's
    return tuple(fs for fs in SCRATCH_FILESYSTEMS if fs in wanted)


def venv_bin() -> str:
    """The bin directory of the running Python (the venv's, where pip put vng)."""
    return os.path.dirname(sys.executable)


def fill(scratch: str, argv: list[str], env: dict[str, str] | None,
         filesystems: Collection[str] = SCRATCH_FILESYSTEMS) -> tuple[list[str], str, str]:
    """Write a boot's files into its new scratch directory `scratch`: (its disk images, one
    per filesystem of `filesystems` (disks_for), the path of the script the guest runs,
    init_path's parameter). Each is created new (O_EXCL, never through a link) in the
    directory opened once, so nothing planted there is written, formatted or run. An
    OSError (a full $TMPDIR, a failed mkfs) leaves what was made for the caller to remove
    with the directory."""
    fd = os.open(scratch, _DIR_FLAGS)
    try:
        disks = {fs: scratch_disk(fd, scratch, fs) for fs in SCRATCH_FILESYSTEMS
                 if fs in filesystems}
        made = [fs for fs, image in disks.items() if image]
        with os.fdopen(create_exclusive(fd, SCRIPT), "w") as f:
            f.write(guest_script(argv, scratch, guest_env(env), made))
        return [disks[fs] for fs in made], os.path.join(scratch, SCRIPT), init_path(
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


def guest_script(argv: list[str], scratch: str, env: dict[str, str],
                 filesystems: Collection[str]) -> str:
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))
    # udev would have loaded virtio_blk on seeing a disk; none runs (init_path)
    mount = "modprobe -q virtio_blk 2>/dev/null\n" if filesystems else ""
    for point, fs in SCRATCH_DISKS:
        if fs in filesystems:  # each disk is tried as each filesystem: QEMU names them vda..
            mount += (f"mkdir -p {point} && for dev in /dev/vd? /dev/sd?; do "
                      f"mount -t {fs} \"$dev\" {point} 2>/dev/null && break; done\n")
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


def guest_status(scratch: str) -> int | None:
    """The exit status the guest's script left in `scratch`, or None. The guest wrote the
    file: never read through a link (its stdin, /dev/zero), nor more than a status."""
    try:
        fd = os.open(os.path.join(scratch, STATUS),
                     os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        text = os.read(fd, 16) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
    finally:
        os.close(fd)
    try:
        status = int(text)
    except ValueError:
        return None
    return status if 0 <= status <= 255 else None


def remove_private(private: str) -> None:
    """A boot's private directory (its guest's scratch directory in it) removed, whatever
    the guest left there; what cannot be (an immutable file) is said in one line."""
    try:
        remove_held(private)
    except OSError as exc:
        print(printable(f"faultbench: the guest's scratch directory {private} was left: "
                        f"{exc.filename or private}: {exc.strerror}; remove it (rm -rf "
                        f"{private})"),
              file=sys.stderr)
