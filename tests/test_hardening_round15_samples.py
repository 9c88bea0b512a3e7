"""Round fifteen, samples.jsonl: a line without `knobs` passed every check, then `report`,
`compare` and the summary of `run --resume` (after it had measured and sealed the run) ended
in a traceback: the analysis reads some keys from every line (R15-1). A key every faultbench
sample has is required; one added since may be missing from an older run's lines. Copies of
shipped runs, a real native run, the real commands."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from analysis_runs import faultbench, measured_again
from test_hardening_round13_resume import _interrupted, _refused, finished  # noqa: F401

RESULTS = Path(__file__).parents[1] / "results"
Record = dict[str, Any]
# keys the analysis reads from every line: each crashed it, missing from one line or all
ALWAYS = ("knobs", "null_reasons", "plane", "faults_minor", "faults_major", "uffd_events",
          "munmap_ns", "pages_mapped", "error", "spec", "page_size")
# keys added to the format since its first runs: a run from before lacks them on every line
ADDED_SINCE = ("clock", "registered", "folios", "profiled", "populate_ns", "populate_faults",
               "nivcsw", "steal_ns", "window_offset", "mappings", "ticks")
# ... which app-launch sessions have had from their start
LAUNCH = ("launches_done", "rss_pages", "vmstat", "launch_outcome")


def _copy(name: str, to: Path, lacking: dict[int, str] | None = None,
          everywhere: tuple[str, ...] = ()) -> Path:
    """A copy of results/NAME whose line i lacks key lacking[i], and every line `everywhere`."""
    shutil.copytree(RESULTS / name, to)
    records: list[Record] = [json.loads(line) for line in (to / "samples.jsonl").open()]
    for index, key in (lacking or {}).items():
        del records[index][key]
    records = [{k: v for k, v in r.items() if k not in everywhere} for r in records]
    (to / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return to


def _why(key: str, what: str = "faultbench") -> str:
    return f"no {key}, which every {what} sample has"


def test_a_line_without_a_key_every_sample_has_is_dropped_and_counted(tmp_path: Path) -> None:
    """R15-1: one key missing from each of 11 measured lines: each line is dropped and
    counted by its key; report, its text and compare (either way round) say so in one
    run, without a traceback."""
    lines = {31 + 18 * i: key for i, key in enumerate(ALWAYS)}  # measured rounds, apart
    run = _copy("native-quick", tmp_path / "run", lines)
    report = json.loads(faultbench("report", "--json", run).stdout)
    assert report["dropped_lines"]["invalid"] == {_why(key): 1 for key in ALWAYS}
    text = faultbench("report", "--no-figures", "--out", tmp_path / "out", run)
    assert "Traceback" not in text.stderr
    assert _why("knobs") in " ".join((tmp_path / "out" / "report.txt").read_text().split())
    apart = measured_again(RESULTS / "native-quick", tmp_path / "apart")  # not a copy
    for pair in ((apart, run), (run, apart)):
        done = faultbench("compare", *pair)
        assert "Traceback" not in done.stderr and _why("knobs") in " ".join(done.stdout.split())


def test_an_app_launch_line_without_its_outcome_is_dropped(tmp_path: Path) -> None:
    """The launch fields came with app-launch sessions: a session's line without one is no
    sample (its outcome was read from every line, a KeyError)."""
    run = _copy("tcg-memory-256M", tmp_path / "run", everywhere=("launch_outcome",))
    done = faultbench("report", "--json", run, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"e.g. 28 with {_why('launch_outcome', 'app-launch')}." in done.stderr


def test_a_run_from_before_the_later_keys_still_loads_whole(tmp_path: Path) -> None:
    """What is optional stays so: without every key added since, no line is dropped."""
    for name, lacking in (("native-quick", ADDED_SINCE + LAUNCH),
                          ("tcg-memory-256M", ADDED_SINCE)):
        run = _copy(name, tmp_path / name, everywhere=lacking)
        report = json.loads(faultbench("report", "--json", run).stdout)
        assert report["dropped_lines"]["invalid"] == {}
        assert [r["n"] for r in report["scenarios"]] == [
            r["n"] for r in json.loads(faultbench("report", "--json", RESULTS / name).stdout)[
                "scenarios"]]


def test_a_resume_refuses_a_line_without_knobs_before_measuring(
        finished: Path, tmp_path: Path) -> None:  # noqa: F811 (the fixture)
    """R15-1: the resume measured every missing sample and sealed the run, then its summary
    failed with a traceback; it refuses the line first, naming it, and changes nothing."""
    run = _interrupted(finished, tmp_path / "run")
    records = [json.loads(line) for line in (run / "samples.jsonl").open()]
    del records[1]["knobs"]
    (run / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    line = _refused(run)
    assert line.startswith(f"faultbench run: {run}/samples.jsonl:2: scenario "
                           f"{records[1]['scenario']}: {_why('knobs')}; "), line
    assert json.loads((run / "meta.json").read_text())["finished_utc"] is None


def test_a_profiled_run_without_munmap_times_reports_its_teardown_as_unknown(
        tmp_path: Path) -> None:
    """munmap_ns null on every line (a valid value: null with its reason): the profile's
    teardown phase has nothing to cost it, and `report --json` gives it null, not NaN (a
    ValueError from json.dumps before)."""
    run = shutil.copytree(RESULTS / "native-profile", tmp_path / "run")
    records = [json.loads(line) for line in (run / "samples.jsonl").open()]
    for record in records:
        record["munmap_ns"] = None
        record["null_reasons"]["munmap_ns"] = "not measured here"
    (run / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    done = faultbench("report", run, "--json", check=False)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    profiles = json.loads(done.stdout)["profiles"]
    assert profiles and all(p["phases"]["teardown"] is None for p in profiles)
