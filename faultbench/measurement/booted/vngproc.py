"""The virtme-ng process of one boot: started in its own process group with a watchdog told
of it, its output copied (escaped, shown.py) as it comes, and killed, group and all, on a
timeout, a cancel, or a guest whose command never started. Standard library only."""

from __future__ import annotations

import contextlib
import math
import mmap
import os
import re
import selectors
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from typing import TextIO

from faultbench.errors import FaultbenchError, limit_hint
from faultbench.measurement.booted.checkout import package_root
from faultbench.measurement.booted.scratch import STARTED, venv_bin
from faultbench.measurement.booted.shown import GuestStream
from faultbench.measurement.signals import signals_raise
from faultbench.measurement.spec import SpecError, parse_float

DEFAULT_TIMEOUT_S = 1800.0
MAX_TIMEOUT_S = 7 * 24 * 3600.0
TIMEOUT_ENV = "FAULTBENCH_GUEST_TIMEOUT_S"
# From QEMU's start to the guest's command starting: a TCG boot takes 30-150 s on a loaded
# two-CPU host. An image that never boots (QEMU waits for ever on one) is killed then.
DEFAULT_START_TIMEOUT_S = 600.0
START_TIMEOUT_ENV = "FAULTBENCH_GUEST_START_TIMEOUT_S"
SHOWN_LINES = 5  # the guest's last lines quoted when it is killed for not starting
KILL_GRACE_S = 5.0
VNG_CONFIG = ".config/virtme-ng/virtme-ng.conf"  # under HOME: the first virtme-ng reads
_BANNER = re.compile(rb"Linux version [!-~]{3,}")  # as virtme-ng finds it in `strings`


class GuestError(FaultbenchError):
    """The guest could not be started or did not finish; one line: why, and what to do."""


def timeout_from_env(name: str = TIMEOUT_ENV, default: float = DEFAULT_TIMEOUT_S) -> float:
    """$FAULTBENCH_GUEST_TIMEOUT_S (or `name`) in seconds, or `default` when it is not set."""
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        value = parse_float(text)
    except SpecError:
        value = math.nan
    if not 0 < value <= MAX_TIMEOUT_S:
        raise GuestError(f"{name}={text!r}: give seconds above 0 and at most "
                         f"{MAX_TIMEOUT_S:.0f}")
    return value


def run_streaming(command: list[str], timeout_s: float, watchdog_end: int,
                   scratch: str, private: str, cancel: threading.Event,
                   stdout: TextIO, held: int) -> tuple[int, bool]:
    """Run vng in its own process group; copy its output as it comes; kill it on timeout,
    on `cancel`, or when the guest's script has not started (left STARTED in `scratch`) in
    time. The watchdog is told the group, to kill it should we die without doing so; vng
    holds `private` too (held.py). Its exit status, and whether it printed anything."""
    if cancel.is_set():
        raise GuestError("stopped before the guest started")
    host_env = dict(os.environ)
    host_env["PATH"] = f"{venv_bin()}:{host_env.get('PATH', '/usr/bin:/bin')}"
    # virtme-ng's temp files (virtme_ret*) beside the guest's share, never in it: a killed
    # vng never removes them, and the guest could swap them for links
    host_env["TMPDIR"] = private
    host_env.pop("QEMU_MODULE_DIR", None)  # its installed modules: the QEMU the run records
    # Pipes, never our stdout directly: QEMU reopens a regular-file stdout at offset 0.
    try:
        host_env["HOME"] = vng_home(private)
        if (bin_dir := version_stand_in(private, command[command.index("--run") + 1])):
            host_env["PATH"] = f"{bin_dir}:{host_env['PATH']}"
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=host_env, start_new_session=True,
                                pass_fds=(held,))
    except OSError as exc:
        raise GuestError(f"cannot start virtme-ng: {exc.strerror or exc}{limit_hint(exc)}"
                         ) from None
    deadline = time.monotonic() + timeout_s
    late = GuestError(f"the guest did not finish within {timeout_s:.0f} s and was killed "
                      f"(raise {TIMEOUT_ENV} if it needs longer)")
    try:
        tell(watchdog_end, f"group {proc.pid}")  # inside: a dead watchdog stops the guest
        # SIGTERM/SIGHUP unwind like Ctrl-C does, so the guest is killed on the way out
        with signals_raise((signal.SIGTERM, signal.SIGHUP)):
            tail = copy_until_exit(proc, deadline, late, os.path.join(scratch, STARTED),
                                    cancel, stdout)
            try:
                return proc.wait(timeout=max(deadline - time.monotonic(), 0.1)), bool(tail)
            except subprocess.TimeoutExpired:
                raise late from None
    finally:
        kill_group(proc)


def vng_home(directory: str) -> str:
    """A home for virtme-ng, new in `directory` (ours alone), whose configuration says
    nothing. vng applies the `default_opts` of the first of ~/.config/virtme-ng/virtme-ng.conf,
    ~/.virtme-ng.conf and /etc/virtme-ng.conf over its command line (virtme_ng/run.py), and
    `vng --kconfig` adds ~/.config/virtme-ng/kernel.config: they replaced the instruction
    clock, the memory and the command a guest ran, and `sudo -E` keeps a user's HOME. What
    a guest is, is faultbench's command line alone (docs/kernels.md)."""
    home = os.path.join(directory, "vng-home")
    config = os.path.join(home, VNG_CONFIG)
    os.makedirs(os.path.dirname(config), mode=0o700)
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    try:
        os.write(fd, b"{}\n")  # every setting virtme-ng's own default
    finally:
        os.close(fd)
    return home


