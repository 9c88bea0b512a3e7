"""Round fifteen, the directories `run` and `report` are pointed at. `report --out DIR` used
again for another run kept the first run's figures beside the second's report (R15-5); `run
--out` of a finished run advised `run --resume`, which then said there was nothing to resume
(R15-6); `run --resume DIR --memory 1G` said "give --kernel too", which --resume refuses
as well (R15-7). Shipped runs and a real native run, the real commands."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from analysis_runs import faultbench, make_run
from console import one_line
from test_hardening_round8 import one_scenario

from faultbench.analysis.figure_text import DRAWN

RESULTS = Path(__file__).resolve().parent.parent / "results"


def _figures(out: Path) -> set[str]:
    return {p.name for p in (out / "figures").iterdir() if p.name != DRAWN}


def test_report_out_used_again_keeps_only_this_reports_figures(tmp_path: Path) -> None:
    """A break-even run, then one without a stride sweep, into one DIR: the break-even
    figure goes; a user's files and a link named like a figure (and its target) stay."""
    runs = {name: shutil.copytree(RESULTS / name, tmp_path / name)
            for name in ("native-break-even", "example")}
    out = tmp_path / "out"
    faultbench("report", "--out", out, runs["native-break-even"])
    assert "break-even.png" in _figures(out)
    target = tmp_path / "target.png"
    target.write_text("someone's")
    (out / "figures" / "old.png").symlink_to(target)
    (out / "figures" / "notes.txt").write_text("mine")
    (out / "figures" / "my plot.svg").write_text("mine")
    done = faultbench("report", "--out", out, runs["example"])
    drawn = {n for n in _figures(runs["example"]) if n.endswith((".png", ".svg"))}
    assert _figures(out) == drawn | {"old.png", "notes.txt", "my plot.svg"}
    assert done.stdout.endswith(f"and {len(drawn)} figures in {out / 'figures'}\n")
    assert target.read_text() == "someone's"
    faultbench("report", "--no-figures", "--out", out, runs["example"])
    assert _figures(out) == {"old.png", "notes.txt", "my plot.svg"}
    # the run's own directory keeps its figures: they are of that run, whatever is drawn
    faultbench("report", "--no-figures", runs["example"])
    assert _figures(runs["example"]) == drawn


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("round15"), "run", one_scenario(2))


def test_run_out_of_a_finished_run_points_at_its_report(finished: Path, tmp_path: Path) -> None:
    workload = tmp_path / "w.toml"
    workload.write_text(one_scenario(1))
    done = faultbench("run", workload, "--out", finished, "-q", check=False)
    assert done.returncode == 2
    assert one_line(done.stderr) == (
        f"faultbench run: {finished} already holds a finished run (faultbench report "
        f"{finished} shows it): --out names a new or empty directory")
    # one not finished is still pointed at --resume
    partial = shutil.copytree(finished, tmp_path / "partial")
    meta = json.loads((partial / "meta.json").read_text())
    (partial / "meta.json").write_text(json.dumps({**meta, "finished_utc": None}))
    done = faultbench("run", workload, "--out", partial, "-q", check=False)
    assert done.returncode == 2
    assert f"(continue it with faultbench run --resume {partial})" in one_line(done.stderr)


@pytest.mark.parametrize("given", [
    ["--memory", "1G"], ["--boots", "2"], ["--clock", "icount"], ["--shard", "1/2"],
    ["--kernel", "/boot/vmlinuz"], ["--out", "elsewhere"], ["--set", "vm.swappiness=10"],
    ["--only", "pattern=seq"], ["--repetitions", "2"], ["--profile", "1"], ["WORKLOAD"],
])
def test_resume_refuses_what_it_takes_from_the_run_first(finished: Path,
                                                        given: list[str]) -> None:
    """Each option --resume refuses is refused as that, not as one wanting --kernel."""
    done = faultbench("run", "--resume", finished, *given, check=False)
    assert done.returncode == 2
    assert one_line(done.stderr).startswith(
        "faultbench run: --resume DIR takes the workload, kernels, clock, memory, shard and "
        "directory from DIR; give no WORKLOAD")
