"""Round twelve, what compare and report say around their numbers: a refusal blamed --strict
when none was given (R12-4); `compare --by K` over one run gave all of the run's left-out
samples to BASE and `--brief` dropped that note (R12-15); `report --json` said nothing of
the samples.jsonl lines it dropped (R12-16); a `|` in a label split a markdown table's row
(R12-14). Real native runs through the CLI, their samples.jsonl rewritten where a test needs
lines a run does not write."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from analysis_runs import faultbench, make_run
from console import one_line
from test_hardening_round11 import _records, _rewritten, _words

# two patterns, so that a --strict test can leave each side a different one
TWO_BY_TWO = """\
description = "round twelve, text"
repetitions = 6
warmups = 0
seed = {seed}
[defaults]
backing = "memfd"
size = "1M"
[[matrix]]
pattern = ["seq", "random"]
uffd = ["none", "wp"]
"""
LEFT_OUT = ("sample(s) were left out: measured while someone else had changed "
            "thp.shmem_enabled (knob_drift in samples.jsonl).")
INVALID = "invalid sample(s) in samples.jsonl"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """The workload measured with seeds 1 and 2: runs that share no scenario."""
    where = tmp_path_factory.mktemp("round12-text")
    return {seed: make_run(where, f"seed{seed}", TWO_BY_TWO.replace("{seed}", str(seed)))
            for seed in (1, 2)}


def _ok(*args: str | Path) -> str:
    done = faultbench(*args, check=False)
    assert done.returncode == 0, done.stderr
    return _words(done.stdout)


def _refused(*args: str | Path) -> str:
    done = faultbench(*args, check=False)
    assert done.returncode == 2, (done.stdout, done.stderr)
    return one_line(done.stderr)


def test_a_failed_sample_is_no_strict_refusal(runs: dict[int, Path], tmp_path: Path) -> None:
    """R12-4: runs of other seeds share no scenario; with one failed sample in BASE the
    refusal said "once --strict left out the samples preempted or stolen from", with no
    --strict given (a failed sample is not `ok`, which compare took for --strict's work)."""
    records = _records(runs[1])
    records[3].update(status="error", error="boom")
    failed = _rewritten(runs[1], tmp_path / "failed", records)
    plain = _refused("compare", runs[1], runs[2])
    assert plain == ("faultbench compare: BASE and NEW have no scenario in common: they "
                     "differ in seed (1 vs 2)")
    assert _refused("compare", failed, runs[2]) == plain


def test_strict_is_named_when_it_took_the_rows_in_common(
        runs: dict[int, Path], tmp_path: Path) -> None:
    """The refusal still blames --strict where it is the cause: BASE's random samples and
    NEW's seq ones all preempted, so --strict leaves the sides no row in common."""
    records = _records(runs[1])
    for record in records:
        if (record["spec"]["uffd"], record["spec"]["pattern"]) in (("none", "random"),
                                                                   ("wp", "seq")):
            record["nivcsw"] = 3
    hit = _rewritten(runs[1], tmp_path / "hit", records)
    sides = (f"{hit}:none", f"{hit}:wp", "--by", "uffd")
    assert "2 rows" in _ok("compare", *sides)
    assert _refused("compare", *sides, "--strict") == (
        "faultbench compare: BASE and NEW have no scenario in common once --strict left "
        "out the samples preempted or stolen from: they differ in pattern (seq vs random)")


@pytest.fixture(scope="module")
def drifted(runs: dict[int, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seed 1's run with 3 samples at uffd=none and 2 at uffd=wp marked as measured while
    someone else had changed a knob (as runner.execute marks them), and one line invalid."""
    records = _records(runs[1])
    for uffd, count in (("none", 3), ("wp", 2)):
        for record in [r for r in records if r["spec"]["uffd"] == uffd][:count]:
            record["knob_drift"] = {"thp.shmem_enabled": ["never", "always"]}
    records[-1]["round"] = -1
    return _rewritten(runs[1], tmp_path_factory.mktemp("drifted") / "run", records)


@pytest.mark.parametrize("form", [(), ("--brief",), ("--format", "lkp")],
                         ids=["text", "brief", "lkp"])
def test_one_run_by_a_value_counts_each_sides_left_out_samples(
        drifted: Path, form: tuple[str, ...]) -> None:
    """R12-15: `compare --by uffd RUN:none RUN:wp` said "BASE: NOTE: 5 sample(s) were left
    out" (the whole run's) and nothing for NEW; --brief and lkp said nothing at all. The
    invalid line has no uffd value of its own: it is the run's."""
    out = _ok("compare", f"{drifted}:none", f"{drifted}:wp", "--by", "uffd", *form)
    assert f"BASE: NOTE: 3 {LEFT_OUT}" in out
    assert f"NEW: NOTE: 2 {LEFT_OUT}" in out
    assert f" NOTE: 1 {INVALID} of the run were dropped, e.g. 1 with round is -1" in out
    assert f"BASE: NOTE: 1 {INVALID}" not in out


def test_two_runs_by_a_value_count_only_the_chosen_values_samples(
        drifted: Path, runs: dict[int, Path]) -> None:
    """With --by over two runs a side's drift note counts the samples at its value, not
    the others of its run; lines not loaded are its run's."""
    out = _ok("compare", f"{drifted}:none", f"{runs[1]}:wp", "--by", "uffd")
    assert f"BASE: NOTE: 3 {LEFT_OUT}" in out
    assert f"BASE: NOTE: 1 {INVALID} were dropped" in out
    assert "NEW: NOTE" not in out
    out = _ok("compare", f"{runs[1]}:none", f"{drifted}:wp", "--by", "uffd", "--format", "json")
    footer = json.loads(out)["footer"]
    assert f"NEW: NOTE: 2 {LEFT_OUT}" in footer
    assert "BASE: NOTE" not in footer


def test_report_json_counts_the_lines_it_dropped(runs: dict[int, Path], tmp_path: Path) -> None:
    """R12-16: report --json had no word on an unreadable, an invalid and a duplicate
    line, which the text report's footer counts."""
    records = _records(runs[1])
    records[5]["round"] = -1
    dropped = _rewritten(runs[1], tmp_path / "dropped", [*records, records[0]])
    with (dropped / "samples.jsonl").open("a") as samples:
        samples.write('{"torn": \n')
    data = json.loads(faultbench("report", "--json", dropped).stdout)
    assert data["dropped_lines"] == {
        "unreadable": 1, "duplicates": 1,
        "invalid": {"round is -1, not an integer from 0 to 1000000000": 1}}
    assert json.loads(faultbench("report", "--json", runs[1]).stdout)["dropped_lines"] == {
        "unreadable": 0, "duplicates": 0, "invalid": {}}


def _markdown_rows(text: str) -> list[list[str]]:
    """The cells of a markdown table's rows as GitHub splits and unescapes them: a
    backslash escapes the character after it, an unescaped `|` ends a cell."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        cells = re.findall(r"((?:\\.|[^|\\])*)\|", line[1:])
        rows.append([re.sub(r"\\(.)", r"\1", cell).strip() for cell in cells])
    return rows


def test_a_pipe_in_a_label_stays_in_its_markdown_cell(tmp_path: Path) -> None:
    """R12-14: `dir=p|q` made a row of 8 cells in a table of 7 columns."""
    for name in ("p|q", "x\\|y"):
        (tmp_path / name).mkdir()
    workload = ('description = "pipes"\nrepetitions = 2\nwarmups = 0\n[defaults]\n'
                'backing = "file"\nsize = "64K"\n[[matrix]]\n'
                f'dir = ["{tmp_path}/p|q", "{tmp_path}/x\\\\|y"]\npattern = ["seq", "random"]\n')
    run = make_run(tmp_path, "run", workload.replace("{", "{{").replace("}", "}}"))
    out = faultbench("compare", f"{run}:seq", f"{run}:random", "--by", "pattern",
                     "--format", "markdown").stdout
    header, rule, *rows = _markdown_rows(out)
    assert header[0] == "scenario" and len(rule) == len(header)
    assert all(len(row) == len(header) for row in rows), out
    assert sorted(row[0] for row in rows) == ["dir=p|q", "dir=x\\|y"]
