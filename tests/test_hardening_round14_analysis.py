"""Round fourteen, the analysis of values a run directory may hold: every sample's
pages_mapped 0 ended `report` in numpy's "SVD did not converge" (the cost model scaled a
column of zeros), and touch_ns 0 (a loop no clock saw) there or in a division by zero
(R14-1); a swept knob read back as an integer in some samples and as text in another ended
it in a TypeError choosing the baseline (R14-3); an escaped profile symbol was padded on
its raw length (R14-6); matplotlib's warnings for a log axis with no positive value reached
stderr with a source line of ours (R14-7). Copies of the shipped results, edited as anyone
can edit a run directory `report` reads."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
from test_hardening_round4_input import fb
from test_hardening_round11 import _records, _rewritten

from faultbench.analysis.figures import warnings_said
from faultbench.measurement.rundir.checks import sample_problem

RESULTS = Path(__file__).resolve().parent.parent / "results"


def _with(run: str, to: Path, **fields: Any) -> Path:
    """The shipped `run` with `fields` set on every sample that measured."""
    records = _records(RESULTS / run)
    for record in records:
        if record["status"] == "ok":
            record.update(fields)
    return _rewritten(RESULTS / run, to, records)


@pytest.mark.parametrize(("run", "why"), [
    ("native-quick", "3 constants need 4 or more"),  # its condition was computed first
    ("native-break-even", "pages_mapped 0"), ("tcg-icount-cost-model", "pages_mapped 0")])
def test_no_page_mapped_leaves_the_cost_model_unidentified(run: str, why: str,
                                                          tmp_path: Path) -> None:
    """R14-1: a run whose touched pages were all found unmapped by the walk after the loop
    (reclaim or migration can unmap them first: the shipped native-break-even has samples
    with a page or two fewer mapped than touched) is reported, its cost model not fitted."""
    copy = _with(run, tmp_path / "run", pages_mapped=0)
    done = fb("report", "--no-figures", "--out", tmp_path / "out", copy)
    assert done.returncode == 0 and not done.stderr, done.stderr
    done = fb("report", "--json", copy)
    assert done.returncode == 0 and not done.stderr, done.stderr
    models = json.loads(done.stdout)["cost_model"]
    assert models and all(not m["fits"] and why in m["reason"] for m in models), models


def test_a_loop_timed_at_0_ns_is_no_sample(tmp_path: Path) -> None:
    """R14-1: two reads of CLOCK_MONOTONIC_RAW around a loop touching pages cannot be equal
    on a clock that resolves it; such a line is dropped with its reason, and a run of
    nothing else has no valid samples (a refusal, not a traceback)."""
    record = _records(RESULTS / "native-quick")[-1]
    assert record["status"] == "ok" and sample_problem(record) is None
    assert "touch_ns 0" in str(sample_problem({**record, "touch_ns": 0}))
    records = _records(RESULTS / "native-break-even")
    records[-1]["touch_ns"] = 0
    copy = _rewritten(RESULTS / "native-break-even", tmp_path / "one", records)
    done = fb("report", "--no-figures", "--out", tmp_path / "out", copy)
    assert done.returncode == 0, done.stderr
    assert "touch_ns 0" in " ".join((tmp_path / "out" / "report.txt").read_text().split())
    done = fb("report", "--no-figures", _with("native-break-even", tmp_path / "all",
                                              touch_ns=0))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "no valid samples" in done.stderr and "touch_ns 0" in done.stderr, done.stderr


def test_a_knob_read_as_text_in_one_sample_is_its_own_level(tmp_path: Path) -> None:
    """R14-3: vm.swappiness 10 and 60 (by round) and "x" in one sample: the baseline is
    the smallest number, and the text is a level of its own after the numbers."""
    records = _records(RESULTS / "native-quick")
    for record in records:
        record["knobs"] = {"vm.swappiness": 10 if record["round"] % 2 else 60}
    odd = next(r for r in records if r["status"] == "ok" and not r["warmup"])
    odd["knobs"] = {"vm.swappiness": "x"}
    copy = _rewritten(RESULTS / "native-quick", tmp_path / "run", records, swept=True)
    done = fb("report", "--out", tmp_path / "out", copy)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    text = (tmp_path / "out" / "report.txt").read_text()
    assert "change of the median against vm.swappiness=10." in " ".join(text.split()), text
    tables = text[text.index("Sweep of vm.swappiness"):].split("\n\n")[1:-1]
    levels = [[line.split()[0] for line in table.splitlines()[3:]] for table in tables]
    assert sorted(levels) == [["10", "60"]] * (len(levels) - 1) + [["10", "60", "x"]], text
    done = fb("report", "--no-figures", "--baseline", "7", copy)
    assert done.returncode == 2 and done.stderr.endswith(
        "not a value of vm.swappiness in this run: 10, 60, x\n"), done.stderr


def test_an_escaped_profile_symbol_is_laid_out_as_printed(tmp_path: Path) -> None:
    """R14-6: `nuf\\x1b[31m\\x07` (15 columns printed) was padded as its 7 raw characters,
    its numbers 8 columns right of the others'."""
    source = RESULTS / "native-profile"
    copy = _rewritten(source, tmp_path / "run", _records(source))
    profiles = copy / "profiles.jsonl"
    profiles.write_text(profiles.read_text().replace("next_uptodate_folio",
                                                     "nuf\\u001b[31m\\u0007"))
    done = fb("report", "--no-figures", copy)
    assert done.returncode == 0, done.stderr
    table = done.stdout[done.stdout.index("top symbols (self)"):].split("\n\n")[0]
    rows = [line for line in table.splitlines()[2:] if re.search(r"%\s+\S+$", line)]
    assert any(row.startswith("nuf\\x1b[31m\\x07 ") for row in rows), table
    assert len({row.index("%") for row in rows}) == 1, table


@pytest.mark.parametrize("run", ["native-quick", "tcg-fault-around-sweep",
                                 "tcg-icount-point-releases"])
def test_figures_of_values_no_log_axis_shows_say_nothing_on_stderr(
        run: str, tmp_path: Path) -> None:
    """R14-7: every sample at 0 made the sweep's and the kernels figure's fault axes warn
    "Data has no positive values" with a line of figures.py: such an axis is linear, and says
    so by not saying log. Samples that took no fault (an ok sample's faults_per_page is its
    faults over its pages; its ns_per_page, which the distributions' axis shows, is never 0:
    its touch_ns is not)."""
    copy = _with(run, tmp_path / "run", faults_per_page=0, faults_minor=0, faults_major=0)
    done = fb("report", "--out", tmp_path / "out", copy)
    assert done.returncode == 0 and not done.stderr, done.stderr
    assert list((tmp_path / "out" / "figures").glob("*.svg"))


def test_warnings_while_drawing_are_one_escaped_line_each(
        capsys: pytest.CaptureFixture[str]) -> None:
    """R14-7: what is still warned of while a figure is built is said once, escaped."""
    with warnings_said("figures"):
        for _ in range(2):
            warnings.warn("odd \x1b[31m axis", UserWarning, stacklevel=1)
    err = capsys.readouterr().err
    assert err == "faultbench: warning: figures: odd \\x1b[31m axis\n", err
