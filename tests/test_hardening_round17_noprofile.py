"""Round seventeen, R17-10: `report` of a profiled run whose profiles.jsonl was missing, or
whose lines matched no sample (each given "boot": 0, as in a native run), said nothing about
profiles: no section, no note, and `report --json` gave `"profiles": []`. A note now says how
many profiled samples have no profile and why, in report.txt and in `report --json`'s
`profile_coverage`. Copies of the shipped native-profile run (50 profiled samples, a line
each), edited as anyone can edit a run directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_hardening_round4_input import fb
from test_hardening_round11 import _records, _rewritten, _words

RUN = Path(__file__).resolve().parent.parent / "results" / "native-profile"
PROFILED = 50


def _profiles(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "profiles.jsonl").read_text().splitlines()]


def _with_profiles(to: Path, lines: list[dict] | None) -> Path:
    """A copy of the run with these profiles.jsonl lines (None: no such file)."""
    shutil.copytree(RUN, to)
    if lines is None:
        (to / "profiles.jsonl").unlink()
    else:
        (to / "profiles.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return to


def _said(run: Path, out: Path) -> tuple[str, dict]:
    """report.txt's words and report --json's profile_coverage."""
    done = fb("report", "--no-figures", "--out", out, run)
    assert done.returncode == 0, done.stderr
    text = _words((out / "report.txt").read_text())
    done = fb("report", "--json", run)
    assert done.returncode == 0, done.stderr
    return text, json.loads(done.stdout)["profile_coverage"]


def _coverage(without: int, **changed: object) -> dict:
    return {"profiled_samples": PROFILED, "without_profile": without, "none_recorded": {},
            "runs_without_file": [], "unmatched_lines": 0, "skipped_lines": 0, **changed}


def test_a_missing_profiles_file_is_said(tmp_path: Path) -> None:
    run = _with_profiles(tmp_path / "none", None)
    text, coverage = _said(run, tmp_path / "out")
    assert (f"NOTE: {PROFILED} of {PROFILED} profiled sample(s) have no kernel profile: "
            "profiles.jsonl is missing.") in text
    assert coverage == _coverage(PROFILED, runs_without_file=["none"])


def test_lines_matching_no_sample_are_counted(tmp_path: Path) -> None:
    lines = [{**line, "boot": 0} for line in _profiles(RUN)]
    text, coverage = _said(_with_profiles(tmp_path / "boot", lines), tmp_path / "out")
    assert (f"NOTE: {PROFILED} of {PROFILED} profiled sample(s) have no kernel profile: "
            f"{PROFILED} valid line(s) of profiles.jsonl match no profiled sample.") in text
    assert coverage == _coverage(PROFILED, unmatched_lines=PROFILED)


def test_samples_whose_lines_are_gone_are_counted(tmp_path: Path) -> None:
    text, coverage = _said(_with_profiles(tmp_path / "cut", _profiles(RUN)[:-3]),
                           tmp_path / "out")
    assert "Kernel profiles" in text
    assert (f"NOTE: 3 of {PROFILED} profiled sample(s) have no kernel profile: "
            "profiles.jsonl has no line for them.") in text
    assert coverage == _coverage(3)


def test_samples_the_profiler_recorded_nothing_for_give_its_reason(tmp_path: Path) -> None:
    """As measure._attach_profiles leaves a sample it could not profile: no line, the reason
    in null_reasons["profile"]."""
    records = _records(RUN)
    lines = _profiles(RUN)
    gone = lines[:2]
    for record in records:
        if any(all(record.get(k) == line.get(k) for k in ("scenario", "round", "mapper"))
               for line in gone):
            record["null_reasons"] = {**record["null_reasons"], "profile": "perf lost it"}
    run = _rewritten(RUN, tmp_path / "run", records)
    (run / "profiles.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines[2:]))
    text, coverage = _said(run, tmp_path / "out")
    assert (f"NOTE: 2 of {PROFILED} profiled sample(s) have no kernel profile: 2 had none "
            "recorded (perf lost it).") in text
    assert coverage == _coverage(2, none_recorded={"perf lost it": 2})


@pytest.mark.parametrize("orphan", [False, True])
def test_a_run_whose_profiles_are_all_there_has_no_note(tmp_path: Path, orphan: bool) -> None:
    """The shipped run, and one with a line more, of a warm-up round (no profiled sample)."""
    lines = _profiles(RUN)
    run = _with_profiles(tmp_path / "orphan", [*lines, {**lines[0], "round": 0}]) \
        if orphan else RUN
    text, coverage = _said(run, tmp_path / "out")
    assert "have no kernel profile" not in text
    assert coverage == _coverage(0, unmatched_lines=int(orphan))
