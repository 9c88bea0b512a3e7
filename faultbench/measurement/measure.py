"""Spec -> native fb_run() -> Samples. Standard library and the cffi module only."""

from __future__ import annotations

import contextlib
import os
import resource
from pathlib import Path

from faultbench.measurement.knobs.catalog import fault_around_max
from faultbench.measurement.knobs.sysfs import mount_of
from faultbench.measurement.knobs.tmpfs import MountError, own_tmpfs
from faultbench.measurement.profile import PERIOD_NS, open_sink, profiles, read_sink
from faultbench.measurement.rundir.checks import clock_of
from faultbench.measurement.rundir.safefile import ResultsError, SafeDir
from faultbench.measurement.spec import (
    Sample,
    Spec,
    SpecError,
    folio_histogram,
    format_size,
    parse_fill,
    parse_pattern,
)

try:
    from faultbench.measurement import _native
    from faultbench.measurement._native import ffi, lib
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "faultbench's native module is not built: install the package with "
        "`pip install .` (or `pip install -e .`) from the faultbench checkout"
    ) from exc

# what a mapper process execs (native/mapper_main.c), installed beside the module
_MAPPER_PROGRAM = ffi.new("char[]", os.fsencode(Path(_native.__file__).with_name("_mapper")))

DEFAULT_DIRS = {"tmpfs": "/dev/shm", "file": "/var/tmp"}
MEMORY_SHARE = 0.8  # refuse a sample needing more than this share of MemAvailable
DISK_SHARE = 0.9

_ENUMS = {
    "backing": {"anon": lib.FB_ANON, "memfd": lib.FB_MEMFD, "tmpfs": lib.FB_TMPFS,
                "file": lib.FB_FILE, "hugetlb": lib.FB_HUGETLB},
    "cache": {"warm": lib.FB_WARM, "cold": lib.FB_COLD, "hole": lib.FB_HOLE,
              "hot": lib.FB_HOT},
    "pattern": {"seq": lib.FB_SEQ, "reverse": lib.FB_REVERSE, "random": lib.FB_RANDOM,
                "stride": lib.FB_STRIDE, "sparse": lib.FB_SPARSE},
    "uffd": {"none": lib.FB_UFFD_NONE, "missing": lib.FB_UFFD_MISSING,
             "wp": lib.FB_UFFD_WP, "minor": lib.FB_UFFD_MINOR},
    "uffd_mappers": {"all": lib.FB_REG_ALL, "first": lib.FB_REG_FIRST,
                     "later": lib.FB_REG_LATER},
    "populate": {"none": lib.FB_POPULATE_NONE, "madvise": lib.FB_POPULATE_MADVISE,
                 "map": lib.FB_POPULATE_MAP},
    "fill": {"write": lib.FB_FILL_WRITE, "fallocate": lib.FB_FILL_FALLOCATE,
             "hole-read": lib.FB_FILL_HOLE_READ},
}
_STATUS = {lib.FB_OK: "ok", lib.FB_UNSUPPORTED: "unsupported", lib.FB_ERROR: "error"}
_COUNTS = ("touch_ns", "faults_minor", "faults_major", "perf_page_faults", "cycles",
           "instructions", "pages_mapped", "resident_before_pages", "mmap_ns", "munmap_ns",
           "uffd_events", "uffd_ns", "populate_ns", "populate_faults", "nivcsw", "steal_ns",
           "window_offset", "mappings", "ticks")


def current_plane() -> str:
    """native, kvm-guest, tcg-icount or tcg-guest: a booted guest says so on its kernel
    command line."""
    try:
        tokens = Path("/proc/cmdline").read_text().split()
    except OSError:
        return "native"
    for token in tokens:
        if token.startswith("faultbench.plane="):
            return token.split("=", 1)[1]
    return "native"


def meminfo() -> dict[str, int]:
    """/proc/meminfo read once: field -> number (kB for sizes, a count for HugePages_*)."""
    return proc_numbers("/proc/meminfo")


def proc_numbers(path: str) -> dict[str, int]:
    """A /proc file of `Name: number [kB]` lines (meminfo, status) read once: name -> number,
    lines whose value is no number left out."""
    fields: dict[str, int] = {}
    try:
        text = Path(path).read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        name, _, value = line.partition(":")
        with contextlib.suppress(ValueError, IndexError):
            fields[name] = int(value.split()[0])
    return fields


