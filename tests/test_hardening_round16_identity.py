"""Round sixteen, the plane and clock of a run's samples, and two meta.json fields read
untyped. A native sample relabelled tcg-icount was pooled into its row under "plane native";
a booted resume whose meta.json `clock` was lost fell back to the wall clock in an
instruction-clock run, and merge pooled that shard with an honest one, never comparing
clocks (R16-2). A list as a scenario's `pagemap` or a boot's `kernel` gave a traceback
(R16-1). Copies of shipped runs, the real commands; the resume's clock is read by the
function the resume calls (no guest is booted)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from analysis_runs import faultbench
from console import one_line
from test_hardening_round5_merge import _copy as other_machine
from test_hardening_round5_merge import merge_refused
from test_hardening_round15_identity import DIFFERENT, RESULTS, Record, _copy

from faultbench.measurement.booted.clocks import run_clock
from faultbench.measurement.rundir.safefile import ResultsError


def _unchanged(records: list[Record]) -> None:
    pass


def _first(**values: Any) -> Callable[[list[Record]], None]:
    def change(records: list[Record]) -> None:
        records[0].update(values)
    return change


def _relabelled(records: list[Record]) -> None:
    """R16-2's repro: one native sample made an instruction-clock one, 50x slower."""
    records[0].update(plane="tcg-icount", clock="icount", touch_ns=records[0]["touch_ns"] * 50,
                      ns_per_page=records[0]["ns_per_page"] * 50)


CASES = {
    "native sample relabelled tcg-icount": (
        "native-quick", _relabelled,
        f"has samples of plane 'tcg-icount', and its meta.json records plane 'native': "
        f"{DIFFERENT}"),
    "native sample on the instruction clock": (
        "native-quick", _first(clock="icount"),
        f"has samples of the 'icount' clock, and its meta.json records plane 'native' (wall): "
        f"{DIFFERENT}"),
    "wall-clock guest's sample in an icount run": (  # what the resume's fallback wrote
        "icount-aa", _first(plane="tcg-guest", clock="wall"),
        f"has samples of plane 'tcg-guest', and its meta.json records plane 'tcg-icount': "
        f"{DIFFERENT}"),
    "wall clock on the tcg-icount plane": (
        "icount-aa", _first(clock="wall"),
        f"has samples of the 'wall' clock, and its meta.json records plane 'tcg-icount' "
        f"(icount): {DIFFERENT}"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_samples_of_another_plane_or_clock_are_refused(tmp_path: Path, case: str) -> None:
    """report, report --json and compare refuse the run in one line, as R15-3's do."""
    name, change, problem = CASES[case]
    run = _copy(name, tmp_path / "run", change)
    for args in (("report", "--no-figures", "--out", tmp_path / "out", run),
                 ("report", "--json", run), ("compare", RESULTS / name, run)):
        done = faultbench(*args, check=False)
        assert done.returncode == 2, done.stderr
        assert one_line(done.stderr) == f"faultbench {args[0]}: {run}/samples.jsonl: {problem}"


def test_samples_older_than_clocks_need_none(tmp_path: Path) -> None:
    """A run from before samples recorded their clock still reports."""
    def unclocked(records: list[Record]) -> None:
        for record in records:
            record.pop("clock", None)
    run = _copy("icount-aa", tmp_path / "run", unclocked)
    faultbench("report", "--json", run)


def _meta(name: str) -> dict[str, Any]:
    return json.loads((RESULTS / name / "meta.json").read_text())


def test_a_resume_boots_only_the_clock_its_run_records() -> None:
    """R16-2: an icount run whose `clock` was lost, edited or made the wall's booted
    wall-clock guests into it. Only a run older than clocks (no record, not tcg-icount)
    is taken to be on the wall's."""
    meta = _meta("icount-aa")
    assert run_clock(meta) == "icount"
    refusals = [{k: v for k, v in meta.items() if k != "clock"}, {**meta, "clock": "icount"},
                {**meta, "clock": {"name": "wall"}}, {**meta, "clock": {"name": 1}},
                {**meta, "clock": None},
                {**meta, "plane": "tcg-guest"}]  # an icount record on a wall-clock plane
    for broken in refusals:
        with pytest.raises(ResultsError) as refused:
            run_clock(broken)
        assert str(refused.value) == ("meta.json records no valid clock: cannot resume with "
                                      "the clock it started with")
    older = {k: v for k, v in meta.items() if k != "clock"}
    assert run_clock({**older, "plane": "tcg-guest"}) == "wall"
    assert run_clock({**meta, "plane": "kvm-guest", "clock": {"name": "wall"}}) == "wall"


def _clocked(run: Path, to: Path, qemu: str) -> Path:
    """A copy of `run` recording a wall clock of that QEMU version."""
    shutil.copytree(run, to)
    meta = json.loads((to / "meta.json").read_text())
    meta["clock"] = {"name": "wall", "qemu": qemu}
    (to / "meta.json").write_text(json.dumps(meta))
    return to


def test_merge_compares_clocks(tmp_path: Path) -> None:
    """R16-2: merge's docstring refuses another clock; it compared only the plane. The
    QEMU version may differ, as the machines do."""
    native = RESULTS / "native-quick"
    clocked = _clocked(other_machine(native, tmp_path / "apart"), tmp_path / "clocked", "x")
    assert merge_refused(native, clocked, out=tmp_path / "merged") == (
        f"faultbench merge: {clocked} and {native} differ in clock: they are not parts of "
        "one run")
    faultbench("merge", "--out", tmp_path / "merged",
               _clocked(native, tmp_path / "first", "y"), clocked)


def _pagemap(value: Any) -> Callable[[dict[str, Any]], None]:
    def change(meta: dict[str, Any]) -> None:
        meta["scenarios"][0]["spec"]["pagemap"] = value
    return change


def _boot_kernel(meta: dict[str, Any]) -> None:
    meta["boots"][0]["kernel"] = []


@pytest.mark.parametrize(("name", "meta_change", "problem"), [
    ("native-quick", _pagemap([]), "pagemap must be true or false, got []"),
    ("native-quick", _pagemap({}), "pagemap must be true or false, got {}"),
    ("native-quick", _pagemap(1.5), "pagemap must be true or false, got 1.5"),
    ("icount-aa", _boot_kernel, "boots[0]: kernel must be a string (a label of kernels)"),
])
def test_untyped_pagemap_and_boot_kernel_are_one_line(
        tmp_path: Path, name: str, meta_change: Callable[[dict[str, Any]], None],
        problem: str) -> None:
    """R16-1: report, compare and merge stopped with `TypeError: unhashable type`."""
    run = _copy(name, tmp_path / "run", _unchanged, meta_change)
    for args in (("report", "--json", run), ("compare", RESULTS / name, run),
                 ("merge", "--out", tmp_path / "merged", run, RESULTS / name)):
        done = faultbench(*args, check=False)
        assert done.returncode == 2, done.stderr
        line = one_line(done.stderr)
        assert line.startswith(f"faultbench {args[0]}: {run}/meta.json") and problem in line, \
            line
