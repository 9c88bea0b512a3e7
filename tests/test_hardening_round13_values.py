"""Round thirteen, values as read back: an integer knob that some scenarios leave unset was
labelled as a float (`vm.swappiness=10.0`) in every table split under headings, and 2^53 and
2^53 + 1 were two rows under one heading `9007199254740992.0`, `report --json` giving floats
(R13-1); samples.jsonl and profiles.jsonl lines with values their writer never writes were
used: `warmup: null` counted warm-ups as measured, a status "bogus" made a footer "bogus
sample(s): nan", a profile's `unresolved` or `user` past its `samples` was printed (R13-9).
Real native runs; the values are written into copies of them, as anyone can write a run
directory `report` reads."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from analysis_runs import make_run
from groups import HOST
from test_hardening_round4_input import fb
from test_hardening_round11 import _records, _rewritten

from faultbench.analysis.summary import summary
from faultbench.measurement.rundir.checks import profile_problem, sample_problem

# native runs and resumes whose output must be exactly what they say: beside a test that
# holds the knob lock they would warn of it, or leave out samples (HOST: tests/groups.py)
pytestmark = HOST

RESULTS = Path(__file__).resolve().parent.parent / "results"

# long labels (size, pattern, offset and a knob), which tables split under headings
LONG = """\
repetitions = 2
warmups = 1
[defaults]
backing = "memfd"
[[matrix]]
size = ["256K", "512K"]
pattern = ["seq", "random"]
map_offset = ["0", "4K"]
"""


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("round13"), "run", LONG)


def _with_knob(base: Path, to: Path, low: int, high: int) -> Path:
    """`base` with vm.swappiness read back as `low` (offset 0) and `high` (offset 4K) in
    its seq scenarios, and unset in the random ones (runner.execute's `knobs`)."""
    records = _records(base)
    for record in records:
        if record["spec"]["pattern"] == "seq":
            record["knobs"] = {"vm.swappiness": high if record["spec"]["map_offset"] else low}
    return _rewritten(base, to, records, swept=True)


def _knob_words(text: str) -> list[str]:
    """The knob's labels in `text`, a sentence's full stop left out."""
    return [w.rstrip(".") for w in text.split() if w.startswith("vm.swappiness=")]


def _report(run: Path, out: Path) -> str:
    done = fb("report", run, "--no-figures", "--out", out)
    assert done.returncode == 0, done.stderr
    return (out / "report.txt").read_text()


def test_an_int_knob_next_to_unset_is_labelled_as_read(base: Path, tmp_path: Path) -> None:
    """R13-1: the split tables of report and the run's summary said vm.swappiness=10.0."""
    run = _with_knob(base, tmp_path / "knob", 10, 60)
    for text in (_report(run, tmp_path / "r"), summary(run)):
        assert set(_knob_words(text)) == {"vm.swappiness=10", "vm.swappiness=60",
                                          "vm.swappiness=unset"}, text
    done = fb("report", run, "--json")
    assert done.returncode == 0, done.stderr
    values = [row["spec"]["vm.swappiness"] for row in json.loads(done.stdout)["scenarios"]]
    assert sorted(values, key=str) == [10, 10, 60, 60, *[None] * 4], values
    assert all(type(v) in (int, type(None)) for v in values), values


def test_knob_values_past_two_to_the_53_label_their_rows(base: Path, tmp_path: Path) -> None:
    """R13-1: 2^53 and 2^53 + 1 were two rows under one heading
    `vm.swappiness=9007199254740992.0`, each labelled only `-`."""
    run = _with_knob(base, tmp_path / "big", 2**53, 2**53 + 1)
    text = _report(run, tmp_path / "r")
    assert set(_knob_words(text)) == {"vm.swappiness=9007199254740992",
                                      "vm.swappiness=9007199254740993",
                                      "vm.swappiness=unset"}, text
    # each row under its own label: none is the bare "-" of a row under a shared heading
    assert not [line for line in text.splitlines() if line.strip().startswith("- ")], text
    done = fb("report", run, "--json")
    assert done.returncode == 0, done.stderr
    values = {row["spec"]["vm.swappiness"] for row in json.loads(done.stdout)["scenarios"]}
    assert values == {2**53, 2**53 + 1, None}, values


def _dropped(run: Path) -> dict[str, int]:
    done = fb("report", run, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["dropped_lines"]["invalid"]


@pytest.mark.parametrize(("key", "value", "problem"), [
    ("warmup", None, "warmup is None, not bool"),
    ("profiled", None, "profiled is None, not bool"),
    ("status", "bogus", "status is 'bogus', not one of ok, unsupported, error"),
    ("plane", "qemu", "plane is 'qemu', not one of native, kvm-guest, tcg-guest, tcg-icount"),
    ("clock", "tsc", "clock is 'tsc', not one of icount, wall"),
    ("launch_outcome", "fine", "launch_outcome is 'fine', not one of ok, oom, deadline, error"),
])
def test_a_value_the_writer_never_writes_is_an_invalid_line(
        base: Path, tmp_path: Path, key: str, value: Any, problem: str) -> None:
    """R13-9: `warmup: null` on the warm-up lines counted them as measured (n 3, not 2); a
    status "bogus" was a footer "bogus sample(s): nan". Each such line is dropped and
    counted, as other bad values are."""
    records = _records(base)
    changed = [r for r in records if r["warmup"]]
    for record in changed:
        record[key] = value
    run = _rewritten(base, tmp_path / "run", records)
    assert _dropped(run) == {problem: len(changed)}
    done = fb("report", run, "--json")
    assert {row["n"] for row in json.loads(done.stdout)["scenarios"]} == {2}
    text = _report(run, tmp_path / "r")
    assert "nan" not in text and "bogus sample" not in text, text


def test_a_run_line_without_warmup_is_invalid_and_a_bare_sample_needs_none(
        base: Path, tmp_path: Path) -> None:
    """Every line a run writes says whether it is a warm-up; without it one would count as
    measured. A `measure --json` sample (no scenario, no round) has no warm-ups."""
    records = _records(base)
    for record in records[:3]:
        del record["warmup"]
    assert _dropped(_rewritten(base, tmp_path / "run", records)) == {
        "warmup is None, not bool": 3}
    assert sample_problem({k: v for k, v in records[0].items()
                           if k not in ("scenario", "round")}, in_run=False) is None


def test_profile_counts_past_their_samples_are_invalid_lines(tmp_path: Path) -> None:
    """R13-9: `unresolved` and `user` ten times the part's samples were printed ("5,910 loop
    samples (5 rounds), 59100 unresolved"). User-mode samples have no kernel address to
    resolve, so the two together are at most the samples."""
    run = tmp_path / "profile"
    shutil.copytree(RESULTS / "native-profile", run)
    lines = [json.loads(line) for line in (run / "profiles.jsonl").read_text().splitlines()]
    loop = lines[0]["loop"]
    assert loop["samples"] >= loop["unresolved"] + loop["user"] > 0
    loop["user"] = loop["samples"] - loop["unresolved"] + 1
    lines[1]["loop"]["unresolved"] = lines[1]["loop"]["samples"] * 10
    lines[2]["munmap"]["period_ns"] = 0
    (run / "profiles.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert "3 line(s) of profiles.jsonl skipped" in " ".join(
        _report(run, tmp_path / "r").split())
    assert profile_problem(lines[0]) == (
        f"loop: {loop['unresolved']} unresolved and {loop['user']} user samples of "
        f"{loop['samples']}")
