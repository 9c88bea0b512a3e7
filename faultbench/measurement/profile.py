"""Kernel profiles of the touch loop and its munmap: native/profile.c's samples, resolved.

The C side writes each mapper's raw perf records (instruction pointer and kernel call chain,
one sample per 10 us of the thread's CPU time) to a memfd; this module parses them and names
every kernel address from /proc/kallsyms of the kernel that ran them (in a booted guest,
the guest's own). A profile is folded stacks, root first (`a;b;leaf`), with counts: what
`perf script | stackcollapse` gives, and what the analysis groups into phases.

Standard library only: it runs in the worker, and in guests.
"""

from __future__ import annotations

import bisect
import os
import struct
from dataclasses import dataclass
from typing import Any

from faultbench.measurement._native import ffi, lib

# One sample per 20 us of the touching thread's CPU time. Each sample (a timer interrupt and
# a kernel stack walk) cost ~7 us of the thread's time on the development VM, so shorter
# periods slow the loop several times over; longer ones leave a 64 MiB loop a few hundred.
PERIOD_NS = 20_000
PARTS = ("loop", "munmap")  # block part 0, 1 (native/faultbench.h)
USER = "[user]"  # a sample in user mode: the touch loop's own instructions
UNKNOWN = "[unknown]"  # a kernel address no kallsyms symbol covers
KALLSYMS = "/proc/kallsyms"
# perf_event.h: records and the call chain's context markers
_RECORD_SAMPLE, _RECORD_LOST, _RECORD_THROTTLE = 9, 2, 5
_CONTEXT_MIN = (1 << 64) - 4095  # PERF_CONTEXT_* are the top 4095 values
_MISC_CPUMODE_MASK, _MISC_USER = 7, 2
_KERNEL_SPACE = 1 << 63  # x86-64 and arm64 kernels live in the upper half
_BLOCK = struct.Struct("=5Q")
_HEADER = struct.Struct("=IHH")
_TEXT_TYPES = frozenset("tTwW")
# a symbol's extent is up to the next one; past the last one, this much (then unknown)
_LAST_SYMBOL_SPAN = 1 << 16


class ProfileUnavailable(Exception):
    """This kernel or user cannot profile; the message is the one line users see."""


@dataclass(frozen=True)
class Kallsyms:
    """The running kernel's text symbols, sorted by address."""
    starts: list[int]
    names: list[str]

    @classmethod
    def load(cls, path: str = KALLSYMS) -> Kallsyms:
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                lines = fh.read().splitlines()
        except OSError as exc:
            raise ProfileUnavailable(f"{path}: {exc.strerror}") from None
        symbols: list[tuple[int, str]] = []
        for line in lines:
            fields = line.split()
            if len(fields) < 3 or fields[1] not in _TEXT_TYPES:
                continue
            try:
                address = int(fields[0], 16)
            except ValueError:
                continue  # untrusted text: a malformed line names nothing
            name = fields[2] + (f" {fields[3]}" if len(fields) > 3 else "")
            symbols.append((address, name))
        if not any(address for address, _ in symbols):
            raise ProfileUnavailable(
                f"{path} hides kernel addresses (kernel.kptr_restrict, or not root): "
                "kernel samples cannot be named")
        symbols.sort()
        return cls([a for a, _ in symbols], [n for _, n in symbols])

    def name(self, address: int) -> str:
        """The symbol covering `address`, or UNKNOWN."""
        index = bisect.bisect_right(self.starts, address) - 1
        if index < 0 or (index == len(self.starts) - 1
                         and address - self.starts[index] > _LAST_SYMBOL_SPAN):
            return UNKNOWN
        return self.names[index]


_kallsyms: Kallsyms | None = None


def kallsyms() -> Kallsyms:
    """This kernel's symbols, read once per process (the worker profiles many samples)."""
    global _kallsyms
    if _kallsyms is None:
        _kallsyms = Kallsyms.load()
    return _kallsyms


def unavailable() -> str | None:
    """Why this process cannot take kernel profiles here, or None: asked of the kernel."""
    reason = ffi.new("char[]", lib.FB_TEXT)
    if lib.fb_profile_probe(PERIOD_NS, reason) != 0:
        return ffi.string(reason).decode(errors="replace")
    try:
        kallsyms()
    except ProfileUnavailable as exc:
        return str(exc)
    return None


