"""App launches under real memory pressure: one boot of the Debian kernel with 256M (set
with `run --memory`), where fault_around_bytes is writable, on the wall clock (these
sessions wait on the disk, and the instruction clock warps over every wait:
docs/memory.md). A session whose heaps the guest cannot hold ends in the OOM killer
("oom") or thrashing past its deadline ("deadline"), one that cannot write its files in
time as "deadline", and the run goes on to measure the others."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.groups import MEMORY_RUN
from tests.images import require_boot_image

pytestmark = MEMORY_RUN  # every test reads the one run

WORKLOAD = """
description = "test: sessions under pressure, one forced OOM, one forced deadline"
repetitions = 1
warmups = 0
guest_memory = "1G"   # --memory overrides it

[defaults]
backing = "file"
size = "8M"
apps = 2
app_files = 2
deadline_s = 120

[knobs]
fault_around_bytes = [4096, 65536]

[[matrix]]

[[matrix]]  # heaps the guest cannot hold: the OOM killer ends an app, or reclaim thrashes
app_anon = "128M"  # (the guest's code pages included) past the deadline
deadline_s = 90
knobs.fault_around_bytes = [65536]

[[matrix]]  # a session that cannot even write its files in time
apps = 1
size = "64M"
deadline_s = 0.001
knobs.fault_around_bytes = [65536]
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict], dict]:
    image = require_boot_image()
    tmp = tmp_path_factory.mktemp("memory-guest")
    (tmp / "pressure.toml").write_text(WORKLOAD)
    out = tmp / "run"
    done = subprocess.run(
        [sys.executable, "-m", "faultbench", "run", str(tmp / "pressure.toml"), "--kernel",
         image, "--memory", "256M", "--clock", "wall", "--out", str(out), "-q"],
        capture_output=True, text=True, timeout=1500, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    return out, samples, json.loads((out / "meta.json").read_text())


def _by_anon(samples: list[dict], anon: int, deadline: float = 120) -> list[dict]:
    return [s for s in samples
            if s["spec"]["app_anon"] == anon and s["spec"]["deadline_s"] == deadline]


def test_the_guest_had_the_memory_asked_for(run: tuple[Path, list[dict], dict]) -> None:
    _, _, meta = run
    assert meta["guest_memory"] == "256M" and meta["guest_memory_source"] == "--memory"
    assert meta["workload"]["guest_memory"] == "1G"
    [boot] = meta["boots"]
    assert boot["status"] == "ok"
    assert boot["guest"]["memory"]["total_kb"] < 256 * 1024


def test_oom_and_deadline_are_recorded_and_the_run_goes_on(
        run: tuple[Path, list[dict], dict]) -> None:
    _, samples, meta = run
    assert {s["scenario"] for s in samples} == {s["name"] for s in meta["scenarios"]}
    [oom] = _by_anon(samples, 128 << 20, 90)
    assert oom["status"] == "error" and oom["launch_outcome"] in ("oom", "deadline"), \
        oom["error"]
    if oom["launch_outcome"] == "oom":
        assert oom["vmstat"]["oom_kill"] >= 1 and "OOM killer" in oom["error"]
    else:
        assert "deadline" in oom["error"]
    [late] = _by_anon(samples, 0, 0.001)
    assert late["status"] == "error" and late["launch_outcome"] == "deadline"


def test_fault_around_maps_untouched_pages_only_when_on(
        run: tuple[Path, list[dict], dict]) -> None:
    _, samples, _ = run
    normal = {s["knobs"]["fault_around_bytes"]: s for s in _by_anon(samples, 0)}
    assert set(normal) == {4096, 65536}
    for sample in normal.values():
        assert sample["status"] == "ok" and sample["launches_done"] == 4
        assert sample["plane"] != "native" and sample["fs_type"] == "ext4"
        # the guest's ext4 on 6.1 has no large folios: without fault-around a launch maps
        # exactly the pages it read, one fault each
        assert sample["vmstat"]["pgfault"] >= sample["faults_minor"] + sample["faults_major"]
    off, on = normal[4096], normal[65536]
    assert off["pages_mapped"] == off["pages_touched"]
    assert off["faults_minor"] + off["faults_major"] == off["pages_touched"]
    assert on["pages_mapped"] > 2 * on["pages_touched"]
