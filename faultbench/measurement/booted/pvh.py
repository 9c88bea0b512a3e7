"""A bzImage's kernel booted without its decompressor, through the PVH entry point.

Under TCG a bzImage spends seconds of every boot unpacking itself (Debian's are XZ: 5-11 s
on a two-CPU host, code run once and translated once). QEMU also boots an uncompressed
vmlinux ELF, directly at its PVH entry point (the Xen PHYS32_ENTRY ELF note, in every kernel
built with CONFIG_PVH, Debian's among them); the host unpacks the same payload in a fraction
of a second. The kernel that runs is the image's own code either way: only its loader
differs (the decompressor would also place the kernel at random, which a guest's `nokaslr`
turns off anyway). A payload compressed in a format the standard library cannot read (lz4,
lzo, zstd), or a kernel with no PVH note, is booted as the bzImage it is.

Measurement plane: standard library only. The image is anyone's file, already checked
against the run's sha256: what it unpacks to is bounded (UNPACKED_MAX), never trusted to
stop by itself.
"""

from __future__ import annotations

import bz2
import itertools
import lzma
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import IO

PVH = "pvh"  # a boot's `entry`: how QEMU started its kernel
BZIMAGE = "bzImage"
UNPACKED_MAX = 512 << 20  # Debian's 6.1 vmlinux is 66 MB; its debug info is never in a bzImage
_CHUNK = 1 << 20
_HEAD = 64 << 10  # an ELF's header and program headers are its first few hundred bytes
_XEN_NOTE_PHYS32_ENTRY = 18
_PT_NOTE = 4


def _chunks_of(payload: bytes, make: Callable[[], object]) -> Iterator[bytes]:
    """`payload` unpacked a chunk at a time by an lzma- or bz2-style decompressor."""
    unpacker = make()
    data = payload
    while not unpacker.eof:  # type: ignore[attr-defined]
        chunk = unpacker.decompress(data, _CHUNK)  # type: ignore[attr-defined]
        data = b""
        if not chunk and unpacker.needs_input:  # type: ignore[attr-defined]
            raise ValueError("the payload ends inside its stream")
        yield chunk


def _gzip_chunks(payload: bytes) -> Iterator[bytes]:
    unpacker = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    data = payload
    while not unpacker.eof:
        chunk = unpacker.decompress(data, _CHUNK)
        data = unpacker.unconsumed_tail
        if not chunk and not data:
            raise ValueError("the payload ends inside its stream")
        yield chunk


_FORMATS: tuple[tuple[bytes, Callable[[bytes], Iterator[bytes]]], ...] = (
    (b"\xfd7zXZ\x00", lambda p: _chunks_of(p, lambda: lzma.LZMADecompressor(lzma.FORMAT_XZ))),
    (b"\x5d\x00\x00", lambda p: _chunks_of(p, lambda: lzma.LZMADecompressor(lzma.FORMAT_ALONE))),
    (b"BZh", lambda p: _chunks_of(p, bz2.BZ2Decompressor)),
    (b"\x1f\x8b", _gzip_chunks),
)


def _payload(image: bytes) -> bytes | None:
    """The compressed kernel of a bzImage (boot protocol 2.08 or later), or None."""
    if image[0x202:0x206] != b"HdrS" or len(image) < 0x250 or \
            struct.unpack_from("<H", image, 0x206)[0] < 0x208:
        return None
    start = ((image[0x1F1] or 4) + 1) * 512  # where the protected-mode part begins
    offset, length = struct.unpack_from("<II", image, 0x248)
    if start + offset + length > len(image):
        return None
    return image[start + offset:start + offset + length]


def _note_ranges(head: bytes) -> list[tuple[int, int]] | None:
    """The (offset, size) of each PT_NOTE segment of the x86-64 ELF that `head` begins, or
    None when `head` does not begin one (or its notes are not a few small segments)."""
    if head[:5] != b"\x7fELF\x02" or len(head) < 64 or struct.unpack_from("<H", head, 18)[0] != 62:
        return None
    phoff, = struct.unpack_from("<Q", head, 32)
    phentsize, phnum = struct.unpack_from("<HH", head, 54)
    if phentsize < 56 or phoff + phnum * phentsize > len(head):
        return None
    ranges = []
    for n in range(phnum):
        at = phoff + n * phentsize
        if struct.unpack_from("<I", head, at)[0] == _PT_NOTE:
            offset, _, _, size = struct.unpack_from("<QQQQ", head, at + 8)
            ranges.append((offset, size))
    return ranges if sum(size for _, size in ranges) <= _CHUNK else None


def _has_pvh_entry(notes: bytes) -> bool:
    """Whether the ELF notes `notes` hold the one QEMU boots a kernel by."""
    while len(notes) >= 12:
        namesz, descsz, kind = struct.unpack_from("<III", notes)
        if notes[12:12 + namesz] == b"Xen\0" and kind == _XEN_NOTE_PHYS32_ENTRY:
            return True
        notes = notes[12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4:]
    return False


def unpack(image: bytes, out: IO[bytes]) -> bool:
    """The kernel of the bzImage `image` written to `out` as the ELF QEMU boots through PVH;
    False, with `out` left to the caller to empty, when it cannot be (format, no note, too
    large or damaged)."""
    payload = _payload(image)
    formats = [unpacked for magic, unpacked in _FORMATS if payload and payload.startswith(magic)]
    if not formats:
        return False
    chunks = formats[0](payload)  # type: ignore[arg-type]
    try:
        head = b""
        for chunk in chunks:  # the ELF header and program headers: the first bytes
            head += chunk
            if len(head) >= _HEAD:
                break
        ranges = _note_ranges(head)
        if not ranges:
            return False
        notes = [bytearray(size) for _, size in ranges]
        written = 0
        for chunk in itertools.chain([head], chunks):
            for (offset, size), note in zip(ranges, notes, strict=True):
                low, high = max(offset, written), min(offset + size, written + len(chunk))
                if low < high:
                    note[low - offset:high - offset] = chunk[low - written:high - written]
            written += len(chunk)
            if written > UNPACKED_MAX:
                return False
            out.write(chunk)
    except (ValueError, lzma.LZMAError, zlib.error, EOFError, OSError):
        return False  # bz2 says "Invalid data stream" with an OSError
    return any(_has_pvh_entry(bytes(note)) for note in notes)


def is_unpacked(fh: IO[bytes]) -> bool:
    """Whether the file open at `fh` is a kernel unpack() wrote: an ELF that QEMU boots
    through PVH (read at its offsets, whatever `fh`'s own)."""
    try:
        ranges = _note_ranges(os.pread(fh.fileno(), _HEAD, 0))
        notes = [os.pread(fh.fileno(), size, offset) for offset, size in ranges or ()]
    except OSError:
        return False
    return any(_has_pvh_entry(note) for note in notes)
