"""Round 27 (R27-2, R27-3, R27-4): a guest whose QEMU is killed while it measures is not
blamed on its kernel; meta.json's guest_memory is checked as `--memory` is (the floor on
load, this machine's memory before a resume boots); an empty `--memory` is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from analysis_runs import faultbench
from console import said
from images import require_boot_image
from test_guest import _qemu_with_scratch
from test_hardening_round3_input import fb, refused
from test_hardening_round26_f import _copy, _without_b

from faultbench.measurement.booted.boots import chosen_memory, guest_memory
from faultbench.measurement.booted.scratch import GUEST_SHARE
from faultbench.measurement.measure import meminfo
from faultbench.measurement.runner import RunError

WORKLOAD = ('description = "x"\nrepetitions = {reps}\nwarmups = 0\n[defaults]\n'
            'backing = "memfd"\nsize = "{size}"\n[[matrix]]\npattern = "seq"\n')
KILLED = "the guest (QEMU) ended after its command had started, before it finished"


def test_an_empty_memory_is_refused_in_one_line(tmp_path: Path) -> None:
    """R27-4: `run --kernel ... --memory ''` booted with the default memory."""
    workload = tmp_path / "w.toml"
    workload.write_text(WORKLOAD.format(reps=1, size="1M"))
    refused(fb("run", workload, "--kernel", tmp_path / "no-image", "--out", tmp_path / "out",
               "--memory", ""), "run", "--memory '': give a size such as 512M")
    assert not (tmp_path / "out").exists()
    with pytest.raises(RunError, match="--memory: size '' is not a number"):
        chosen_memory("", "384M")  # not the workload's, as `if option` had it


@pytest.mark.parametrize("option", ["--kernel", "--size", "--pattern", "--fill", "--map-offset",
                                    "--dir", "--clock", "--tmpfs-huge", "--set"])
def test_measure_kernel_refuses_every_empty_value(tmp_path: Path, option: str) -> None:
    """R27-4's check of `measure --kernel`: none of its options' empty values is passed over
    (the image does not exist: each is refused before anything would boot)."""
    args = ["measure", "--kernel", tmp_path / "no-image", "--size", "1M", option, ""]
    done = fb(*args)
    assert done.returncode == 2 and len(said(done.stderr)) == 1, done.stderr
    assert "''" in done.stderr and "no-image" not in done.stderr, done.stderr


def _memory(value: str) -> Callable[[dict[str, Any]], None]:
    def change(meta: dict[str, Any]) -> None:
        meta["guest_memory"] = value
    return change


@pytest.mark.parametrize("value", ["1K", "127M"])
def test_a_guest_memory_no_guest_boots_with_is_refused_on_load(tmp_path: Path,
                                                               value: str) -> None:
    """R27-3: below the floor `--memory` has, every boot of a resume would fail as an image
    that may not boot."""
    run = _copy(tmp_path, _memory(value))
    done = faultbench("report", run, "--no-figures", check=False)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (f"faultbench report: {run / 'meta.json'}: guest_memory: a guest "
                           f"needs at least 128M, got '{value}'\n")


def test_a_guest_memory_beyond_this_machine_is_refused_by_resume_before_any_boot(
        tmp_path: Path) -> None:
    """R27-3: `-m 1PM` made every attempt fail, its redo hint looping. Refused in one line
    naming meta.json, which is left as it was; the images are made paths that do not exist,
    so a resume that got past the check would be refused for them instead."""
    host = meminfo()["MemTotal"] * 1024
    more = f"{host // 2**30 + 1}G"

    run = _without_b(tmp_path)  # kernel b's boots failed, to be redone
    meta = json.loads((run / "meta.json").read_text())
    meta["guest_memory"] = more
    for kernel in meta["kernels"]:
        kernel["image"] = str(tmp_path / "no-such-image")
    (run / "meta.json").write_text(json.dumps(meta, indent=1))
    assert faultbench("report", run, "--no-figures", check=False).returncode == 0  # elsewhere
    before = (run / "meta.json").read_bytes()
    done = fb("run", "--resume", run, "--jobs", "1")
    assert (done.returncode, done.stderr) == (
        2, f"faultbench run: {run / 'meta.json'}: guest_memory: {more} is more memory than "
        f"this machine has ({host / 2**30:.1f} GiB)\n")
    assert (run / "meta.json").read_bytes() == before


def test_a_recorded_guest_memory_boots_as_virtme_ng_reads_it() -> None:
    """virtme-ng adds M to a size without an upper-case K, M or G: '1g' would be -m 1gM."""
    assert guest_memory({"guest_memory": "1g"}) == "1G"
    assert guest_memory({"guest_memory": "1536M"}) == "1536M"


def _started(tmp: Path, limit_s: float) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if list(tmp.glob(f"faultbench-guest-*/{GUEST_SHARE}/started")):
            return True
        time.sleep(0.2)
    return False


def test_a_guest_whose_qemu_is_killed_while_it_measures_is_not_blamed_on_its_kernel(
        tmp_path: Path) -> None:
    """R27-2: QEMU killed with SIGKILL once the guest's command has started: the boot fails
    saying QEMU ended before the command finished, not that the image may not boot; nothing
    of the guest is left. Its scratch directory is the test's own ($TMPDIR), so that its
    QEMU, and no other, is the one killed."""
    image = require_boot_image()
    tmp = tmp_path / "tmp"
    tmp.mkdir(mode=0o700)
    workload = tmp_path / "w.toml"
    workload.write_text(WORKLOAD.format(reps=4, size="2M"))
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "faultbench", "run", str(workload), "--kernel", f"a={image}",
         "--out", str(run), "--jobs", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "TMPDIR": str(tmp)})
    try:
        assert _started(tmp, 600), "the guest's command never started"
        qemus = _qemu_with_scratch(tmp)
        assert qemus
        for pid in qemus:
            os.kill(pid, signal.SIGKILL)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1 and "Traceback" not in stderr, stderr
    reason = json.loads((run / "meta.json").read_text())["boots"][0]["reason"]
    assert reason.startswith(KILLED) and "may not boot" not in reason, reason
    assert f"faultbench run: boot 1/1 failed: {reason}" in said(stderr), stderr
    assert not _qemu_with_scratch(tmp) and list(tmp.iterdir()) == []



def test_a_memory_of_no_whole_kib_is_refused() -> None:
    """A byte count format_size cannot write with a suffix would reach virtme-ng bare, and
    it reads a bare number as MiB: 134217729 bytes would have asked QEMU for 128 TiB."""
    with pytest.raises(RunError, match="--memory: give a guest's memory in whole KiB"):
        chosen_memory("134217729", None)
    assert chosen_memory("1572864K", None) == ("1536M", "--memory")
