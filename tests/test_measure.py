"""The measurement core against the running kernel: real mappings, faults and userfaultfd."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from groups import HOST

from faultbench import Spec, SpecError, measure, measure_mappers

ROOT = Path(__file__).resolve().parent.parent
SIZE = 16 << 20
PAGES = SIZE // os.sysconf("SC_PAGESIZE")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="userfaultfd here needs root")


def faults(sample) -> int:
    return sample.faults_minor + sample.faults_major


def test_warm_memfd_read_faults_around():
    sample = measure(Spec(backing="memfd", size=SIZE))
    assert sample.status == "ok", sample.error
    assert sample.pages_touched == PAGES
    assert faults(sample) < PAGES / 4
    assert sample.pages_mapped >= sample.pages_touched
    assert sample.resident_before_pages is None  # mincore would warm the CPU caches
    assert "cold" in sample.null_reasons["resident_before_pages"]
    assert sample.touch_ns > 0 and sample.munmap_ns > 0 and sample.mmap_ns > 0
    assert sample.spec["cache"] == "warm" and sample.spec["map"] == "shared"


@needs_root
@pytest.mark.parametrize("mode", ["wp", "minor"])
def test_uffd_wp_and_minor_disable_fault_around(mode):
    sample = measure(Spec(backing="memfd", size=SIZE, uffd=mode))
    assert sample.status == "ok", sample.error
    assert faults(sample) == pytest.approx(PAGES, rel=0.001)
    if mode == "minor":
        assert sample.uffd_events == PAGES  # every fault went through UFFDIO_CONTINUE
    else:
        assert sample.uffd_events == 0  # reads of a wp range raise no wp fault


@needs_root
def test_uffd_missing_keeps_fault_around():
    plain = measure(Spec(backing="memfd", size=SIZE))
    missing = measure(Spec(backing="memfd", size=SIZE, uffd="missing"))
    assert missing.status == "ok", missing.error
    assert faults(missing) == faults(plain)
    assert missing.uffd_events == 0  # a warm page cache leaves nothing missing


@needs_root
def test_uffd_missing_serves_holes():
    sample = measure(Spec(backing="memfd", size=SIZE, cache="hole", uffd="missing"))
    assert sample.status == "ok", sample.error
    assert sample.uffd_events > 0
    assert sample.pages_mapped >= sample.pages_touched


def test_anon_read_takes_one_fault_per_page():
    sample = measure(Spec(backing="anon", size=SIZE))
    assert sample.status == "ok", sample.error
    assert faults(sample) == PAGES
    assert sample.resident_before_pages is None
    assert "page cache" in sample.null_reasons["resident_before_pages"]


def test_sparse_maps_more_than_it_touches():
    sample = measure(Spec(backing="memfd", size=SIZE, pattern="sparse"))
    pmd_pages = os.sysconf("SC_PAGESIZE") // 8
    assert sample.pages_touched == PAGES // pmd_pages
    assert faults(sample) == sample.pages_touched
    assert sample.pages_mapped > sample.pages_touched


@pytest.mark.parametrize("pattern", ["reverse", "random", "stride:3"])
def test_patterns_touch_the_expected_pages(pattern):
    sample = measure(Spec(backing="memfd", size=SIZE, pattern=pattern, seed=7))
    expected = -(-PAGES // 3) if pattern == "stride:3" else PAGES
    assert sample.pages_touched == expected
    assert sample.pages_mapped >= sample.pages_touched


@needs_root
def test_uffd_on_a_disk_file_is_unsupported(tmp_path):
    sample = measure(Spec(backing="file", size=SIZE, uffd="missing", dir=str(tmp_path)))
    assert sample.status == "unsupported"
    assert "Invalid argument" in sample.error
    assert sample.fs_type not in (None, "tmpfs")


def test_cold_file_reports_residency(tmp_path):
    sample = measure(Spec(backing="file", size=SIZE, cache="cold", dir=str(tmp_path)))
    assert sample.status == "ok", sample.error
    assert sample.resident_before_pages < PAGES
    assert not list(tmp_path.iterdir())  # the backing file never outlives the sample


def test_no_backing_file_is_left_behind():
    before = set(glob.glob("/dev/shm/faultbench.*"))
    measure(Spec(backing="tmpfs", size=SIZE, access="write", map="private"))
    assert set(glob.glob("/dev/shm/faultbench.*")) == before


@needs_root
def test_unserved_fault_hits_the_deadline_and_leaves_no_thread():
    threads_before = len(os.listdir("/proc/self/task"))
    sample = measure(Spec(backing="memfd", size=SIZE, uffd="minor", uffd_serve=False,
                          deadline_s=0.5))
    assert sample.status == "error"
    assert "deadline" in sample.error
    assert len(os.listdir("/proc/self/task")) == threads_before
    assert measure(Spec(backing="memfd", size=SIZE)).status == "ok"


@needs_root
def test_perf_event_agrees_with_getrusage():
    for uffd in ("none", "wp"):
        sample = measure(Spec(backing="memfd", size=SIZE, uffd=uffd, perf=True))
        assert sample.perf_page_faults == faults(sample)


def test_hardware_counters_are_null_with_a_reason_or_counted():
    """With a CPU PMU (it appears in sysfs as `cpu`, or `cpu_core` on hybrid parts) cycles and
    instructions are counted; without one (this VM) they are null with the kernel's reason."""
    devices = Path("/sys/bus/event_source/devices")
    has_pmu = any((devices / name).exists() for name in ("cpu", "cpu_core", "armv8_pmuv3"))
    sample = measure(Spec(backing="memfd", size=SIZE, perf=True))
    for name in ("cycles", "instructions"):
        value = getattr(sample, name)
        if has_pmu:
            assert value is not None and value > 0, sample.null_reasons.get(name)
        else:
            assert value is None and "perf_event_open" in sample.null_reasons[name]


