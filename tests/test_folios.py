"""Folio sizes per sample (native/folios.c), read on this kernel's real mappings and checked
against an independent Python read of /proc/self/pagemap and /proc/kpageflags."""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from analysis_runs import faultbench, table_row
from faultbench.measurement._native import ffi, lib
from groups import ALONE, HOST
from images import require_boot_image

from faultbench import Spec, SpecError, load, measure
from faultbench.analysis.summary import summary
from faultbench.measurement.knobs.sysfs import release_own_tmpfs
from faultbench.measurement.knobs.tmpfs import own_tmpfs

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="page frame numbers need root")
PRESENT, PFN_MASK = 1 << 63, (1 << 55) - 1
HEAD, TAIL = 1 << 15, 1 << 16
# ext4 makes large page-cache folios since 6.16 (XFS since 5.18)
EXT4_LARGE = tuple(int(part) for part in os.uname().release.split(".")[:2]) >= (6, 16)


def python_folios(address: int, size: int, pid: int | str = "self") -> dict[str, int]:
    """Pages per folio order of the present pages of [address, address + size) of process
    `pid`, read independently of native/folios.c: every folio is identified by its head PFN,
    and every PFN of it remembered."""
    page = mmap.PAGESIZE
    count = size // page
    with open(f"/proc/{pid}/pagemap", "rb") as pagemap:
        pagemap.seek(address // page * 8)
        entries = struct.unpack(f"{count}Q", pagemap.read(count * 8))
    folio_pages: dict[int, int] = {}  # pfn -> pages of its folio
    histogram: Counter[str] = Counter()
    with open("/proc/kpageflags", "rb") as kpageflags:
        def flags(pfn: int) -> int:
            kpageflags.seek(pfn * 8)
            return struct.unpack("Q", kpageflags.read(8))[0]

        for entry in entries:
            if not entry & PRESENT:
                continue
            pfn = entry & PFN_MASK
            assert pfn, "PFNs hidden: not root?"
            if pfn not in folio_pages:
                head = pfn
                while flags(head) & TAIL:
                    head -= 1
                n = 1
                if flags(head) & HEAD:
                    while flags(head + n) & TAIL:
                        n += 1
                assert n & (n - 1) == 0, f"a folio of {n} pages"
                folio_pages.update(dict.fromkeys(range(head, head + n), n))
            histogram[str(folio_pages[pfn].bit_length() - 1)] += 1
    return dict(histogram)


def native_folios(address: int, size: int) -> dict[str, int]:
    pages = ffi.new("int64_t[]", lib.FB_FOLIO_ORDERS)
    reason = ffi.new("char[]", lib.FB_TEXT)
    assert lib.fb_folio_orders(ffi.cast("void *", address), size, pages, reason) == 0, \
        ffi.string(reason)
    return {str(order): n for order, n in enumerate(pages) if n}


def address_of(mapping: mmap.mmap) -> int:
    return int(ffi.cast("uintptr_t", ffi.from_buffer(mapping)))


def fill(fd: int, sizes: list[int]) -> None:
    """write()s of these sizes, one after another: the page cache's folios follow them."""
    for size in sizes:
        os.write(fd, b"\x5a" * size)


@contextlib.contextmanager
def backing_file(fs: str, request: pytest.FixtureRequest) -> Iterator[int]:
    """An open file on `fs`: ext4 (this host's root), xfs (a loop mount), tmpfs-huge (a tmpfs
    mounted huge=always) or memfd."""
    if fs == "memfd":
        fd = os.memfd_create("folios")
        try:
            yield fd
        finally:
            os.close(fd)
        return
    with contextlib.ExitStack() as stack:
        directory = {"ext4": lambda: "/var/tmp", "xfs": lambda: request.getfixturevalue("xfs_dir"),
                     "tmpfs-huge": lambda: stack.enter_context(own_tmpfs("always"))}[fs]()
        yield stack.enter_context(tempfile.TemporaryFile(dir=directory)).fileno()


@needs_root
@pytest.mark.parametrize("fs", ["ext4", "xfs", "tmpfs-huge", "memfd"])
@pytest.mark.parametrize("offset_pages,length_pages", [(0, 4096), (16, 1000)])
def test_native_read_matches_python(offset_pages: int, length_pages: int, fs: str,
                                    request: pytest.FixtureRequest, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A file written in mixed sizes (large folios on ext4 since 6.16, XFS since 5.18, PMD
    folios on a huge=always tmpfs, none in a memfd); the second mapping starts inside a folio
    and ends inside another, and its first pages are left untouched (not present)."""
    monkeypatch.setenv("FAULTBENCH_JOURNAL", str(tmp_path / "journal.json"))
    with backing_file(fs, request) as fd:
        fill(fd, [1 << 20] * 8 + [4096] * 64 + [65536] * 60 + [1 << 21] * 3)
        os.fsync(fd)
        page = mmap.PAGESIZE
        with mmap.mmap(fd, length_pages * page, offset=offset_pages * page,
                       prot=mmap.PROT_READ) as m:
            for at in range(64 * page, len(m), page):
                m[at]
            expected = python_folios(address_of(m), len(m))
            got = native_folios(address_of(m), len(m))
            assert got == expected
            assert sum(got.values()) < length_pages or offset_pages == 0
            if offset_pages == 0 and fs == "memfd":
                assert set(got) == {"0"}
            elif offset_pages == 0 and (EXT4_LARGE or fs != "ext4"):
                assert set(got) - {"0"}, f"no large folio on {fs}"


@needs_root
def test_memfd_sample_is_all_order_0() -> None:
    sample = measure(Spec(backing="memfd", size=8 << 20))
    assert sample.status == "ok", sample.error
    assert sample.folios == {"0": sample.pages_mapped}
    assert "folios" not in sample.null_reasons


@needs_root
def test_file_sample_counts_every_mapped_page() -> None:
    sample = measure(Spec(backing="file", dir="/var/tmp", size=32 << 20))
    assert sample.status == "ok", sample.error
    assert sum(sample.folios.values()) == sample.pages_mapped
    if sample.fs_type in ("ext4", "xfs") and EXT4_LARGE:
        assert max(map(int, sample.folios)) > 0


@needs_root
def test_xfs_dir_records_its_fs_type_and_large_folios(xfs_dir: str) -> None:
    out = faultbench("measure", "--backing", "file", "--dir", xfs_dir, "--size", "16M",
                     "--json").stdout
    sample = json.loads(out)
    assert sample["status"] == "ok" and sample["fs_type"] == "xfs"
    assert sum(sample["folios"].values()) == sample["pages_mapped"]
    assert max(map(int, sample["folios"])) > 0  # XFS makes large folios since 5.18


def test_pagemap_off_gives_null_with_reason() -> None:
    sample = measure(Spec(backing="memfd", size=1 << 20, pagemap=False))
    assert sample.folios is None
    assert "pagemap off" in sample.null_reasons["folios"]


@needs_root
def test_without_cap_sys_admin_null_with_reason() -> None:
    """The same measurement without CAP_SYS_ADMIN: pagemap hides the page frame numbers."""
    code = ("from faultbench import Spec, measure\n"
            "s = measure(Spec(backing='memfd', size=1 << 20))\n"
            "print(s.status, s.folios, s.null_reasons['folios'])")
    out = subprocess.run(["setpriv", "--inh-caps=-sys_admin", "--bounding-set=-sys_admin",
                          sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.startswith("ok None /proc/self/pagemap hides page frame numbers"), out


@needs_root
def test_an_app_launch_records_the_folios_it_mapped(xfs_dir: str) -> None:
    """A launch sums its files' folios itself (native/launch.c); checked against an
    independent read of its page table while it waits in the background, as a cached app."""
    fds = [os.open(xfs_dir, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600) for _ in range(2)]
    result = ffi.new("struct fb_launch_result *")
    try:
        for fd in fds:
            fill(fd, [1 << 20] * 4)  # 1 MiB folios on XFS since 6.6, 4 KiB before
        c_fds = ffi.new("int[]", fds)
        spec = ffi.new("struct fb_launch_spec *", {
            "fds": c_fds, "files": len(fds), "file_size": 4 << 20, "one_in": 8, "seed": 7,
            "deadline_ns": time.clock_gettime_ns(time.CLOCK_MONOTONIC_RAW) + 60 * 10**9})
        assert lib.fb_launch(spec, result) == 0, ffi.string(result.error)
        inodes = {os.fstat(fd).st_ino for fd in fds}
        expected: Counter[str] = Counter()
        for line in Path(f"/proc/{result.pid}/maps").read_text().splitlines():
            span, _, _, _, inode, *_ = line.split()
            if int(inode) in inodes:
                start, end = (int(part, 16) for part in span.split("-"))
                expected.update(python_folios(start, end - start, result.pid))
        assert result.folios_read, ffi.string(result.folio_reason)
        recorded = {str(order): n for order, n in enumerate(result.folio_pages) if n}
        assert recorded == dict(expected)
        assert sum(recorded.values()) == result.pages_mapped > result.pages_touched > 0
    finally:
        if result.pid > 0:
            lib.fb_launch_end(result.pid)
        for fd in fds:
            os.close(fd)


def test_a_session_sums_its_launches_folios() -> None:
    sample = measure(Spec(backing="file", dir="/var/tmp", size="4M", apps=2, app_files=2,
                          launches=3, cache="cold", deadline_s=60))
    assert sample.status == "ok", sample.error
    if ROOT:
        assert sum(sample.folios.values()) == sample.pages_mapped > 0
    else:
        assert sample.folios is None and sample.null_reasons["folios"]


def test_a_booted_run_leaves_guest_directories_to_the_guest(tmp_path: Path) -> None:
    """/var/tmp/xfs is a guest's scratch XFS disk: a booted run must not look for it here
    (each guest checks its own disks per sample), a native run must refuse it if missing."""
    from faultbench.measurement.runner import RunError, start
    from faultbench.measurement.workload import load as load_workload

    guest_only = tmp_path / "absent"
    path = tmp_path / "w.toml"
    path.write_text(f'description = "x"\ndetects = "x"\nrepetitions = 1\n[defaults]\n'
                    f'backing = "file"\nsize = "1M"\ndir = "{guest_only}"\n[[matrix]]\n')
    with pytest.raises(RunError, match="No such file"):
        start(load_workload(str(path)), tmp_path / "native")
    start(load_workload(str(path)), tmp_path / "booted", plane="tcg-guest").lock.release()
    assert (tmp_path / "booted" / "meta.json").is_file()


# ---- backings that make large folios on purpose: fill, tmpfs huge=

def own_mounts() -> list[str]:
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if "faultbench-tmpfs-" in line]


@needs_root
def test_fill_decides_the_folios_of_a_disk_file() -> None:
    """write(2)s of 4K and 64K make 4 KiB and 64 KiB folios on ext4 (6.16+) or XFS."""
    folios = {}
    for fill in ("write:4K", "write:64K"):
        sample = measure(Spec(backing="file", dir="/var/tmp", size=8 << 20, fill=fill))
        assert sample.status == "ok", sample.error
        assert sample.spec["fill"] == fill
        folios[fill] = sample.folios
    assert folios["write:4K"] == {"0": 2048}
    if EXT4_LARGE:
        assert folios["write:64K"] == {"4": 2048}


@pytest.mark.parametrize("fill,canonical", [("write:1M", "write"), ("hole-read", "hole-read"),
                                            ("write:65536", "write:64K")])
def test_fill_spellings(fill: str, canonical: str) -> None:
    assert Spec(backing="file", fill=fill).normalized().fill == canonical


@pytest.mark.parametrize("spec,words", [
    (dict(fill="write:3K"), "not one of write"), (dict(fill="write:128M"), "not one of write"),
    (dict(fill="fallocate", cache="hole"), "not with cache 'hole'"),
    (dict(backing="memfd", tmpfs_huge="always"), "for backing 'tmpfs'"),
    (dict(backing="tmpfs", tmpfs_huge="always", dir="/dev/shm"), "without dir"),
    (dict(backing="tmpfs", tmpfs_huge="force"), "not one of")])
def test_bad_fill_and_tmpfs_huge_are_refused(spec: dict, words: str) -> None:
    with pytest.raises(SpecError, match=words):
        Spec(**{"backing": "file", **spec}).normalized()


@needs_root
@pytest.mark.parametrize("huge,order", [("never", "0"), ("always", "9"), ("within_size", "9")])
def test_own_tmpfs_huge_makes_its_folios_and_is_gone_after(huge: str, order: str,
                                                           tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    monkeypatch.setenv("FAULTBENCH_JOURNAL", str(tmp_path / "journal.json"))
    sample = measure(Spec(backing="tmpfs", tmpfs_huge=huge, size=8 << 20))
    assert sample.status == "ok", sample.error
    assert sample.fs_type == "tmpfs" and sample.spec["tmpfs_huge"] == huge
    # 2 MiB folios need THP (this test's host has it) and free 2 MiB blocks: most, not all
    assert sample.folios.get(order, 0) >= 2048 * 3 // 4 and sum(sample.folios.values()) == 2048
    assert own_mounts() == [] and list(tmp_path.iterdir()) == []


def _kill_in_mount_window(journal: Path) -> subprocess.CompletedProcess[str]:
    """A process that SIGKILLs itself between mounting its tmpfs and detaching it."""
    code = ("import os, signal, subprocess\n"
            "from faultbench.measurement.knobs import sysfs\n"
            "real = subprocess.run\n"
            "def run(args, **kw):\n"
            "    if args[0] == 'umount':\n"
            "        os.kill(os.getpid(), signal.SIGKILL)\n"
            "    return real(args, **kw)\n"
            "sysfs.subprocess.run = run\n"
            "from faultbench import Spec, measure\n"
            "measure(Spec(backing='tmpfs', tmpfs_huge='always', size=1 << 20))\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "FAULTBENCH_JOURNAL": str(journal)})


@needs_root
def test_sigkill_while_mounted_then_restore_unmounts(tmp_path: Path) -> None:
    journal = tmp_path / "journal.json"
    killed = _kill_in_mount_window(journal)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    try:
        # mounted in the killed process's own mount namespace, which ended with it
        assert own_mounts() == []
        left = sorted(p.name for p in tmp_path.iterdir())
        assert left[0].startswith("faultbench-tmpfs-") and left[1].startswith("mount-")
        restored = subprocess.run([sys.executable, "-m", "faultbench", "restore"],
                                  capture_output=True, text=True, check=True,
                                  env={**os.environ, "FAULTBENCH_JOURNAL": str(journal)})
        assert restored.stdout == (f"restored {left[1]}: empty mount point "
                                   f"{tmp_path / left[0]} removed (nothing was mounted)\n")
        assert own_mounts() == [] and list(tmp_path.iterdir()) == []
    finally:
        for line in own_mounts():  # never leave a mount behind, even when the test fails
            subprocess.run(["umount", line.split()[4]], check=False)


def test_restore_unmounts_only_its_own_tmpfs(tmp_path: Path) -> None:
    """A journal is untrusted: a target that is not an own tmpfs beside it is left alone."""
    other = tmp_path / "elsewhere"
    other.mkdir()
    release_own_tmpfs(str(other), str(tmp_path / "j" / "mount-1.json"))
    release_own_tmpfs("/", str(tmp_path / "mount-1.json"))
    assert other.is_dir()


# ---- reports and compare: a folios column where the folio sizes differ between rows

FILL_WORKLOAD = """description = "folio sizes by fill"
repetitions = 2\nwarmups = 0\nseed = 1
[defaults]
size = "4M"
backing = "file"
dir = "{dir}"
[[matrix]]
fill = ["write:4K", "write:64K", "write", "hole-read"]
"""


@pytest.fixture(scope="module")
def fill_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("fill")
    (base / "w.toml").write_text(FILL_WORKLOAD.format(dir="/var/tmp"))
    faultbench("run", base / "w.toml", "--out", base / "run")
    return base / "run"


@needs_root
@pytest.mark.skipif(not EXT4_LARGE, reason="4 KiB folios only on ext4 before 6.16")
def test_report_shows_folios_where_they_differ(fill_run: Path) -> None:
    text = faultbench("report", fill_run, "--no-figures").stdout
    assert "folios" in text.split("per page touched")[1].splitlines()[1]
    assert table_row(text, "fill=write:4K")[-1:] == ["100%"]
    assert table_row(text, "fill=write:64K")[-2:] == ["64K", "100%"]
    samples = load(fill_run)
    assert samples.loc[samples["fill"] == "write:4K", "folio_pages_4K"].eq(1024).all()
    data = json.loads(faultbench("report", fill_run, "--json").stdout)
    assert {s["folios"] for s in data["scenarios"]} >= {"4K 100%", "64K 100%", "1M 100%"}


@needs_root
@pytest.mark.skipif(not EXT4_LARGE, reason="4 KiB folios only on ext4 before 6.16")
def test_compare_shows_base_and_new_folios(fill_run: Path) -> None:
    text = faultbench("compare", "--by", "fill", f"{fill_run}:write",
                      f"{fill_run}:hole-read").stdout
    assert "folios" in text and "1M -> " in text  # one size a side: no "100%"
    text = faultbench("compare", "--by", "fill", f"{fill_run}:write:4K",
                      f"{fill_run}:write:64K").stdout  # values with a colon
    assert "4K -> 64K" in text


def test_a_folios_value_that_is_not_one_is_an_invalid_line(tmp_path: Path) -> None:
    """samples.jsonl is untrusted: a malformed folios object drops its line, counted as
    invalid (R38 minor: it used to stay, its folios left out without a word)."""
    sample = measure(Spec(backing="memfd", size=1 << 20)).to_dict()
    bad = ({"x": 1}, {"0": -1}, [1], {"99": 1}, {"0": True}, {"\u0661": 1}, {"01": 1})
    lines = [sample, *({**sample, "folios": each} for each in bad)]
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    frame = load(tmp_path)
    assert len(frame) == 1
    (dropped,) = frame.attrs["dropped"].values()
    assert sum(dropped.invalid.values()) == len(bad), dropped


# ---- shmem mTHP per size (thp.hugepages-<N>kB.shmem_enabled, Linux 6.11+)

MTHP_64K = "/sys/kernel/mm/transparent_hugepage/hugepages-64kB/shmem_enabled"
needs_mthp = pytest.mark.skipif(not os.path.exists(MTHP_64K) or not ROOT,
                                reason="per-size shmem THP knobs: Linux >= 6.11, root")


def knob_now() -> str:
    return Path(MTHP_64K).read_text().split("[")[1].split("]")[0]


def measure_cli(journal: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "faultbench", "measure", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "FAULTBENCH_JOURNAL": str(journal)},
                            start_new_session=True)


@ALONE
@HOST
@needs_mthp
def test_mthp_shmem_knob_makes_64k_folios_of_anon_shared_memory(tmp_path: Path) -> None:
    """The per-size knob governs anonymous shared memory (not memfd or tmpfs files, which
    follow the mount's huge= or the global shmem_enabled); it is set and restored."""
    before = knob_now()
    done = measure_cli(tmp_path / "j.json", "--backing", "anon", "--map", "shared",
                       "--size", "4M", "--json",
                       "--set", "thp.hugepages-64kB.shmem_enabled=always,never")
    out, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    folios = {json.loads(line)["knobs"]["thp.hugepages-64kB.shmem_enabled"]:
              json.loads(line)["folios"] for line in out.splitlines()}
    assert folios == {"always": {"4": 1024}, "never": {"0": 1024}}
    assert knob_now() == before


@ALONE
@HOST
@needs_mthp
def test_mthp_knob_after_sigkill_is_restored_by_restore(tmp_path: Path) -> None:
    before = knob_now()
    value = "always" if before != "always" else "within_size"
    journal = tmp_path / "j.json"
    run = measure_cli(journal, "--backing", "anon", "--map", "shared", "--size", "1M",
                      "--repeat", "100000", "--set", f"thp.hugepages-64kB.shmem_enabled={value}")
    try:
        for _ in range(600):
            if knob_now() == value and journal.exists():
                break
            time.sleep(0.05)
        assert knob_now() == value, run.stderr
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
        assert knob_now() == value and journal.exists()  # nothing ran to restore it
    finally:
        restored = subprocess.run([sys.executable, "-m", "faultbench", "restore"],
                                  capture_output=True, text=True,
                                  env={**os.environ, "FAULTBENCH_JOURNAL": str(journal)})
    assert restored.returncode == 0, restored.stderr
    assert f"thp.hugepages-64kB.shmem_enabled: {value} -> {before}" in restored.stdout
    assert knob_now() == before and not journal.exists()


def test_missing_size_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    """On a kernel before 6.8 there is no hugepages-<N>kB directory at all (a fake THP
    directory stands in for one: the parsing of the refusal only)."""
    from faultbench.measurement.knobs import catalog as knobs

    monkeypatch.setattr(knobs, "THP_DIR", str(tmp_path))
    with pytest.raises(knobs.KnobError, match=r"need Linux >= 6.8, their shmem_enabled >= 6.11"):
        knobs.resolve("thp.hugepages-64kB.shmem_enabled")


@HOST
@needs_root
def test_summary_counts_rows_whose_tmpfs_huge_is_unset(tmp_path: Path) -> None:
    """`run`'s summary: a row whose label fields are unset (a memfd's dir and tmpfs_huge)
    has its counts."""
    (tmp_path / "w.toml").write_text(
        'description = "tmpfs_huge set and unset"\nrepetitions = 2\nwarmups = 0\nseed = 1\n'
        '[defaults]\nsize = "1M"\n[[matrix]]\nbacking = "memfd"\n'
        '[[matrix]]\nbacking = "tmpfs"\ntmpfs_huge = ["never", "always"]\n'
        f'[[matrix]]\nbacking = "file"\ndir = ["/var/tmp", "{tmp_path}"]\n')
    faultbench("run", tmp_path / "w.toml", "--out", tmp_path / "run", "-q")
    text = summary(tmp_path / "run")
    cells = table_row(text, "memfd")
    assert cells[0] == "16" and float(cells[1]) == 0.0625


def test_booted_kernel_measures_a_file_on_its_xfs_disk() -> None:
    """`measure --kernel` with `--dir /var/tmp/xfs`: the guest's XFS scratch disk, its type
    and folios recorded (one boot, 1-3 minutes under TCG). On the wall clock, the cheaper
    boot: what is read here are counts, which no clock moves (test_guest's knob scenarios
    cover the instruction clock)."""
    image = require_boot_image()
    out = faultbench("measure", "--kernel", image, "--backing", "file", "--dir",
                     "/var/tmp/xfs", "--size", "16M", "--fill", "hole-read", "--json",
                     "--clock", "wall").stdout
    found = json.loads(out.splitlines()[-1])
    assert found["status"] == "ok", found["error"]
    assert found["fs_type"] == "xfs" and found["spec"]["fill"] == "hole-read"
    assert sum(found["folios"].values()) == found["pages_mapped"]
    print("guest XFS hole-read folios:", found["folios"], "faults", found["faults_minor"])
