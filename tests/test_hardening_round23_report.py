"""Round twenty-three: a booted run interrupted in its first boot was "not a faultbench run
directory" to report and compare, which `run --resume` took as the run it is (R23-3); a
`--baseline KNOB=VALUE` of a knob the run does not sweep, or with nothing on a side of "=",
was refused as a value of the knob it sweeps (R23-5); an error sample with no error text was
summarised as "nan" or "None" (R23-7). Copies of shipped runs and a booted run as `run
--kernel` starts it (no guest is booted), edited as the round's reproductions did."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from console import one_line
from images import require_boot_image
from test_hardening_round4_input import fb
from test_hardening_round9 import _booted_run
from test_hardening_round11 import _records, _rewritten

from faultbench.analysis.summary import summary
from faultbench.commands.measure import describe
from faultbench.commands.run import _report
from faultbench.measurement.booted.boots import _prepare
from faultbench.measurement.measure import sample_without_result
from faultbench.measurement.progress import line
from faultbench.measurement.rundir.results import RunDir
from faultbench.measurement.workload import Unit, load

RESULTS = Path(__file__).resolve().parent.parent / "results"


def _refusal(*args: str | Path) -> str:
    done = fb(*args)
    assert done.returncode == 2, done.stdout
    return one_line(done.stderr)


def test_a_booted_run_interrupted_in_its_first_boot_is_unfinished_not_foreign(
        tmp_path: Path) -> None:
    """R23-3: what a kill during boot 1 leaves (its samples in boots/0.d/, none yet in the
    run's samples.jsonl): report and compare say so, with the command that continues it."""
    run_dir = _booted_run(tmp_path, Path(require_boot_image()), boots=1)
    meta = run_dir.read_meta()
    meta["boots"][0].update(status="running", attempts=1, started_utc=meta["started_utc"])
    run_dir.write_meta(meta)
    _prepare(run_dir, meta, 0)  # as run_boots does before the guest starts
    first = (RESULTS / "icount-aa" / "samples.jsonl").read_text().splitlines()[0]
    (run_dir.path / "boots" / "0.d" / "samples.jsonl").write_text(first + "\n")
    said = (f"{run_dir.path}: a booted run that has not finished, none of its boots complete "
            "yet (a boot's samples, in boots/N.d/ until then, join the run's when it "
            "completes): no samples to show; continue with: faultbench run --resume "
            f"{run_dir.path}")
    assert _refusal("report", run_dir.path, "--no-figures", "--out", tmp_path / "rep") == \
        f"faultbench report: {said}"
    assert _refusal("compare", RESULTS / "icount-aa", run_dir.path) == f"faultbench compare: {said}"


def test_an_unfinished_run_with_no_sample_yet_says_how_to_go_on(tmp_path: Path) -> None:
    """The same for a run on the host killed before its first sample; a finished run whose
    samples.jsonl is gone is still no run to report."""
    run = tmp_path / "run"
    shutil.copytree(RESULTS / "native-quick", run)
    (run / "samples.jsonl").unlink()
    assert _refusal("report", run, "--json") == (
        "faultbench report: " f"{run}: not a faultbench run directory (no samples.jsonl)")
    meta = json.loads((run / "meta.json").read_text())
    (run / "meta.json").write_text(json.dumps({**meta, "finished_utc": None}))
    assert _refusal("report", run, "--json") == (
        f"faultbench report: {run}: a run that has not finished, and no sample of it is "
        f"recorded yet: no samples to show; continue with: faultbench run --resume {run}")


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of a shipped run edited into a sweep of vm.swappiness (10, 60)."""
    records = _records(RESULTS / "native-quick")
    for record in records:
        record["knobs"] = {"vm.swappiness": 60 if record["round"] % 2 else 10}
    return _rewritten(RESULTS / "native-quick", tmp_path_factory.mktemp("r23") / "run", records,
                      swept=True)


@pytest.mark.parametrize(("baseline", "said"), [
    ("uffd=none", "--baseline uffd=none: this run sweeps vm.swappiness, not uffd"),
    ("bogus=1", "--baseline bogus=1: this run sweeps vm.swappiness, not bogus"),
    ("=10", "--baseline '=10': give KNOB=VALUE or VALUE"),
    ("vm.swappiness=", "--baseline 'vm.swappiness=': give KNOB=VALUE or VALUE"),
    ("", "--baseline '': give KNOB=VALUE or VALUE"),
    ("7", "--baseline 7 is not a value of vm.swappiness in this run: 10, 60"),
])
def test_a_baseline_refusal_names_what_is_wrong_with_it(
        swept: Path, tmp_path: Path, baseline: str, said: str) -> None:
    """R23-5: every one of these was "--baseline X is not a value of vm.swappiness"."""
    assert _refusal("report", swept, "--no-figures", "--out", tmp_path / "rep",
                    "--baseline", baseline) == f"faultbench report: {said}"


def _textless_errors(tmp_path: Path, failed: Callable[[dict[str, Any]], bool]) -> Path:
    """A copy of a shipped run whose measured samples `failed` picks are errors with no
    text (null `error`: valid, the sample checks allow it)."""
    records = _records(RESULTS / "native-quick")
    for record in records:
        if not record["warmup"] and failed(record):
            record.update(status="error", error=None)
    return _rewritten(RESULTS / "native-quick", tmp_path / "run", records)


def test_an_error_sample_without_text_is_said_to_have_none(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """R23-7: report's footer said "1 error sample(s): nan", and run's summary "the first:
    None"."""
    def key(record: dict[str, Any]) -> tuple[Any, ...]:
        return record["scenario"], record["round"], record["mapper"]
    first = key(next(r for r in _records(RESULTS / "native-quick") if not r["warmup"]))
    run = _textless_errors(tmp_path, lambda r: key(r) == first)
    done = fb("report", run, "--no-figures", "--out", tmp_path / "rep")
    assert done.returncode == 0, done.stderr
    assert "1 error sample(s): (no error text)\n" in done.stdout and "nan" not in done.stdout
    _report(RunDir(run))
    assert capsys.readouterr().err.startswith(
        'faultbench run: 1 of 234 samples failed (status "error" in samples.jsonl); the '
        "first: (no error text)\n")


def test_a_scenario_whose_samples_all_failed_without_text_says_so(tmp_path: Path) -> None:
    """The note on a scenario with no valid sample (run's summary) named its error "nan"."""
    name = _records(RESULTS / "native-quick")[0]["scenario"]
    run = _textless_errors(tmp_path, lambda r: r["scenario"] == name)
    said = summary(run)
    assert said.endswith(": error: (no error text)\n") and name in said and "nan" not in said


def test_a_sample_measured_without_error_text_is_shown_with_none(tmp_path: Path) -> None:
    """measure's line and run's progress line of a sample the native code gave no error
    text (measure.py records it as null) said "error: " and "error: None"."""
    scenario = load("quick").scenarios[0]
    sample = sample_without_result(scenario.spec, "native", "error", "")
    sample.error = None
    assert describe(sample).endswith(": error: (no error text)")
    assert line(1, 1, "0:00", Unit(scenario, 0, False), [sample.to_dict()]).endswith(
        ": error: (no error text)")
