"""Round eleven, labels and row keys: two directories of one last component named apart
(R11-2), the workload's seed a row key `--by seed` takes and a refusal names (R11-4), one
normalization of `dir` wherever it is given (R11-5), and machine names sorted as text
(R11-7). Real native runs through the CLI, of tiny workloads."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from analysis_runs import faultbench, measured_again, table_row
from inprocess import in_process
from test_hardening_round2 import cli, refused

from faultbench.analysis.labels import dir_names

DIRS = """\
description = "dirs"
repetitions = 2
warmups = 0
seed = 1
[defaults]
backing = "file"
size = "256K"
[[matrix]]
dir = ["d1/x", "d2/x"]
pattern = "seq"
"""
SEEDED = """\
description = "seeded"
repetitions = 2
warmups = 0
seed = {seed}
[defaults]
backing = "memfd"
size = "256K"
[[matrix]]
pattern = ["seq", "random"]
"""
SESSIONS = """\
description = "sessions"
repetitions = 2
warmups = 0
seed = 1
[defaults]
backing = "file"
size = "1M"
app_files = 1
deadline_s = 60
[[matrix]]
apps = [1, 2]
"""


def _dirs_run(tmp_path: Path, name: str = "dirs") -> tuple[Path, str]:
    """A run of DIRS made in tmp_path (relative dirs d1/x, d2/x): (run, its stdout)."""
    for part in ("d1/x", "d2/x"):
        (tmp_path / part).mkdir(parents=True, exist_ok=True)
    (tmp_path / "dirs.toml").write_text(DIRS)
    done = cli("run", "dirs.toml", "--out", name, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return tmp_path / name, done.stdout


def test_directories_of_one_last_component_are_labelled_apart(tmp_path: Path) -> None:
    run, summary = _dirs_run(tmp_path)
    report = faultbench("report", run, "--no-figures").stdout
    other = measured_again(run, run.with_name("again"))
    compared = faultbench("compare", run, other).stdout
    for text in (summary, report, compared):
        assert table_row(text, "dir=d1/x") and table_row(text, "dir=d2/x"), text
        assert "dir=x " not in text, text
    # the last component when it alone tells them apart (shipped reports keep their labels),
    # the whole path when only that does
    assert dir_names(["/var/tmp/xfs", "/var/tmp"]) == {"/var/tmp/xfs": "xfs", "/var/tmp": "tmp"}
    assert dir_names(["/a/x", "/x", "/b/y"]) == {"/a/x": "a/x", "/x": "/x", "/b/y": "y"}


def test_runs_of_other_seeds_compare_by_seed_and_a_refusal_names_it(tmp_path: Path) -> None:
    runs = []
    for seed in (1, 2):
        (tmp_path / f"s{seed}.toml").write_text(SEEDED.format(seed=seed))
        runs.append(tmp_path / f"s{seed}")
        faultbench("run", tmp_path / f"s{seed}.toml", "--out", runs[-1], "-q")
    refused(in_process("compare", *runs), "compare",
            "no scenario in common: they differ in seed (1 vs 2)")
    done = faultbench("compare", f"{runs[0]}:1", f"{runs[1]}:2", "--by", "seed")
    words = " ".join(done.stdout.split())  # two runs: each named beside its value
    assert "s1 seed=1, new" in words and "s2 seed=2 (Linux" in words
    assert table_row(done.stdout, "seq") and table_row(done.stdout, "random"), done.stdout


def test_sessions_of_other_numbers_of_apps_at_the_default_launches_compare(
        tmp_path: Path) -> None:
    """The default launches, twice each app, is 2 for one app and 4 for two: --by apps
    pairs them; two runs that share no scenario say that launches kept them apart."""
    (tmp_path / "apps.toml").write_text(SESSIONS)
    run = tmp_path / "apps"
    faultbench("run", tmp_path / "apps.toml", "--out", run, "-q")
    done = faultbench("compare", f"{run}:1", f"{run}:2", "--by", "apps", "--format", "csv")
    assert len(done.stdout.strip().splitlines()) == 2, done.stdout  # a header, one row
    (tmp_path / "more.toml").write_text(SESSIONS.replace("apps = [1, 2]", "apps = 1\nlaunches = 3"))
    more = tmp_path / "more"
    faultbench("run", tmp_path / "more.toml", "--out", more, "-q")
    refused(in_process("compare", run, more), "compare", "they differ in launches (2, 4 vs 3)")


def test_a_dir_matches_however_it_is_written(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    run, _ = _dirs_run(tmp_path)
    done = cli("run", "dirs.toml", "--only", f"dir={tmp_path}/d1/x/", "--out", "one", "-q",
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert {json.loads(line)["spec"]["dir"] for line in (tmp_path / "one" / "samples.jsonl")
            .read_text().splitlines()} == {str(tmp_path / "d1" / "x")}
    monkeypatch.chdir(tmp_path)  # compare runs in this process (tests/inprocess.py)
    for new in ("d2/x", "d2/x/", f"{tmp_path}/d2//x"):
        done = in_process("compare", f"{run}:d1/x", f"{run}:{new}", "--by", "dir")
        assert done.returncode == 0, done.stderr
        assert table_row(done.stdout, "all")[3] == "2r/2", done.stdout  # one row, both dirs
    assert refused(cli("measure", "--backing", "file", "--dir", "/etc/passwd", "--size", "64K"),
                   "measure").endswith("--dir /etc/passwd: not a directory")


def test_machines_named_like_equal_numbers_are_listed_apart(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(SEEDED.format(seed=1))
    faultbench("run", tmp_path / "s.toml", "--out", tmp_path / "here", "-q")
    parts = []
    for name in ("6.1", "6.10"):
        part = measured_again(parts[-1] if parts else tmp_path / "here", tmp_path / name)
        meta = json.loads((part / "meta.json").read_text())
        meta["provenance"]["host"]["name"] = name
        (part / "meta.json").write_text(json.dumps(meta))
        parts.append(part)
    faultbench("merge", *parts, "--out", tmp_path / "fleet")
    report = faultbench("report", tmp_path / "fleet", "--no-figures").stdout
    table = report[report.index("\nscenario"):]
    table = table[:table.index("\n\n")]
    named = re.findall(r"machine=(\S+)", table)
    assert [m for i, m in enumerate(named) if not i or named[i - 1] != m] == ["6.1", "6.10"], \
        table
