"""A bzImage's kernel booted without its decompressor, through the PVH entry point.

Under TCG a bzImage spends seconds of every boot unpacking itself (Debian's are XZ: 5-11 s
on a two-CPU host, code run once and translated once). QEMU also boots an uncompressed
vmlinux ELF, directly at its PVH entry point (the Xen PHYS32_ENTRY ELF note, in every kernel
built with CONFIG_PVH, Debian's among them); the host unpacks the same payload in a fraction
of a second. The kernel that runs is the image's own code either way: only its loader
differs (the decompressor would also place the kernel at random, which a guest's `nokaslr`
turns off anyway). A payload compressed in a format the standard library cannot read (lz4,
lzo, zstd), or a kernel with no PVH note, is booted as the bzImage it is. One whose stream
is damaged (Damaged) is not booted at all.

Measurement plane: standard library only. The image is anyone's file, already checked
against the run's sha256: what it unpacks to is bounded (by RATIO_MAX times its compressed
length, its ELF headers, and UNPACKED_MAX), never trusted to stop by itself, and unpacked no
further than it needs to know it cannot boot through PVH.
"""

from __future__ import annotations

import bz2
import itertools
import lzma
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import IO, NamedTuple

PVH = "pvh"  # a boot's `entry`: how QEMU started its kernel
BZIMAGE = "bzImage"
UNPACKED_MAX = 512 << 20  # Debian's 6.1 vmlinux is 66 MB; its debug info is never in a bzImage
# A kernel compresses 3-10 times (Debian 6.1's XZ 8.1, kernels/build's gzip 3.4-3.7); zeros
# compress a thousandfold and more, and the ELF headers that would bound them are the
# image's own: only the payload's length costs the image's author as many bytes as it allows.
RATIO_MAX = 32
_CHUNK = 1 << 20
_HEAD = 64 << 10  # an ELF's header and program headers are its first few hundred bytes
_XEN_NOTE_PHYS32_ENTRY = 18
_NOTE_SEGMENTS_MAX = 8  # a vmlinux has one
_PT_NOTE = 4


class Damaged(Exception):
    """The payload's stream is damaged. Booted, the bzImage would halt in its decompressor,
    printing nothing, until the guest start timeout (10 minutes a boot, and a resume), or
    (a wrong checksum, which the kernel's gunzip does not check) run bytes no one built."""


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


_FORMATS: tuple[tuple[bytes, str, Callable[[bytes], Iterator[bytes]]], ...] = (
    (b"\xfd7zXZ\x00", "xz",
     lambda p: _chunks_of(p, lambda: lzma.LZMADecompressor(lzma.FORMAT_XZ))),
    (b"\x5d\x00\x00", "lzma",
     lambda p: _chunks_of(p, lambda: lzma.LZMADecompressor(lzma.FORMAT_ALONE))),
    (b"BZh", "bzip2", lambda p: _chunks_of(p, bz2.BZ2Decompressor)),
    (b"\x1f\x8b", "gzip", _gzip_chunks),
)


def _checked(chunks: Iterator[bytes], name: str) -> Iterator[bytes]:
    """`chunks`, a failure of their decompressor raised as Damaged, and only that: a failure
    to write the copy is no fault of the image."""
    try:
        yield from chunks
    except (ValueError, lzma.LZMAError, zlib.error, OSError) as exc:
        # bz2 says "Invalid data stream" with an OSError
        raise Damaged(f"{name}: {exc}") from None


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


class _Elf(NamedTuple):
    """What the header and program headers of an x86-64 ELF say."""

    notes: list[tuple[int, int]]  # (offset, size) of each PT_NOTE segment
    size: int  # the file's: through its last segment or section header, whichever is later

    def unpacked_max(self, packed: int) -> int:
        """How many bytes its unpacked payload, `packed` bytes compressed, may have. What
        follows the ELF is its relocations (arch/x86/boot/compressed: vmlinux.bin, then
        vmlinux.relocs), a 4-byte entry per relocated word of its segments: at most as many
        bytes as the ELF."""
        return min(UNPACKED_MAX, 2 * self.size, RATIO_MAX * packed)


