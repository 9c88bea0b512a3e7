"""What to measure (Spec) and what one measurement yields (Sample).

Standard library only: this module is part of the measurement plane, which also runs inside
emulated guests where importing anything heavy costs seconds.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from faultbench.errors import FaultbenchError

BACKINGS = ("anon", "memfd", "tmpfs", "file", "hugetlb")
MAPS = ("shared", "private")
ACCESSES = ("read", "write")
CACHES = ("warm", "cold", "hole", "hot")
UFFD_MODES = ("none", "missing", "wp", "minor")
MAPPER_MODES = ("sequential", "concurrent")
MAPPER_KINDS = ("process", "thread")
UFFD_MAPPERS = ("all", "first", "later")
POPULATES = ("none", "madvise", "map")
# tmpfs `huge=` mount options (spec tmpfs_huge: faultbench mounts a tmpfs of its own)
TMPFS_HUGE = ("never", "always", "within_size", "advise")
FILL_HELP = "write, write:SIZE (write(2)s of SIZE bytes, 4K to 64M), fallocate or hole-read"
DEFAULT_FILL_CHUNK = 1 << 20  # "write": today's 1 MiB write(2)s
MAX_FILL_CHUNK = 64 << 20
MAX_DEADLINE_S = 3600.0
# Bounds that keep every value inside the C contract's types (uint64 seed and stride, int
# mappers) and a sample's setup in proportion: one fb_result per mapper is allocated up front.
MAX_SIZE = 1 << 50  # 1 PiB: beyond any machine's memory or disk, far below uint64
MAX_SIZE_TEXT = "1P (2^50 bytes)"
MAX_MAPPERS = 256
MAX_SEED = (1 << 64) - 1
MAX_STRIDE = 1 << 32
# An app-launch session (apps > 0; see measurement/launch.py) keeps one process per app
# alive and each app's files open: bounded so a session's setup stays in proportion.
MAX_APPS = 64
MAX_APP_FILES = 64  # native/launch.c's limit
MAX_LAUNCHES = 10_000
# vmas: below the default vm.max_map_count (65530), with room for the mapper's own
MAX_VMAS = 60_000
PATTERN_HELP = "seq, reverse, random, stride:N (1 <= N <= 2^32) or sparse"
# Every integer field but the sizes (SIZE_FIELDS) and its bounds: normalized() checks them,
# a workload's axes and `--only` values are parsed and checked from them (workload_checks).
INT_FIELDS: dict[str, tuple[int, int]] = {
    "seed": (0, MAX_SEED),
    "mappers": (1, MAX_MAPPERS),
    "apps": (0, MAX_APPS),
    "app_files": (1, MAX_APP_FILES),
    "launches": (0, MAX_LAUNCHES),
    "touch_one_in": (1, MAX_STRIDE),
    "vmas": (0, MAX_VMAS),
}
SIZE_FIELDS = ("size", "map_offset", "app_anon")  # integers also written "64M": parse_size

# at most 20 digits: int() of a longer string is slow or refused, and no valid size needs more
# ASCII only: a digit of another script (١٢) is not a number a user meant to give
_SIZE_RE = re.compile(r"^\s*([0-9]{1,20})\s*([kKmMgGtTpP]?)(i?[bB])?\s*$", re.ASCII)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
# int() and float() alone take the digits of every script (Arabic-Indic, fullwidth, ...)
# and underscores (1_0): numbers a user gives go through parse_int/parse_float instead
_INT_RE = re.compile(r"^\s*[+-]?[0-9]+\s*$", re.ASCII)
_MAX_DIGITS = 4000  # int() refuses more than 4300 digits; each caller's range check says why


class SpecError(FaultbenchError, ValueError):
    """A spec that cannot be measured as asked; the message names the field and the fix."""


def clipped(text: str, limit: int = 200) -> str:
    """`text` cut to about `limit` characters: a 10 MB value is not echoed whole."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def shown(value: object, limit: int = 40) -> str:
    """repr(value), clipped()."""
    return clipped(repr(value), limit)


