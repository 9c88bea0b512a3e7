"""Round five, coupled sysctls: the kernel keeps one of vm.overcommit_kbytes /
vm.overcommit_ratio, vm.dirty_bytes / vm.dirty_ratio and vm.dirty_background_bytes /
vm.dirty_background_ratio in effect, and writing either member sets the other to 0. Both
members are journaled, and the one that was in effect is written back: after a run and after
SIGKILL + `faultbench restore` both read as found. A *_bytes 0 (which the kernel refuses to
be written) never leaves a journal no restore can finish. Real commands, real sysctls."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from console import one_line
from groups import HOST

# knob writes and restore: one at a time (tests/groups.py)
pytestmark = [HOST, pytest.mark.skipif(os.geteuid() != 0, reason="sysctls need root")]

PAIRS = [("vm.overcommit_kbytes", "vm.overcommit_ratio"), ("vm.overcommit_ratio",
                                                            "vm.overcommit_kbytes"),
         ("vm.dirty_bytes", "vm.dirty_ratio"), ("vm.dirty_ratio", "vm.dirty_bytes"),
         ("vm.dirty_background_bytes", "vm.dirty_background_ratio"),
         ("vm.dirty_background_ratio", "vm.dirty_background_bytes")]


def _sysctl(name: str) -> int:
    return int(Path("/proc/sys/vm", name[3:]).read_text())


def _other(name: str) -> int:
    """A value for `name` other than its current one, harmless for a second."""
    if name.endswith("_ratio"):
        return 31 if _sysctl(name) != 31 else 32
    return (3 << 30) if _sysctl(name) != 3 << 30 else (4 << 30)


def fb(*args: str | Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "faultbench", *map(str, args)],
                          capture_output=True, text=True, timeout=300, check=False, env=env)


@contextlib.contextmanager
def measure_holding(knob: str, value: object, env: dict[str, str]) -> Iterator[None]:
    """A long `measure --set knob=value`, once the knob reads `value` (or after 60 s);
    SIGKILLed at the end, so that its journal is left as a killed run leaves it."""
    measure = subprocess.Popen([sys.executable, "-m", "faultbench", "measure", "--size", "1M",
                                "--repeat", "100000", "--set", f"{knob}={value}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 60
        while (Path("/proc/sys/vm", knob[3:]).read_text().strip() != str(value)
               and time.monotonic() < deadline):
            time.sleep(0.05)
        yield
    finally:
        measure.kill()
        measure.communicate(timeout=60)


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]),
            "FAULTBENCH_JOURNAL": str(tmp_path / "run" / "journal.json")}


@pytest.mark.parametrize("knob,partner", PAIRS)
def test_a_coupled_knob_and_its_partner_read_as_found_after_the_run(
        tmp_path: Path, knob: str, partner: str) -> None:
    found = {knob: _sysctl(knob), partner: _sysctl(partner)}
    done = fb("measure", "--size", "1M", "--set", f"{knob}={_other(knob)}", env=_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert {knob: _sysctl(knob), partner: _sysctl(partner)} == found


@pytest.mark.parametrize("knob,partner", PAIRS)
def test_a_coupled_knob_and_its_partner_read_as_found_after_sigkill_and_restore(
        tmp_path: Path, knob: str, partner: str) -> None:
    found = {knob: _sysctl(knob), partner: _sysctl(partner)}
    env = _env(tmp_path)
    value = _other(knob)
    with measure_holding(knob, value, env):
        assert _sysctl(knob) == value, "the run never set the knob"
    journal = json.loads(Path(env["FAULTBENCH_JOURNAL"]).read_text())
    assert {e["name"] for e in journal["knobs"]} == {knob, partner}
    done = fb("restore", env=env)
    assert done.returncode == 0, done.stderr
    assert {knob: _sysctl(knob), partner: _sysctl(partner)} == found
    assert not Path(env["FAULTBENCH_JOURNAL"]).exists()


def test_a_journal_of_dirty_bytes_alone_says_how_to_finish_and_then_restores(
        tmp_path: Path) -> None:
    """A journal written before pairs were journaled (dirty_bytes' 0 alone, which the kernel
    refuses to be written): restore names the partner to set by hand, keeps the journal,
    and once that is done finishes, the knob lock free again."""
    if _sysctl("vm.dirty_bytes") != 0:
        pytest.skip("vm.dirty_bytes is in effect here, not vm.dirty_ratio")
    ratio = _sysctl("vm.dirty_ratio")
    env = _env(tmp_path)
    journal = Path(env["FAULTBENCH_JOURNAL"])
    journal.parent.mkdir(mode=0o700)
    journal.write_text(json.dumps({
        "format": "faultbench-journal/1", "pid": 999999999, "pid_start": "1", "argv": [],
        "knobs": [{"name": "vm.dirty_bytes", "path": "/proc/sys/vm/dirty_bytes",
                   "original": "0"}]}))
    Path("/proc/sys/vm/dirty_bytes").write_text(str(3 << 30))
    try:
        done = fb("restore", env=env)
        assert done.returncode == 2
        line = one_line(done.stderr)
        assert "vm.dirty_bytes: cannot write '0'" in line, line
        assert "(set vm.dirty_ratio back by hand, which sets vm.dirty_bytes to 0; then run " \
            "`faultbench restore` again)" in line, line
        assert journal.exists()
        Path("/proc/sys/vm/dirty_ratio").write_text(str(ratio))
        done = fb("restore", env=env)
        assert done.returncode == 0, done.stderr
        assert not journal.exists()
        assert (_sysctl("vm.dirty_bytes"), _sysctl("vm.dirty_ratio")) == (0, ratio)
        done = fb("measure", "--size", "1M", "--set", "vm.swappiness=61", env=env)
        assert done.returncode == 0, done.stderr
    finally:  # never left blocking the machine's knob writers
        Path("/proc/sys/vm/dirty_ratio").write_text(str(ratio))
        journal.unlink(missing_ok=True)


@pytest.mark.parametrize("knob", ["vm.dirty_bytes", "vm.dirty_background_bytes"])
def test_a_bytes_value_the_kernel_refuses_is_refused_before_anything(
        tmp_path: Path, knob: str) -> None:
    done = fb("measure", "--size", "1M", "--set", f"{knob}=0", env=_env(tmp_path))
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert line.startswith(f"faultbench measure: {knob}=0: the kernel accepts at least ")
    assert not (tmp_path / "run").exists()
