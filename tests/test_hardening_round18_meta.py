"""Round eighteen, meta.json's `merged` record read back unchecked (R18-1): a part's machine
given as a list or an object made report, compare, merge and run --resume end in a traceback
(`unhashable type: 'list'`); `run --resume` of a finished merge of machines told the user to
resume it on another host (R18-7). Copies of a shipped run; the real commands."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from analysis_runs import faultbench
from console import one_line
from inprocess import in_process
from test_hardening_round5_merge import _copy as other_machine

from faultbench.measurement.rundir.meta_checks import merged_problem

RUN = Path(__file__).parents[1] / "results" / "native-quick"


@pytest.mark.parametrize(("merged", "problem"), [
    ({"kind": "machines", "from": [{"machine": ["vm"]}]},
     "merged.from[0] is not a part whose machine is a name or null"),
    ({"kind": "machines", "from": [{"machine": "vm"}, {"machine": {"x": 1}}]},
     "merged.from[1] is not a part whose machine is a name or null"),
    ({"kind": "machines", "from": ["vm"]},
     "merged.from[0] is not a part whose machine is a name or null"),
    ({"kind": "glued", "from": []}, "merged is not {kind: shards or machines, from: [parts]}"),
    ({"kind": "shards", "from": {}}, "merged is not {kind: shards or machines, from: [parts]}"),
    ([], "merged is not {kind: shards or machines, from: [parts]}"),
])
def test_a_merged_record_that_is_none_is_refused_in_one_line(
        tmp_path: Path, merged: Any, problem: str) -> None:
    run = tmp_path / "run"
    shutil.copytree(RUN, run)
    meta = json.loads((run / "meta.json").read_text())
    (run / "meta.json").write_text(json.dumps({**meta, "merged": merged}))
    for argv in (("report", run, "--no-figures", "--out", tmp_path / "out"),
                 ("report", run, "--json"), ("compare", RUN, run)):
        done = in_process(*argv)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert problem in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr


def test_a_merged_record_of_names_passes() -> None:
    assert merged_problem({"merged": {"kind": "machines", "from": [
        {"machine": "vm"}, {"machine": "vm2"}]}}) is None
    assert merged_problem({"boots": [{}, {}], "merged": {"kind": "shards", "from": [
        {"machine": "vm", "shard": {"index": 2, "count": 2, "plan_boots": 2}},
        {"machine": None, "shard": {"index": 1, "count": 2, "plan_boots": 2}}]}}) is None
    assert merged_problem({}) is None


def test_a_merge_of_machines_is_finished_not_of_another_host(tmp_path: Path) -> None:
    """R18-7: `run --resume` of a merge of machines said it was measured on another host
    ("resume it on that kernel and host"); merge takes finished runs only."""
    other = other_machine(RUN, tmp_path / "there")
    merged = tmp_path / "merged"
    assert in_process("merge", RUN, other, "--out", merged).returncode == 0
    finished = json.loads((merged / "meta.json").read_text())["finished_utc"]
    done = faultbench("run", "--resume", merged, "-q", check=False)
    assert done.returncode == 2, done.stderr
    assert one_line(done.stderr) == (
        f"faultbench run: {merged} finished at {finished}; nothing to resume (faultbench "
        f"report {merged} shows it)")
