"""Measurement-order confounds (issue 11): what the timed windows depend on, on the real kernel."""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path

import pytest

from faultbench import Spec, SpecError, measure, measure_mappers
from faultbench.measurement.knobs.sysfs import mount_of
from faultbench.measurement.runner import start
from faultbench.measurement.workload import load

SIZE = 16 << 20
PAGES = SIZE // os.sysconf("SC_PAGESIZE")


def faults(sample) -> int:
    return sample.faults_minor + sample.faults_major


def test_pagemap_off_leaves_pages_mapped_null_and_still_times_teardown():
    walked = measure(Spec(size=SIZE))
    unwalked = measure(Spec(size=SIZE, pagemap=False))
    assert walked.status == unwalked.status == "ok", (walked.error, unwalked.error)
    assert walked.pages_mapped == PAGES
    assert unwalked.pages_mapped is None
    assert "not walked" in unwalked.null_reasons["pages_mapped"]
    assert unwalked.munmap_ns > 0 and "munmap_ns" not in unwalked.null_reasons
    assert faults(unwalked) == faults(walked)  # the walk is outside the counted window
    assert unwalked.spec["pagemap"] is False


def test_pagemap_is_a_boolean_spec_field_that_round_trips():
    spec = Spec(pagemap=False).normalized()
    assert Spec.from_dict(spec.to_dict()) == spec
    assert Spec.from_dict({k: v for k, v in spec.to_dict().items() if k != "pagemap"}).pagemap


def _children_minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt


@pytest.mark.parametrize("mappers", [1, 3])
def test_every_process_mapper_runs_in_a_forked_child(mappers):
    # A reaped child's faults move to RUSAGE_CHILDREN; a mapper measured in this process
    # would leave it unchanged. One mapper and three thus run in the same kind of context.
    before = _children_minor_faults()
    samples = measure_mappers(Spec(size=SIZE, mappers=mappers))
    grown = _children_minor_faults() - before
    assert all(s.status == "ok" for s in samples), samples[0].error
    assert grown >= sum(faults(s) for s in samples)


def test_thread_mappers_stay_in_this_process():
    before = _children_minor_faults()
    sample = measure(Spec(size=SIZE, mapper_kind="thread"))
    assert sample.status == "ok", sample.error
    assert _children_minor_faults() == before


def _own_minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt


def test_hot_cache_maps_and_reads_the_backing_once_before_the_sample():
    # The rehearsal runs in fb_run's caller before the mapper is forked, and reads every
    # page through a shared mapping as the measured seq read does: as many faults again.
    measure(Spec(size=SIZE))  # this thread's allocations settle
    # the thread's own count also takes Python's faults (allocator, GC): the best of three
    # pairs is the rehearsal's
    rehearsals = []
    for _ in range(3):
        spent = {}
        for cache in ("warm", "hot"):
            before = _own_minor_faults()
            sample = measure(Spec(size=SIZE, cache=cache))
            spent[cache] = _own_minor_faults() - before
            assert sample.status == "ok", sample.error
            assert sample.spec["cache"] == cache
        rehearsals.append(spent["hot"] - spent["warm"])
    closest = min(rehearsals, key=lambda n: abs(n - faults(sample)))
    assert closest == pytest.approx(faults(sample), rel=0.1, abs=8), rehearsals


def test_hot_cache_needs_a_page_cache():
    with pytest.raises(SpecError, match="page cache"):
        Spec(backing="anon", cache="hot").normalized()


def test_provenance_records_the_default_file_dir_fs_type(tmp_path: Path):
    path = tmp_path / "file.toml"
    path.write_text('repetitions = 1\nwarmups = 0\n[[matrix]]\nbacking = "file"\nsize = "4M"\n')
    run_dir = start(load(str(path)), tmp_path / "run")
    provenance = json.loads((run_dir.path / "meta.json").read_text())["provenance"]
    where = mount_of("/var/tmp")
    assert where is not None
    assert provenance["file"]["dir"] == "/var/tmp"
    assert provenance["file"]["fs_type"] == where.fs_type
    assert "file.fs_type" not in provenance["null_reasons"]


def test_provenance_names_no_file_dir_without_a_file_backing(tmp_path: Path):
    path = tmp_path / "memfd.toml"
    path.write_text('repetitions = 1\nwarmups = 0\n[[matrix]]\nsize = "4M"\n')
    run_dir = start(load(str(path)), tmp_path / "run")
    assert "file" not in json.loads((run_dir.path / "meta.json").read_text())["provenance"]
