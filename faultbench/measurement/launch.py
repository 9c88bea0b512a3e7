"""App-launch sessions: what fault-around costs in memory when memory is short.

A spec with `apps > 0` is one session: `apps` apps, each `app_files` files on a disk
filesystem (`size` bytes per app), launched `launches` times in a seeded order (each pass
over the apps shuffled, as in "ten app launches, twice"). Each launch is a fresh process
(native/launch.c) that maps its app's files and reads a seeded sparse subset of their pages
(every launch of an app reads the same ones), then stays alive in the background with its
page tables, like a cached app, until the same app is launched again (the old process is
killed first: a cold relaunch) or the session ends. Pressure comes from outside: a working
set (all apps' files plus their heaps) larger than the memory of the machine or guest.

The session's sample sums the launches (faults, pages touched and mapped, resident sets,
launch times) and carries /proc/vmstat deltas read just before the first launch and just
after the last one reported, so the analysis can divide by `launches_done` (the anchors'
unit: allocstalls and refaults per launch). Files are O_TMPFILE (never named; a cold
session's are kept open for the next session of the same shape, until release_files() or the
worker's exit) and every app process is killed and reaped on every way out of the sample.
Standard library and the cffi module only.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

from faultbench.measurement._native import ffi, lib
from faultbench.measurement.knobs.sysfs import mount_of
from faultbench.measurement.spec import Sample, Spec, SpecError, folio_histogram

# The /proc/vmstat counters a session records: direct reclaim (allocstall_*), pages scanned
# and reclaimed by kswapd and direct reclaim, refaults of evicted pages, faults, OOM kills.
VMSTAT_PREFIXES = ("allocstall_", "pgscan_", "pgsteal_", "workingset_refault_",
                   "workingset_activate_")
VMSTAT_NAMES = ("pgfault", "pgmajfault", "oom_kill", "pgactivate", "pgdeactivate")
FILL_CHUNK = 1 << 20
_SUMS = ("pages_touched", "faults_minor", "faults_major", "pages_mapped", "rss_pages")


def read_vmstat(path: str = "/proc/vmstat") -> dict[str, int]:
    """The recorded counters of /proc/vmstat, read once (a kernel lacking one omits it)."""
    counters: dict[str, int] = {}
    for line in Path(path).read_text().splitlines():
        name, _, value = line.partition(" ")
        if name in VMSTAT_NAMES or name.startswith(VMSTAT_PREFIXES):
            counters[name] = int(value)
    return counters


def vmstat_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in sorted(before) if name in after}


def launch_order(apps: int, launches: int, seed: int) -> list[int]:
    """Which app each launch starts: passes over all apps, each pass in a seeded order."""
    rng = random.Random(seed)
    order: list[int] = []
    while len(order) < launches:
        one_pass = list(range(apps))
        rng.shuffle(one_pass)
        order += one_pass
    return order[:launches]


# The worker keeps the last session's files (unnamed, so they still vanish with it): writing
# hundreds of MiB through an emulated disk costs more than the launches. A cold session drops
# them from the page cache first, so each starts from the same state; a warm one writes anew.
_kept: dict[tuple[object, ...], list[list[int]]] = {}


def _app_files(spec: Spec, directory: str) -> list[list[int]]:
    """Each app's files, written and synced, dropped from the page cache when cold;
    O_TMPFILE, so they have no name and vanish with their descriptors."""
    key = (directory, spec.apps, spec.app_files, spec.size)
    if spec.cache == "cold" and key in _kept:
        for fds in _kept[key]:
            for fd in fds:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return _kept[key]
    release_files()
    file_size = spec.size // spec.app_files
    chunk = b"\x5a" * FILL_CHUNK
    apps: list[list[int]] = []
    try:
        for _ in range(spec.apps):
            fds: list[int] = []
            apps.append(fds)
            for _ in range(spec.app_files):
                fds.append(os.open(directory, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600))
                for offset in range(0, file_size, FILL_CHUNK):
                    os.pwrite(fds[-1], chunk[:min(FILL_CHUNK, file_size - offset)], offset)
                os.fsync(fds[-1])  # clean pages: no writeback during the launches
                if spec.cache == "cold":
                    os.posix_fadvise(fds[-1], 0, file_size, os.POSIX_FADV_DONTNEED)
    except OSError as exc:
        _close(apps)
        raise SpecError(f"cannot create the app files in {directory}: {exc.strerror}") from None
    if spec.cache == "cold":
        _kept[key] = apps
    return apps


def release_files() -> None:
    """Close the kept files (the worker's end does it too)."""
    for apps in _kept.values():
        _close(apps)
    _kept.clear()


def _close(apps: list[list[int]]) -> None:
    for fds in apps:
        for fd in fds:
            os.close(fd)


def measure_session(spec: Spec, directory: str, plane: str) -> Sample:
    """One app-launch session of a normalized spec (apps > 0)."""
    # native/launch.c's clock (fb_now_ns)
    deadline_ns = time.clock_gettime_ns(time.CLOCK_MONOTONIC_RAW) + int(spec.deadline_s * 1e9)
    sample = Sample(spec=spec.to_dict(), plane=plane, page_size=os.sysconf("SC_PAGESIZE"),
                    launch_outcome="ok")
    apps = _app_files(spec, directory)
    running: dict[int, int] = {}  # app -> pid of its background process
    keep: list[object] = []
    try:
        c_specs = [_c_spec(spec, app, fds, deadline_ns, keep) for app, fds in enumerate(apps)]
        result = ffi.new("struct fb_launch_result *")
        totals = dict.fromkeys(_SUMS, 0)
        touch_ns = launches = 0
        mapped_reason = folio_reason = ""
        folio_pages = [0] * len(result.folio_pages)
        before = read_vmstat()
        for app in launch_order(spec.apps, spec.launches, spec.seed):
            if app in running:
                lib.fb_launch_end(running.pop(app))
            if lib.fb_launch(c_specs[app], result) != 0:
                sample.status = "error"
                sample.error = (f"launch {launches + 1} (app {app}): "
                                f"{ffi.string(result.error).decode(errors='replace')}")
                sample.launch_outcome = "deadline" if result.timed_out else "error"
                break
            running[app] = result.pid
            launches += 1
            touch_ns += result.launch_ns
            for name in _SUMS:
                value = getattr(result, name)
                if name == "pages_mapped" and value < 0:
                    mapped_reason = ffi.string(result.mapped_reason).decode(errors="replace")
                totals[name] += max(value, 0)
            if result.folios_read:
                folio_pages = [a + b for a, b in zip(folio_pages, result.folio_pages, strict=True)]
            else:
                folio_reason = folio_reason or \
                    ffi.string(result.folio_reason).decode(errors="replace") or "not measured"
        after = read_vmstat()
    finally:
        for pid in running.values():
            lib.fb_launch_end(pid)
        if spec.cache != "cold":
            _close(apps)
    sample.vmstat = vmstat_delta(before, after)
    if sample.vmstat.get("oom_kill", 0) > 0:
        sample.status = "error"
        sample.launch_outcome = "oom"
        sample.error = (f"the OOM killer ended {sample.vmstat['oom_kill']} process(es) during "
                        f"the session{': ' + sample.error if sample.error else ''}")
    sample.launches_done = launches
    sample.touch_ns = touch_ns
    for name in _SUMS:
        setattr(sample, name, totals[name])
    if mapped_reason:
        sample.pages_mapped = None
        sample.null_reasons["pages_mapped"] = mapped_reason
    if launches and not folio_reason:
        sample.folios = folio_histogram(folio_pages)
    else:
        sample.null_reasons["folios"] = folio_reason or "no launch reported"
    if sample.pages_touched:
        sample.ns_per_page = touch_ns / sample.pages_touched
        sample.faults_per_page = (totals["faults_minor"] + totals["faults_major"]) \
            / sample.pages_touched
    sample.fs_type = _fs_type(directory)
    return sample


def _c_spec(spec: Spec, app: int, fds: list[int], deadline_ns: int, keep: list[object]) -> object:
    c_fds = ffi.new("int[]", fds)
    keep.append(c_fds)
    c = ffi.new("struct fb_launch_spec *")
    c.fds = c_fds
    c.files = len(fds)
    c.file_size = spec.size // spec.app_files
    c.one_in = spec.touch_one_in
    # a different subset per app, the same one on every launch of that app
    c.seed = (spec.seed * 1_000_003 + app) % (1 << 64)
    c.anon_size = spec.app_anon
    c.deadline_ns = deadline_ns
    keep.append(c)
    return c


def _fs_type(directory: str) -> str | None:
    mount = mount_of(directory)
    return mount.fs_type if mount else None

