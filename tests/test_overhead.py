"""benchmarks/overhead.py runs, on both clocks (its ratios are not asserted: a benchmark),
and its yardstick builds clean."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from faultbench.measurement.booted.guest import requirements
from faultbench.measurement.image import boot_images

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
ROW = re.compile(r"^(anon|memfd) +seq +")


def overhead(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    return subprocess.run([sys.executable, str(BENCH / "overhead.py"), "--short", *args],
                          capture_output=True, text=True, timeout=900, check=False, env=env)


def test_reference_loop_is_werror_clean(tmp_path: Path) -> None:
    subprocess.run(["cc", "-std=gnu99", "-O2", "-Wall", "-Wextra", "-Werror", "-o",
                    str(tmp_path / "ref"), str(BENCH / "reference_loop.c")], check=True)


def test_wall_clock_mode_prints_a_ratio_per_backing() -> None:
    result = overhead()
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if ROW.match(line)]
    assert len(rows) == 2 and all("between blocks" in row for row in rows)
    assert "clock wall" in result.stdout


@pytest.mark.skipif(os.geteuid() != 0 or not boot_images()
                    or bool(requirements(boot_images()[0])),
                    reason="booting a guest needs root, an image in /boot, QEMU and vng")
def test_icount_mode_runs_both_sides_in_one_boot() -> None:
    result = overhead("--clock", "icount")
    assert result.returncode == 0, result.stderr
    assert "tcg-icount" in result.stdout and "insn" in result.stdout
    rows = [line.split() for line in result.stdout.splitlines() if ROW.match(line)]
    assert len(rows) == 2
    for row in rows:
        reference, faultbench = int(row[2].replace(",", "")), int(row[5].replace(",", ""))
        assert reference > 0 and faultbench > 0
        # both sides count the samples another task preempted
        assert all(re.fullmatch(r"\d+/2", cell) for cell in (row[4], row[7]))
        # a mapper faults in the mapper program's address space, as small as the bare loop's,
        # not in a copy of the Python process's (90-165 mappings)
        reference_maps, mapper_maps = (int(n) for n in row[-1].split("/"))
        assert 0 < mapper_maps <= reference_maps + 10