def _elf(head: bytes) -> _Elf | None:
    """The _Elf that `head` begins, or None when it begins none, or its notes are not a few
    small segments (a vmlinux has one, of a few hundred bytes)."""
    if head[:5] != b"\x7fELF\x02" or len(head) < 64 or struct.unpack_from("<H", head, 18)[0] != 62:
        return None
    phoff, shoff = struct.unpack_from("<QQ", head, 32)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", head, 54)
    if phentsize < 56 or phoff + phnum * phentsize > len(head):
        return None
    notes, size = [], shoff + shnum * shentsize
    for n in range(phnum):
        at = phoff + n * phentsize
        offset, _, _, filesz = struct.unpack_from("<QQQQ", head, at + 8)
        size = max(size, offset + filesz)
        if struct.unpack_from("<I", head, at)[0] == _PT_NOTE:
            notes.append((offset, filesz))
    if len(notes) > _NOTE_SEGMENTS_MAX or sum(n for _, n in notes) > _CHUNK:
        return None
    return _Elf(notes, size)


def _has_pvh_entry(notes: bytes) -> bool:
    """Whether the ELF notes `notes` hold the one QEMU boots a kernel by."""
    at = 0
    while at + 12 <= len(notes):
        namesz, descsz, kind = struct.unpack_from("<III", notes, at)
        if notes[at + 12:at + 12 + namesz] == b"Xen\0" and kind == _XEN_NOTE_PHYS32_ENTRY:
            return True
        at += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def unpack(image: bytes, out: IO[bytes]) -> bool:
    """The kernel of the bzImage `image` written to `out` as the ELF QEMU boots through PVH;
    False, with `out` left to the caller to empty, when it cannot be (format, no note, too
    large); Damaged, `out` likewise, when its stream is damaged where it was unpacked. It
    stops as soon as it knows: once the notes are read and none is the PVH one, or past the
    size its length and the ELF's headers allow."""
    payload = _payload(image) or b""
    formats = [(name, unpacked) for magic, name, unpacked in _FORMATS
               if payload.startswith(magic)]
    if not formats:
        return False
    name, unpacked = formats[0]
    chunks = _checked(unpacked(payload), name)
    head = b""
    for chunk in chunks:  # the ELF header and program headers: the first bytes
        head += chunk
        if len(head) >= _HEAD:
            break
    elf = _elf(head)
    if not elf or not elf.notes:
        return False
    limit = elf.unpacked_max(len(payload))
    notes = [bytearray(size) for _, size in elf.notes]
    notes_end = max(offset + size for offset, size in elf.notes)
    if notes_end > limit:  # no need to unpack up to it to know
        return False
    written, found = 0, False
    for chunk in itertools.chain([head], chunks):
        for (offset, size), note in zip(elf.notes, notes, strict=True):
            low, high = max(offset, written), min(offset + size, written + len(chunk))
            if low < high:
                note[low - offset:high - offset] = chunk[low - written:high - written]
        written += len(chunk)
        if written > limit:
            return False
        if not found and written >= notes_end:
            if not any(_has_pvh_entry(bytes(note)) for note in notes):
                return False
            found = True
        out.write(chunk)
    return found


def is_unpacked(fh: IO[bytes]) -> bool:
    """Whether the file open at `fh` is a kernel unpack() wrote: an ELF that QEMU boots
    through PVH (read at its offsets, whatever `fh`'s own)."""
    try:
        elf = _elf(os.pread(fh.fileno(), _HEAD, 0))
        notes = [os.pread(fh.fileno(), size, offset) for offset, size in (elf.notes if elf else ())]
    except OSError:
        return False
    return any(_has_pvh_entry(note) for note in notes)
