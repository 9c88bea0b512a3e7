"""Round ten, analysis: scenarios that differ only in their app-launch session, `compare
--by` values that are infinite, and kernel labels that read as one number (6.1 and 6.10).
Real native runs through the CLI; a run of two kernels is the shipped booted run
results/tcg-icount-profile-kernels with its kernels relabelled (a TCG boot costs minutes)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from analysis_runs import faultbench, make_run, table_row
from console import one_line
from test_hardening_round2 import workload

SHIPPED = Path(__file__).parent.parent / "results" / "tcg-icount-profile-kernels"
SHIPPED_KERNELS = ("6.1", "6.12")
# app-launch sessions of one small app; {axis}: what varies among them
SESSIONS = """\
description = "sessions"
repetitions = 3
warmups = 0
seed = 1
[defaults]
backing = "file"
size = "1M"
apps = 1
app_files = 1
deadline_s = 60
{fixed}
[[matrix]]
{axis}
"""


def _refused(*args: str | Path) -> str:
    done = faultbench(*args, check=False)
    assert done.returncode == 2, (done.stdout, done.stderr)
    return one_line(done.stderr)


def _relabelled(tmp_path: Path, second: str) -> Path:
    """The shipped two-kernel run with its second kernel's label (6.12) written `second`,
    in meta.json and in every sample: the same samples under another label."""
    run = tmp_path / f"kernels-{second}"
    run.mkdir()
    for name in ("meta.json", "samples.jsonl"):
        text = (SHIPPED / name).read_text()
        assert f'"{second}"' not in text
        (run / name).write_text(text.replace(f'"{SHIPPED_KERNELS[1]}"', f'"{second}"'))
    return run


def _rows(*args: str | Path) -> list[dict[str, str]]:
    text = faultbench("compare", *args, "--format", "csv").stdout
    return list(csv.DictReader(io.StringIO(text)))


def _numbers(rows: list[dict[str, str]]) -> list[tuple[str, ...]]:
    return [(r["label"], r["base_samples"], r["base_median"], r["new_samples"],
             r["new_median"]) for r in rows]


def test_scenarios_of_other_session_shapes_are_rows_apart(tmp_path: Path) -> None:
    run = make_run(tmp_path, "one-in", SESSIONS.format(
        fixed="launches = 2", axis="touch_one_in = [1, 16]"))
    report = faultbench("report", run, "--no-figures").stdout
    # each scenario its 3 rounds, in the timing table and the app-launch one
    for label in ("one-in=1", "one-in=16"):
        assert table_row(report, label)[-1] == "3", report
    launches = report[report.index("App launches, per launch (touch_one_in)"):]
    assert table_row(launches, "one-in=16")[-1] == "3", launches
    assert "All rows: file" in report and "apps=" not in report.split("All rows")[1][:80]
    by = faultbench("compare", f"{run}:1", f"{run}:16", "--by", "touch_one_in").stdout
    assert "base touch_one_in=1, new touch_one_in=16" in " ".join(by.split())
    # two runs of other numbers of launches are not one scenario, unless --by says so
    more = make_run(tmp_path, "launches", SESSIONS.format(
        fixed="launches = 4", axis="touch_one_in = [1, 16]"))
    assert _refused("compare", f"{run}", more).endswith(
        "no scenario in common: they differ in launches (2 vs 4)")
    rows = _rows(f"{run}:2", f"{more}:4", "--by", "launches")
    assert [(r["label"], r["base_samples"], r["new_samples"]) for r in rows] == [
        ("one-in=1", "3", "3"), ("one-in=16", "3", "3")]
    # and the app-launch section pairs the sessions of one shape
    text = faultbench("compare", f"{run}:2", f"{more}:4", "--by", "launches").stdout
    assert table_row(text, "faults one-in=1") and table_row(text, "faults one-in=16")


def test_an_infinite_by_value_is_refused_in_one_line(tmp_path: Path) -> None:
    run = tmp_path / "tiny"
    faultbench("run", workload(tmp_path, patterns='["seq"]', extra='uffd = ["none", "wp"]\n'),
               "--out", run, "-q")
    assert _refused("compare", f"{run}:none", f"{run}:inf", "--by", "uffd") == (
        f"faultbench compare: NEW {run}: no samples with uffd=inf (values: none, wp)")
    for value in ("inf", "-inf"):
        assert _refused("compare", f"{run}:{value}", f"{run}:1M", "--by", "size") == (
            f"faultbench compare: BASE {run}: no samples with size={value} (values: 1M)")
    # a kernel labelled inf is a name like any other
    kernels = _relabelled(tmp_path, "inf")
    text = " ".join(faultbench("compare", kernels, "--by", "kernel").stdout.split())
    assert text.startswith("insn/page touched: base kernel=6.1, new kernel=inf (")


def test_kernel_labels_that_read_as_one_number_are_two_kernels(tmp_path: Path) -> None:
    kernels = _relabelled(tmp_path, "6.10")
    # the two kernels compare as the shipped run's 6.1 and 6.12 do
    expected = _numbers(_rows(SHIPPED, "--by", "kernel"))
    assert _numbers(_rows(kernels, "--by", "kernel")) == expected
    assert _numbers(_rows(f"{kernels}:6.1", f"{kernels}:6.10", "--by", "kernel")) == expected
    # 6.10 selects that kernel's samples alone: against the shipped 6.12, the same samples
    rows = _rows(f"{kernels}:6.10", f"{SHIPPED}:{SHIPPED_KERNELS[1]}", "--by", "kernel")
    assert rows and all(r["base_median"] == r["new_median"] and r["change_pct"] == "0.0"
                        and r["base_samples"] == r["new_samples"] for r in rows), rows
    refused = _refused("compare", f"{kernels}:6.100", f"{kernels}:6.1", "--by", "kernel")
    assert refused.endswith("no samples with kernel=6.100 (values: 6.1, 6.10)")