def version_stand_in(directory: str, kernel: str) -> str | None:
    """A directory, new in `directory` (ours alone), whose `strings` answers virtme-ng's
    question about `kernel`, or None when `kernel` is not an ELF vmlinux with a banner.
    virtme-ng reads a kernel's release with `file`, which names a bzImage's but not an
    unpacked kernel's (a boot through PVH, pvh.py), and then with `strings KERNEL`, of
    which it keeps the first `Linux version (\\S{3,})`: 2 CPU-s of the host's for each
    boot of Debian's 6.1 (docs/scale.md). The stand-in prints that line, found here the
    same way (in one run of printable characters), for `kernel` alone."""
    # the boot's own copy, but read as any file: never through a link, nor a FIFO's wait
    fd = os.open(kernel, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode) or fh.read(4) != b"\x7fELF":
            return None
        with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as image:
            found = _BANNER.search(image)
            if found is None:
                return None
            banner = found.group().decode()
    real = shutil.which("strings")
    bin_dir = os.path.join(directory, "vng-bin")
    os.mkdir(bin_dir, 0o700)
    fd = os.open(os.path.join(bin_dir, "strings"),
                 os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o700)
    with os.fdopen(fd, "w") as f:
        f.write("#!/bin/sh\n# faultbench: the line virtme-ng looks for, read already\n"
                # virtme-ng names the kernel with its links resolved
                f"if [ $# = 1 ] && {{ [ \"$1\" = {shlex.quote(kernel)} ] || "
                f"[ \"$1\" = {shlex.quote(os.path.realpath(kernel))} ]; }}; then\n"
                f"  echo {shlex.quote(banner)}\n"
                + (f"else\n  exec {shlex.quote(real)} \"$@\"\n" if real else "")
                + "fi\n")
    return bin_dir


def tell(watchdog_end: int, line: str) -> None:
    """`line` told to the watchdog; GuestError when it is gone (killed): without it, a
    guest would outlive our own death."""
    try:
        os.write(watchdog_end, f"{line}\n".encode())
    except OSError as exc:
        raise GuestError(f"the guest's watchdog, which stops it should faultbench die, is "
                         f"gone ({exc.strerror}): no guest runs without it") from None


def start_watchdog() -> int:
    """The write end of the watchdog's stdin: closing it without `done` (our death) makes
    the watchdog kill the group and remove the scratch directory it was told about."""
    read_end, write_end = os.pipe()
    try:
        subprocess.Popen([sys.executable, "-P", "-m", "faultbench.measurement.booted.watchdog"],
                         stdin=read_end, stdout=subprocess.DEVNULL,
                         start_new_session=True, env={**os.environ, "PYTHONPATH": package_root()})
    finally:
        os.close(read_end)
    return write_end


def copy_until_exit(proc: subprocess.Popen[bytes], deadline: float, late: GuestError,
                     started: str, cancel: threading.Event, stdout: TextIO) -> bytes:
    """The last lines it printed, once both its pipes are closed; its stdout shown on
    `stdout`, its stderr on ours (both escaped: shown.py). Past the deadline, what
    waits is read for a second more: a host stopped (Ctrl-Z) past it may resume to a guest
    that ended in time, its end of file waiting (see runner._readline); not to one printing on."""
    assert proc.stdout is not None and proc.stderr is not None
    sinks = {proc.stdout.fileno(): GuestStream(stdout),
             proc.stderr.fileno(): GuestStream(sys.stderr)}
    start_limit = timeout_from_env(START_TIMEOUT_ENV, DEFAULT_START_TIMEOUT_S)
    start_by: float | None = time.monotonic() + start_limit
    tail, read_until = b"", math.inf  # read_until: the second past the deadline
    with selectors.DefaultSelector() as selector:
        for fd in sinks:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            now = time.monotonic()
            if start_by is not None and now > start_by:
                if not os.path.exists(started):
                    raise not_started(start_limit, tail)
                start_by = None
            if cancel.is_set():
                raise GuestError("the guest was stopped (the run was interrupted)")
            ready = selector.select(timeout=min(deadline - now, 1.0))  # past it: no waiting
            if now >= deadline:
                read_until = min(read_until, now + 1.0)
                if not ready or now > read_until:
                    raise late
            for key, _ in ready:
                chunk = os.read(key.fd, 65536)
                sinks[key.fd].write(chunk, end=not chunk)
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                tail = b"".join((tail + chunk).splitlines(keepends=True)[-SHOWN_LINES:])
    return tail


def not_started(limit: float, tail: bytes) -> GuestError:
    lines = [ascii(line.decode(errors="replace"))[1:-1] for line in tail.splitlines()]
    said = f"its last lines: {' | '.join(lines)}" if lines else "it printed nothing"
    return GuestError(f"the guest's command had not started {limit:.0f} s after QEMU started, "
                      f"so it was killed ({said}); is the image a kernel that boots here? "
                      f"(raise {START_TIMEOUT_ENV} if its boot needs longer)")


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """vng, virtme-run and qemu all go: nothing of the guest outlives the call."""
    for signum, wait_s in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signum)
        try:
            proc.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue
    # Stragglers of the group (QEMU outliving vng) get SIGKILL until the group is gone.
    deadline = time.monotonic() + KILL_GRACE_S
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    for pipe in (proc.stdout, proc.stderr):
        if pipe:
            pipe.close()
