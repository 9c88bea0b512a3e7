"""Run a command inside a booted kernel image (virtme-ng + QEMU) with the host's files.

The guest sees the host's root filesystem read-only over 9p, so the host's Python, venv and
checkout run unchanged inside it. KVM is used when it can boot a stock kernel (real VMX/SVM
and an openable /dev/kvm), TCG otherwise. Under TCG the guest's clock is, by default, QEMU's
instruction counter (`-icount shift=0,sleep=on`: one virtual nanosecond per guest
instruction), which makes emulated timings repeatable; `clock="wall"` keeps the host's clock.
The plane (`kvm-guest`, `tcg-icount`, `tcg-guest`) goes on the guest's kernel command line
as `faultbench.plane=...`, which every sample measured inside records. Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import shlex
import shutil
import sys
import tempfile
import threading
from collections.abc import Collection
from typing import TextIO

from faultbench.errors import limit_hint, not_a_file, printable
from faultbench.measurement.booted import watchdog
from faultbench.measurement.booted.checkout import write_bytecode
from faultbench.measurement.booted.held import make_held, remove_left
from faultbench.measurement.booted.imagecheck import (
    VNG_RULE,
    boot_refusal,
    program_refusal,
    tmpdir_refusal,
    vng_refuses,
)
from faultbench.measurement.booted.scratch import (
    GUEST_SHARE,
    SCRATCH_FILESYSTEMS,
    SCRATCH_NEEDS,
    STARTED,
    fill,
    guest_status,
    hidden_in_guest,
    remove_private,
    venv_bin,
)
from faultbench.measurement.booted.vngproc import (
    START_TIMEOUT_ENV,
    GuestError,
    run_streaming,
    start_watchdog,
    tell,
    timeout_from_env,
)
from faultbench.measurement.image import boot_images
from faultbench.measurement.knobs.sysfs import cpu_flags
from faultbench.measurement.spec import CLOCKS

# Drivers a measurement guest never needs; skipping them halves a TCG boot (~28 s -> ~14 s).
MODULE_BLACKLIST = ("kvm", "kvm_amd", "kvm_intel", "ahci", "libata", "scsi_mod", "cryptd",
                    "sr_mod", "cdrom", "floppy", "pcspkr", "psmouse", "serio_raw")
# Open files a boot needs: QEMU's virtio event fds fell short at a limit of 384, and the
# guest's worker, which inherits the limit, could not start at 450 (Debian 6.1,
# quick-guest; 512 was enough)
GUEST_FILES = 1024
FULL_BELOW = 1 << 20  # bytes free in $TMPDIR under which a failed boot names it full
# Randomization a guest can switch off, so that two runs of one image execute the same
# instructions (docs/icount.md, "Counts that repeat across runs"): KASLR, the per-syscall
# kernel stack offset, the page allocator's free-list shuffle, the worker's and mappers'
# address-space layout; slab_nomerge keeps each slab cache's objects apart from other
# caches' traffic. SLAB freelist randomization (CONFIG_SLAB_FREELIST_RANDOM) has no boot
# parameter in 6.1 (mm/slub.c seeds it unconditionally) and stays.
DETERMINISM_PARAMS = ("nokaslr", "randomize_kstack_offset=off", "page_alloc.shuffle=0",
                      "norandmaps", "slab_nomerge", "no5lvl")
# The instruction clock. shift=0: the virtual clock advances 1 ns per guest instruction;
# sleep=on: an idle guest's clock waits in real time (with sleep=off it jumps to the next
# timer, and in-guest timeouts over 9p waits fired in moments; docs/icount.md).
# Debian 6.1 hangs bringing up a second vCPU under it (docs/icount.md), so icount guests get one.
ICOUNT_QEMU_OPTS = "-icount shift=0,sleep=on"


def find_vng() -> str | None:
    candidate = os.path.join(venv_bin(), "vng")
    if os.access(candidate, os.X_OK):
        return candidate
    return shutil.which("vng")


def find_busybox() -> str | None:
    """The busybox virtme-ng would use (it looks for these names, in this order)."""
    return next(filter(None, map(shutil.which, ("busybox-static", "busybox.static", "busybox"))),
                None)


def qemu_binary() -> str:
    return f"qemu-system-{platform.machine()}"


def kvm_state() -> tuple[bool, str]:
    """Whether QEMU can use KVM for a stock kernel here, and why (not)."""
    if not os.path.exists("/dev/kvm"):
        return False, "no /dev/kvm (KVM module not loaded, or not exposed to this machine)"
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
    except OSError as exc:
        return False, f"cannot open /dev/kvm: {exc.strerror}"
    if not cpu_flags() & {"vmx", "svm"}:
        pvm = " it is PVM (kvm_pvm), which boots only PVM guest kernels;" if os.path.isdir(
            "/sys/module/kvm_pvm") else ""
        return False, (f"/dev/kvm opens but the CPU has no vmx/svm flag:{pvm} a stock kernel "
                       "needs hardware virtualization")
    return True, "vmx/svm present and /dev/kvm opens"


def requirements(kernel: str) -> list[str]:
    """What is missing to boot `kernel`, each with its install command."""
    missing = []
    why = not_a_file(kernel)
    if why is not None:
        images = boot_images()
        have = f"images here: {', '.join(images)}" if images else (
            "install one: apt-get install linux-image-amd64")
        what = "not found" if why == "no such file" else why
        missing.append(f"kernel image {kernel}: {what} ({have})")
    elif not os.access(kernel, os.R_OK):
        missing.append(f"kernel image {kernel} is not readable by uid {os.geteuid()} (Debian "
                       "installs images root-only: run as root, or pass a readable copy)")
    elif why := boot_refusal(kernel):
        missing.append(why)
    if not (qemu := shutil.which(qemu_binary())):
        missing.append(f"{qemu_binary()} not found: apt-get install qemu-system-x86")
    if not find_vng():
        missing.append("virtme-ng (vng) not found: pip install virtme-ng")
    if not (busybox := find_busybox()):
        missing.append("busybox not found (virtme-ng builds its initramfs with it): "
                       "apt-get install busybox-static")
    missing += filter(None, (program_refusal(name, found) for name, found in
                             ((qemu_binary(), qemu), ("busybox", busybox)) if found))
    if why := tmpdir_refusal():  # each boot shares a directory there with its guest
        missing.append(why)
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < GUEST_FILES:
        # else QEMU falls short of its virtio event fds and the guest ends: the kernel blamed
        missing.append(f"the limit on open files is {soft}: a boot needs {GUEST_FILES} "
                       "(QEMU, virtme-ng and the guest's worker, which inherits it): raise "
                       "`ulimit -n`")
    return missing


def plane_for(kvm: bool, clock: str = "wall") -> str:
    if kvm:
        return "kvm-guest"
    return "tcg-icount" if clock == "icount" else "tcg-guest"


def resolve_clock(requested: str | None) -> tuple[bool, str]:
    """(use KVM, clock) for a boot: KVM where it works keeps the wall clock (near-native
    timings); TCG defaults to the instruction clock, since its wall-clock timings vary ~60%
    from boot to boot. An explicit `icount` forces TCG even where KVM works."""
    if requested is not None and requested not in CLOCKS:
        raise GuestError(f"--clock {requested!r}: choose one of {', '.join(CLOCKS)}")
    kvm, _ = kvm_state()
    if requested == "icount":
        return False, "icount"
    if kvm:
        return True, "wall"
    return False, requested or "icount"


def check_shared_dir(path: str) -> None:
    """Refuse a host directory the guest could not write back: one whose absolute path (as
    _boot passes it) virtme-ng refuses or splits, or one the guest's scratch disk hides
    (hidden_in_guest)."""
    if char := vng_refuses(whole := os.path.abspath(path)):
        raise GuestError(f"{printable(whole)} has {char}: {VNG_RULE}, so no boot could write "
                         "there; choose another directory")
    if point := hidden_in_guest(path):
        raise GuestError(f"{path} is under {point}, where the guest mounts its scratch "
                         "disk: what it writes there would never reach the host; choose "
                         "another directory")


def check_image_path(image: str) -> None:
    if char := vng_refuses(image):
        raise GuestError(f"{printable(image)} has {char}: {VNG_RULE}; copy it")


def check_timeouts_from_env() -> None:
    """GuestError for a bad $FAULTBENCH_GUEST_TIMEOUT_S or $FAULTBENCH_GUEST_START_TIMEOUT_S,
    which every boot would otherwise fail on."""
    timeout_from_env()
    timeout_from_env(START_TIMEOUT_ENV)


def run_in_guest(
    kernel: str,
    argv: list[str],
    rwdir: str | None = None,
    timeout_s: float | None = None,
    memory: str = "1G",
    cpus: int = 1,
    env: dict[str, str] | None = None,
    clock: str | None = None,
    cancel: threading.Event | None = None,
    private: str | None = None,
    filesystems: Collection[str] = SCRATCH_FILESYSTEMS,
    stdout: TextIO | None = None,
) -> int:
    """Boot `kernel`, run `argv` in it, show its stdout on `stdout` (default: ours) and its
    stderr on ours, escaped (shown.py); its exit status.

    `rwdir` is a host directory the guest may write (same path inside). `clock` is `icount`
    or `wall` (None: see resolve_clock). Raises GuestError when something needed is missing,
    the guest never ran the command, or it outlived `timeout_s` (default
    $FAULTBENCH_GUEST_TIMEOUT_S or 1800 s; it is killed then). Setting `cancel` (from another
    thread: only the main thread sees signals) kills the guest within a second, or keeps
    it from starting, and raises GuestError. `private`: a directory of the caller's (its copy
    of `kernel`) that the watchdog removes too should we die. `filesystems`: the scratch
    disks to give it (scratch.disks_for).
    """
    kernel = os.path.abspath(kernel)
    check_image_path(kernel)
    if rwdir:
        check_shared_dir(rwdir)
    missing = requirements(kernel)
    if missing:
        raise GuestError("; ".join(missing))
    check_timeouts_from_env()  # refused before QEMU starts
    if timeout_s is None:
        timeout_s = timeout_from_env()
    kvm, clock = resolve_clock(clock)
    if clock == "icount" and cpus != 1:
        raise GuestError(f"{cpus} vCPUs under the instruction clock: Debian 6.1 hangs bringing "
                         "up a second vCPU under -icount (docs/icount.md); use one, or --clock "
                         "wall")
    write_bytecode()
    remove_left()  # of runs killed with their watchdogs
    try:
        watchdog_end = start_watchdog()
    except OSError as exc:
        raise GuestError(f"cannot start the guest's watchdog: {exc.strerror or exc}"
                         f"{limit_hint(exc)}") from None
    try:
        if private:
            tell(watchdog_end, f"scratch {private}")
        return _boot(kernel, argv, rwdir, timeout_s, memory, cpus, env, kvm, clock,
                     watchdog_end, cancel or threading.Event(), filesystems,
                     sys.stdout if stdout is None else stdout)
    finally:
        with contextlib.suppress(OSError):
            os.write(watchdog_end, watchdog.DONE + b"\n")
        os.close(watchdog_end)


def _boot(kernel: str, argv: list[str], rwdir: str | None, timeout_s: float, memory: str,
          cpus: int, env: dict[str, str] | None, kvm: bool, clock: str,
          watchdog_end: int, cancel: threading.Event, filesystems: Collection[str],
          stdout: TextIO) -> int:
    # The guest's share, `scratch`, sits in a directory of root's alone that is not shared:
    # the guest writes as root in any mode (a setuid program) and may chmod what it is given.
    # virtme-ng's own files go there too: virtme_ret is read back by name, through links.
    try:
        private, held = make_held("faultbench-guest-")
    except OSError as exc:
        raise GuestError(printable(f"cannot make the guest's scratch directory in $TMPDIR "
                                   f"({tempfile.gettempdir()}): {exc.strerror or exc}"
                                   f"{limit_hint(exc)}")) from None
    try:
        tell(watchdog_end, f"scratch {private}")
        scratch = os.path.join(private, GUEST_SHARE)
        os.mkdir(scratch, 0o700)
        try:
            disks, script, init = fill(scratch, argv, env, filesystems)
        except OSError as exc:  # not the results directory's fault, as run() would say
            raise GuestError(printable(
                f"cannot write the guest's scratch disks in $TMPDIR ({os.path.dirname(private)})"
                f": {exc.strerror or exc}; they need {SCRATCH_NEEDS}: free some, or "
                "point TMPDIR at a filesystem with room")) from None
        command = [
            find_vng() or "vng", "--force-9p", "--run", kernel, "--memory", memory,
            "--cpus", str(cpus),
            "--append", f"faultbench.plane={plane_for(kvm, clock)} "
                        f"module_blacklist={','.join(MODULE_BLACKLIST)} "
                        + " ".join(DETERMINISM_PARAMS) + f" {init}",
            "--rwdir", scratch, "--exec", f"sh {shlex.quote(script)}",
        ]
        if not kvm:
            command.insert(2, "--disable-kvm")
        if clock == "icount":
            command[-2:-2] = [f"--qemu-opts={ICOUNT_QEMU_OPTS}"]
        for image in disks:
            # "=": the value starts with a dash; format given, or QEMU warns it guessed raw
            command[-2:-2] = [f"--qemu-opts=-drive file={image},format=raw,if=virtio"]
        if rwdir:
            command[-2:-2] = ["--rwdir", os.path.abspath(rwdir)]
        vng_status, said = run_streaming(command, timeout_s, watchdog_end, scratch, private,
                                          cancel, stdout, held)
        status = guest_status(scratch)
        if status is not None:
            return status
        seen = ("see the messages above" if said else "it printed nothing") + _full(private)
        raise GuestError(
            f"the guest (QEMU) ended after its command had started, before it finished "
            f"(virtme-ng exit {vng_status}; {seen})"
            if os.path.lexists(os.path.join(scratch, STARTED)) else  # it booted `kernel`
            f"the guest ended without finishing the command (virtme-ng exit {vng_status}): "
            f"QEMU did not start, or it may not boot {kernel} ({seen})")
    finally:
        remove_private(private)
        os.close(held)


def _full(private: str) -> str:
    """What to add when the filesystem of `$TMPDIR` (holding `private`) is full: the guest's
    scratch disks, its script and its status live there, and a guest writing to a full one
    ends (`echo: I/O error`) with nothing else naming it."""
    try:
        found = os.statvfs(private)
    except OSError:
        return ""
    if found.f_bavail * found.f_frsize >= FULL_BELOW and found.f_favail:
        return ""
    return (f"; $TMPDIR ({printable(os.path.dirname(private))}) is full: free some, or point "
            "TMPDIR at a filesystem with room")


def run_cli_in_guest(kernel: str, argv: list[str], clock: str | None = None,
                     private: str | None = None, shown: str | None = None,
                     filesystems: Collection[str] = SCRATCH_FILESYSTEMS) -> int:
    """`faultbench <argv>` inside `kernel` (`clock`, `private`, `filesystems`: as for
    run_in_guest; `shown`: the image `kernel` is a copy of, named in messages); its output
    becomes ours, its status our status."""
    try:
        return run_in_guest(kernel, [sys.executable, "-P", "-m", "faultbench", *argv],
                            clock=clock, private=private, filesystems=filesystems)
    except GuestError as exc:
        shown = shown or kernel
        raise GuestError(f"--kernel {shown}: {str(exc).replace(kernel, shown)}") from None