def parse_int(text: str, name: str = "value") -> int:
    """An integer written in ASCII digits; SpecError otherwise. Its range is the caller's."""
    if not isinstance(text, str) or not _INT_RE.match(text) or len(text) > _MAX_DIGITS:
        raise SpecError(f"{name} {shown(text)} is not an integer (ASCII digits)")
    return int(text)


def parse_float(text: str, name: str = "value") -> float:
    """A number written in ASCII (1.5, 2e3; nan and inf too, for the caller's range check
    to refuse by name); SpecError otherwise."""
    try:
        if isinstance(text, str) and text.isascii() and "_" not in text:
            return float(text)
    except ValueError:
        pass
    raise SpecError(f"{name} {shown(text)} is not a number (ASCII digits)")


def parse_size(text: str | int, name: str = "size", minimum: int = 1) -> int:
    """Bytes from '64M', '4k', '1G' or a plain number (binary units)."""
    if isinstance(text, bool) or not isinstance(text, int | str):
        raise SpecError(f"{name} must be a byte count or a text such as '64M', got {shown(text)}")
    if isinstance(text, int):
        value = text
    else:
        match = _SIZE_RE.match(text)
        if not match:
            raise SpecError(f"{name} {shown(text)} is not a number with an optional K/M/G/T/P "
                            "suffix")
        value = int(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
    if value < minimum:
        bound = "positive" if minimum == 1 else f"at least {minimum}"
        raise SpecError(f"{name} must be {bound}, got {shown(text)}")
    if value > MAX_SIZE:
        raise SpecError(f"{name} {shown(text)} is above the maximum {MAX_SIZE_TEXT}")
    return value


def window_bytes(page_size: int) -> int:
    """One page table's span (PTRS_PER_PTE pages, 2 MiB on x86-64): the largest fault-around
    window, to whose boundaries mappings are placed (native/region.c, fb_window_bytes)."""
    return page_size // 8 * page_size


def format_size(nbytes: int) -> str:
    for suffix, unit in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if nbytes % unit == 0:
            return f"{nbytes // unit}{suffix}"
    return str(nbytes)


def parse_pattern(text: str) -> tuple[str, int]:
    """('stride', N) for 'stride:N'; (name, 1) otherwise."""
    if not isinstance(text, str):
        raise SpecError(f"pattern must be a string ({PATTERN_HELP}), got {shown(text)}")
    if text in ("seq", "reverse", "random", "sparse"):
        return text, 1
    number = text.removeprefix("stride:")
    # a bounded digit string first: int() of thousands of digits is slow or refused
    if number != text and number.isascii() and number.isdigit() and len(number) <= 20:
        stride = int(number)
        if 1 <= stride <= MAX_STRIDE:
            return "stride", stride
    raise SpecError(f"pattern {shown(text)} is not one of {PATTERN_HELP}")


def canonical_pattern(text: str) -> str:
    """The one spelling of a pattern: stride:05 and stride:5 are one scenario."""
    name, stride = parse_pattern(text)
    return f"stride:{stride}" if name == "stride" else name


def parse_fill(text: str) -> tuple[str, int]:
    """(kind, bytes per write(2)) for a spec's `fill`: ("write", 65536) for 'write:64K'."""
    if text in ("fallocate", "hole-read"):
        return text, DEFAULT_FILL_CHUNK
    if isinstance(text, str) and (text == "write" or text.startswith("write:")):
        chunk = DEFAULT_FILL_CHUNK if text == "write" else parse_size(text[6:], "fill write size")
        page = os.sysconf("SC_PAGESIZE")
        if chunk % page == 0 and chunk <= MAX_FILL_CHUNK:
            return "write", chunk
    raise SpecError(f"fill {shown(text)} is not one of {FILL_HELP} (SIZE a multiple of the "
                    "page)")


def canonical_fill(text: str) -> str:
    """The one spelling of a fill: write:1M is write, write:65536 is write:64K."""
    kind, chunk = parse_fill(text)
    return f"write:{format_size(chunk)}" if kind == "write" and chunk != DEFAULT_FILL_CHUNK \
        else kind


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise SpecError(f"{name} {value!r} is not one of: {', '.join(allowed)}")


@dataclass(frozen=True)

class Spec:
    """One scenario. `None` fields take a default that depends on the backing (see normalized)."""
    backing: str = "memfd"
    size: int = 64 << 20
    map: str | None = None  # shared for file-like backings, private for anon
    access: str = "read"
    cache: str | None = None  # warm for file-like backings, hole for anon
    pattern: str = "seq"
    seed: int = 1
    uffd: str = "none"
    dir: str | None = None  # where tmpfs/file backings create their file
    mappers: int = 1
    mapper_mode: str = "sequential"
    mapper_kind: str = "process"
    uffd_mappers: str = "all"  # which mappers register: all, first, or all but the first
    deadline_s: float = 10.0
    uffd_serve: bool = True  # False leaves uffd faults unserved: exercises the deadline
    perf: bool = False  # perf events too: an independent fault count, cycles, instructions
    populate: str = "none"  # make the range present before the loop: MADV_POPULATE_*, MAP_POPULATE
    # Count pages_mapped by walking /proc/self/pagemap before munmap. The walk reads every
    # page table entry and page that munmap then tears down, so munmap_ns is that of hot page
    # tables; False leaves pages_mapped null and times munmap straight after the loop.
    pagemap: bool = True
    # Bytes past a page-table boundary (window_bytes) where the mapping starts. Fault-around
    # windows are aligned in the address space, so a mapping starting mid-window spans one
    # more of them: a warm 64M memfd read takes 1024 faults at 0 and 1025 at 4K.
    map_offset: int | str = 0
    # How a warm, hot or cold backing's pages enter the page cache (FILL_HELP): the way
    # decides its folio sizes (docs/large-folios.md). "write": 1 MiB write(2)s.
    fill: str = "write"
    # backing tmpfs only: a tmpfs of faultbench's own, mounted with huge=TMPFS_HUGE for the
    # sample (measurement/knobs/tmpfs.py); None: a file in `dir` (default /dev/shm)
    tmpfs_huge: str | None = None
    # Pad each mapper process's address space to this many mappings before its loop (0: as
    # it comes, about 25): each fault's VMA lookup walks them, and real processes have
    # hundreds to thousands.
    vmas: int = 0
    # App-launch sessions (apps > 0): `apps` apps of `size` bytes each, in `app_files` files,
    # launched `launches` times in all (0: twice each); a launch reads each page with
    # probability 1/touch_one_in and first writes `app_anon` bytes of anonymous heap.
    apps: int = 0
    app_files: int = 4
    launches: int = 0
    touch_one_in: int = 16
    app_anon: int = 0

    def normalized(self) -> Spec:
        """Defaults resolved and every field validated; raises SpecError with a clear message.

        Every field is checked for its type too: specs also come from meta.json files, which
        are read as untrusted input."""
        _choice("backing", self.backing, BACKINGS)
        for name, (low, high) in INT_FIELDS.items():
            _check_int(name, getattr(self, name), low, high)
        if self.vmas and (self.mapper_kind == "thread" or self.apps):
            raise SpecError("vmas pads a mapper process's own address space: thread mappers "
                            "share the caller's, and app launches have their own processes")
        for name in ("uffd_serve", "perf", "pagemap"):
            if not isinstance(getattr(self, name), bool):
                raise SpecError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.dir is not None and (not isinstance(self.dir, str) or not self.dir
                                     or "\0" in self.dir):
            raise SpecError(f"dir must be a directory path without NUL bytes, got {self.dir!r}")
        if isinstance(self.deadline_s, bool) or not isinstance(self.deadline_s, int | float):
            raise SpecError(f"deadline_s must be a number of seconds, got {self.deadline_s!r}")
        size = parse_size(self.size)
        page_size = os.sysconf("SC_PAGESIZE")
        if size % page_size:
            raise SpecError(f"size {self.size} is not a multiple of the {page_size}-byte page")
        offset = parse_size(self.map_offset, "map_offset", 0)
        window = window_bytes(page_size)
        if offset % page_size or offset >= window:
            raise SpecError(f"map_offset {self.map_offset!r} must be a multiple of the "
                            f"{page_size}-byte page below the {format_size(window)} window")
        if offset and self.backing == "hugetlb":
            raise SpecError("map_offset applies to small-page backings: a hugetlb mapping "
                            "starts on a huge page boundary")
        anon = self.backing == "anon"
        map_ = self.map or ("private" if anon else "shared")
        cache = self.cache or ("hole" if anon else "warm")
        _choice("map", map_, MAPS)
        _choice("access", self.access, ACCESSES)
        _choice("cache", cache, CACHES)
        _choice("uffd", self.uffd, UFFD_MODES)
        _choice("mapper_mode", self.mapper_mode, MAPPER_MODES)
        _choice("mapper_kind", self.mapper_kind, MAPPER_KINDS)
        _choice("uffd_mappers", self.uffd_mappers, UFFD_MAPPERS)
        _choice("populate", self.populate, POPULATES)
        pattern = canonical_pattern(self.pattern)
        fill = canonical_fill(self.fill)
        if fill != "write" and (cache == "hole" or self.backing == "hugetlb"):
            raise SpecError(f"fill {fill!r} populates the page cache: not with cache 'hole' "
                            "(nothing populated) or hugetlb (filled through a mapping)")
        if self.tmpfs_huge is not None:
            _choice("tmpfs_huge", self.tmpfs_huge, TMPFS_HUGE)
            if self.backing != "tmpfs" or self.dir is not None:
                raise SpecError("tmpfs_huge mounts a tmpfs of faultbench's own for backing "
                                "'tmpfs', without dir")
        if anon and cache != "hole":
            raise SpecError(
                f"cache {cache!r} needs a page cache; anonymous memory has none (use cache hole)"
            )
        if cache == "cold" and self.backing != "file":
            raise SpecError(
                "cache 'cold' drops clean file pages; shmem/hugetlb pages cannot be dropped "
                "without losing them (use 'hole' for never-populated shmem)"
            )
        if self.dir is not None and self.backing not in ("tmpfs", "file"):
            raise SpecError(f"dir applies to the tmpfs and file backings, not {self.backing!r}")
        if self.mappers > 1 and anon:
            raise SpecError("several mappers need a file to map: use memfd, tmpfs, file or hugetlb")
        if self.mappers == 1 and self.uffd != "none" and self.uffd_mappers == "later":
            raise SpecError(f"uffd_mappers 'later' registers every mapper but the first: with "
                            f"one mapper none, which measures uffd none, not {self.uffd}")
        if not 0 < self.deadline_s <= MAX_DEADLINE_S:
            raise SpecError(
                f"deadline_s must be more than 0 and at most {MAX_DEADLINE_S:.0f} seconds "
                f"(the longest a blocked fault is kept waiting), got {self.deadline_s}"
            )
        if self.app_anon != 0 and not self.apps:
            raise SpecError("app_anon applies to app launches (apps > 0)")
        if self.apps:
            return _normalized_apps(dataclasses.replace(self, map_offset=offset), size, cache,
                                    page_size)
        return dataclasses.replace(self, size=size, map=map_, cache=cache, pattern=pattern,
                                   map_offset=offset, fill=fill)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Spec:
        """The fields as written (validate with normalized())."""
        if not isinstance(data, dict):
            raise SpecError(f"a spec is an object of spec fields, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(map(str, set(data) - known))
        if unknown:
            raise SpecError(f"unknown spec field(s): {', '.join(unknown)}")
        return cls(**data)


def _normalized_apps(spec: Spec, size: int, cache: str, page_size: int) -> Spec:
    """An app-launch session: apps map their files privately and read them, nothing else."""
    anon = 0 if spec.app_anon == 0 else parse_size(spec.app_anon)
    if anon % page_size:
        raise SpecError(f"app_anon {spec.app_anon} is not a multiple of the {page_size}-byte page")
    if spec.backing != "file" or cache not in ("warm", "cold"):
        raise SpecError("app launches read files on a disk filesystem: backing 'file', cache "
                        "'warm' or 'cold'")
    if size % (spec.app_files * page_size):
        raise SpecError(f"size {spec.size} (one app) does not split into {spec.app_files} "
                        "files of whole pages")
    fixed = {"map": "private", "access": "read", "pattern": "random", "uffd": "none",
             "mappers": 1, "populate": "none"}
    defaults = Spec()
    for name, value in fixed.items():
        if getattr(spec, name) not in (value, getattr(defaults, name)):
            raise SpecError(f"app launches take {name} {value!r}, not {getattr(spec, name)!r}")
    return dataclasses.replace(spec, size=size, cache=cache, app_anon=anon,
                               launches=spec.launches or 2 * spec.apps, **fixed)


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    # bool is an int subclass, and `mappers = true` is a mistake, not 1
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpecError(f"{name} must be an integer from {low} to {high}, got {value!r}")


# The values measurement writes in Sample's fields so named; others are refused on read
STATUSES = ("ok", "unsupported", "error")
PLANES = ("native", "kvm-guest", "tcg-guest", "tcg-icount")
CLOCKS = ("icount", "wall")
LAUNCH_OUTCOMES = ("ok", "oom", "deadline", "error")


@dataclass
class Sample:
    """One mapper's measurement of one spec. Units are in the field names.

    Counts the kernel could not give are None, with the reason in `null_reasons`.
    `status` is "ok", "unsupported" (the kernel refused the scenario; `error` says why) or
    "error" (the scenario ran but the sample is not valid, e.g. the deadline expired).
    """

    spec: dict[str, Any]
    status: str = "ok"
    error: str | None = None
    mapper: int = 0
    plane: str = "native"
    clock: str = "wall"  # what *_ns count: real ns (wall), or guest instructions (icount)
    page_size: int = 0
    pages_touched: int = 0
    touch_ns: int | None = None
    ns_per_page: float | None = None
    faults_minor: int | None = None
    faults_major: int | None = None
    faults_per_page: float | None = None
    perf_page_faults: int | None = None
    pages_mapped: int | None = None
    resident_before_pages: int | None = None
    mmap_ns: int | None = None
    munmap_ns: int | None = None
    populate_ns: int | None = None  # the populate step, outside touch_ns
    populate_faults: int | None = None  # faults of the populate step, outside faults_*
    nivcsw: int | None = None  # involuntary context switches of the touching thread in the loop
    steal_ns: int | None = None  # steal time of all CPUs across the loop (10 ms resolution)
    window_offset: int | None = None  # the mapping's start modulo window_bytes(page_size)
    mappings: int | None = None  # in the touching process as its loop starts (/proc/self/maps)
    ticks: int | None = None  # local timer interrupts across the loop, all CPUs (LOC)
    registered: bool | None = None  # this mapper's range was registered with userfaultfd
    uffd_events: int | None = None
    uffd_ns: int | None = None
    uffd_features: int | None = None
    cycles: int | None = None
    instructions: int | None = None
    fs_type: str | None = None
    # present pages of the range per order of the folio each belongs to ({"0": 512, "9":
    # 32256}), read after the loop (native/folios.c); None with null_reasons["folios"]
    folios: dict[str, int] | None = None
    knobs: dict[str, Any] = field(default_factory=dict)  # knob values read back, not requested
    # App-launch sessions only (measurement/launch.py): launches that reported, the sum of
    # their resident sets at their end, /proc/vmstat deltas across the session, and how it
    # ended: "ok", "oom" (the OOM killer ended an app), "deadline" or "error".
    launches_done: int | None = None
    rss_pages: int | None = None
    vmstat: dict[str, int] = field(default_factory=dict)
    launch_outcome: str | None = None
    null_reasons: dict[str, str] = field(default_factory=dict)
    # sampled by a kernel profiler during the loop and munmap: slower, so not timing data
    profiled: bool = False
    # {"loop": ..., "munmap": ...} (measurement/profile.py fold()); a run moves it to
    # profiles.jsonl, so samples.jsonl never has it
    profile: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sample:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def folio_histogram(pages_per_order: Sequence[int]) -> dict[str, int]:
    """Sample.folios from native/folios.c's pages per order: the orders that have pages."""
    return {str(order): pages for order, pages in enumerate(pages_per_order) if pages}
