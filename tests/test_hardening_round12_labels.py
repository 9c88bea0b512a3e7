"""Round twelve, labels and row keys: a field or knob that some scenarios set and others
leave unset is a level of its own, labelled `=unset` and selected by `--by K RUN:unset`,
never pooled with the set value (R12-18); integers are matched and labelled exactly, past
a float's 2^53 (R12-6). Real native runs through the CLI, of tiny workloads; the values
past 2^53 a knob cannot be set to here are written into a copy of a run's samples, as
anyone can write a run directory `report` and `compare` read."""

from __future__ import annotations

import json
from pathlib import Path

from analysis_runs import faultbench, measured_again, table_row
from inprocess import in_process
from test_hardening_round2 import cli, refused
from test_hardening_round11_labels import SEEDED

from faultbench.analysis.compare import match_text
from faultbench.analysis.labels import dir_names

HUGE = """\
description = "huge"
repetitions = 2
warmups = 0
[defaults]
backing = "tmpfs"
size = "4M"
[[matrix]]
tmpfs_huge = "always"
[[matrix]]
pattern = "seq"
"""
KNOB = """\
description = "knob"
repetitions = 2
warmups = 0
[defaults]
backing = "memfd"
size = "256K"
[[matrix]]
knobs = {{ "vm.swappiness" = [{values}] }}
[[matrix]]
uffd = "none"
"""
DIRS = """\
description = "dirs"
repetitions = 2
warmups = 0
[defaults]
backing = "file"
size = "256K"
[[matrix]]
dir = "{dir}"
[[matrix]]
pattern = "seq"
"""


def _run(tmp_path: Path, name: str, workload: str) -> Path:
    (tmp_path / f"{name}.toml").write_text(workload)
    done = cli("run", tmp_path / f"{name}.toml", "--out", tmp_path / name, "-q",
               env={"FAULTBENCH_JOURNAL": str(tmp_path / "journal" / "journal.json")})
    assert done.returncode == 0, done.stderr
    return tmp_path / name


def _scenarios(run: Path) -> list[tuple[str, int]]:
    report = json.loads(faultbench("report", "--json", run).stdout)
    return [(s["label"], s["n"]) for s in report["scenarios"]]


def test_a_tmpfs_huge_some_scenarios_leave_unset_is_a_row_of_its_own(tmp_path: Path) -> None:
    run = _run(tmp_path, "huge", HUGE)
    assert _scenarios(run) == [("tmpfs_huge=always", 2), ("tmpfs_huge=unset", 2)]
    report = faultbench("report", run, "--no-figures").stdout
    assert table_row(report, "tmpfs_huge=always") and table_row(report, "tmpfs_huge=unset")
    done = faultbench("compare", f"{run}:always", f"{run}:unset", "--by", "tmpfs_huge")
    assert "new tmpfs_huge=unset" in done.stdout
    assert table_row(done.stdout, "all")[3] == "2r/2", done.stdout  # one row, each side's
    refused(in_process("compare", f"{run}:always", f"{run}:never", "--by", "tmpfs_huge"), "compare",
            "no samples with tmpfs_huge=never (values: always, unset)")


def test_a_knob_some_scenarios_leave_unset_is_a_row_of_its_own(tmp_path: Path) -> None:
    run = _run(tmp_path, "knob", KNOB.format(values="10"))
    assert _scenarios(run) == [("vm.swappiness=10", 2), ("vm.swappiness=unset", 2)]
    report = faultbench("report", run, "--no-figures").stdout
    assert table_row(report, "vm.swappiness=10") and table_row(report, "vm.swappiness=unset")
    assert "Sweep of" not in report, report  # one value set is no sweep
    done = faultbench("compare", f"{run}:10", f"{run}:unset", "--by", "vm.swappiness")
    assert table_row(done.stdout, "all")[3] == "2r/2", done.stdout
    # two runs: the unset rows pair with the unset rows, the set with the set
    again = measured_again(run, run.with_name("again"))
    compared = faultbench("compare", run, again).stdout
    assert table_row(compared, "vm.swappiness=10")[3] == "2r/2", compared
    assert table_row(compared, "vm.swappiness=unset")[3] == "2r/2", compared


def test_a_dir_some_scenarios_leave_unset_is_a_row_of_its_own(tmp_path: Path) -> None:
    (tmp_path / "scratch").mkdir()
    run = _run(tmp_path, "dirs", DIRS.format(dir=tmp_path / "scratch"))
    assert _scenarios(run) == [("dir=scratch", 2), ("dir=unset", 2)]
    done = faultbench("compare", f"{run}:{tmp_path}/scratch", f"{run}:unset", "--by", "dir")
    assert table_row(done.stdout, "all")[3] == "2r/2", done.stdout
    # a directory called `unset` keeps its parent in labels: it is not the unset level
    assert dir_names(["/srv/unset", "/srv/x"]) == {"/srv/unset": "srv/unset", "/srv/x": "x"}


def test_knob_values_past_two_to_the_53_stay_apart(tmp_path: Path) -> None:
    """sysctls go to 2^64-1: two such values beside an unset level are three rows, each
    labelled with its exact value (not through a float, where they would be one)."""
    run = _run(tmp_path, "knob", KNOB.format(values="10, 20"))
    samples = run / "samples.jsonl"
    records = [json.loads(line) for line in samples.read_text().splitlines()]
    for record in records:
        value = record["knobs"].get("vm.swappiness")
        if value is not None:
            record["knobs"]["vm.swappiness"] = 2**64 - 31 + value  # ...595 and ...605
    samples.write_text("".join(json.dumps(r) + "\n" for r in records))
    meta = json.loads((run / "meta.json").read_text())
    for scenario in meta["scenarios"]:  # as the run's scenarios set them
        if "vm.swappiness" in scenario["knobs"]:
            scenario["knobs"]["vm.swappiness"] = str(2**64 - 31 + int(
                scenario["knobs"]["vm.swappiness"]))
    (run / "meta.json").write_text(json.dumps(meta))
    assert sorted(_scenarios(run)) == [("vm.swappiness=18446744073709551595", 2),
                                       ("vm.swappiness=18446744073709551605", 2),
                                       ("vm.swappiness=unset", 2)]
    done = faultbench("compare", f"{run}:18446744073709551595", f"{run}:18446744073709551605",
                      "--by", "vm.swappiness", "--format", "csv")
    assert len(done.stdout.strip().splitlines()) == 2, done.stdout  # a header, one row


def test_seeds_past_two_to_the_53_are_two_seeds(tmp_path: Path) -> None:
    runs = [_run(tmp_path, f"s{seed}", SEEDED.format(seed=seed))
            for seed in (2**53, 2**53 + 1)]
    refused(in_process("compare", *runs), "compare",
            "no scenario in common: they differ in seed (9007199254740992 vs "
            "9007199254740993)")
    done = faultbench("compare", f"{runs[0]}:{2**53}", f"{runs[1]}:{2**53 + 1}", "--by", "seed")
    assert table_row(done.stdout, "seq") and table_row(done.stdout, "random"), done.stdout
    # as text or number, written with a fraction or not, one integer is one value
    assert match_text("seed", "9007199254740993") == match_text("seed", 2**53 + 1) \
        == match_text("seed", "9007199254740993.0") == "9007199254740993"
    assert match_text("vm.swappiness", 60.0) == match_text("vm.swappiness", "60") == "60"
    assert match_text("vm.swappiness", "1e999999999") == "inf"  # no billion-digit integer
