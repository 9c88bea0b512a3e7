"""Round twelve, what a samples.jsonl line read back may hold: keys no sample has each
became a column of the analysis' frame for every line, so a 37 MB file of "wide" lines took
report two minutes and 5 GB (R12-3); a spec field at a line's top level ended report and
compare in a traceback, and merge copied it (R12-1); knob values were not checked, an object
ending report in a traceback and NaN pooling scenarios (R12-13). Real native runs, the real
commands."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
from analysis_runs import make_run, measured_again
from console import one_line
from test_hardening_round4_input import fb
from test_hardening_round8 import one_scenario
from test_hardening_round11 import _records, _rewritten, _words

import faultbench
from faultbench.measurement.knobs.catalog import MAX_KNOBS, KnobError, read_value, resolve
from faultbench.measurement.knobs.requested import parse_set_options


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("round12"), "run", one_scenario(6))


def _report_words(run: Path, out: Path) -> str:
    done = fb("report", run, "--no-figures", "--out", out)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return _words((out / "report.txt").read_text())


def test_keys_no_sample_has_are_invalid_lines_and_no_columns(
        base: Path, tmp_path: Path) -> None:
    """R12-3: three lines with 2,000 keys of their own each made 6,000 columns for every
    row (rows x keys: a 37 MB file took 5 GB). They are invalid lines now, dropped and
    counted; the frame has the columns of the run without them."""
    records = _records(base)
    for index, record in enumerate(records[:3]):
        record.update({f"x{index}_{k}": 0 for k in range(2000)})
    wide = _rewritten(base, tmp_path / "wide", records)

    df = faultbench.load(wide)
    assert len(df) == 3
    assert set(df.columns) == set(faultbench.load(base).columns)
    assert ("NOTE: 3 invalid sample(s) in samples.jsonl were dropped, e.g. 1 with key "
            "'x0_0', which no faultbench sample has.") in _report_words(wide, tmp_path / "r")
    done = fb("report", wide, "--json")
    assert done.returncode == 0, done.stderr
    assert [row["n"] for row in json.loads(done.stdout)["scenarios"]] == [3]


def test_a_spec_field_outside_the_spec_is_an_invalid_line(base: Path, tmp_path: Path) -> None:
    """R12-1: a second `backing` column beside the spec's ended report and compare in a
    pandas traceback, and merge copied the line into its merged run."""
    records = _records(base)
    records[2]["backing"] = "anon"
    odd = _rewritten(base, tmp_path / "odd", records)
    dropped = ("1 invalid sample(s) in samples.jsonl were dropped, e.g. 1 with spec field "
               "'backing' outside its spec.")
    assert dropped in _report_words(odd, tmp_path / "r")
    done = fb("compare", odd, measured_again(base, tmp_path / "apart"))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert dropped in _words(done.stdout)

    meta = json.loads((odd / "meta.json").read_text())
    meta["provenance"]["host"]["name"] = "elsewhere"  # another machine: merge takes it
    (odd / "meta.json").write_text(json.dumps(meta))
    done = fb("merge", "--out", tmp_path / "merged", base, odd)
    assert done.returncode == 2
    assert one_line(done.stderr).endswith("spec field 'backing' outside its spec")
    assert not (tmp_path / "merged").exists()


@pytest.mark.parametrize("value", [{"a": 10}, [10], math.nan, math.inf, 10.0, True, None],
                         ids=["object", "list", "NaN", "Infinity", "float", "bool", "null"])
def test_a_knob_value_not_read_back_is_an_invalid_line(
        base: Path, tmp_path: Path, value: Any) -> None:
    """R12-13: knobs.catalog.read_value gives an integer or text. An object ended report in
    a traceback (unhashable); NaN and Infinity labelled no scenario, pooling the samples of
    two settings in one row."""
    records = _records(base)
    for record in records[:2]:
        record["knobs"] = {"vm.swappiness": value}
    odd = _rewritten(base, tmp_path / "odd", records)  # json.dumps writes NaN, Infinity
    words = _report_words(odd, tmp_path / "r")
    assert ("NOTE: 2 invalid sample(s) in samples.jsonl were dropped, e.g. 2 with knob "
            f"'vm.swappiness' is {value!r}, not a value read back (an integer or text).") in words
    done = fb("report", odd, "--json")
    assert done.returncode == 0, done.stderr
    assert [row["n"] for row in json.loads(done.stdout)["scenarios"]] == [4]


def _set_in_meta(run: Path, knobs: dict[str, Any]) -> None:
    """The run's one scenario as setting `knobs`: a line's knobs are its scenario's."""
    meta = json.loads((run / "meta.json").read_text())
    [scenario] = meta["scenarios"]
    scenario["knobs"] = knobs
    (run / "meta.json").write_text(json.dumps(meta))


