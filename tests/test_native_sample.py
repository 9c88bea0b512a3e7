"""What each sample records beyond the touch loop, against the running kernel: interference in
the timed window, the populate step, which mapper registered, how a mapper process ended."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from faultbench import Spec, measure, measure_mappers
from faultbench.analysis.frame import load

SIZE = 16 << 20
PAGES = SIZE // os.sysconf("SC_PAGESIZE")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="userfaultfd here needs root")


def faults(sample) -> int:
    return sample.faults_minor + sample.faults_major


def test_interference_fields_are_measured():
    sample = measure(Spec(backing="memfd", size=SIZE))
    assert sample.status == "ok", sample.error
    assert sample.nivcsw is not None and sample.nivcsw >= 0
    assert (sample.steal_ns is not None and sample.steal_ns >= 0) or \
        sample.null_reasons["steal_ns"]


@pytest.fixture
def hog_on_my_cpu():
    """A busy process pinned to the CPU this thread is pinned to: it must preempt us."""
    cpu = min(os.sched_getaffinity(0))
    original = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    hog = subprocess.Popen(
        [sys.executable, "-c", "while True: pass"],
        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
    )
    try:
        time.sleep(0.3)  # running, not starting
        yield
    finally:
        hog.kill()
        hog.wait()
        os.sched_setaffinity(0, original)


def test_a_cpu_hog_on_the_measuring_cpu_shows_as_involuntary_switches(hog_on_my_cpu):
    # a copy-on-write fault per page: 16,384 faults, a loop over several ticks however fast
    # the machine (a fault-around read of 64M could end inside the tick it started after)
    samples = [measure(Spec(backing="memfd", size=64 << 20, map="private", access="write"))
               for _ in range(3)]
    assert all(s.status == "ok" for s in samples)
    # each loop runs several scheduler slices while the hog is runnable on the same CPU
    assert max(s.nivcsw for s in samples) > 0


@pytest.mark.parametrize("populate", ["madvise", "map"])
def test_populate_maps_every_page_before_the_loop(populate):
    around = measure(Spec(backing="memfd", size=SIZE))
    sample = measure(Spec(backing="memfd", size=SIZE, populate=populate))
    assert sample.status == "ok", sample.error
    assert sample.pages_mapped == PAGES
    assert faults(sample) <= faults(around)
    assert faults(sample) == 0  # nothing left to fault in
    assert sample.populate_faults > 0 and sample.populate_ns > 0
    assert around.populate_ns is None and "populate none" in around.null_reasons["populate_ns"]


def test_populate_write_breaks_copy_on_write_up_front():
    sample = measure(Spec(backing="memfd", size=SIZE, map="private", access="write",
                          populate="madvise"))
    assert sample.status == "ok", sample.error
    assert faults(sample) == 0
    assert sample.populate_faults >= PAGES  # one copy per page, in the populate step


@needs_root
def test_each_mapper_says_whether_it_registered():
    samples = measure_mappers(Spec(backing="memfd", size=SIZE, mappers=3, uffd="wp",
                                   uffd_mappers="first"))
    assert [s.registered for s in samples] == [True, False, False]
    assert faults(samples[0]) == PAGES and faults(samples[1]) < PAGES / 4
    assert measure(Spec(backing="memfd", size=SIZE)).registered is False


@needs_root
def test_analysis_reads_the_recorded_registration(tmp_path):
    samples = measure_mappers(Spec(backing="memfd", size=SIZE, mappers=2, uffd="wp",
                                   uffd_mappers="later"))
    records = [s.to_dict() for s in samples]
    # the analysis must follow what the sample says, not re-derive it from uffd_mappers
    records[0]["registered"], records[1]["registered"] = True, False
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    df = load(tmp_path).sort_values("mapper")
    assert list(df["fault_around"]) == ["off", "on"]


@needs_root
def test_a_mapper_process_killed_by_a_signal_is_an_error():
    spec = Spec(backing="memfd", size=SIZE, uffd="minor", uffd_serve=False, deadline_s=30)
    code = (
        "import json, os, signal, threading, time\n"
        "from faultbench import Spec, measure_mappers\n"
        "def kill_child():\n"
        "    time.sleep(1)\n"
        "    for pid in os.listdir('/proc'):\n"
        "        if pid.isdigit() and pid != str(os.getpid()):\n"
        "            try: stat = open(f'/proc/{pid}/stat').read()\n"
        "            except OSError: continue\n"
        "            if int(stat.rsplit(')', 1)[1].split()[1]) == os.getpid():\n"
        "                os.kill(int(pid), signal.SIGSEGV)\n"
        "threading.Thread(target=kill_child, daemon=True).start()\n"
        f"samples = measure_mappers(Spec(**{spec.to_dict()!r}))\n"
        "print(json.dumps([[s.status, s.error] for s in samples]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    first = json.loads(result.stdout)[0]
    assert first[0] == "error"
    assert "signal 11" in first[1]


def test_a_mapper_process_faults_in_an_address_space_of_its_own():
    """A mapper process execs the mapper program: its faults' VMA lookups walk its own few
    mappings, not a copy of this Python process's; a thread mapper shares the caller's."""
    with open("/proc/self/maps") as maps:
        callers = len(maps.readlines())
    process = measure(Spec(backing="memfd", size=SIZE))
    thread = measure(Spec(backing="memfd", size=SIZE, mapper_kind="thread"))
    assert process.status == thread.status == "ok", (process.error, thread.error)
    assert 10 < process.mappings < 60 < callers
    assert thread.mappings >= callers - 10


def test_a_mapper_program_that_cannot_run_is_one_clear_error(tmp_path):
    from faultbench.measurement.measure import _c_spec, ffi, lib

    keep: list[object] = []
    c_spec = _c_spec(Spec(backing="memfd", size=SIZE).normalized(), keep)
    missing = ffi.new("char[]", str(tmp_path / "gone").encode())
    c_spec.mapper_program = missing
    results = ffi.new("struct fb_result[]", 1)
    assert lib.fb_run(c_spec, results) == -1
    error = ffi.string(results[0].error).decode()
    assert error == (f"cannot run the mapper program {tmp_path / 'gone'}: No such file or "
                     "directory (reinstall faultbench)")
