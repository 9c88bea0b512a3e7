"""Round six, knobs: both members of a coupled sysctl pair in one measure or run are refused
before anything is written (whichever the kernel is given second sets the other to 0, so the
setting a sample would be labelled with is never in effect). Real commands, real sysctls."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from console import one_line
from groups import HOST
from test_hardening_round5_coupled import _env, fb, measure_holding
from test_hardening_round5_dirs import as_nobody, sticky  # noqa: F401 (a fixture)

# a refusal that failed to refuse would write sysctls: one at a time (tests/groups.py)
pytestmark = [HOST, pytest.mark.skipif(os.geteuid() != 0, reason="sysctls need root")]

PAIRS = [("vm.dirty_ratio", "vm.dirty_bytes", "25", "100000000"),
         ("vm.dirty_background_ratio", "vm.dirty_background_bytes", "15", "100000000"),
         ("vm.overcommit_ratio", "vm.overcommit_kbytes", "60", "1048576")]


def _values(*names: str) -> list[str]:
    return [Path("/proc/sys/vm", name[3:]).read_text() for name in names]


@pytest.mark.parametrize("ratio,other,ratio_value,other_value", PAIRS)
def test_measure_refuses_both_members_of_a_coupled_pair(
        tmp_path: Path, ratio: str, other: str, ratio_value: str, other_value: str) -> None:
    found = _values(ratio, other)
    done = fb("measure", "--size", "1M", "--set", f"{other}={other_value}",
              "--set", f"{ratio}={ratio_value}", env=_env(tmp_path))
    assert done.returncode == 2, done.stdout
    assert one_line(done.stderr).endswith(f"{ratio} and {other} set the same limit: give one")
    assert _values(ratio, other) == found
    assert not (tmp_path / "run").exists()  # no journal either


def test_run_refuses_a_pair_split_between_the_workload_and_set(tmp_path: Path) -> None:
    workload = tmp_path / "w.toml"
    workload.write_text('repetitions = 1\n[defaults]\nsize = "1M"\n[knobs]\n'
                        '"vm.dirty_ratio" = [15, 25]\n[[matrix]]\npattern = "seq"\n')
    found = _values("vm.dirty_ratio", "vm.dirty_bytes")
    done = fb("run", workload, "--set", "vm.dirty_bytes=100000000", "--out", tmp_path / "r",
              env=_env(tmp_path))
    assert done.returncode == 2, done.stdout
    assert one_line(done.stderr).endswith(
        "vm.dirty_ratio and vm.dirty_bytes set the same limit: give one")
    assert _values("vm.dirty_ratio", "vm.dirty_bytes") == found
    assert not (tmp_path / "r").exists()


def test_restore_says_a_knob_that_reads_as_found_was_already_so(tmp_path: Path) -> None:
    """vm.dirty_ratio set, the run killed: vm.dirty_bytes, journaled with it, reads its 0
    throughout, and restore says so rather than "0 -> 0"."""
    found = _values("vm.dirty_ratio", "vm.dirty_bytes")
    assert found[1].strip() == "0", "this machine sets vm.dirty_bytes: the ratio is not in effect"
    value = "31" if found[0].strip() != "31" else "32"
    env = _env(tmp_path)
    with measure_holding("vm.dirty_ratio", value, env):
        pass
    done = fb("restore", env=env)
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == [
        "restored vm.dirty_bytes: 0, already as found",
        f"restored vm.dirty_ratio: {value} -> {found[0].strip()}"]
    assert _values("vm.dirty_ratio", "vm.dirty_bytes") == found


def test_a_vector_sysctl_is_labelled_as_given(tmp_path: Path) -> None:
    """vm.lowmem_reserve_ratio reads back tab-separated; its label shows the numbers as given
    (its own value is set: nothing on the machine changes)."""
    found = _values("vm.lowmem_reserve_ratio")[0]
    value = " ".join(found.split())
    done = fb("measure", "--size", "1M", "--set", f"vm.lowmem_reserve_ratio={value}",
              env=_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert f" vm.lowmem_reserve_ratio={value}: " in done.stdout, done.stdout
    assert _values("vm.lowmem_reserve_ratio")[0] == found


def test_a_journal_planted_in_a_sticky_directory_says_to_remove_it(
        sticky: Path) -> None:  # noqa: F811
    found = _values("vm.swappiness")
    journal = sticky / "journal.json"
    as_nobody("sh", "-c", f"echo {{}} > {journal}")
    done = fb("measure", "--size", "1M", "--set", "vm.swappiness=61",
              env={**_env(sticky), "FAULTBENCH_JOURNAL": str(journal)})
    assert done.returncode == 2, done.stdout
    assert one_line(done.stderr).endswith(
        f"journal {journal} is owned by uid 65534 (nobody): root does not restore knobs from a "
        "file another user can write (it names what root writes to the kernel); nothing was "
        "restored or changed: remove it, and keep root's journal in a directory only root may "
        "write")
    assert _values("vm.swappiness") == found
