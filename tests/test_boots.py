"""Several kernels in one run: real boots under QEMU, interleaved, killed and resumed.

The two-kernel run the analysis tests share (the Debian image under two labels, --boots 2,
analysis_runs.killed_kernels_run) is killed with SIGKILL while its second boot is running and
resumed; a run of images that cannot boot shows a failed boot is recorded and the run goes
on. Option errors are checked without booting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from analysis_runs import kernels_run, killed_kernels_run
from groups import KERNELS_RUN
from images import require_boot_image

FAULTBENCH = [sys.executable, "-P", "-m", "faultbench"]
WORKLOAD = """\
description = "boot tests that never finish a boot: option errors, failed boots"
repetitions = 2
warmups = 1
seed = 11

[knobs]
"thp.shmem_enabled" = "never"

[defaults]
backing = "memfd"
size = "4M"
access = "read"
cache = "warm"

[[matrix]]
pattern = ["seq", "sparse"]
uffd = ["none", "wp"]
mappers = 2
mapper_kind = "thread"
"""


def _image() -> str:
    return require_boot_image()


def faultbench(*args: object, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*FAULTBENCH, *map(str, args)], capture_output=True, text=True,
                          check=False, timeout=1800)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def samples(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]


@KERNELS_RUN
def test_boots_interleave_and_every_sample_says_which(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    run = killed_kernels_run(tmp_path_factory).run
    meta = json.loads((run / "meta.json").read_text())
    assert [(b["kernel"], b["kernel_boot"]) for b in meta["boots"]] == [
        ("a", 0), ("b", 0), ("b", 1), ("a", 1)]
    assert [b["rounds"] for b in meta["boots"]] == [[0, 2], [0, 2], [2, 4], [2, 4]]
    assert all(b["status"] == "ok" and b["guest"]["kernel"]["release"] for b in meta["boots"])
    # the guest's command line as provenance, without the paths that name this machine
    for boot in meta["boots"]:
        cmdline = boot["guest"]["kernel"]["cmdline"]
        assert "virtme_chdir=<cwd>" in cmdline and "init=<venv>/" in cmdline, cmdline
        assert "PATH=<scratch>/init-bin:/usr/sbin:" in cmdline, cmdline
        assert sys.prefix not in cmdline and f"={os.getcwd().lstrip('/')} " not in cmdline
    assert meta["finished_utc"] and [k["label"] for k in meta["kernels"]] == ["a", "b"]
    assert meta["kernels"][0]["sha256"] == meta["kernels"][1]["sha256"]
    rows = samples(run)
    for r in rows:
        boot = meta["boots"][r["boot"]]
        assert r["kernel"] == boot["kernel"] and r["status"] == "ok", r
        assert r["kernel_release"] == boot["guest"]["kernel"]["release"]
        assert r["kernel_sha256"] == meta["kernels"][0]["sha256"]
        assert r["plane"] == meta["plane"] != "native"
    # every boot: 4 scenarios x 1 mapper x (1 warm-up + 2 measured rounds)
    assert Counter(r["boot"] for r in rows) == {0: 12, 1: 12, 2: 12, 3: 12}
    measured = Counter((r["kernel"], r["scenario"], r["round"], r["mapper"])
                       for r in rows if not r["warmup"])
    assert set(measured.values()) == {1} and len(measured) == 2 * 4 * 4


@KERNELS_RUN
def test_kill_9_mid_boot_leaves_no_guest_and_resume_redoes_that_boot(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    seen = killed_kernels_run(tmp_path_factory)
    run, resumed_stderr = seen.run, seen.resumed_stderr
    assert seen.left == [], "QEMU/vng outlived the killed host"
    assert seen.scratch, "the guest's scratch directory was not seen on its command line"
    assert not seen.scratch_left, "the guest's scratch disk outlived the killed host"
    assert [b["status"] for b in seen.killed_meta["boots"]][:2] == ["ok", "running"]
    meta = json.loads((run / "meta.json").read_text())
    assert meta["boots"][1]["attempts"] == 2 and meta["boots"][0]["attempts"] == 1
    discarded = run / "discarded.jsonl"
    if discarded.exists():  # samples of the killed attempt, never mixed into the results
        assert all(json.loads(x)["boot"] == 1 for x in discarded.read_text().splitlines())
        assert "set aside" in resumed_stderr


@KERNELS_RUN
def test_report_compares_the_kernels_per_boot(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    run = kernels_run(tmp_path_factory)
    done = faultbench("compare", f"{run}:a", f"{run}:b", "--by", "kernel")
    assert "boots" in done.stdout


def test_a_boot_that_fails_is_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    """Boots that cannot finish in time (2 s: not even the kernel is up) fail with the
    reason; the next boot still runs, and the run says how to redo them."""
    image = _image()
    (tmp_path / "w.toml").write_text(WORKLOAD)
    done = subprocess.run(
        [*FAULTBENCH, "run", tmp_path / "w.toml", "--kernel", f"x={image}", "--kernel",
         f"y={image}", "--boots", "1", "--out", tmp_path / "run"],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "FAULTBENCH_GUEST_TIMEOUT_S": "2"})
    assert done.returncode == 1, done.stderr
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert [b["status"] for b in meta["boots"]] == ["failed", "failed"]
    assert all("did not finish within 2 s" in b["reason"] for b in meta["boots"])
    assert "redo them with: faultbench run --resume" in done.stderr
    assert not meta["finished_utc"]


@pytest.mark.parametrize(("args", "message"), [
    (["--kernel", ""], "give a path or name"),
    (["--kernel", "/nonexistent/bzImage"], "no such kernel image or build tree"),
    (["--kernel", "{tmp}"], "has no arch/x86/boot/bzImage"),
    (["--kernel", "a={image}", "--kernel", "a={image}"], "given twice"),
    (["--kernel", "a={image}", "--kernel", "b={image}", "--boots", "4"], "from 1 to 2, got 4"),
    (["--kernel", "{junk}"], "not a bootable x86 kernel image"),
    (["--boots", "2"], "give --kernel too"),
])
def test_bad_kernel_options_are_one_line_and_leave_no_directory(
    tmp_path: Path, args: list[str], message: str,
) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"\0" * 4096)
    (tmp_path / "w.toml").write_text(WORKLOAD)
    image = _image() if any("{image}" in a for a in args) else ""
    argv = [a.format(tmp=tmp_path, junk=junk, image=image) for a in args]
    done = faultbench("run", tmp_path / "w.toml", *argv, "--out", tmp_path / "out", check=False)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_an_out_directory_the_scratch_disk_would_hide_is_refused(tmp_path: Path) -> None:
    image = _image()
    (tmp_path / "w.toml").write_text(WORKLOAD)
    out = Path("/var/tmp") / f"faultbench-hidden-{os.getpid()}"
    done = faultbench("run", tmp_path / "w.toml", "--kernel", image, "--out", out, check=False)
    assert done.returncode == 2 and "would never reach the host" in done.stderr
    assert not out.exists()
