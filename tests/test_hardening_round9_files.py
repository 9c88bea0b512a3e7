"""Round nine: a patch too large to read, a workload, kernel image or patch that is a FIFO by
the time it is opened, --help and --version to a standard output that fails, and a setting
the kernel refused in a warm-up round counted in the report. Real commands, real files."""
from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from console import one_line
from groups import HOST
from kbuild import BUILD, KERNELS
from test_hardening_round4_input import fb
from test_hardening_round8 import one_scenario

from kernels.cache import read_patch

TREE = Path(__file__).parents[1]

@pytest.mark.parametrize("args,command", [
    (["--help"], "faultbench"), (["--version"], "faultbench"),
    (["run", "--help"], "faultbench run"), (["merge", "--help"], "faultbench merge")])
@pytest.mark.parametrize("stdout,why", [("full", "No space left on device"),
                                        ("closed", "it is closed")])
def test_help_and_version_to_a_failing_stdout_are_one_line_and_status_2(
        args: list[str], command: str, stdout: str, why: str) -> None:
    """argparse prints them while parsing, before the command's error handling: they ended in
    an OutputError traceback and status 1."""
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "faultbench", *args], text=True,
                              stdout=full if stdout == "full" else None, stderr=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": str(TREE)}, timeout=120,
                              # closed: the child's descriptor 1 is closed before it starts
                              preexec_fn=(lambda: os.close(1)) if stdout == "closed" else None)
    assert done.returncode == 2, done.stderr
    assert one_line(done.stderr) == f"{command}: cannot write standard output: {why}"


TWO_ROUNDS_ONE_WARMUP = one_scenario(2).replace("warmups = 0", "warmups = 1")


@HOST
@pytest.mark.skipif(os.geteuid() != 0, reason="sysctls need root")
def test_a_setting_refused_in_a_warm_up_round_is_no_warm_up_sample(tmp_path: Path) -> None:
    """The refusal is recorded as an `unsupported` sample of the unit it was refused in,
    here a warm-up: the report counted it as a warm-up sample excluded."""
    found = Path("/proc/sys/vm/mmap_rnd_bits").read_text().strip()
    workload = tmp_path / "w.toml"
    workload.write_text(TWO_ROUNDS_ONE_WARMUP)
    out = tmp_path / "run"
    done = fb("run", workload, "--out", out, "-q", "--set", f"vm.mmap_rnd_bits={found},1")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert sorted((r["warmup"], r["status"]) for r in records) == [
        (False, "ok"), (False, "ok"), (True, "ok"), (True, "unsupported")]
    report = fb("report", out, "--no-figures")
    assert report.returncode == 0, report.stderr
    text = " ".join(report.stdout.split())  # the footer is wrapped
    assert "1 warm-up samples excluded." in text
    assert "1 unsupported sample(s): cannot write '1' to /proc/sys/vm/mmap_rnd_bits: " \
        "Invalid argument" in text


FIFO_READERS = {
    "workload": ("from faultbench.measurement.workload_checks import workload_text\n"
                 "workload_text(FIFO)"),
    "run --kernel": ("from faultbench.measurement.booted import boots\n"
                     "boots.not_a_file = lambda path: None  # checked while it was a file\n"
                     "boots.parse_kernel(FIFO)"),
    "measure --kernel": ("from faultbench.measurement.booted.imagecheck import boot_refusal\n"
                         "print(boot_refusal(FIFO))"),
    "kernels/build --patch": "from kernels.cache import read_patch\nread_patch(FIFO)",
}


@pytest.mark.parametrize("reader", FIFO_READERS)
def test_a_name_swapped_for_a_fifo_after_its_check_is_refused_not_waited_on(
        tmp_path: Path, reader: str) -> None:
    """Each was checked to be a regular file and then opened again by name, blocking: a FIFO
    put there in between (another user's directory, a link they own) hung root in open() for
    ever. Run in a child whose hang fails the test rather than stopping the suite."""
    fifo = tmp_path / "swapped"
    os.mkfifo(fifo)
    code = f"FIFO = {str(fifo)!r}\n{FIFO_READERS[reader]}\n"
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=30, env={**os.environ, "PYTHONPATH": str(TREE)})
    except subprocess.TimeoutExpired:
        pytest.fail(f"{reader}: blocked opening a FIFO")
    if reader == "measure --kernel":  # requirements() says so then
        assert done.returncode == 0 and done.stdout == (
            f"kernel image {fifo}: a FIFO, not a regular file\n"), done.stderr
    else:
        assert done.returncode == 1 and done.stderr.rstrip().endswith(
            f"{fifo}: a FIFO, not a regular file" if reader != "workload" else
            "a FIFO, not a regular file"), done.stderr


def test_a_patch_over_the_size_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """A sparse 20 GiB file costs its owner nothing: read whole, it took all of root's
    memory, or ended in a MemoryError traceback. The address space is capped here so that
    reading it fails at 1 GiB rather than taking the machine's memory."""
    big = tmp_path / "big.patch"
    with big.open("wb") as sparse:
        sparse.truncate(20 << 30)
    done = subprocess.run(
        [sys.executable, str(BUILD), "--check-only", "--patch", str(big), "--cache",
         str(tmp_path / "cache")], capture_output=True, text=True, timeout=300,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)))
    assert done.returncode == 2, done.stderr
    assert one_line(done.stderr) == (f"kernels/build: patch {big} is 21,474,836,480 bytes, over "
                                     "the 67,108,864 bytes a patch may have: too large to be one")


def test_a_patch_is_hashed_in_blocks_to_the_same_sha256(tmp_path: Path) -> None:
    """Read line by line now: the hash is the whole file's, and headers after a line longer
    than a read are still found."""
    for shipped in sorted((KERNELS / "patches").glob("*/*.patch")):
        data = shipped.read_bytes()
        assert read_patch(shipped) == (data, hashlib.sha256(data).hexdigest())
    late = tmp_path / "late.patch"
    late.write_bytes(b"x" * (3 << 20) + b"\n--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n")
    assert read_patch(late) == (late.read_bytes(), hashlib.sha256(late.read_bytes()).hexdigest())


# Each reader given a FIFO, as it gets one when another user swaps the name for a FIFO after
# the type check (the check itself refuses a FIFO: the swap must come between check and open).
