"""Round thirteen, values as read back: an integer knob that some scenarios leave unset was
labelled as a float (`vm.swappiness=10.0`) in every table split under headings, and 2^53 and
2^53 + 1 were two rows under one heading `9007199254740992.0`, `report --json` giving floats
(R13-1). Real native runs; the values are written into copies of them, as anyone can write a run
directory `report` reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from analysis_runs import make_run
from test_hardening_round4_input import fb
from test_hardening_round11 import _records, _rewritten

from faultbench.analysis.summary import summary

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
    return _rewritten(base, to, records)


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

