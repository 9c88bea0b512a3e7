"""Kernel images: which ones /boot offers (and the one hints and tests name), and what an
image says about itself before it is booted: an x86 bzImage's setup header.
QEMU given anything else (a config file, a vmlinux) does not fail: it waits for ever, so a
file is refused before QEMU starts. Standard library only."""

from __future__ import annotations

import os
import re
import struct
import subprocess
from pathlib import Path
from typing import IO

from faultbench.errors import printable

_HEADER_MAGIC_AT = 0x202  # "HdrS" (Documentation/arch/x86/boot.rst)
_VERSION_POINTER_AT = 0x20E
NOT_A_KERNEL = ("is not a bootable x86 kernel image (no bzImage setup header with a version "
                "string: \"HdrS\" at offset 0x202)")


def header_version(fh: IO[bytes]) -> str | None:
    """The version string an x86 bzImage open at `fh` carries in its setup header (what `file`
    shows; read from its current offset): release, builder, build number and date. None for
    anything else: QEMU given such a file waits for ever instead of failing."""
    head = fh.read(0x10000)
    if head[_HEADER_MAGIC_AT:_HEADER_MAGIC_AT + 4] != b"HdrS" or \
            len(head) < _VERSION_POINTER_AT + 2:
        return None
    (pointer,) = struct.unpack_from("<H", head, _VERSION_POINTER_AT)
    start = pointer + 0x200
    text = head[start:start + 256].split(b"\0", 1)[0]
    # the image may be anyone's file: its version is shown and stored as a kernel label;
    # a kernel's starts with its release (not blank, not a control character)
    version = printable(text.decode("ascii", "replace"))
    return version if version[:1].isalnum() else None


def boot_images() -> list[str]:
    """Kernel images a user could pass to --kernel."""
    return sorted(str(p) for p in Path("/boot").glob("vmlinuz-*"))


def default_image() -> str | None:
    """Debian's default kernel image (what linux-image-amd64 depends on), else the newest in
    /boot: installing another kernel beside it does not change what hints and tests name."""
    try:
        depends = subprocess.run(["dpkg-query", "-W", "-f", "${Depends}", "linux-image-amd64"],
                                 capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        depends = ""
    match = re.search(r"linux-image-(\S+?-amd64)\b", depends)
    if match and os.path.isfile(f"/boot/vmlinuz-{match.group(1)}"):
        return f"/boot/vmlinuz-{match.group(1)}"
    images = boot_images()
    return images[-1] if images else None


def kernel_hint() -> str:
    return f"--kernel {default_image() or '/boot/vmlinuz-<version>'}"
