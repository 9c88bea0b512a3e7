"""Round twenty-four, a booted run's samples against its meta.json (R24-4) and kernels/build's
cache hits (R24-6). Samples were checked against meta.json only for their kernel's label: a
sample tagged with another kernel sha256 or release than its kernel's, samples of a boot
recorded as failed, and samples of a boot outside the rounds its plan gives it were all
counted (compare's title printed a sha256 no sample had). And kernels/build handed out a
cached image whose bzImage and meta.json another user owned or could write, inside root's
entry. Copies of shipped runs, planted cache entries, the real commands; no guest is booted
and no kernel built."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from analysis_runs import faultbench
from console import one_line
from kbuild import build
from test_hardening_round5_merge import merge_refused
from test_hardening_round17_merge import shards
from test_kernels import have_build_dependencies

from faultbench.measurement.booted.bootresult import _collect, _NotAdded
from faultbench.measurement.rundir.results import RunDir

RESULTS = Path(__file__).parents[1] / "results"
AA, PATCH = RESULTS / "icount-aa", RESULTS / "uffd-2020-patch"  # boots: a b b a a b
DIFFERENT = "the two files are from different runs"
Record = dict[str, Any]
Meta = dict[str, Any]


def _lines(path: Path) -> list[Record]:
    return [json.loads(line) for line in path.open()]


def _write_lines(path: Path, records: list[Record]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _copy(run: Path, to: Path, samples: Callable[[list[Record]], None] = lambda r: None,
          meta: Callable[[Meta], None] = lambda m: None) -> Path:
    shutil.copytree(run, to)
    records = _lines(to / "samples.jsonl")
    samples(records)
    _write_lines(to / "samples.jsonl", records)
    data = json.loads((to / "meta.json").read_text())
    meta(data)
    (to / "meta.json").write_text(json.dumps(data))
    return to


def _boot_zero(**values: Any) -> Callable[[list[Record]], None]:
    def change(records: list[Record]) -> None:
        for record in records:
            if record["boot"] == 0:
                record.update(values)
    return change


def _boot(index: int, **values: Any) -> Callable[[Meta], None]:
    """Boot `index` given `values`; a run with a boot that is not ok has not finished."""
    def change(meta: Meta) -> None:
        meta["boots"][index].update(values)
        if meta["boots"][index]["status"] != "ok":
            meta["finished_utc"] = None
    return change


CASES = {
    "sample sha256": (
        AA, _boot_zero(kernel_sha256="0" * 64), None,
        "has samples of boot 0 tagged kernel sha256 '0000000000000000000..., and its "
        "meta.json records kernel 'a' with sha256 '85667e6c72245133bd7..."),
    "meta sha256": (
        AA, None, lambda meta: meta["kernels"][1].update(sha256="f" * 64),
        "has samples of boot 1 tagged kernel sha256 '85667e6c72245133bd7..., and its "
        "meta.json records kernel 'b' with sha256 'fffffffffffffffffff..."),
    "release": (
        AA, _boot_zero(kernel_release="9.9.9"), None,
        "has samples of boot 0 tagged kernel release '9.9.9', and its meta.json records "
        "kernel 'a' with release '6.1.0-57-amd64'"),
    "version": (
        PATCH, _boot_zero(kernel_version="#2 SMP Mon Jan  1 00:00:00 UTC 2024"), None,
        "has samples of boot 0 tagged kernel version '#2 SMP Mon Jan  1 0..., and its "
        "meta.json records kernel 'base' with version '6.1.192 (root@vm) #..."),
    "failed boot": (
        AA, None, _boot(0, status="failed", reason="x"),
        "has samples of boot 0, which its meta.json records as failed"),
    "pending boot": (
        PATCH, None, _boot(5, status="pending", attempts=0),
        "has samples of boot 5, which its meta.json records as pending"),
    "interrupted boot": (
        PATCH, None, _boot(2, status="interrupted", reason="interrupted"),
        "has samples of boot 2, which its meta.json records as interrupted"),
    "moved to another boot": (  # boot 3 (a's second) measures rounds 3-4
        AA, _boot_zero(boot=3), None,
        "has samples of measured round 1 in boot 3, whose share its meta.json records as "
        "rounds 3-4"),
    # a boot's share moved in meta.json is no longer the plan's: refused as its meta.json
    # (boot_order.plan_problem, tests/test_hardening_round26_f.py) before the samples are read
}


@pytest.mark.parametrize("case", list(CASES))
def test_booted_samples_not_of_their_boot_are_refused(tmp_path: Path, case: str) -> None:
    """R24-4: report, report --json and compare refuse the run in one line, naming why."""
    run, samples, meta, problem = CASES[case]
    copy = _copy(run, tmp_path / "run", samples or (lambda r: None), meta or (lambda m: None))
    for args in (("report", "--no-figures", "--out", tmp_path / "out", copy),
                 ("report", "--json", copy), ("compare", copy, "--by", "kernel")):
        done = faultbench(*args, check=False)
        assert done.returncode == 2 and not done.stdout, done.stderr
        assert one_line(done.stderr) == (f"faultbench {args[0]}: {copy}/samples.jsonl: "
                                         f"{problem}: {DIFFERENT}")


def test_a_running_boots_samples_are_read(tmp_path: Path) -> None:
    """A kill between adding a boot's samples and recording it as done leaves them there,
    with the boot `running` (a resume sets them aside): the run is still reported."""
    copy = _copy(AA, tmp_path / "run",
                 meta=_boot(5, status="running"))
    faultbench("report", "--json", copy)


@pytest.mark.parametrize("run", sorted(p for p in RESULTS.iterdir()
                                       if (p / "meta.json").is_file()), ids=lambda p: p.name)
def test_every_shipped_run_still_loads(run: Path) -> None:
    faultbench("report", "--json", run)


def test_a_shard_keeping_a_failed_boots_samples_is_not_merged(tmp_path: Path) -> None:
    """R24-4: a shard whose boot 0 is recorded failed, with its samples kept, merged and
    the merged run counted them."""
    def failed(index: int, meta: Meta, samples: list[Record]) -> None:
        if index == 1:
            meta["boots"][0].update(status="failed", reason="x")
            meta["finished_utc"] = None
    one, two = shards(AA, tmp_path, change=failed)
    assert merge_refused(one, two, out=tmp_path / "merged") == (
        f"faultbench merge: {one}/samples.jsonl: has samples of boot 0, which its meta.json "
        f"records as failed: {DIFFERENT}")


def test_a_boot_failed_while_collected_adds_no_samples(tmp_path: Path) -> None:
    """The host adds a finished boot's samples to the run last: a worker.log it refuses
    (here a link) fails the boot, which then has none in samples.jsonl to refuse the run
    with. Before, its samples were added first, and the boot recorded failed."""
    run = _copy(AA, tmp_path / "run", meta=_boot(0, status="running"))
    records = _lines(run / "samples.jsonl")
    mine = run / "boots" / "0.d"
    mine.mkdir()
    shutil.copy(run / "meta.json", mine / "meta.json")
    _write_lines(mine / "samples.jsonl", [r for r in records if r["boot"] == 0])
    (mine / "worker.log").write_text("boot 0's worker\n")
    _write_lines(run / "samples.jsonl", [r for r in records if r["boot"] != 0])
    (run / "worker.log").unlink(missing_ok=True)
    (run / "worker.log").symlink_to(tmp_path / "elsewhere.log")
    run_dir = RunDir(run)
    try:
        with pytest.raises(_NotAdded, match="cannot be added to the run's files"):
            _collect(run_dir, run_dir.read_meta(), {"index": 0, "rounds": [0, 2]})
    finally:
        run_dir.dir.close()
    assert [r for r in _lines(run / "samples.jsonl") if r["boot"] == 0] == []
    recorded = json.loads((run / "meta.json").read_text())  # as the host then records it
    _boot(0, status="failed", reason="its samples were read, but cannot be added")(recorded)
    (run / "meta.json").write_text(json.dumps(recorded))
    faultbench("report", "--json", run)


# ---- R24-6: kernels/build's cache hit, of files another user can change -------------------

needs_build = pytest.mark.skipif(not have_build_dependencies(),
                                 reason="kernel build dependencies missing")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the cache's owner checks are root's")
STRANGER = 4242  # no user: a uid only root can give a file


def _planted(cache: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """Root's entry of the base build's inputs (a check-only on an empty cache names it),
    with an image and the record of its sha256."""
    assert build.main(["--cache", str(cache), "--check-only"]) == 0
    image = Path(capsys.readouterr().out.splitlines()[-1])
    image.parent.mkdir(parents=True)
    image.write_bytes(b"an image")
    digest = hashlib.sha256(b"an image").hexdigest()
    (image.parent / "meta.json").write_text(json.dumps({"image_sha256": digest}))
    return image


def _stranger(path: Path) -> str:
    os.chown(path, STRANGER, STRANGER)
    return f"owned by uid {STRANGER}"


def _world_writable(path: Path) -> str:
    path.chmod(0o666)
    return "writable by other users"


@needs_build
@needs_root
@pytest.mark.parametrize("name", ["bzImage", "meta.json"])
@pytest.mark.parametrize("change", [_stranger, _world_writable])
def test_a_cached_file_another_user_can_change_is_no_cache_hit(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str,
        change: Callable[[Path], str]) -> None:
    """R24-6: only the entry directory's owner was checked; each of its two files now is,
    as the entry is."""
    cache = tmp_path / "cache"
    entry = _planted(cache, capsys).parent
    who = change(entry / name)
    assert build.main(["--cache", str(cache), "--check-only"]) == 2
    checked = capsys.readouterr()
    assert checked.out == ""
    assert one_line(checked.err) == (
        f"kernels/build: {entry / name} is {who}: root neither builds in nor boots from an "
        "entry another user can change (its image could be theirs); remove the entry "
        f"(rm -rf {entry}) and build again")


@needs_build
@needs_root
def test_roots_own_cached_image_is_a_cache_hit(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The control: root's files, writable by root's group only, are the build."""
    image = _planted(tmp_path / "cache", capsys)
    (image.parent / "meta.json").chmod(0o664)
    assert build.main(["--cache", str(tmp_path / "cache"), "--check-only"]) == 0
    assert capsys.readouterr().out == f"{image}\n"
