"""Boots in parallel (`run --jobs`), shards (`run --shard`, `faultbench merge`) and native runs
of several machines merged with `machine` as a factor (docs/scale.md).

The booted tests boot the Debian image under two labels, one boot each: a run with two
guests at once, interrupted with SIGTERM while both run and resumed, and the same plan as
two shards run at the same time and merged. Guests are counted by this test's own TMPDIR,
which names their scratch directories: another test's guests on the machine do not count.

Those six full boots run on the wall clock (SHARED_RUN_CLOCK): what they test (two guests at
once, SIGTERM, resume, shards, merge) works alike on either clock, and what is compared are
counts, which no clock moves; a wall-clock TCG boot costs about 9 s of CPU where an
instruction-clock one costs about 16. test_sigint_or_sigkill_with_two_guests_leaves_none
keeps two instruction-clock guests at once, the default `--jobs` is meant for.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from statistics import median
from typing import Any

import pytest
from analysis_runs import measured_again
from groups import HOST, SCALE_RUN
from images import require_boot_image
from inprocess import in_process
from test_hardening_round17_merge import shards

from faultbench.measurement.booted.boot_order import BootPlanError, shard_positions
from faultbench.measurement.booted.jobs import HEADROOM_MIB, default_jobs
from faultbench.measurement.knobs import sysfs
from faultbench.measurement.measure import meminfo

FAULTBENCH = [sys.executable, "-P", "-m", "faultbench"]
AA = Path(__file__).parents[1] / "results" / "icount-aa"  # a booted run of kernels a and b
WORKLOAD = """\
description = "scale tests: two boots of four small scenarios"
repetitions = 2
warmups = 1
seed = 11

[defaults]
backing = "memfd"
size = "4M"
access = "read"
cache = "warm"

[[matrix]]
pattern = ["seq", "sparse"]
uffd = ["none", "wp"]
"""
# the wall clock's warning for --jobs 2 is expected: its guests' times are not what is tested
SHARED_RUN_CLOCK = ("--clock", "wall")
NATIVE = """\
description = "scale tests: a native run"
repetitions = 3
warmups = 1

