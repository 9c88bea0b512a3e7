"""Round twenty-seven (a): two boots of a booted run that claim one plan position are refused
on load, in and outside a shard, so a resume cannot boot one kernel twice and another never
(R27-1); the repeated-label test every load runs is linear in the kernels (R27-5); a run
recorded finished with a boot that is not ok is refused on load (R27-6). Copies of a shipped
booted run; no guest is booted."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from analysis_runs import faultbench
from test_hardening_round5_merge import merge_refused
from test_hardening_round17_merge import Record, shards
from test_hardening_round26_f import AA, _copy

from faultbench.measurement.rundir.meta_checks import check_meta


def _refused_on_load(run: Path, why: str) -> None:
    """report, report --json and compare refuse `run` in one line naming its meta.json."""
    for args in (("report", run, "--no-figures"), ("report", run, "--json"),
                 ("compare", AA, run)):
        done = faultbench(*args, check=False)
        assert (done.returncode, done.stdout) == (2, ""), done.stderr
        assert done.stderr == f"faultbench {args[0]}: {run / 'meta.json'}: {why}\n"


def _a_booted_twice(meta: dict[str, Any]) -> None:
    """The repro: boot 1 (b's boot 0) recorded as a failed second boot of plan position 0
    (a's boot 0), left to be resumed, each kernel image a path that does not exist (a resume
    that got as far as booting is refused for that, and boots no guest)."""
    meta["boots"][1] = {**meta["boots"][0], "index": 1, "plan_index": 0, "status": "failed",
                        "reason": "x", "attempts": 1}
    meta["finished_utc"] = None
    for kernel in meta["kernels"]:
        kernel["image"] = "/nonexistent/bzImage"


A_TWICE = "its boot 1 is at plan position 0, its boot 0's: not the run's boot plan"


def test_a_boot_at_another_boots_plan_position_is_refused_on_load(tmp_path: Path) -> None:
    """R27-1: accepted, the report showed kernel a alone (b, which no boot boots, unnamed),
    and a resume booted a twice and b never, then sealed the run finished."""
    run = _copy(tmp_path, _a_booted_twice)
    lines = (run / "samples.jsonl").read_text().splitlines(keepends=True)
    (run / "samples.jsonl").write_text("".join(line for line in lines
                                               if json.loads(line)["boot"] != 1))
    (run / "boots" / "1.json").unlink()
    _refused_on_load(run, A_TWICE)
    done = subprocess.run([sys.executable, "-m", "faultbench", "run", "--resume", str(run),
                           "--jobs", "1"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    assert (done.returncode, done.stderr) == (
        2, f"faultbench run: {run / 'meta.json'}: {A_TWICE}\n")
    assert json.loads((run / "meta.json").read_text())["finished_utc"] is None


def _boot_0_again(index: int, meta: dict[str, Any], samples: list[Record]) -> None:
    """Shard 1 given a second boot of its plan position 0, its samples those of boot 0."""
    if index == 1:
        meta["boots"].append({**meta["boots"][0], "index": 3})
        samples += [{**r, "boot": 3} for r in samples if r["boot"] == 0]


def _another_shards_position(index: int, meta: dict[str, Any], samples: list[Record]) -> None:
    """Shard 1's boot 0 recorded at plan position 1 (b's boot 0, shard 2's), as b's."""
    if index == 1:
        meta["boots"][0].update(plan_index=1, kernel="b")
        for record in samples:
            if record["boot"] == 0:
                record["kernel"] = "b"


SHARD_EDITS = {
    "two boots at one position": (_boot_0_again, "its boots 0 and 3 are both at plan "
                                  "position 0: not a shard of this run"),
    "another shard's position": (_another_shards_position, "its boot 0 is at plan position "
                                 "1, which is not one of shard 1/2's: not a shard of this run"),
}


@pytest.mark.parametrize("edit", SHARD_EDITS)
def test_a_shard_boot_at_a_position_not_its_own_is_refused_on_load_and_by_merge(
        tmp_path: Path, edit: str) -> None:
    """R27-1 in a shard: report pooled boot 0's rounds twice, and merge blamed "two shards"
    for the two boots of one shard."""
    change, why = SHARD_EDITS[edit]
    one, two = shards(AA, tmp_path, change=change)
    done = faultbench("report", one, "--no-figures", check=False)
    assert (done.returncode, done.stderr) == (2, f"faultbench report: {one / 'meta.json'}: "
                                                 f"{why}\n")
    assert merge_refused(one, two, out=tmp_path / "merged") == (
        f"faultbench merge: {one / 'meta.json'}: {why}")


def _many_kernels(meta: dict[str, Any], count: int) -> None:
    """The repro's meta.json: `count` kernels, each but the first with one pending boot."""
    first, boot = meta["kernels"][0], meta["boots"][0]
    meta.update(boots_per_kernel=1, finished_utc=None)
    meta["kernels"] = [first] + [{"label": f"K{i}", "image": "/x", "release": None,
                                  "tree": None,
                                  "sha256": hashlib.sha256(str(i).encode()).hexdigest()}
                                 for i in range(1, count)]
    meta["boots"] = [{**boot, "rounds": [0, 6]}] + [
        {"index": i, "kernel": f"K{i}", "kernel_boot": 0, "rounds": [0, 6],
         "status": "pending", "attempts": 0} for i in range(1, count)]


def test_loading_a_meta_json_of_many_kernels_takes_linear_time(tmp_path: Path) -> None:
    """R27-5: the repeated-label test counted every label in a copy of the list, so loading
    30,000 kernels took 27 s (60,000: 83 s); linear, it is well under a second."""
    meta = json.loads((AA / "meta.json").read_text())
    _many_kernels(meta, 30_000)
    began = time.monotonic()
    assert check_meta(meta, tmp_path / "meta.json") is meta
    assert time.monotonic() - began < 5


def test_a_finished_run_with_a_boot_not_ok_is_refused_on_load(tmp_path: Path) -> None:
    """R27-6: reported as a finished run, boot 1's samples pooled with no note; `run` sets
    finished_utc only when every boot is ok."""
    def running(meta: dict[str, Any]) -> None:
        meta["boots"][1]["status"] = "running"

    run = _copy(tmp_path, running)
    _refused_on_load(run, "boots[1] is running, and finished_utc says the run finished (a "
                          "run finishes when every boot is ok)")
