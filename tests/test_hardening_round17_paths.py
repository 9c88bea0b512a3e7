"""Round seventeen, a run directory no path can open (R17-6). `run --out` and `merge --out`
took a path longer than PATH_MAX (4,238 bytes): the directory was made one component at a
time and filled through descriptors, and then `report`, `report --json` and `compare` of it
said "File name too long", although run's own hint pointed at `faultbench report PATH`.
A run directory's path now leaves room within PATH_MAX for the files in it, and a longer one
is refused before anything is made. Real commands (a tiny native run, no knobs; a merge of
a shipped run with its copy from "another machine")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from console import one_line
from test_hardening_round4_input import fb
from test_hardening_round5_merge import _copy as other_machine
from test_hardening_round8 import one_scenario
from test_hardening_round15_identity import RESULTS

from faultbench.measurement.rundir.results import RUN_PATH_MAX, RunDir
from faultbench.measurement.rundir.safefile import ResultsError

FINDINGS = 4238  # the round's --out


def deep(base: Path, length: int) -> Path:
    """A path below `base` of exactly `length` bytes, of names of at most 200."""
    path = base.resolve()
    size = len(os.fsencode(str(path)))
    while size < length:
        name = min(200, length - size - 1)
        if length - size - 1 - name == 1:  # the next name would have to be empty
            name -= 1
        path, size = path / ("a" * name), size + 1 + name
    assert len(os.fsencode(str(path))) == length
    return path


def too_long(path: Path) -> str:
    return (f"{path} is a path of {len(os.fsencode(str(path))):,} bytes, over the "
            f"{RUN_PATH_MAX:,} a run directory's may have: the paths of the files in it must "
            "stay within PATH_MAX (4,096 bytes) for report, compare and a boot to open them; "
            "choose a shorter one")


def test_run_refuses_an_out_no_path_could_open(tmp_path: Path) -> None:
    workload = tmp_path / "w.toml"
    workload.write_text(one_scenario(2))
    out = deep(tmp_path / "r", FINDINGS)
    done = fb("run", workload, "--out", out, "-q")
    assert done.returncode == 2, done.stderr[-300:]
    assert one_line(done.stderr) == f"faultbench run: {too_long(out)}"
    assert not (tmp_path / "r").exists()  # not one component of it made


def test_merge_refuses_an_out_no_path_could_open(tmp_path: Path) -> None:
    native = RESULTS / "native-quick"
    apart = other_machine(native, tmp_path / "apart")
    out = deep(tmp_path / "m", FINDINGS)
    done = fb("merge", native, apart, "--out", out)
    assert done.returncode == 2, done.stderr[-300:]
    assert one_line(done.stderr) == f"faultbench merge: {too_long(out)}"
    assert not (tmp_path / "m").exists()


def test_the_longest_run_directory_leaves_room_for_its_files(tmp_path: Path) -> None:
    with pytest.raises(ResultsError) as refused:
        RunDir.create(deep(tmp_path / "over", RUN_PATH_MAX + 1))
    assert str(refused.value) == too_long(deep(tmp_path / "over", RUN_PATH_MAX + 1))
    assert not (tmp_path / "over").exists()
    longest = deep(tmp_path / "fits", RUN_PATH_MAX)
    run_dir = RunDir.create(longest)
    run_dir.lock.release()
    # a report's figure of the longest name opens by its path, as every file of the run
    figure = longest / "figures" / ("f" * 251 + ".png")
    figure.parent.mkdir()
    figure.write_bytes(b"")
    assert figure.is_file()
