"""Round seven, reading runs: compare, merge, report and faultbench.load read anyone's run,
and read a meta.json, samples.jsonl or profiles.jsonl whole, however large (R7-3: a sparse
8 GiB meta.json was a MemoryError, or the machine out of memory); a file over faultbench's cap
is now refused unread, in one line. `report RUN --out DIR` of another user's run was refused
with the writer's checks and advice to chown their data, although it writes only into DIR
(R7-10): it reads the run as compare does. A --strict that leaves out every valid sample was
reported as a run without valid samples ("all warm-ups, errors or unsupported"), and `report
--strict --json` ignored --strict (R7-11): all three say what --strict did, and exit 2.
Real runs, real files (sparse ones: nothing is written to disk), the real command."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from analysis_runs import make_run
from console import one_line
from test_hardening_round4_input import SMALL, fb, tampered
from test_hardening_round5_dirs import NOBODY
from test_hardening_round5_merge import _copy

import faultbench
from faultbench.errors import FaultbenchError

# the caps (bytes) faultbench reads of each file; one more byte is refused
CAPS = {"meta.json": 64 << 20, "samples.jsonl": 1 << 30, "profiles.jsonl": 1 << 30}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real run: 4 scenarios (pattern x populate) of 3 rounds, no warm-up."""
    return make_run(tmp_path_factory.mktemp("round7"), "run", SMALL)


def _oversized(run: Path, to: Path, name: str) -> tuple[Path, str]:
    """A copy of `run` (another machine's, for merge) whose `name` is one byte over its cap
    (sparse), and the refusal that names it."""
    _copy(run, to)
    with open(to / name, "ab") as fh:
        fh.truncate(CAPS[name] + 1)
    return to, (f"{to / name} is {CAPS[name] + 1:,} bytes, over the {CAPS[name]:,} faultbench "
                "reads of such a file (the ones it writes are far smaller): not read")


@pytest.mark.parametrize("name", ["meta.json", "samples.jsonl"])
@pytest.mark.parametrize("command", [("report", "--no-figures"), ("report", "--json"),
                                     ("compare",), ("merge",)],
                         ids=["report", "report-json", "compare", "merge"])
def test_an_oversized_run_file_is_refused_unread(run: Path, tmp_path: Path, name: str,
                                                 command: tuple[str, ...]) -> None:
    big, refusal = _oversized(run, tmp_path / "big", name)
    args: list[str | Path] = [*command, big]
    if command[0] == "compare":
        args += [run]
    if command[0] == "merge":
        args += [run, "--out", tmp_path / "merged"]
    done = fb(*args)
    assert done.returncode == 2, done.stderr
    assert one_line(done.stderr) == f"faultbench {command[0]}: {refusal}"
    assert done.stdout == ""
    assert not (big / "report.txt").exists() and not (tmp_path / "merged").exists()


def test_merge_refuses_an_oversized_profiles_file(run: Path, tmp_path: Path) -> None:
    big, refusal = _oversized(run, tmp_path / "big", "profiles.jsonl")
    done = fb("merge", run, big, "--out", tmp_path / "merged")
    assert done.returncode == 2, done.stderr
    assert one_line(done.stderr) == f"faultbench merge: {refusal}"
    assert not (tmp_path / "merged").exists()


@pytest.mark.parametrize("name", ["meta.json", "samples.jsonl"])
def test_load_refuses_an_oversized_run_file(run: Path, tmp_path: Path, name: str) -> None:
    big, refusal = _oversized(run, tmp_path / "big", name)
    with pytest.raises(FaultbenchError) as raised:
        faultbench.load(big)
    assert str(raised.value) == refusal


def test_a_file_at_its_cap_is_read(run: Path, tmp_path: Path) -> None:
    """The cap is a size faultbench reads: a meta.json padded to it (JSON allows trailing
    white space) loads."""
    padded = _copy(run, tmp_path / "padded")
    with open(padded / "meta.json", "ab") as fh:
        fh.write(b" " * (CAPS["meta.json"] - fh.tell()))
    assert len(faultbench.load(padded)) == len(faultbench.load(run))


@pytest.mark.skipif(os.geteuid() != 0, reason="another user's run needs root to make")
def test_report_out_reads_another_users_run_and_writes_only_into_out(
        run: Path, tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    shutil.copytree(run, theirs)
    for path in [theirs, *theirs.iterdir()]:
        os.chown(path, NOBODY, NOBODY)
    before = {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in theirs.iterdir()}
    out = tmp_path / "out"
    done = fb("report", "--no-figures", theirs, "--out", out)
    assert done.returncode == 0, done.stderr
    wrote = f"\nwrote {out}/report.txt\n"
    assert done.stdout.endswith(wrote)
    assert (out / "report.txt").read_text() == done.stdout.removesuffix(wrote)
    assert {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in theirs.iterdir()} \
        == before
    assert theirs.stat().st_uid == NOBODY
    # into their directory: refused, with what to do that needs nothing of theirs changed
    done = fb("report", "--no-figures", theirs)
    assert done.returncode == 2
    assert one_line(done.stderr) == (
        f"faultbench report: {theirs} is owned by uid 65534 (nobody): root does not write into "
        "a directory another user can change (they could redirect the writes); give --out "
        "DIR to write the report elsewhere")
    assert not (theirs / "report.txt").exists()


@pytest.fixture(scope="module")
def all_hit(run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A copy of `run` whose every sample was preempted in its timed loop, and how many
    valid samples it has."""
    def preempted(record: dict[str, object]) -> None:
        record["nivcsw"] = 5

    copy = tampered(run, tmp_path_factory.mktemp("strict") / "hit", preempted)
    records = [json.loads(line) for line in (copy / "samples.jsonl").read_text().splitlines()]
    return copy, sum(r["status"] == "ok" and not r.get("warmup") for r in records)


@pytest.mark.parametrize("command", [
    ("report", "--strict", "--no-figures", "{run}"),
    ("report", "--strict", "--json", "{run}"),
    ("compare", "--strict", "{run}:none", "{run}:madvise", "--by", "populate"),
], ids=["report", "report-json", "compare"])
def test_strict_that_leaves_out_every_valid_sample_says_so(
        all_hit: tuple[Path, int], command: tuple[str, ...]) -> None:
    copy, valid = all_hit
    assert valid
    done = fb(*(part.format(run=copy) for part in command))
    assert done.returncode == 2, done.stdout
    assert one_line(done.stderr) == (
        f"faultbench {command[0]}: {copy}: --strict left out all {valid} valid samples (their "
        "timed loops were preempted or saw steal time); run without --strict, or measure "
        "again on a quieter machine")
    assert done.stdout == ""
    assert not (copy / "report.txt").exists()


def test_strict_that_empties_one_side_of_a_compare_says_so(
        run: Path, tmp_path: Path) -> None:
    def madvise_preempted(record: dict[str, object]) -> None:
        spec = record.get("spec")
        if isinstance(spec, dict) and spec.get("populate") == "madvise":
            record["nivcsw"] = 5

    copy = tampered(run, tmp_path / "half", madvise_preempted)
    done = fb("compare", "--strict", f"{copy}:none", f"{copy}:madvise", "--by", "populate")
    assert done.returncode == 2, done.stdout
    assert one_line(done.stderr) == (
        "faultbench compare: NEW has no valid values of ns_per_page once --strict left out "
        "the samples preempted or stolen from")