def hugetlb_shortfall(spec: Spec) -> str | None:
    """Why this machine cannot back spec with huge pages, or None if it can."""
    info = meminfo()
    pages = info.get("HugePages_Free", 0)
    huge_kb = info.get("Hugepagesize", 0)
    if pages * huge_kb * 1024 >= spec.size:  # mappers share the one file
        return None
    return (
        f"hugetlb needs {format_size(spec.size)} of free huge pages, {pages} of "
        f"{huge_kb} kB free here (reserve them with sysctl vm.nr_hugepages)"
    )


def backing_dir(spec: Spec) -> str:
    """The directory a tmpfs or file backing creates its file in ("" for the others)."""
    return spec.dir or DEFAULT_DIRS.get(spec.backing, "")


def check_backing_dir(spec: Spec) -> None:
    """As root, refuse the backing's directory as a results directory is refused (SafeDir:
    reached through a link another user made or could replace, owned by another user, or
    writable by one without the sticky bit): the backing file is created and filled there,
    `size` bytes, wherever its owner redirects it. A sticky one (/dev/shm) will do: the file
    is made O_EXCL and unlinked at once."""
    directory = backing_dir(spec)
    if not directory or os.geteuid() != 0:
        return
    try:
        SafeDir.open(Path(directory), sticky_ok=True).close()
    except ResultsError as exc:
        raise SpecError(f"dir: {exc}") from None


def memory_needed(spec: Spec) -> int:
    """The memory a sample (not an app session) holds: its shared pages, in the page cache
    unless on a disk file or hugetlbfs, and each mapper's private copy when it writes."""
    copies = spec.mappers if spec.map == "private" and spec.access == "write" else 0
    in_page_cache = 0 if spec.backing in ("file", "hugetlb") else spec.size
    return spec.size * copies + in_page_cache


def check_resources(spec: Spec) -> None:
    """Refuse, before anything is created, a sample this machine cannot hold, or whose
    backing directory root must not write into."""
    check_backing_dir(spec)
    if spec.apps:  # short of memory on purpose, but within what the machine has at all
        _check_app_memory(spec)
        _check_disk(spec, spec.size * spec.apps)
        return
    _check_address_space(spec)
    in_memory = memory_needed(spec)
    available_kb = meminfo().get("MemAvailable")
    if available_kb is not None and in_memory > MEMORY_SHARE * available_kb * 1024:
        raise SpecError(
            f"size {format_size(spec.size)} needs {in_memory / 2**20:,.0f} MiB of memory but "
            f"only {available_kb / 2**10:,.0f} MiB is available (refusing above "
            f"{MEMORY_SHARE:.0%})"
        )
    # a tmpfs of faultbench's own (tmpfs_huge) is sized for it; a given one may be full
    if spec.backing == "file" or (spec.backing == "tmpfs" and not spec.tmpfs_huge):
        _check_disk(spec, spec.size)


def _check_address_space(spec: Spec) -> None:
    """Refuse a sample whose mappings cannot fit under `ulimit -v` (RLIMIT_AS) beside what
    this process maps already: mmap would fail with ENOMEM, which names no limit. At least
    the mapping of each mapper in this process (threads share it) and one placement
    reservation (native/region.c: two fault-around windows more)."""
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if limit == resource.RLIM_INFINITY:
        return
    mapped = proc_numbers("/proc/self/status").get("VmSize", 0) * 1024
    mappers = spec.mappers if spec.mapper_kind == "thread" else 1
    needed = mappers * spec.size + 2 * fault_around_max()
    if mapped + needed > limit:
        raise SpecError(
            f"size {format_size(spec.size)} needs {needed / 2**20:,.0f} MiB of address space "
            f"beside the {mapped / 2**20:,.0f} MiB this process maps, and the limit on "
            f"address space is {limit / 2**20:,.0f} MiB: raise `ulimit -v`")