def test_perf_counters_are_off_unless_asked_and_say_so():
    sample = measure(Spec(backing="memfd", size=SIZE))
    for name in ("perf_page_faults", "cycles", "instructions"):
        assert getattr(sample, name) is None
        assert "--perf" in sample.null_reasons[name]


@needs_root
def test_later_mappers_of_a_warm_file_still_fault():
    samples = measure_mappers(Spec(backing="memfd", size=SIZE, mappers=3, uffd="wp",
                                   uffd_mappers="later"))
    assert [s.mapper for s in samples] == [0, 1, 2]
    first, *later = samples
    assert 0 < faults(first) < PAGES / 4  # unregistered: fault-around
    assert all(faults(s) == PAGES for s in later)  # wp-registered: one per page


@needs_root
def test_concurrent_thread_mappers():
    """Twenty rounds: threads that placed their mappings at once found the same gap and
    failed each other's MAP_FIXED_NOREPLACE (mapper 1 failed in 64 of 200 rounds)."""
    spec = Spec(backing="memfd", size=SIZE, mappers=2, mapper_mode="concurrent",
                mapper_kind="thread")
    for _ in range(20):
        samples = measure_mappers(spec)
        assert all(s.status == "ok" and 0 < faults(s) < PAGES / 4 for s in samples), [
            (s.mapper, s.status, s.error, s.faults_minor, s.faults_major, s.pages_mapped)
            for s in samples]


@pytest.fixture
def huge_pages():
    path = Path("/proc/sys/vm/nr_hugepages")
    if os.geteuid() != 0:
        pytest.skip("reserving huge pages needs root")
    original = path.read_text()
    path.write_text("8\n")
    try:
        if int(path.read_text()) < 4:
            pytest.skip("the kernel would not reserve huge pages")
        yield
    finally:
        path.write_text(original)


@HOST
def test_hugetlb_without_huge_pages_is_unsupported():
    if int(Path("/proc/sys/vm/nr_hugepages").read_text()) > 0:
        pytest.skip("huge pages are reserved here")
    sample = measure(Spec(backing="hugetlb", size=4 << 20))
    assert sample.status == "unsupported"
    assert "nr_hugepages" in sample.error