def test_knob_values_as_read_back_are_valid(base: Path, tmp_path: Path) -> None:
    """What the runner writes: a number (negative too, and up to ULONG_MAX) or text."""
    for value in (-1, 2**64 - 1, "never", 60, "1 2", 0):
        records = _records(base)
        for record in records:
            record["knobs"] = {"vm.swappiness": value}
        run = _rewritten(base, tmp_path / f"ok{value}", records)
        _set_in_meta(run, {"vm.swappiness": value})
        assert len(faultbench.load(run)) == 6


def test_knobs_past_those_a_run_may_set_are_invalid_lines(base: Path, tmp_path: Path) -> None:
    """Knob names are columns too: lines each naming 40 knobs of their own stay under any
    per-line bound and still made rows x names columns. A line taking the run past
    MAX_KNOBS distinct knobs is invalid; merge refuses it."""
    records = _records(base)
    for index, record in enumerate(records):
        record["knobs"] = {f"vm.x{index}_{k}": 0 for k in range(40)}
    wide = _rewritten(base, tmp_path / "wide", records)
    _set_in_meta(wide, records[0]["knobs"])  # its scenario's: the first line is valid
    df = faultbench.load(wide)
    assert len(df) == 1 and len(df.attrs["knob_columns"]) == 40 <= MAX_KNOBS
    assert ("NOTE: 5 invalid sample(s) in samples.jsonl were dropped, e.g. 5 with knobs past "
            f"the {MAX_KNOBS} a run may set (with the lines before it).") in _report_words(
                wide, tmp_path / "r")
    meta = json.loads((wide / "meta.json").read_text())
    meta["provenance"]["host"]["name"] = "elsewhere"
    (wide / "meta.json").write_text(json.dumps(meta))
    done = fb("merge", "--out", tmp_path / "merged", base, wide)
    assert done.returncode == 2
    assert one_line(done.stderr).endswith(
        f"knobs past the {MAX_KNOBS} a run may set (with the lines before it)")


def _settable_knobs() -> list[str]:
    """`NAME=VALUE` of each vm sysctl and THP setting this machine lets a workload set, at
    its value now."""
    names = [f"vm.{n}" for n in sorted(os.listdir("/proc/sys/vm"))]
    thp = Path("/sys/kernel/mm/transparent_hugepage")
    if thp.is_dir():
        names += ["thp.enabled", "thp.shmem_enabled", "thp.defrag"]
        names += [f"thp.{d.name}.{s}" for d in sorted(thp.glob("hugepages-*kB"))
                  for s in ("enabled", "shmem_enabled")]
    settable = []
    for name in names:
        try:
            option = f"{name}={read_value(resolve(name))}"
            parse_set_options([option])
        except (KnobError, OSError):
            continue
        settable.append(option)
    return settable


def test_a_workload_setting_more_knobs_than_a_run_may_is_refused(tmp_path: Path) -> None:
    """The reader's bound holds for what the runner writes: a workload cannot set more
    knobs than samples read back may name."""
    settable = _settable_knobs()
    if len(settable) <= MAX_KNOBS:
        pytest.skip(f"this machine has {len(settable)} settable knobs")
    knobs = "".join(f'"{option.split("=")[0]}" = ["{option.split("=", 1)[1]}"]\n'
                    for option in settable[:MAX_KNOBS + 1])
    toml = tmp_path / "many.toml"
    toml.write_text(one_scenario(1) + "[knobs]\n" + knobs)
    done = fb("workloads", toml)
    assert done.returncode == 2
    assert one_line(done.stderr).endswith(
        f"knobs: {MAX_KNOBS + 1} knobs, more than the {MAX_KNOBS} a run may set")
    toml.write_text(one_scenario(1) + "[knobs]\n" + "".join(
        knobs.splitlines(keepends=True)[:MAX_KNOBS]))
    done = fb("workloads", toml)
    assert done.returncode == 0, done.stderr
