"""Round nineteen: an ok sample's ns_per_page was checked only to be in range, so a denormal
(5e-324) passed, and compare's estimate printed numpy's overflow warning, a source line of
ours, on stderr (R19-3); `report --json` took any --baseline, --out or --no-figures and did
nothing with it, where the text report refuses a baseline that is no swept value (R19-4).
Copies of a shipped run, edited; the real commands, in a process of their own (a warning is
what is looked for on stderr)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from console import one_line

from faultbench.measurement.rundir.checks import sample_problem

RESULTS = Path(__file__).resolve().parent.parent / "results"
QUICK = RESULTS / "native-quick"


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "faultbench", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def _edited(to: Path, key: str, value: float) -> Path:
    shutil.copytree(QUICK, to, ignore=shutil.ignore_patterns("figures", "report.txt"))
    samples = to / "samples.jsonl"
    records = [json.loads(line) for line in samples.read_text().splitlines()]
    for record in records:
        if record["status"] == "ok":
            record[key] = value
    samples.write_text("".join(json.dumps(r) + "\n" for r in records))
    return to


@pytest.mark.parametrize(("key", "value"), [("ns_per_page", 5e-324),
                                            ("faults_per_page", 5e-324),
                                            ("ns_per_page", 1e9)])
def test_per_page_values_that_are_not_the_counts_over_the_pages_are_no_samples(
        tmp_path: Path, key: str, value: float) -> None:
    run = _edited(tmp_path / "run", key, value)
    done = _cli("compare", QUICK, run)
    assert done.returncode == 2 and not done.stdout
    counts = "touch_ns" if key == "ns_per_page" else "faults_minor + faults_major"
    assert one_line(done.stderr).endswith(
        f"with {key} is {value!r}, not its {counts} over pages_touched."), done.stderr


def test_the_shipped_runs_per_page_values_are_their_counts_over_the_pages() -> None:
    """The control: no sample of a run under results/ (its boots' too) is refused for it."""
    lines = [line for path in RESULTS.glob("**/samples.jsonl")
             for line in path.read_text().splitlines()]
    assert len(lines) > 1000
    assert not [p for line in lines
                if (p := sample_problem(json.loads(line))) and "pages_touched" in p]


@pytest.mark.parametrize("extra", [("--baseline", "nosuch=1"), ("--baseline", "99"),
                                   ("--out", "{tmp}/elsewhere"), ("--no-figures",)])
def test_report_json_refuses_what_applies_only_to_the_text_report(tmp_path: Path,
                                                                  extra: tuple[str, ...]) -> None:
    done = _cli("report", QUICK, "--json", *(e.format(tmp=tmp_path) for e in extra))
    assert done.returncode == 2 and not done.stdout
    assert one_line(done.stderr) == (
        f"faultbench report: {extra[0]} with --json: --json prints what the report computes, "
        "without its sweep tables, and writes nothing")
    assert not (tmp_path / "elsewhere").exists()