def _check_app_memory(spec: Spec) -> None:
    """Apps' files and heaps may exceed the memory available (reclaim under that pressure is
    what a session measures), not memory and swap together: then the OOM killer, not
    reclaim, ends every session. On this machine's own kernel only: a booted guest is the
    sandbox where an OOM is measured on purpose (its launch_outcome), and nothing else of
    the host's lives in it."""
    info = meminfo()
    if "MemTotal" not in info or current_plane() != "native":
        return
    footprint = spec.apps * (spec.size + spec.app_anon)
    total = (info["MemTotal"] + info.get("SwapTotal", 0)) * 1024
    if footprint > total:
        raise SpecError(
            f"{spec.apps} apps of {format_size(spec.size)} files and {format_size(spec.app_anon)}"
            f" heap need {footprint / 2**30:.1f} GiB, more than this machine's memory and swap "
            f"together ({total / 2**30:.1f} GiB)"
        )


# Kernel interfaces mounted as filesystems: a file cannot be made in them (or is no file on
# any medium), and their free space reads 0, which would be refused as a full disk.
PSEUDO_FS = frozenset(("proc", "sysfs", "devtmpfs", "devpts", "debugfs", "tracefs",
                       "securityfs", "cgroup", "cgroup2", "configfs", "pstore", "bpf",
                       "mqueue", "fusectl", "binfmt_misc", "efivarfs"))


def _check_disk(spec: Spec, size: int) -> None:
    directory = backing_dir(spec)
    where = mount_of(directory)
    if where is not None and where.fs_type in PSEUDO_FS:
        raise SpecError(f"dir {directory} is on {where.fs_type}, not a filesystem faultbench "
                        "can write a file in: give a directory on a disk or a tmpfs")
    try:
        stat = os.statvfs(directory)
    except OSError as exc:
        raise SpecError(f"dir {directory}: {exc.strerror}") from exc
    free_disk = stat.f_bavail * stat.f_frsize
    if size > DISK_SHARE * free_disk:
        raise SpecError(
            f"size {format_size(size)} needs that much room in {directory}, which has "
            f"{free_disk / 2**20:,.1f} MiB free (refusing above {DISK_SHARE:.0%})"
        )


def _c_spec(spec: Spec, keep: list[object], profile_fd: int = -1,
            directory: str | None = None, plane: str = "native") -> object:
    pattern, stride = parse_pattern(spec.pattern)
    # any bytes a path may hold
    dir_c = ffi.new("char[]", os.fsencode(directory or backing_dir(spec)))
    keep.append(dir_c)
    c = ffi.new("struct fb_spec *")
    c.backing = _ENUMS["backing"][spec.backing]
    c.shared = spec.map == "shared"
    c.write = spec.access == "write"
    c.cache = _ENUMS["cache"][spec.cache]
    c.pattern = _ENUMS["pattern"][pattern]
    c.uffd = _ENUMS["uffd"][spec.uffd]
    c.size = spec.size
    c.stride = stride
    c.seed = spec.seed
    c.dir = dir_c
    c.mappers = spec.mappers
    c.concurrent = spec.mapper_mode == "concurrent"
    c.threads = spec.mapper_kind == "thread"
    c.registered = _ENUMS["uffd_mappers"][spec.uffd_mappers]
    c.deadline_ns = int(spec.deadline_s * 1e9)
    c.uffd_serve = spec.uffd_serve
    c.perf = spec.perf
    c.populate = _ENUMS["populate"][spec.populate]
    c.pagemap = spec.pagemap
    c.map_offset = spec.map_offset
    c.profile_fd = profile_fd
    c.profile_period_ns = PERIOD_NS
    c.mapper_program = _MAPPER_PROGRAM
    fill, c.fill_chunk = parse_fill(spec.fill)
    c.fill = _ENUMS["fill"][fill]
    c.vmas = spec.vmas
    # On the instruction clock another task's instructions are the loop's time (tick.c);
    # mappers started together are meant to share the CPU, and keep doing so.
    c.run_alone = clock_of(plane) == "icount" and spec.mapper_mode != "concurrent"
    return c


def _text(chars: object) -> str:
    return ffi.string(chars).decode(errors="replace")