@HOST
def test_hugetlb_maps_huge_pages(huge_pages):
    sample = measure(Spec(backing="hugetlb", size=4 << 20))
    assert sample.status == "ok", sample.error
    assert faults(sample) == 2  # one per 2 MiB page
    assert sample.fs_type == "hugetlbfs"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (Spec(size="3k"), "multiple"),
        (Spec(pattern="zigzag"), "pattern"),
        (Spec(pattern="stride:0"), "pattern"),
        (Spec(backing="anon", cache="warm"), "page cache"),
        (Spec(backing="memfd", cache="cold"), "cold"),
        (Spec(backing="nvme"), "backing"),
        (Spec(uffd="sometimes"), "uffd"),
        (Spec(mappers=0), "mappers"),
        (Spec(backing="anon", mappers=2), "mappers"),
    ],
)
def test_nonsense_specs_are_refused(spec, message):
    with pytest.raises(SpecError, match=message):
        spec.normalized()


def test_size_beyond_memory_is_refused_before_anything_happens():
    with pytest.raises(SpecError, match="available"):
        measure(Spec(size="64T"))


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "faultbench", "measure", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_cli_json_lines():
    result = cli("--size", "4M", "--repeat", "3", "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 3
    assert all(line["spec"]["size"] == 4 << 20 and line["plane"] == "native" for line in lines)


def test_cli_human_line():
    result = cli("--size", "4M")
    assert result.returncode == 0, result.stderr
    assert "faults" in result.stdout and "ns/page" in result.stdout


@pytest.mark.parametrize("args", [["--size", "12x"], ["--pattern", "zigzag"],
                                  ["--backing", "anon", "--cache", "cold"], ["--size", "64T"]])
def test_cli_bad_input_is_one_clear_line(args):
    result = cli(*args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("faultbench measure:")


@pytest.fixture(scope="module")
def reference_loop(tmp_path_factory) -> Path:
    binary = tmp_path_factory.mktemp("ref") / "reference_loop"
    subprocess.run(["cc", "-O2", "-std=gnu99", "-o", str(binary),
                    str(ROOT / "benchmarks" / "reference_loop.c")], check=True)
    return binary


def perf_stat_faults(reference: Path, workdir: Path, *args: str) -> int:
    """page-faults that `perf stat` counts over exactly the reference program's touch loop."""
    ctl, ack = workdir / "ctl", workdir / "ack"
    for fifo in (ctl, ack):
        if not fifo.exists():
            os.mkfifo(fifo)
    result = subprocess.run(
        ["perf", "stat", "-x,", "-e", "page-faults", "--delay=-1",
         f"--control=fifo:{ctl},{ack}", "--", str(reference), *args, str(ctl), str(ack)],
        capture_output=True, text=True, timeout=60, check=True,
    )
    line = next(x for x in result.stderr.splitlines() if x.endswith(",,") or "page-faults" in x)
    return int(line.split(",")[0])


@pytest.mark.skipif(shutil.which("perf") is None, reason="perf is not installed")
@pytest.mark.parametrize(
    ("backing", "pattern", "step"), [("memfd", "seq", 1), ("anon", "seq", 1),
                                     ("memfd", "sparse", 512), ("memfd", "stride:16", 16),
                                     ("tmpfs", "seq", 1), ("memfd", "random", "random")],
)
def test_fault_counts_match_perf_stat(reference_loop, tmp_path, backing, pattern, step):
    if pattern == "sparse" and os.sysconf("SC_PAGESIZE") != 4096:
        pytest.skip("the reference loop's sparse step assumes 4 KiB pages")
    size = 64 << 20
    expected = perf_stat_faults(reference_loop, tmp_path, backing, str(size), str(step), "read")
    sample = measure(Spec(backing=backing, size=size, pattern=pattern))
    assert faults(sample) == expected  # both mappings start on a page-table boundary
