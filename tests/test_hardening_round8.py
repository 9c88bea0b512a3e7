"""Round eight (a short fresh hostile pass): another user's matplotlibrc in root's working
directory, read-ahead values the kernel would round, and `--resume` of a finished booted run.
Real commands, real files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from console import one_line
from groups import HOST
from test_hardening_round4_input import fb

from faultbench.measurement.knobs.catalog import KnobError, resolve
from faultbench.measurement.knobs.requested import parse_set_options

SHIPPED = Path(__file__).parents[1] / "results"


def test_a_matplotlibrc_in_the_working_directory_is_not_read(tmp_path: Path) -> None:
    """One that asks for LaTeX, which this machine lacks, made every figure fail."""
    (tmp_path / "matplotlibrc").write_text("text.usetex: True\n")
    done = subprocess.run([sys.executable, "-m", "faultbench", "report",
                           str(SHIPPED / "native-quick"), "--out", str(tmp_path / "out")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert done.returncode == 0, done.stderr
    assert any(p.suffix == ".svg" for p in (tmp_path / "out" / "figures").iterdir())


@pytest.mark.parametrize("value,used", [("5", "4"), ("130", "128")])
def test_read_ahead_the_kernel_would_round_is_refused(value: str, used: str) -> None:
    if os.sysconf("SC_PAGE_SIZE") != 4096:
        pytest.skip("the values assume 4 KiB pages")
    try:
        resolve("read_ahead_kb", "/")
    except KnobError as exc:
        pytest.skip(f"no read-ahead here: {exc}")
    with pytest.raises(KnobError, match=f"read_ahead_kb={value} is not a multiple of the page "
                                        f"size \\(4 KB\\): the kernel would use {used}"):
        parse_set_options([f"read_ahead_kb={value}"], file_dir="/")
    assert parse_set_options(["read_ahead_kb=128"], file_dir="/") == [("read_ahead_kb",
                                                                       ["128"])]


def test_resume_of_a_finished_booted_run_is_refused_and_changes_nothing(
        tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(SHIPPED / "tcg-icount-profile-kernels", run)
    before = (run / "meta.json").read_bytes()
    done = fb("run", "--resume", run, "-q")
    assert done.returncode == 2, done.stdout
    finished = json.loads(before)["finished_utc"]
    assert one_line(done.stderr) == (
        f"faultbench run: {run} finished at {finished}; nothing to resume (faultbench report "
        f"{run} shows it)")
    assert (run / "meta.json").read_bytes() == before


@HOST
@pytest.mark.skipif(os.geteuid() != 0, reason="sysctls need root")
def test_min_free_kbytes_the_kernel_raises_with_a_thp_switch_is_put_back(
        tmp_path: Path) -> None:
    """Switching THP makes the kernel raise vm.min_free_kbytes to khugepaged's recommended
    value; below that value before the run, it reads as before after it."""
    path = Path("/proc/sys/vm/min_free_kbytes")
    found = path.read_text()
    lower = str(max(int(found) // 2, 1024))
    try:
        path.write_text(lower)
        done = fb("measure", "--size", "1M", "--set", "thp.enabled=never")
        assert done.returncode == 0, done.stderr
        assert path.read_text().strip() == lower
    finally:
        path.write_text(found)
