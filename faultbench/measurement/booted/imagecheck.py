"""What the host checks of the kernel image and paths it hands to virtme-ng, and of the kernel
the guest then ran. Standard library only.

A run's identity is its kernels' sha256 (meta.json `kernels`): every boot boots a private
copy of the image taken when the boot starts and checked against that hash, never the path
the user named (a `make` in the build tree would otherwise slip another kernel into a run
under the first one's name), and the guest's own `uname -r`/`-v` is checked against it after.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import string
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from faultbench.errors import printable
from faultbench.measurement.booted import pvh
from faultbench.measurement.booted.held import make_held, remove_held
from faultbench.measurement.booted.scratch import hidden_in_guest
from faultbench.measurement.image import NOT_A_KERNEL, header_version
from faultbench.measurement.rundir.identity import runs_version
from faultbench.measurement.rundir.regular import open_regular
from faultbench.measurement.rundir.safefile import ResultsError, SafeDir
from faultbench.measurement.spec import clipped
from faultbench.measurement.trust import distrust

# virtme-run takes only these in --rwdir/--rodir (virtme/commands/run.py, _SAFE_PATH_PATTERN
# "[a-zA-Z0-9_+ /.-]"; "=" would split GUEST=HOST), and vng pastes those paths and --run's
# image unquoted into one `sh -c` line (virtme_ng/run.py, check_call(cmd, shell=True)), where
# a space splits a path in two and `;` or `$(...)` would run as root: no space either.
VNG_PATH_CHARS = frozenset(string.ascii_letters + string.digits + "_+/.-")
VNG_RULE = "virtme-ng takes only ASCII letters, digits and _ + / . - in the paths it shares"
IMAGE_COPY = "kernel-image"  # in the boot's own directory, boots/<index>.d
IMAGE_MAX = 512 << 20  # a bzImage is ~10 MB; far over it is no kernel image


def vng_refuses(path: str) -> str | None:
    """The first character of `path` virtme-ng cannot pass on, as shown to the user, or
    None."""
    for char in path:
        if char not in VNG_PATH_CHARS:
            shown = repr(char) if char.isprintable() else ""
            return f"{shown} (U+{ord(char):04X})".lstrip()
    return None


# What a boot writes in $TMPDIR before its scratch disks (scratch.SCRATCH_NEEDS): 64 MB at
# most in a `measure --kernel` of Debian's 6.1 (its unpacked image is most of it)
TMPDIR_NEEDS = 128 << 20
TMPDIR_INODES = 256  # a boot makes a few dozen files there


def tmpdir_refusal() -> str | None:
    """Why a boot may not make its scratch directory in the directory tempfile uses
    ($TMPDIR, else /tmp), or None. The host writes the guest's disk images and the script
    the guest runs as root there, by name: as root, a directory another user can change, or
    one under such a directory, would let them swap in their own script or a link to a file
    of root's for mkfs to format. A sticky one (/tmp) is fine: no one else may rename root's
    directory there. The guest sees the scratch directory at its host path: never one its
    own scratch disk would hide (hidden_in_guest)."""
    tmp = tempfile.gettempdir()
    if char := vng_refuses(tmp):
        return f"TMPDIR {printable(tmp)} has {char}: {VNG_RULE}; set another TMPDIR"
    if point := hidden_in_guest(tmp):
        return (f"TMPDIR {tmp} is at or under {point}, where the guest mounts its scratch disk "
                "over the boot's scratch directory, so no boot could leave its status there: "
                f"unset TMPDIR, or point it at a directory outside {point}")
    try:
        SafeDir.open(Path(tmp), sticky_ok=True, advice="unset TMPDIR, or point it at a "
                     "directory only root can change").close()
    except ResultsError as exc:
        return printable(f"TMPDIR, where a boot's scratch disks and script go: {exc}")
    try:
        st = os.statvfs(tmp)
    except OSError:
        return None  # said where a boot writes there
    free = st.f_bavail * st.f_frsize
    # else virtme-ng fails in a traceback, and the boot looked like the kernel's failure;
    # f_files 0: a filesystem that counts no inodes
    if free < TMPDIR_NEEDS or (st.f_files and st.f_favail < TMPDIR_INODES):
        return printable(f"TMPDIR {tmp} has {free / 2**20:.1f} MiB and {st.f_favail:,} "
                         f"inodes free: a boot needs {TMPDIR_NEEDS >> 20} MiB and "
                         f"{TMPDIR_INODES} inodes there (virtme-ng's initramfs, the guest's "
                         "scratch, `measure --kernel`'s copy of the image): free some, or "
                         "point TMPDIR at a filesystem with room")
    return None


def program_refusal(name: str, found: str) -> str | None:
    """As root, why a program a boot runs as root (QEMU, busybox), found on PATH at `found`,
    is one another user could swap for their own (trust.distrust: a link in a directory of
    root's to a file of theirs too), or None."""
    if why := distrust(found):
        return printable(f"{name}, which a boot runs as root: {why}; put root's own first "
                         "on PATH")
    return None


def distrust_advice(why: str) -> str:
    return (f"{why}: root boots no image another user can change (the guest reads this "
            "machine's files as root and writes the results directory); copy it where only "
            "root can write (install -m 0644 IMAGE /root/kernels/) and name the copy")


def image_refusal(image: str, fd: int) -> str | None:
    """Why the image open at `fd` (`image`: its resolved path) is not to be read, or None.
    Decided on the descriptor before a byte of it is read or hashed: a sparse file of a
    terabyte, planted by another user or not, would keep root hashing zeros for half an
    hour. Someone other than root can change it (distrust_advice), or it is over IMAGE_MAX,
    which no boot could copy (pinned_copy) and no resume could then finish."""
    st = os.fstat(fd)
    if why := distrust(image, st):
        return distrust_advice(why)
    if st.st_size > IMAGE_MAX:
        return (f"{image} is {st.st_size:,} bytes, over the {IMAGE_MAX:,} a kernel image may "
                "have (a bzImage is about 10 MB): too large to be one")
    return None


def boot_refusal(kernel: str) -> str | None:
    """Why `kernel` is no image QEMU could boot (refused as image_refusal refuses one, not a
    regular file, no kernel), or None. Who may change it is asked before a byte of it is
    read: its directories are then root's, and no one can swap another file in under its
    name. It is then opened once, by its resolved path, never through a link and never
    blocking: a FIFO another user swapped in would hang root's open for ever, a link to a
    device would have root open the device."""
    real = os.path.realpath(kernel)
    try:
        if why := distrust(real):
            return distrust_advice(why)
        with os.fdopen(open_regular(real, follow=False), "rb") as fh:
            if header_version(fh) is not None or pvh.is_unpacked(fh):
                return None
    except OSError as exc:
        return printable(f"kernel image {kernel}: {exc.strerror}")
    return f"{kernel} {NOT_A_KERNEL}"


def read_image(image: str) -> tuple[str | None, bytes | None]:
    """The image at the resolved path `image` read once, as untrusted input: never through a
    link, never a FIFO, refused as image_refusal refuses it. (None, its bytes), (None, None)
    when it is gone, or (why not, None)."""
    try:
        with SafeDir.reading(Path(image).parent) as directory:
            fh = directory.open_reading(Path(image).name)
            if fh is None:
                return None, None
            with fh:
                if why := image_refusal(image, fh.fileno()):
                    return why, None
                return None, fh.read(IMAGE_MAX + 1)  # grown since: a run's sha256 tells
    except ResultsError as exc:
        return str(exc), None
    except OSError as exc:
        return f"cannot read {image}: {exc.strerror}", None


def boot_copy(image: str, data: bytes, into: SafeDir) -> tuple[str, str]:
    """(the path of the copy of `image`, its bytes `data`, written to `into`, how QEMU is to
    start it): the kernel unpacked for a PVH start when the image allows one (pvh.py), else
    the image itself. Root's alone (0600): Debian installs its images so, and QEMU runs as
    root. ResultsError when it cannot be written, or when the image's compressed kernel is
    damaged (pvh.Damaged)."""
    with into.replacing(IMAGE_COPY, binary=True, mode=0o600) as fh:
        try:
            entry = pvh.PVH if pvh.unpack(data, fh) else pvh.BZIMAGE
        except pvh.Damaged as exc:
            raise ResultsError(f"{image}: its compressed kernel is damaged ({exc}), so it "
                               "was not booted") from None
        if entry == pvh.BZIMAGE:
            fh.seek(0)
            fh.truncate()
            fh.write(data)
    return os.path.abspath(into.path / IMAGE_COPY), entry


def pinned_copy(image: str, sha256: str, into: SafeDir,
                resume: str) -> tuple[str | None, str, str | None]:
    """(None, the path of a private copy of `image` in `into`, how QEMU is to start it:
    boot_copy, and its ResultsError) when `image` still has the run's `sha256`, else (why
    not, "", None): the boot is refused, not run. `resume`: the command that resumes the
    run."""
    why, data = read_image(image)
    if data is None:
        return why or (f"{image} is gone since the run started: put it back and resume "
                       f"({resume})"), "", None
    now = hashlib.sha256(data).hexdigest()
    if now != sha256:
        return changed(image, sha256, now) + (
            f": this boot was not run; put back the image the run started with and resume "
            f"({resume}), or start a new run for the new one"), "", None
    return None, *boot_copy(image, data, into)


@contextlib.contextmanager
def private_copy(image: str) -> Iterator[tuple[str, str]]:
    """boot_copy of the image at the resolved path `image` (read_image; ResultsError saying
    why not), in a directory of $TMPDIR that only root can read, removed on the way out.
    For `measure --kernel`, which boots an image once: QEMU opens what it boots by name,
    seconds after the image was checked, when a link to it may lead to another file."""
    why, data = read_image(image)
    if data is None:
        raise ResultsError(why or f"{image}: no such file")
    made, held = make_held("faultbench-kernel-")
    try:
        # its parents checked: another user who could rename it could swap the copy
        with SafeDir.open(Path(made), advice="set TMPDIR to a directory only root can "
                                             "change") as into:
            yield boot_copy(image, data, into)
    finally:
        with contextlib.suppress(OSError):
            remove_held(made)
        os.close(held)


def changed(image: str, was: str, now: str) -> str:
    return f"{image} changed since the run started (sha256 {was[:12]}, now {now[:12]})"


def kernel_mismatch(kernel: dict[str, Any], guest: Any) -> str | None:
    """Why the kernel the guest reports (its boot record's `guest.kernel`) is not the run's
    `kernel`, or None: the release must be the image's, the version (`uname -v`) its
    (runs_version)."""
    ran = guest.get("kernel") if isinstance(guest, dict) else None
    ran = ran if isinstance(ran, dict) else {}
    release, version = ran.get("release"), ran.get("version")
    if release == kernel.get("release") and isinstance(version, str) and version and \
            runs_version(kernel, version):
        return None
    # both come from the guest: escaped and cut, as printed and as meta.json's reason
    return (f"the guest ran kernel {printable(clipped(str(release), 80))} "
            f"({printable(clipped(str(version), 120))}), not the run's {kernel['label']} "
            f"({kernel.get('version')}): its samples were not added")
