"""Round eighteen, meta.json's `merged` record read back unchecked (R18-1): a part's machine
given as a list or an object made report, compare, merge and run --resume end in a traceback
(`unhashable type: 'list'`). Copies of a shipped run; the real commands."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from inprocess import in_process

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
        {"machine": "vm"}, {"machine": None}]}}) is None
    assert merged_problem({}) is None
