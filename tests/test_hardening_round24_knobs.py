"""Round twenty-four, R24-2: two settings of a swept knob that the kernel reads back alike
(`node` and `Default` of vm.numa_zonelist_order both read `Node`) were measured as two
scenarios, labelled by the value read back, and pooled into one row with nothing said. Both
`run` and `measure` now write each setting once first and refuse such a sweep, `run` before
its directory exists; the knob is as it was afterwards. The real knob."""

from __future__ import annotations

from pathlib import Path

import pytest
from groups import HOST
from test_hardening_round3_input import fb, refused

ZONELIST = Path("/proc/sys/vm/numa_zonelist_order")
ALIKE = "both read back as"

pytestmark = [HOST, pytest.mark.skipif(not ZONELIST.exists(), reason="a kernel without NUMA")]


def test_run_refuses_two_settings_read_back_alike_before_its_directory_exists(
        tmp_path: Path) -> None:
    before = ZONELIST.read_text()
    workload = tmp_path / "w.toml"
    workload.write_text('description = "x"\nrepetitions = 1\nwarmups = 0\n[defaults]\n'
                        'backing = "anon"\nsize = "1M"\n[[matrix]]\npattern = "seq"\n')
    line = refused(fb("run", workload, "--set", "vm.numa_zonelist_order=node,Default",
                      "--out", tmp_path / "run", "-q"), "run", ALIKE)
    assert "vm.numa_zonelist_order=node and vm.numa_zonelist_order=Default" in line
    assert not (tmp_path / "run").exists()
    assert ZONELIST.read_text() == before


def test_measure_refuses_two_settings_read_back_alike() -> None:
    before = ZONELIST.read_text()
    refused(fb("measure", "--size", "1M", "--set", "vm.numa_zonelist_order=node,Default"),
            "measure", ALIKE)
    assert ZONELIST.read_text() == before


def test_settings_read_back_apart_are_each_measured() -> None:
    result = fb("measure", "--size", "1M", "--backing", "anon", "--set",
                "vm.swappiness=60,61")
    assert result.returncode == 0, result.stderr
    assert "vm.swappiness=60" in result.stdout
    assert "vm.swappiness=61" in result.stdout