[[matrix]]
backing = "memfd"
size = "1M"
uffd = ["none", "wp"]
"""


def faultbench(*args: object, env: dict[str, str] | None = None,
               check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*FAULTBENCH, *map(str, args)], capture_output=True, text=True,
                          check=False, timeout=1800, env={**os.environ, **(env or {})})
    if check:
        assert done.returncode == 0, done.stderr
    return done


def samples(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]


def meta_of(run: Path) -> dict[str, Any]:
    return json.loads((run / "meta.json").read_text())


def ours(tmpdir: Path) -> tuple[set[int], set[int]]:
    """(QEMUs, watchdogs) started under TMPDIR=tmpdir: QEMUs name their scratch directory
    there on their command line, watchdogs inherit the environment."""
    qemus, watchdogs = set(), set()
    mark = str(tmpdir).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if b"qemu-system" in cmdline and mark in cmdline:
            qemus.add(int(entry.name))
        if b"booted.watchdog" in cmdline and b"TMPDIR=" + mark + b"\0" in environ + b"\0":
            watchdogs.add(int(entry.name))
    return qemus, watchdogs


def test_default_jobs_are_the_cpus_capped_by_memory_on_the_instruction_clock() -> None:
    cpus = len(os.sched_getaffinity(0))
    available = meminfo()["MemAvailable"] * 1024
    count, why = default_jobs("icount", "512M")
    assert count == min(cpus, available // ((512 + HEADROOM_MIB) << 20)) and "CPU" in why
    # memory for one guest only: one, whatever the CPUs
    big = f"{available // 2**20 - HEADROOM_MIB}M"
    assert default_jobs("icount", big)[0] == 1
    assert default_jobs("wall", "512M")[0] == 1


def test_shards_split_the_plan_deterministically() -> None:
    assert [shard_positions(6, i, 2) for i in (1, 2)] == [[0, 2, 4], [1, 3, 5]]
    assert sorted(p for i in (1, 2, 3, 4) for p in shard_positions(6, i, 4)) == list(range(6))
    with pytest.raises(BootPlanError, match="only 2 boots"):
        shard_positions(2, 1, 3)


@pytest.mark.parametrize(("args", "message"), [
    (["--jobs", "2"], "give --kernel too"),
    (["--shard", "1/2"], "give --kernel too"),
    (["--kernel", "{image}", "--shard", "3/2"], "give I/N with 1 <= I <= N"),
    (["--kernel", "{image}", "--shard", "2/2"], "only 1 boots, so at most 1 shards"),
    (["--kernel", "{image}", "--jobs", "0"], "--jobs must be from 1"),
])
def test_bad_jobs_and_shard_options_are_one_line(tmp_path: Path, args: list[str],
                                                  message: str) -> None:
    image = require_boot_image() if "{image}" in args else ""
    (tmp_path / "w.toml").write_text(WORKLOAD)
    done = faultbench("run", tmp_path / "w.toml", *(a.format(image=image) for a in args),
                      "--out", tmp_path / "out", check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_wall_clock_jobs_warn_and_boots_run_at_once(tmp_path: Path) -> None:
    """Boots that cannot finish in 2 s: cheap, and enough to see two guests at once."""
    image = require_boot_image()
    (tmp_path / "w.toml").write_text(WORKLOAD)
    kernels = ["--kernel", f"x={image}", "--kernel", f"y={image}", "--boots", "1"]
    env = {"FAULTBENCH_GUEST_TIMEOUT_S": "2"}
    done = faultbench("run", tmp_path / "w.toml", *kernels, "--clock", "wall", "--jobs", "2",
                      "--out", tmp_path / "two", env=env, check=False)
    warnings = [line for line in done.stderr.splitlines() if "contention" in line
                or "moves wall-clock times" in line]
    assert len(warnings) == 1 and warnings[0].startswith("faultbench run: --jobs 2 on the wall")
    meta = meta_of(tmp_path / "two")
    assert meta["jobs"] == {"count": 2, "source": "--jobs"}
    assert [b["concurrent_with"] for b in meta["boots"]] == [[1], [0]]
    done = faultbench("run", tmp_path / "w.toml", *kernels, "--clock", "wall",
                      "--out", tmp_path / "one", env=env, check=False)
    assert "moves wall-clock times" not in done.stderr
    meta = meta_of(tmp_path / "one")
    assert meta["jobs"]["count"] == 1 and meta["jobs"]["source"].startswith("default: the wall")
    assert [b["concurrent_with"] for b in meta["boots"]] == [[], []]


@pytest.fixture(scope="module")
def parallel_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two guests at once, SIGTERM while both run, then --resume: what was left and the run."""
    image = require_boot_image()
    base = tmp_path_factory.mktemp("parallel")
    (base / "w.toml").write_text(WORKLOAD)
    tmpdir = base / "tmp"
    tmpdir.mkdir()
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    run = base / "run"
    proc = subprocess.Popen(
        [*FAULTBENCH, "run", base / "w.toml", "--kernel", f"a={image}", "--kernel",
         f"b={image}", "--boots", "1", "--jobs", "2", *SHARED_RUN_CLOCK, "--out", run],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while len(ours(tmpdir)[0]) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    both = len(ours(tmpdir)[0])
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    left = ours(tmpdir)
    scratch_left = list(tmpdir.glob("faultbench-guest-*"))
    killed = meta_of(run)
    resumed = faultbench("run", "--resume", run, "--jobs", "2", env={"TMPDIR": str(tmpdir)})
    return {"both": both, "status": proc.returncode, "stderr": stderr, "left": left,
            "scratch_left": scratch_left, "killed": killed, "run": run, "base": base,
            "image": image, "resumed": resumed}


@SCALE_RUN
def test_sigterm_stops_every_guest_and_resume_finishes(parallel_run: dict[str, Any]) -> None:
    seen = parallel_run
    assert seen["both"] == 2, "two guests never ran at once"
    assert seen["status"] == 128 + signal.SIGTERM, seen["stderr"]
    assert seen["left"] == (set(), set()), "a QEMU or watchdog outlived the run"
    assert seen["scratch_left"] == [], "a scratch directory outlived the run"
    assert [b["status"] for b in seen["killed"]["boots"]] == ["interrupted", "interrupted"]
    meta = meta_of(seen["run"])
    assert [b["status"] for b in meta["boots"]] == ["ok", "ok"] and meta["finished_utc"]
    assert [b["attempts"] for b in meta["boots"]] == [2, 2]
    assert [b["concurrent_with"] for b in meta["boots"]] == [[1], [0]]
    assert not any((seen["run"] / "boots").glob("*.d")), "a boot's own directory was left"
    rows = samples(seen["run"])
    # every boot: 4 scenarios x (1 warm-up + 2 measured rounds), from its finished attempt
    assert sorted((r["boot"], r["scenario"], r["round"]) for r in rows) == sorted(
        {(r["boot"], r["scenario"], r["round"]) for r in rows})
    assert [sum(r["boot"] == b for r in rows) for b in (0, 1)] == [12, 12]


@pytest.fixture(scope="module")
def merged_shards(parallel_run: dict[str, Any]) -> dict[str, Any]:
    """The same plan as two shards, run at the same time, and merged."""
    base, image = parallel_run["base"], parallel_run["image"]
    procs = [subprocess.Popen(
        [*FAULTBENCH, "run", base / "w.toml", "--kernel", f"a={image}", "--kernel",
         f"b={image}", "--boots", "1", "--shard", f"{i}/2", *SHARED_RUN_CLOCK,
         "--out", base / f"shard{i}", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in (1, 2)]
    for proc in procs:
        _, stderr = proc.communicate(timeout=1800)
        assert proc.returncode == 0, stderr
    done = faultbench("merge", base / "shard2", base / "shard1", "--out", base / "merged")
    return {"base": base, "merged": base / "merged", "stdout": done.stdout,
            "unsharded": parallel_run["run"]}


@SCALE_RUN
def test_merged_booted_shards_are_out_of_other_users_reach_with_or_without_boots(
        merged_shards: dict[str, Any], tmp_path: Path) -> None:
    """R35-2: meta.json holds what the guests returned (which may be any of the host's
    files): a merge of shards copied without their boots/ made a 0755 directory of it."""
    base, copies = merged_shards["base"], []
    for shard in ("shard1", "shard2"):
        copies.append(tmp_path / shard)
        copies[-1].mkdir()
        for name in ("meta.json", "samples.jsonl", "pyperf.json"):
            shutil.copy(base / shard / name, copies[-1] / name)
    faultbench("merge", *copies, "--out", tmp_path / "merged")
    for run in (merged_shards["merged"], tmp_path / "merged", base / "shard1"):
        assert run.stat().st_mode & 0o777 == 0o700, run


def _per_row(run: Path, metric: str) -> dict[tuple[str, str], float]:
    values = defaultdict(list)
    for r in samples(run):
        if r["status"] == "ok" and not r["warmup"]:
            values[(r["kernel"], r["scenario"])].append(r[metric])
    return {key: median(v) for key, v in values.items()}


@SCALE_RUN
def test_merged_shards_are_the_unsharded_run(merged_shards: dict[str, Any]) -> None:
    merged, unsharded = merged_shards["merged"], merged_shards["unsharded"]
    assert "2 boots from 2 shards" in merged_shards["stdout"]
    meta, whole = meta_of(merged), meta_of(unsharded)
    assert [(b["index"], b["kernel"], b["kernel_boot"], b["rounds"], b["shard"])
            for b in meta["boots"]] == [(0, "a", 0, [0, 2], 1), (1, "b", 0, [0, 2], 2)]
    assert [(b["kernel"], b["rounds"]) for b in whole["boots"]] == [
        (b["kernel"], b["rounds"]) for b in meta["boots"]]
    assert "shard" not in meta and meta["finished_utc"]
    key = [(r["boot"], r["kernel"], r["scenario"], r["round"]) for r in samples(merged)]
    assert sorted(key) == sorted((r["boot"], r["kernel"], r["scenario"], r["round"])
                                 for r in samples(unsharded))
    for metric in ("faults_per_page", "pages_mapped"):
        a, b = _per_row(merged, metric), _per_row(unsharded, metric)
        assert a.keys() == b.keys()
        for row in a:
            assert abs(a[row] - b[row]) <= 0.002 * b[row], (metric, row, a[row], b[row])
    for command in (["report", merged], ["compare", merged, "--by", "kernel"]):
        done = faultbench(*command)
        assert "boots" in done.stdout or "results in" in done.stdout
    # a merged run against one of its shards: that shard's samples on both sides (R20-2)
    shard = merged_shards["base"] / "shard1"
    done = in_process("compare", f"{merged}:a", f"{shard}:a", "--by", "kernel")
    assert done.returncode == 2 and "are the same samples" in done.stderr


def _copy(src: Path, dst: Path, edit: Any = None) -> Path:
    shutil.copytree(src, dst)
    if edit is not None:
        meta = meta_of(dst)
        edit(meta)
        (dst / "meta.json").write_text(json.dumps(meta))
    return dst


@pytest.mark.parametrize(("edit", "message"), [
    (lambda m: m["workload"].update(seed=12), "differ in workload"),
    # a meta.json edited to another kernel is not its samples' (each carries its kernel's
    # sha256, R24-4): refused before the shards are compared
    (lambda m: m["kernels"][1].update(sha256="0" * 64), "tagged kernel sha256"),
    # the shards are wall-clock: a meta.json edited to another plane is not its samples'
    (lambda m: m.update(plane="tcg-icount"), "has samples of plane 'tcg-guest'"),
    (lambda m: m["clock"].update(kernel_params=""), "differ in clock"),
    (lambda m: m.update(harness_epoch=m["harness_epoch"] + 1), "differ in harness epoch"),
    # a shard record edited alone no longer holds its boot's plan position (R27-1)
    (lambda m: m["shard"].update(index=1), "is not one of shard 1/2's: not a shard of this run"),
    (lambda m: m["shard"].update(index=3, count=3, plan_boots=3),
     "is not one of shard 3/3's: not a shard of this run"),
])
@SCALE_RUN
def test_merge_refuses_parts_of_different_runs(merged_shards: dict[str, Any], tmp_path: Path,
                                               edit: Any, message: str) -> None:
    base = merged_shards["base"]
    other = _copy(base / "shard2", tmp_path / "shard2", edit)
    done = faultbench("merge", base / "shard1", other, "--out", tmp_path / "out", check=False)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_merge_names_the_missing_shard(tmp_path: Path) -> None:
    """Shards 1 and 3 of three, split from a real booted run as `--shard I/3` would have
    measured them."""
    first, _, third = shards(AA, tmp_path, count=3)
    done = faultbench("merge", first, third, "--out", tmp_path / "out", check=False)
    assert done.returncode == 2 and "shard 2/3 missing" in done.stderr, done.stderr


@pytest.mark.parametrize(("cut", "message"), [
    (lambda lines: lines + lines, "the sample of line 1 again"),
    (lambda lines: lines[:1], "(recorded as done) lacks the samples of"),
])
@SCALE_RUN
def test_merge_refuses_a_shard_whose_samples_were_doubled_or_cut(
        merged_shards: dict[str, Any], tmp_path: Path, cut: Any, message: str) -> None:
    """A shard's samples.jsonl twice over (it looked complete: 12 lines merged), or cut to
    its first line (merged silently as a finished shard)."""
    base = merged_shards["base"]
    other = _copy(base / "shard2", tmp_path / "shard2")
    lines = (other / "samples.jsonl").read_text().splitlines(keepends=True)
    (other / "samples.jsonl").write_text("".join(cut(lines)))
    done = faultbench("merge", base / "shard1", other, "--out", tmp_path / "out", check=False)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_native_runs_of_two_machines_merge_with_machine_as_a_factor(tmp_path: Path) -> None:
    """The second machine's run is this machine's with its provenance host name rewritten
    in a copy, one sample's time a nanosecond apart (faultbench offers no way to claim
    another machine name)."""
    (tmp_path / "n.toml").write_text(NATIVE)
    faultbench("run", tmp_path / "n.toml", "--out", tmp_path / "here", "-q")
    host = meta_of(tmp_path / "here")["provenance"]["host"]["name"]
    # a plain copy holds identical samples, which merge refuses as one measurement
    other = _copy(measured_again(tmp_path / "here", tmp_path / "again"), tmp_path / "there",
                  lambda m: m["provenance"]["host"].update(name="other-machine"))
    # merge, report and compare in this process (tests/inprocess.py)
    done = in_process("merge", tmp_path / "here", tmp_path / "here", "--out",
                      tmp_path / "same")
    assert done.returncode == 2 and f"both from machine {host}" in done.stderr
    done = in_process("merge", tmp_path / "here", other, "--out", tmp_path / "fleet")
    assert done.returncode == 0, done.stderr
    rows = samples(tmp_path / "fleet")
    assert {r["machine"] for r in rows} == {host, "other-machine"}
    done = in_process("report", tmp_path / "fleet", "--no-figures")
    assert done.returncode == 0, done.stderr
    # never pooled: every row of the table names its machine
    assert f"machine={host}" in done.stdout and "machine=other-machine" in done.stdout
    done = in_process("compare", f"{tmp_path / 'fleet'}:{host}",
                      f"{tmp_path / 'fleet'}:other-machine", "--by", "machine")
    assert done.returncode == 0 and "memfd" in done.stdout, done.stderr
    pyperf = json.loads((tmp_path / "fleet" / "pyperf.json").read_text())
    names = {b["metadata"]["name"] for b in pyperf["benchmarks"]}
    assert all(",machine=" in name for name in names)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL])
def test_sigint_or_sigkill_with_two_guests_leaves_none(tmp_path: Path, signum: int) -> None:
    """Ctrl-C unwinds as SIGTERM does (the main thread stops both guests); SIGKILL leaves it
    to each guest's watchdog."""
    image = require_boot_image()
    (tmp_path / "w.toml").write_text(WORKLOAD)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    proc = subprocess.Popen(
        [*FAULTBENCH, "run", tmp_path / "w.toml", "--kernel", f"a={image}", "--kernel",
         f"b={image}", "--boots", "1", "--jobs", "2", "--out", tmp_path / "run"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "TMPDIR": str(tmpdir)})
    deadline = time.monotonic() + 120
    while len(ours(tmpdir)[0]) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert len(ours(tmpdir)[0]) == 2, "two guests never ran at once"
    proc.send_signal(signum)
    proc.wait(timeout=60)
    deadline = time.monotonic() + 30  # a watchdog gives QEMU a grace period
    while (ours(tmpdir) != (set(), set()) or list(tmpdir.glob("faultbench-guest-*"))) \
            and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ours(tmpdir) == (set(), set()), "a QEMU or watchdog outlived the run"
    assert not list(tmpdir.glob("faultbench-guest-*")), "a scratch disk outlived the run"
    # virtme-ng's own temp files (virtme_ret*, removed at its exit, which a kill skips)
    assert not list(tmpdir.iterdir()), "a temp file outlived the run"
    if signum == signal.SIGINT:
        assert proc.returncode == 128 + signal.SIGINT
        assert [b["status"] for b in meta_of(tmp_path / "run")["boots"]] == ["interrupted"] * 2


@HOST
def test_a_filesystem_another_process_mounts_meanwhile_is_used_not_refused() -> None:
    """securityfs mounted by another process between our check and our mount (the machine's
    mounts reach our own namespace): the mount fails, and the command goes on with theirs,
    which it leaves mounted. In a child: mounted() moves its process to a namespace of its
    own."""
    if os.geteuid() != 0 or not sysfs.kernel_has_fs("securityfs"):
        pytest.skip("needs root and securityfs")
    if sysfs.is_mounted(sysfs.SECURITYFS, "securityfs"):
        pytest.skip("securityfs is mounted here for good: nothing to race")
    code = (
        "import subprocess\n"
        "from faultbench.measurement.knobs import sysfs\n"
        "real, calls = sysfs.is_mounted, []\n"
        "def stale_first(target, fstype):\n"
        "    calls.append(target)\n"
        "    if len(calls) == 1:  # our check found nothing; then the other process mounts\n"
        "        subprocess.run(['mount', '-t', 'securityfs', 'securityfs', target], check=True)\n"
        "        return False\n"
        "    return real(target, fstype)\n"
        "sysfs.is_mounted = stale_first\n"
        "with sysfs.mounted('securityfs', sysfs.SECURITYFS) as there:\n"
        "    print(there)\n"
    )
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=False)
        assert done.stdout.strip() == "True", done.stderr
        assert sysfs.is_mounted(sysfs.SECURITYFS, "securityfs"), \
            "the other process's mount was taken away"
    finally:
        sysfs.umount(sysfs.SECURITYFS)
