"""Round six, what it left: sysctls that limit or weaken every process on the machine are not
axes (R6-20), and a process that mounted debugfs or securityfs is back in the machine's mount
namespace once it has unmounted them (R6-6: where / is private, the namespace of its own
kept every mount that existed when it started alive for as long as the process lived).
Real commands, real sysctls, real mounts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from console import one_line
from groups import HOST
from test_hardening_round5_coupled import _env, fb

from faultbench.measurement.knobs.sysfs import SECURITYFS, is_mounted, mounted

# a refusal that failed to refuse would write sysctls: one at a time (tests/groups.py)
pytestmark = [HOST, pytest.mark.skipif(os.geteuid() != 0, reason="sysctls and mounts need root")]


def _sysctl(name: str) -> str:
    return Path("/proc/sys/vm", name).read_text().strip()


@pytest.mark.parametrize("setting,refusal", [
    ("vm.max_map_count=100", "vm.max_map_count=100: below its {max_map_count} it limits every "
     "process on the machine while the run lasts; faultbench only raises it"),
    ("vm.mmap_min_addr=0", "vm.mmap_min_addr=0: a security setting of the whole machine, not "
     "one of memory management; faultbench (root) needs no change to it"),
    ("vm.unprivileged_userfaultfd={other_uffd}", "vm.unprivileged_userfaultfd={other_uffd}: a "
     "security setting of the whole machine, not one of memory management; faultbench (root) "
     "needs no change to it"),
])
def test_a_sysctl_of_the_whole_machine_is_refused_before_anything_is_written(
        tmp_path: Path, setting: str, refusal: str) -> None:
    names = ("max_map_count", "mmap_min_addr", "unprivileged_userfaultfd")
    found = {name: _sysctl(name) for name in names}
    values = {**found, "other_uffd": "1" if found["unprivileged_userfaultfd"] == "0" else "0"}
    done = fb("measure", "--size", "1M", "--set", setting.format(**values), env=_env(tmp_path))
    assert done.returncode == 2, done.stdout
    assert one_line(done.stderr).endswith(refusal.format(**values))
    assert {name: _sysctl(name) for name in names} == found
    assert not (tmp_path / "run").exists()  # no journal either


def test_raising_vm_max_map_count_is_an_axis(tmp_path: Path) -> None:
    found = _sysctl("max_map_count")
    done = fb("measure", "--size", "1M", "--set", f"vm.max_map_count={int(found) + 1}",
              env=_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert f" vm.max_map_count={int(found) + 1}: " in done.stdout, done.stdout
    assert _sysctl("max_map_count") == found


def test_the_process_is_back_in_the_machines_namespace_after_a_mount(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In its working directory too: setns puts a process at /, and a run's default
    results/... then went to /results."""
    if is_mounted(SECURITYFS, "securityfs"):
        pytest.skip("securityfs is mounted on this machine: faultbench mounts nothing")
    monkeypatch.chdir(tmp_path)
    machine = os.readlink("/proc/self/ns/mnt")
    with mounted("securityfs", SECURITYFS) as ok:
        assert ok
        assert os.readlink("/proc/self/ns/mnt") != machine
        with mounted("securityfs", SECURITYFS):  # found mounted: the same namespace
            pass
        assert is_mounted(SECURITYFS, "securityfs")
    assert os.readlink("/proc/self/ns/mnt") == machine
    assert os.getcwd() == str(tmp_path)
    assert not is_mounted(SECURITYFS, "securityfs")