def open_sink() -> int:
    """An O_APPEND memfd for the C side's blocks (forked mappers share its offset)."""
    fd = os.memfd_create("faultbench-profile", os.MFD_CLOEXEC)
    os.set_blocking(fd, True)
    import fcntl

    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_APPEND)
    return fd


def read_sink(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    return os.pread(fd, size, 0)


def parse_blocks(data: bytes) -> dict[tuple[int, str], tuple[int | None, bytes]]:
    """(mapper, part) -> (samples lost or None when unknown, raw records)."""
    blocks: dict[tuple[int, str], tuple[int | None, bytes]] = {}
    offset = 0
    while offset + _BLOCK.size <= len(data):
        magic, mapper, part, lost, size = _BLOCK.unpack_from(data, offset)
        offset += _BLOCK.size
        if magic != lib.FB_PROFILE_MAGIC or part >= len(PARTS) or offset + size > len(data):
            raise ValueError(f"profile block at byte {offset - _BLOCK.size} is malformed")
        blocks[(mapper, PARTS[part])] = (None if lost == (1 << 64) - 1 else lost,
                                         data[offset:offset + size])
        offset += size
    return blocks


def fold(records: bytes, lost: int | None, symbols: Kallsyms) -> dict[str, Any]:
    """One part's profile: folded stacks and the counts that say how complete it is.

    `samples` = the sum of `stacks`; `unresolved` of them have a leaf no symbol covers
    (kept, as `[unknown]`); `user` ran the loop's own code; `lost` the ring had no room for
    (null: this kernel cannot say); `throttled`: the kernel slowed the sampling."""
    stacks: dict[str, int] = {}
    samples = unresolved = user = throttled = lost_records = 0
    offset = 0
    while offset + _HEADER.size <= len(records):
        kind, misc, size = _HEADER.unpack_from(records, offset)
        if size < _HEADER.size or offset + size > len(records):
            break
        body = records[offset + _HEADER.size:offset + size]
        offset += size
        if kind == _RECORD_THROTTLE:
            throttled += 1
        elif kind == _RECORD_LOST and len(body) >= 16:
            lost_records += struct.unpack_from("=Q", body, 8)[0]
        if kind != _RECORD_SAMPLE or len(body) < 16:
            continue
        ip, nr = struct.unpack_from("=QQ", body)
        chain = struct.unpack_from(f"={min(nr, (len(body) - 16) // 8)}Q", body, 16)
        samples += 1
        if misc & _MISC_CPUMODE_MASK == _MISC_USER or ip < _KERNEL_SPACE:
            user += 1
            key = USER
        else:
            frames = [a for a in chain if a < _CONTEXT_MIN and a >= _KERNEL_SPACE] or [ip]
            names = [symbols.name(a) for a in frames]
            if symbols.name(ip) == UNKNOWN:
                unresolved += 1
            # the leaf often appears twice (the IP, then the chain's first entry)
            names = [n for i, n in enumerate(names) if i == 0 or n != names[i - 1]]
            key = ";".join(reversed(names))
        stacks[key] = stacks.get(key, 0) + 1
    return {"samples": samples, "unresolved": unresolved, "user": user,
            "lost": lost if lost is not None else (lost_records or None),
            "throttled": throttled, "period_ns": PERIOD_NS, "stacks": stacks}


def top_symbols(part: dict[str, Any], n: int) -> list[tuple[str, float]]:
    """The n leaf symbols (self time) with the largest share of a part's samples."""
    leaves: dict[str, int] = {}
    for stack, count in part["stacks"].items():
        leaf = stack.rsplit(";", 1)[-1]
        leaves[leaf] = leaves.get(leaf, 0) + count
    total = sum(leaves.values()) or 1
    ranked = sorted(leaves.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    return [(name, count / total) for name, count in ranked]


def profiles(data: bytes, mappers: int) -> list[dict[str, Any] | None]:
    """Per mapper: {"loop": fold(...), "munmap": fold(...)}, or None (nothing sampled)."""
    symbols = kallsyms()
    blocks = parse_blocks(data)
    out: list[dict[str, Any] | None] = []
    for mapper in range(mappers):
        parts = {part: fold(blocks[(mapper, part)][1], blocks[(mapper, part)][0], symbols)
                 for part in PARTS if (mapper, part) in blocks}
        out.append(parts or None)
    return out


