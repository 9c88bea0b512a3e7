"""Round 24, what a load takes as one thing and what it says is missing: a `dir` with a
leading `//` is the directory without it (R24-3); a sample counting more pages than its
mapping holds is dropped (R24-8); a finished run whose samples.jsonl lacks whole rounds is
reported and compared with a note saying so (R24-7)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from analysis_runs import faultbench, measured_again

from faultbench import Spec, load, measure
from faultbench.analysis.compare import match_text, side_value
from faultbench.analysis.dropped import lacking_note
from faultbench.measurement.workload import load as load_workload
from faultbench.measurement.workload_checks import filter_value

RESULTS = Path(__file__).resolve().parents[1] / "results"

SLASHES = """
description = "round 24: one directory spelled four ways"
repetitions = 2
warmups = 0
[defaults]
backing = "file"
size = "64K"
[[matrix]]
dir = {dirs}
"""


def test_a_leading_double_slash_names_the_same_directory_everywhere(tmp_path: Path) -> None:
    here = str(tmp_path)
    spellings = [here, f"{here}/", f"/{here}", f"/{here}//."]
    toml = tmp_path / "slashes.toml"
    toml.write_text(SLASHES.format(dirs=json.dumps(spellings)))
    scenarios = load_workload(str(toml)).scenarios
    assert [s.spec.dir for s in scenarios] == [here]  # one scenario, not two
    assert filter_value("dir", f"/{here}") == here  # --only dir=
    assert side_value("dir", f"/{here}") == here  # compare --by dir, as given
    assert match_text("dir", f"/{here}") == match_text("dir", here)  # as an older run wrote it
    measured = faultbench("measure", "--backing", "file", "--size", "64K", "--dir", f"/{here}/",
                          "--json")
    assert json.loads(measured.stdout.splitlines()[0])["spec"]["dir"] == here
    assert side_value("dir", "//") == "/"


def test_a_sample_counting_more_pages_than_its_mapping_holds_is_dropped(tmp_path: Path) -> None:
    sample = measure(Spec(backing="memfd", size=1 << 20)).to_dict()  # 256 pages
    assert sample["status"] == "ok" and sample["pages_mapped"] == 256
    lines = [sample,
             {**sample, "pages_mapped": 10**15},
             {**sample, "pages_mapped": 257},
             {**sample, "resident_before_pages": 257},
             {**sample, "folios": {"0": 2**62, "4": 2**62 + 5}},
             {**sample, "folios": {"0": 200, "4": 100}}]  # each order below 256, not together
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    df = load(tmp_path)
    assert len(df) == 1
    invalid = df.attrs["dropped"][tmp_path.name].invalid
    assert sum(invalid.values()) == 5, invalid
    assert any("more than the 256 pages its mapping holds" in p for p in invalid), invalid


def test_every_shipped_run_loads_every_line_and_lacks_no_measurement() -> None:
    runs = sorted(p for p in RESULTS.iterdir() if (p / "meta.json").is_file())
    assert len(runs) >= 15
    for run in runs:
        df = load(run)
        lines = sum(1 for line in (run / "samples.jsonl").open() if line.strip())
        dropped = df.attrs["dropped"][run.name]
        assert len(df) == lines and not dropped.invalid and not dropped.unreadable, \
            (run.name, dropped)
        assert lacking_note(df, df.attrs["meta"][run.name]) == [], run.name


def _said(*args: str | Path) -> str:
    """A command's output with its lines joined (notes are wrapped at 72 columns)."""
    return " ".join(faultbench(*args).stdout.split())


def _without_round(run: Path, to: Path, round_: int, boot: int | None = None) -> Path:
    """A copy of `run` whose samples.jsonl lacks the samples of one round (of one boot)."""
    if not to.exists():
        shutil.copytree(run, to)
    path = to / "samples.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(r) + "\n" for r in records
                            if (r["round"], r.get("boot")) != (round_, boot)))
    return to


def test_a_finished_run_lacking_a_round_says_so_in_report_and_compare(tmp_path: Path) -> None:
    base = tmp_path / "base"
    shutil.copytree(RESULTS / "native-quick", base)
    scenarios = len(json.loads((base / "meta.json").read_text())["scenarios"])
    cut = _without_round(base, measured_again(base, tmp_path / "cut"), 2)
    note = f"the run lacks the samples of {scenarios} measurement(s) of its plan"
    report = _said("report", cut, "--no-figures")
    assert f"NOTE: {note}" in report and "run --resume DIR measures them again" in report
    assert "lacks the samples" not in _said("report", base, "--no-figures")
    compared = _said("compare", base, cut)
    assert f"NEW: NOTE: {note}" in compared and "BASE: NOTE: the run lacks" not in compared
    meta = json.loads((cut / "meta.json").read_text())
    meta["provenance"]["host"]["name"] = "m5"  # so that merge takes it for another machine
    (cut / "meta.json").write_text(json.dumps(meta))
    refused = faultbench("merge", "--out", tmp_path / "merged", base, cut, check=False)
    assert refused.returncode == 2 and f"lacks the samples of {scenarios} " in refused.stderr


def test_a_boot_recorded_as_done_lacking_a_round_says_so(tmp_path: Path) -> None:
    meta = json.loads((RESULTS / "icount-aa" / "meta.json").read_text())
    boot = meta["boots"][0]
    cut = _without_round(RESULTS / "icount-aa", tmp_path / "cut",
                         meta["workload"]["warmups"] + boot["rounds"][0], boot["index"])
    report = _said("report", cut, "--no-figures")
    assert "lacks the samples of" in report and "of the boots it records as done" in report
