"""What a kernel image says about itself before it is booted: an x86 bzImage's setup header.
QEMU given anything else (a config file, a vmlinux) does not fail: it waits for ever, so a
file is refused before QEMU starts. Standard library only."""

from __future__ import annotations

import struct

_HEADER_MAGIC_AT = 0x202  # "HdrS" (Documentation/arch/x86/boot.rst)
_VERSION_POINTER_AT = 0x20E
NOT_A_KERNEL = ("is not a bootable x86 kernel image (no bzImage setup header with a version "
                "string: \"HdrS\" at offset 0x202)")


def image_version(image: str) -> str | None:
    """The version string an x86 bzImage carries in its setup header (what `file` shows):
    release, builder, build number and date. None for anything else: QEMU given such a file
    waits for ever instead of failing."""
    try:
        with open(image, "rb") as fh:
            head = fh.read(0x10000)
    except OSError:
        return None
    if head[_HEADER_MAGIC_AT:_HEADER_MAGIC_AT + 4] != b"HdrS" or \
            len(head) < _VERSION_POINTER_AT + 2:
        return None
    (pointer,) = struct.unpack_from("<H", head, _VERSION_POINTER_AT)
    start = pointer + 0x200
    text = head[start:start + 256].split(b"\0", 1)[0]
    return text.decode("ascii", "replace") or None
