"""Round fifteen, a sample's identity against its meta.json: two scenarios of one spec were
pooled into one row (flt/pg 0.53, a mix of 0.0625 and 1.0), a `machine` split a one-machine
run in two, a `boot` made a native run "2b/3r", all without a word (R15-3). Each is refused
as the other mismatches are, in one line. Copies of shipped runs, a real native run, the real
commands."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from analysis_runs import faultbench, measured_again
from console import one_line
from test_hardening_round13_resume import _interrupted, _refused, finished  # noqa: F401

RESULTS = Path(__file__).parents[1] / "results"
Record = dict[str, Any]
DIFFERENT = "the two files are from different runs"


def _copy(name: str, to: Path, change: Callable[[list[Record]], None],
          meta_change: Callable[[dict[str, Any]], None] = lambda meta: None) -> Path:
    shutil.copytree(RESULTS / name, to)
    records = [json.loads(line) for line in (to / "samples.jsonl").open()]
    change(records)
    (to / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    meta = json.loads((to / "meta.json").read_text())
    meta_change(meta)
    (to / "meta.json").write_text(json.dumps(meta))
    return to


def _every_other(key: str, value: Any) -> Callable[[list[Record]], None]:
    def change(records: list[Record]) -> None:
        for record in records[1::2]:
            record[key] = value
    return change


def _one(index: int, **values: Any) -> Callable[[list[Record]], None]:
    def change(records: list[Record]) -> None:
        records[index].update(values)
    return change


def _wp_as_none(meta: dict[str, Any]) -> None:
    """A uffd=wp scenario given its uffd=none sibling's spec (meta.json is refused before
    its samples are read)."""
    specs = {s["name"]: s["spec"] for s in meta["scenarios"]}
    for scenario in meta["scenarios"]:
        if scenario["name"].replace("uffd=wp", "uffd=none") in specs.keys() - {scenario["name"]}:
            scenario["spec"] = specs[scenario["name"].replace("uffd=wp", "uffd=none")]
            return


CASES = {
    "two scenarios, one spec": (
        "native-quick", lambda records: None, _wp_as_none,
        "meta.json: scenarios memfd,64M,shared,read,warm,seq,uffd=none,thp.shmem_enabled=never "
        "and memfd,64M,shared,read,warm,seq,uffd=wp,thp.shmem_enabled=never have one spec and "
        "knobs: their samples would be one row"),
    "machine in a run not merged": (
        "native-quick", _every_other("machine", "zz"), None,
        f"samples.jsonl: has samples of machine 'zz', and its meta.json records no merge of "
        f"machines: {DIFFERENT}"),
    "boot in a native run": (
        "native-quick", _every_other("boot", 1), None,
        f"samples.jsonl: has samples of boot 1, which its meta.json does not list: {DIFFERENT}"),
    "boot of the other kernel": (  # boot 0 booted kernel a
        "icount-aa", _one(0, kernel="b"), None,
        "samples.jsonl: has samples of kernel 'b' in boot 0, which its meta.json records as "
        f"booting kernel 'a': {DIFFERENT}"),
    "no boot in a booted run": (
        "icount-aa", lambda records: records[0].pop("boot"), None,
        f"samples.jsonl: has samples of no boot, and its meta.json records a booted run: "
        f"{DIFFERENT}"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_samples_not_of_their_meta_are_refused(tmp_path: Path, case: str) -> None:
    """R15-3: report, report --json and compare refuse the run in one line, naming why."""
    name, change, meta_change, problem = CASES[case]
    run = _copy(name, tmp_path / "run", change, meta_change or (lambda meta: None))
    for args in (("report", "--no-figures", "--out", tmp_path / "out", run),
                 ("report", "--json", run), ("compare", RESULTS / name, run)):
        done = faultbench(*args, check=False)
        assert done.returncode == 2, done.stderr
        assert one_line(done.stderr).startswith(f"faultbench {args[0]}: {run}/{problem}"), \
            done.stderr


def test_a_resume_refuses_a_machine_its_run_did_not_merge(
        finished: Path, tmp_path: Path) -> None:  # noqa: F811 (the fixture)
    """The resume, and merge, read samples through the same check."""
    run = _interrupted(finished, tmp_path / "run")
    records = [json.loads(line) for line in (run / "samples.jsonl").open()]
    records[1]["machine"] = "zz"
    (run / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert _refused(run) == (f"faultbench run: {run}/samples.jsonl: has samples of machine "
                             "'zz', and its meta.json records no merge of machines: "
                             f"{DIFFERENT}")
    other = tmp_path / "other"
    shutil.copytree(finished, other)
    done = faultbench("merge", "--out", tmp_path / "merged", run, other, check=False)
    assert done.returncode == 2 and "has samples of machine 'zz'" in one_line(done.stderr)


def test_merge_refuses_a_copy_of_a_run_as_a_second_machine(tmp_path: Path) -> None:
    """R15-4: a copy of a run with its host name edited merged as machine `vm2`, every row
    0% apart from `vm`; compare refused the same pair as identical samples, and so does
    merge now. A copy measured apart (every time a nanosecond off) merges."""
    def renamed(meta: dict[str, Any]) -> None:
        meta["provenance"]["host"]["name"] = "vm2"
    copy = _copy("native-quick", tmp_path / "copy", lambda records: None, renamed)
    done = faultbench("merge", "--out", tmp_path / "merged", RESULTS / "native-quick", copy,
                      check=False)
    assert done.returncode == 2 and not (tmp_path / "merged").exists()
    assert one_line(done.stderr) == (
        f"faultbench merge: {RESULTS / 'native-quick'} and {copy} share 216 measured "
        "sample(s): a copy of one run, or a run and a part of it, is not a second measurement; "
        "merge runs measured apart")
    done = faultbench("compare", RESULTS / "native-quick", copy, check=False)
    assert done.returncode == 2 and "are the same samples" in one_line(done.stderr)
    apart = measured_again(copy, tmp_path / "apart")
    faultbench("merge", "--out", tmp_path / "merged", RESULTS / "native-quick", apart)