def _sample(spec: Spec, result: object, mapper: int, plane: str) -> Sample:
    sample = Sample(
        spec=spec.to_dict(), status=_STATUS[result.status], error=_text(result.error) or None,
        mapper=mapper, plane=plane, clock=clock_of(plane), page_size=result.page_size,
        pages_touched=result.pages_touched, fs_type=_text(result.fs_type) or None,
    )
    reasons = {
        "perf_page_faults": _text(result.perf_reason),
        "cycles": _text(result.hw_reason),
        "instructions": _text(result.hw_reason),
        "uffd_events": _text(result.uffd_reason),
        "uffd_ns": _text(result.uffd_reason),
        "resident_before_pages": _text(result.resident_reason),
        "pages_mapped": _text(result.mapped_reason),
        "steal_ns": _text(result.steal_reason),
        "ticks": _text(result.ticks_reason),
        "populate_ns": _text(result.populate_reason),
        "populate_faults": _text(result.populate_reason),
    }
    for name in _COUNTS:
        value = getattr(result, name)
        if value >= 0:
            setattr(sample, name, value)
        elif sample.status == "ok":
            sample.null_reasons[name] = reasons.get(name) or "not measured"
    if sample.uffd_events is not None:
        sample.uffd_features = result.uffd_features
    sample.registered = bool(result.registered)
    if result.folios_read:
        sample.folios = folio_histogram(result.folio_pages)
    elif sample.status == "ok":
        sample.null_reasons["folios"] = _text(result.folio_reason) or "not measured"
    if sample.status == "ok" and sample.pages_touched:
        sample.ns_per_page = sample.touch_ns / sample.pages_touched
        sample.faults_per_page = (sample.faults_minor + sample.faults_major) / sample.pages_touched
    return sample


def measure_mappers(spec: Spec, profile: bool = False) -> list[Sample]:
    """Measure spec once; one Sample per mapper (mapper 0 first).

    profile: sample each mapper's loop and munmap with the kernel profiler (its samples are
    `profiled`, its kernel stacks in `profile`; `null_reasons["profile"]` when it could not);
    check `profile.unavailable()` first, which says why in one line."""
    spec = spec.normalized()
    check_resources(spec)
    plane = current_plane()
    if spec.backing == "hugetlb" and (why := hugetlb_shortfall(spec)):
        return [sample_without_result(spec, plane, "unsupported", why)]
    if spec.apps:
        from faultbench.measurement.launch import measure_session

        return [measure_session(spec, backing_dir(spec), plane)]
    sink = -1
    try:
        with contextlib.ExitStack() as stack:
            directory = spec.tmpfs_huge and stack.enter_context(own_tmpfs(spec.tmpfs_huge))
            sink = open_sink() if profile else -1
            return _run(spec, sink, directory or None, plane, profile)
    except MountError as exc:
        return [sample_without_result(spec, plane, "unsupported", str(exc))]
    finally:
        if sink >= 0:
            os.close(sink)


def sample_without_result(spec: Spec, plane: str, status: str, why: str) -> Sample:
    """A sample that says why it has no numbers: one a results file can hold (page_size
    is this machine's: the reader checks it)."""
    return Sample(spec=spec.to_dict(), status=status, error=why, plane=plane,
                  clock=clock_of(plane), page_size=os.sysconf("SC_PAGESIZE"))


def _run(spec: Spec, sink: int, directory: str | None, plane: str,
         profile: bool) -> list[Sample]:
    keep: list[object] = []
    c_spec = _c_spec(spec, keep, sink, directory, plane)
    results = ffi.new("struct fb_result[]", spec.mappers)
    failed = lib.fb_run(c_spec, results) != 0
    samples = [_sample(spec, results[i], i, plane) for i in range(1 if failed else spec.mappers)]
    if profile:
        _attach_profiles(samples, results, read_sink(sink))
    return samples


def _attach_profiles(samples: list[Sample], results: object, data: bytes) -> None:
    folded = profiles(data, len(samples))
    for sample, profile in zip(samples, folded, strict=True):
        sample.profiled = True
        reason = _text(results[sample.mapper].profile_reason)
        if sample.status != "ok":
            continue
        if profile is None or reason:
            sample.null_reasons["profile"] = reason or "no profile was recorded"
        sample.profile = profile


def measure(spec: Spec) -> Sample:
    """Measure a single-mapper spec once."""
    if spec.mappers != 1:
        raise SpecError("measure() takes one mapper; use measure_mappers() for several")
    return measure_mappers(spec)[0]
