"""Round eighteen, merged runs: meta.json's `merged.from` (the parts of a merge) was not checked
against the samples, so one added part made the report and `report --json` name a host no
sample comes from, and 400,000 added parts a report of 1.25M lines after a minute (R18-3);
`merge` took parts measured by different faultbench versions and credited every sample to
the first part's (R18-4).
Copies of shipped runs merged by the real `merge` (shards split as `run --shard` splits the
plan; no guest is booted), then edited; the real commands."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from analysis_runs import faultbench
from console import one_line
from test_hardening_round5_merge import _copy as other_machine
from test_hardening_round5_merge import merge_refused
from test_hardening_round17_merge import AA, RESULTS, shards

Meta = dict[str, Any]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A merge of two machines: vm (native-quick) and vm2 (a second measurement of it)."""
    base = tmp_path_factory.mktemp("fleet")
    there = other_machine(RESULTS / "native-quick", base / "there", "vm2")
    faultbench("merge", RESULTS / "native-quick", there, "--out", base / "fleet")
    return base / "fleet"


@pytest.fixture(scope="module")
def merged_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("shards")
    faultbench("merge", *shards(AA, base), "--out", base / "merged")
    return base / "merged"


def _edited(run: Path, to: Path, edit: Callable[[Meta], None]) -> Path:
    """A copy of `run` (its files only: a merged run has no boots/ here) with meta.json
    edited."""
    to.mkdir()
    for name in ("samples.jsonl", "pyperf.json", "profiles.jsonl"):
        if (run / name).exists():
            (to / name).write_bytes((run / name).read_bytes())
    meta = json.loads((run / "meta.json").read_text())
    edit(meta)
    (to / "meta.json").write_text(json.dumps(meta))
    return to


def _refused_everywhere(run: Path, tmp_path: Path) -> set[str]:
    """The one line each reader (report, report --json, compare, merge as a part) refuses
    `run` with, from the name of the file in `run` it names; none writes anything."""
    lines = set()
    for argv in (("report", run, "--no-figures", "--out", tmp_path / "report"),
                 ("report", run, "--json"), ("compare", RESULTS / "native-quick", run),
                 ("merge", run, RESULTS / "native-quick", "--out", tmp_path / "merged")):
        done = faultbench(*argv, check=False)
        assert done.returncode == 2 and not done.stdout, done.stdout
        lines.add(one_line(done.stderr).split(": ", 1)[1].removeprefix(f"{run}/"))
    assert not (tmp_path / "report").exists() and not (tmp_path / "merged").exists()
    return lines


def _parts(meta: Meta) -> list[Meta]:
    parts: list[Meta] = meta["merged"]["from"]
    return parts


def _ghost(meta: Meta) -> None:
    """The hostile pass's first case: a copy of a part, named for a host no sample is of."""
    _parts(meta).append({**_parts(meta)[0], "machine": "ghost"})


def _many(meta: Meta) -> None:
    """Its second, smaller: the busy warning of each part was a line of the report."""
    state = {"load": [9], "cpus": 1, "others_cpu": 1, "others": [], "governor": None}
    _parts(meta).extend({"machine": f"h{i}", "machine_state": state} for i in range(20000))


@pytest.mark.parametrize(("edit", "problem"), [
    (_ghost, "samples.jsonl: has no sample of machine 'ghost', which its meta.json records "
             "merging (3 machines, samples of 2): the two files are from different runs"),
    (_many, "samples.jsonl: has no sample of machine 'h0', which its meta.json records "
            "merging (20,002 machines, samples of 2): the two files are from different runs"),
    (lambda m: _parts(m).append(dict(_parts(m)[1])),
     "meta.json: merged.from[2] is the machine of merged.from[1] again"),
    (lambda m: _parts(m)[1].update(machine="ghost"),
     "samples.jsonl: has samples of machine 'vm2', and its meta.json records a merge of "
     "others: the two files are from different runs"),
    (lambda m: _parts(m)[1].update(shard={"index": 1, "count": 1, "plan_boots": 1}),
     "meta.json: merged.from[1] is a shard or no machine in a merge of machines"),
    (lambda m: _parts(m)[1].update(machine=None),
     "meta.json: merged.from[1] is a shard or no machine in a merge of machines"),
])
def test_a_merge_of_machines_records_the_machines_of_its_samples(
        fleet: Path, tmp_path: Path, edit: Callable[[Meta], None], problem: str) -> None:
    run = _edited(fleet, tmp_path / "run", edit)
    assert _refused_everywhere(run, tmp_path) == {problem}


NOT_A_SHARD = "meta.json: merged.from[{}] is not a shard I/N of the plan of its 6 boots in a " \
    "merge of shards"


def _shard(index: int, count: int) -> Callable[[Meta], None]:
    """A part added: a copy of shard 2/2 as shard index/count of the plan's 6 boots."""
    return lambda m: _parts(m).append(
        {**_parts(m)[1], "shard": {"index": index, "count": count, "plan_boots": 6}})


@pytest.mark.parametrize(("edit", "problem"), [
    (_shard(2, 2), "meta.json: merged.from[2] is shard 2/2 again"),
    (_shard(3, 3), "meta.json: merged.from[2] is a shard of 3 and merged.from[0] one of 2: not "
                   "shards of one split"),
    (lambda m: _parts(m).append({**_parts(m)[1], "machine": "ghost", "shard": None}),
     NOT_A_SHARD.format(2)),
    (lambda m: _parts(m)[1]["shard"].update(plan_boots=7), NOT_A_SHARD.format(1)),
    # 20,000 more parts, of a split into 9: more shards than the plan's 6 boots
    (lambda m: [_shard(3 + i, 9)(m) for i in range(20000)], NOT_A_SHARD.format(2)),
    # a shard's host, printed in the report's header: no machine's is longer
    (lambda m: _parts(m)[1].update(machine="h" * 65),
     "meta.json: merged.from[1]'s machine is longer than uname's 64 bytes"),
])
def test_a_merge_of_shards_records_each_shard_of_one_split_once(
        merged_shards: Path, tmp_path: Path, edit: Callable[[Meta], None],
        problem: str) -> None:
    run = _edited(merged_shards, tmp_path / "run", edit)
    assert _refused_everywhere(run, tmp_path) == {problem}


def test_real_merges_of_machines_and_of_shards_load(fleet: Path, merged_shards: Path) -> None:
    """The controls: what merge writes passes, and its report names each part's host."""
    for run, host in ((fleet, "vm, vm2"), (merged_shards, "vm")):
        done = faultbench("report", run, "--json")
        assert json.loads(done.stdout)["host"] == host


def _older(meta: Meta) -> None:
    meta.update(faultbench_version="0.3.0")
    meta["provenance"]["faultbench"] = {"version": "0.3.0", "git_revision": "abc"}


def test_merge_refuses_parts_of_different_faultbench_versions(tmp_path: Path) -> None:
    """Machines (the hostile pass's case: 0.5.0 and 0.3.0, one harness epoch), and shards."""
    here = RESULTS / "native-quick"
    older = _edited(other_machine(here, tmp_path / "there", "vm2"), tmp_path / "older", _older)
    first, second = shards(AA, tmp_path / "shards",
                           change=lambda index, meta, _: _older(meta) if index == 2 else None)
    for one, other in ((here, older), (first, second)):
        assert merge_refused(one, other, out=tmp_path / "merged") == (
            f"faultbench merge: {other} was measured by faultbench 0.3.0 and {one} by 0.5.0: "
            "the merged run would credit every part's samples to one version; merge parts "
            "measured by one faultbench version")
