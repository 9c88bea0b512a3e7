"""Round four: read_ahead_kb is the `file` backing's disk's. Set for a backing that reads from
no block device it would change the root disk's read-ahead, system-wide, for a sample that
never reads ahead: measure and run refuse it in one line, before anything is changed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from console import one_line
from groups import HOST

from faultbench.measurement.knobs.catalog import read_value, resolve

# knob writes, tmpfs mounts and restore: one at a time (tests/groups.py)
pytestmark = HOST


def fb(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "faultbench", *map(str, args)],
                          capture_output=True, text=True, timeout=300, check=False)


def _disk_read_ahead() -> int | str:
    """The read-ahead faultbench would have changed: the default file directory's disk's."""
    try:
        return read_value(resolve("read_ahead_kb"))
    except Exception as exc:  # no disk under it here: nothing could be changed either
        pytest.skip(f"no read_ahead_kb for the default file directory: {exc}")


@pytest.mark.parametrize("backing", ["memfd", "anon", "tmpfs"])
def test_measure_refuses_read_ahead_for_a_backing_without_a_disk(backing: str) -> None:
    before = _disk_read_ahead()
    value = "128" if before != 128 else "256"
    done = fb("measure", "--backing", backing, "--size", "1M", "--set", f"read_ahead_kb={value}")
    assert done.returncode == 2, (done.stdout, done.stderr)
    line = one_line(done.stderr)
    assert line.startswith("faultbench measure: read_ahead_kb: backing ") and backing in line
    assert done.stdout == "" and _disk_read_ahead() == before


def test_run_refuses_read_ahead_for_a_backing_without_a_disk(tmp_path: Path) -> None:
    before = _disk_read_ahead()
    (tmp_path / "w.toml").write_text(
        'repetitions = 1\n[defaults]\nbacking = "memfd"\nsize = "1M"\n[knobs]\n'
        f'read_ahead_kb = [{128 if before != 128 else 256}]\n[[matrix]]\npattern = ["seq"]\n')
    done = fb("run", tmp_path / "w.toml", "--out", tmp_path / "out", "-q")
    assert done.returncode == 2, (done.stdout, done.stderr)
    line = one_line(done.stderr)
    assert line.startswith("faultbench run: ") and "backing memfd" in line, line
    assert not (tmp_path / "out").exists() and _disk_read_ahead() == before
