"""Round fourteen, samples.jsonl: a line whose mapper is past its spec's mappers, or whose
`warmup` (or `profiled`) flag is not its round's, was pooled into a row without a word: a
1-mapper row averaged in lines of mapper 1 and still said n=12, warm-ups marked measured made
n 13 of 12 rounds, and `run --resume` built on them (R14-2). Copies of shipped runs, a real
native run, the real commands."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from analysis_runs import faultbench
from test_hardening_round13_resume import _interrupted, finished  # noqa: F401 (a fixture)

RESULTS = Path(__file__).parents[1] / "results"
Record = dict[str, Any]


def _report(run: Path) -> dict[str, Any]:
    return json.loads(faultbench("report", "--json", run).stdout)


def _tampered(name: str, to: Path, change: Callable[[list[Record]], list[Record]]) -> Path:
    shutil.copytree(RESULTS / name, to)
    lines = (to / "samples.jsonl").read_text().splitlines()
    records = change([json.loads(line) for line in lines])
    (to / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return to


def _stray_mappers(records: list[Record]) -> list[Record]:
    """A copy of every measured line of the 1-mapper scenarios, as mapper 1, 20 times slower."""
    return records + [{**r, "mapper": 1, "ns_per_page": r["ns_per_page"] * 20}
                      for r in records if r["spec"]["mappers"] == 1 and not r["warmup"]]


def _flagged(key: str, rounds: range) -> Callable[[list[Record]], list[Record]]:
    def change(records: list[Record]) -> list[Record]:
        return [{**r, key: not r[key]} if r["round"] in rounds else r for r in records]
    return change


CASES = {
    # 9 scenarios of 1 mapper, 12 measured rounds
    "mapper": ("native-quick", _stray_mappers, 108, "mapper 1 of a spec of 1 mapper(s)"),
    # 1 warm-up round, 12 measured; 18 lines a round
    "warm-up measured": ("native-quick", _flagged("warmup", range(0, 1)), 18,
                         "warmup false in round 0, one of the run's warm-up rounds, the "
                         "first 1 of 13"),
    # (left out as a warm-up before, each row one round short, without a word)
    "measured warm-up": ("native-quick", _flagged("warmup", range(12, 13)), 18,
                         "warmup true in round 12, not one of the run's warm-up rounds, the "
                         "first 1 of 13"),
    # 1 warm-up round, 10 measured, 5 profiled
    "profiled measured": ("native-profile", _flagged("profiled", range(15, 16)), 10,
                          "profiled false in round 15, one of the run's profiled rounds, the "
                          "last 5 of 16"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_line_in_the_wrong_row_is_dropped_and_counted(tmp_path: Path, case: str) -> None:
    """R14-2: each such line is dropped as an invalid one, and said; a row that gained lines
    is the shipped run's again, n included."""
    name, change, count, problem = CASES[case]
    report = _report(_tampered(name, tmp_path / "run", change))
    assert report["dropped_lines"]["invalid"] == {problem: count}
    if case != "measured warm-up":
        assert report["scenarios"] == _report(RESULTS / name)["scenarios"]


def test_a_resume_builds_on_no_line_of_a_mapper_its_spec_lacks(
        finished: Path, tmp_path: Path) -> None:  # noqa: F811 (the fixture)
    """R14-2: resumed, a stray mapper-5 line was kept as one more valid sample (1201 of
    1200); the resume refuses it, naming the line, as any other bad line."""
    run = _interrupted(finished, tmp_path / "run")
    with (run / "samples.jsonl").open("r+") as samples:
        first = json.loads(samples.readline())
        samples.seek(0, 2)
        samples.write(json.dumps({**first, "mapper": 5}) + "\n")
    done = faultbench("run", "--resume", run, "-q", check=False)
    assert done.returncode == 2, done.stderr
    assert f"faultbench run: {run}/samples.jsonl:3: scenario {first['scenario']}: mapper 5 " \
        "of a spec of 1 mapper(s)" in done.stderr  # (after a warning of others' runs, if any)
    assert len((run / "samples.jsonl").read_text().splitlines()) == 3
