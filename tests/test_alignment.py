"""Where a mapping starts within a fault-around window is part of the spec: the same spec
gives the same fault count through `measure` and through `run`, and the offset is recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from groups import HOST

from faultbench import Spec, SpecError, measure_mappers
from faultbench.measurement.spec import window_bytes

PAGE = os.sysconf("SC_PAGESIZE")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="pinning THP needs root")
# shmem THP would map 2 MiB at a time (34 faults): pinned so page mappings are measured
PIN = "thp.shmem_enabled=never"

WORKLOAD = """
description = "alignment: the same specs as the measure calls"
repetitions = 2
warmups = 1
seed = 1

[knobs]
"thp.shmem_enabled" = "never"

[defaults]
backing = "memfd"
size = "64M"
cache = "warm"

[[matrix]]
map_offset = [0, "4K"]
mappers = [1, 2]
mapper_kind = ["process", "thread"]
"""


def faultbench(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "faultbench", *map(str, args)],
                          capture_output=True, text=True, timeout=300, check=False)


def faults(sample: dict) -> int:
    return sample["faults_minor"] + sample["faults_major"]


def measured(*args: str) -> list[dict]:
    result = faultbench("measure", "--json", "--size", "64M", "--repeat", "2", "--set", PIN,
                        *args)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


@HOST
@needs_root
def test_measure_and_run_count_the_same_faults_for_the_same_spec(tmp_path: Path) -> None:
    """1024 faults aligned and 1025 a page off, for a warm 64 MiB memfd at the default
    fault_around_bytes (64K): the mapping spans one more window when it starts inside one."""
    toml = tmp_path / "alignment.toml"
    toml.write_text(WORKLOAD)
    result = faultbench("run", toml, "--out", tmp_path / "run", "-q")
    assert result.returncode == 0, result.stderr
    run = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").open()]
    # rounds x offsets x lines (1 + 1 + 2 + 2 mappers: one thread mapper is its own scenario)
    assert len(run) == 3 * 2 * 6
    by_offset: dict[int, set[int]] = {}
    for sample in run:
        assert sample["status"] == "ok", sample["error"]
        offset = sample["spec"]["map_offset"]
        assert sample["window_offset"] == offset
        by_offset.setdefault(offset, set()).add(faults(sample))
    assert by_offset == {0: {1024}, PAGE: {1025}}
    for offset, expected in ((0, 1024), (PAGE, 1025)):
        for args in ((), ("--mappers", "2"), ("--mappers", "2", "--mapper-kind", "thread")):
            samples = measured("--map-offset", str(offset), *args)
            assert {faults(s) for s in samples} == {expected}, args
            assert {s["window_offset"] for s in samples} == {offset}


def test_every_offset_is_recorded_and_a_mid_window_start_costs_one_window() -> None:
    window = window_bytes(PAGE)
    base = Spec(backing="memfd", size=4 * window, cache="warm")
    aligned = measure_mappers(base)[0]
    assert aligned.status == "ok", aligned.error
    for offset in (PAGE, 3 * PAGE, window - PAGE):  # none a multiple of a 64K window
        sample = measure_mappers(Spec(backing="memfd", size=4 * window, cache="warm",
                                      map_offset=offset))[0]
        assert sample.window_offset == offset
        assert sample.faults_minor == aligned.faults_minor + 1, offset
    anon = measure_mappers(Spec(backing="anon", size=4 * window, map_offset="8K"))[0]
    assert anon.window_offset == 2 * PAGE and anon.faults_minor == anon.pages_touched


@pytest.mark.parametrize(
    ("offset", "message"),
    [(PAGE // 2, "multiple"), ("2M", "below"), (-PAGE, "at least 0"), ("4Q", "suffix"),
     (True, "byte count")],
)
def test_offsets_outside_a_window_are_refused(offset: object, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        Spec(map_offset=offset).normalized()  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="huge page"):
        Spec(backing="hugetlb", map_offset=PAGE).normalized()


def test_cli_refuses_a_bad_offset_in_one_line() -> None:
    result = faultbench("measure", "--map-offset", "3000")
    assert result.returncode == 2
    assert result.stderr.startswith("faultbench measure:") and result.stderr.count("\n") == 1
