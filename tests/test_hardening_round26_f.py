"""Round 26 (R26-1, R26-3, R26-4): a booted run's edited boot plan is refused on load and on
resume; the rows of a run of several kernels keep their kernel when one kernel has no
samples; a resume's --jobs is what that attempt runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from analysis_runs import faultbench

from faultbench.analysis.summary import summary
from faultbench.measurement.booted.jobs import attempt_jobs, jobs_record

RESULTS = Path(__file__).parents[1] / "results"
AA = RESULTS / "icount-aa"  # kernels a, b; 3 boots each of rounds 0-2, 2-4, 4-6: a b b a a b


def _copy(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    run = tmp_path / "run"
    shutil.copytree(AA, run)
    meta = json.loads((run / "meta.json").read_text())
    change(meta)
    (run / "meta.json").write_text(json.dumps(meta, indent=1))
    return run


def _overlapping(meta: dict[str, Any]) -> None:
    """a's last boot (plan position 4) edited to measure rounds 2-6, over its boot 1's
    rounds 2-4, and left to be resumed."""
    meta["boots"][4].update(rounds=[2, 6], status="pending", guest=None, finished_utc=None)
    meta["finished_utc"] = None


def _one_boot_each(meta: dict[str, Any]) -> None:
    meta["boots_per_kernel"] = 1


PLAN_EDITS = {
    "overlapping rounds": (_overlapping, "its boot 4 at plan position 4 is kernel a's boot 2 "
                           "(rounds 2-6), where the plan has kernel a's boot 2 (rounds 4-6): "
                           "not the run's boot plan"),
    "boots per kernel": (_one_boot_each, "its 2 kernel(s) at boots_per_kernel 1 make a plan "
                         "of 2 boots, and it has 6: not the run's boot plan"),
}


@pytest.mark.parametrize("edit", PLAN_EDITS)
def test_a_booted_runs_edited_plan_is_refused_by_report_and_compare(tmp_path: Path,
                                                                   edit: str) -> None:
    change, why = PLAN_EDITS[edit]
    run = _copy(tmp_path, change)
    for args in (("report", run, "--no-figures"), ("report", run, "--json"),
                 ("compare", AA, run)):
        done = faultbench(*args, check=False)
        assert (done.returncode, done.stdout) == (2, "")
        assert done.stderr == f"faultbench {args[0]}: {run / 'meta.json'}: {why}\n"


@pytest.mark.parametrize("edit", PLAN_EDITS)
def test_a_booted_runs_edited_plan_is_refused_by_resume_before_any_boot(
        tmp_path: Path, edit: str) -> None:
    """The kernels' image is made a path that does not exist: a resume that got as far as
    the guest's requirements would be refused for that, and never boots a guest."""
    change, why = PLAN_EDITS[edit]

    def unbootable(meta: dict[str, Any]) -> None:
        change(meta)
        for kernel in meta["kernels"]:
            kernel["image"] = str(tmp_path / "no-such-image")

    run = _copy(tmp_path, unbootable)
    done = subprocess.run([sys.executable, "-m", "faultbench", "run", "--resume", str(run),
                           "--jobs", "1"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path.cwd())})
    assert (done.returncode, done.stderr) == (
        2, f"faultbench run: {run / 'meta.json'}: {why}\n")


def _b_failed(meta: dict[str, Any]) -> None:
    """Every boot of kernel b failed, as a boot that never started its command records it."""
    for boot in meta["boots"]:
        if boot["kernel"] == "b":
            boot.update(status="failed", guest=None, reason="the guest's command had not "
                        "started 90 s after QEMU started")
    meta["finished_utc"] = None


def _without_b(tmp_path: Path) -> Path:
    run = _copy(tmp_path, _b_failed)
    lines = (run / "samples.jsonl").read_text().splitlines(keepends=True)
    (run / "samples.jsonl").write_text(
        "".join(line for line in lines if json.loads(line)["kernel"] != "b"))
    for index in (1, 2, 5):  # b's boots: a failed boot leaves no report
        (run / "boots" / f"{index}.json").unlink()
    return run


def test_rows_keep_their_kernel_when_the_other_kernel_has_no_samples(tmp_path: Path) -> None:
    run = _without_b(tmp_path)
    text = faultbench("report", run, "--no-figures").stdout
    assert "\na: " in text and "\nrandom " not in text
    assert "NOTE: kernel b has no valid sample and no row; faultbench run --resume DIR " \
           "redoes the boots that did not finish." in " ".join(text.split())
    scenarios = json.loads(faultbench("report", run, "--json").stdout)["scenarios"]
    assert scenarios and all(s["spec"]["kernel"] == "a" and s["label"].startswith("a: ")
                             for s in scenarios)
    short = summary(run)
    assert "\na: " in short and "kernel b has no valid sample" in " ".join(short.split())


def _boots_kept(tmp_path: Path, name: str, kept: set[int]) -> Path:
    """A copy of the run whose other boots failed (their samples gone)."""
    def failed(meta: dict[str, Any]) -> None:
        for boot in meta["boots"]:
            if boot["index"] not in kept:
                boot.update(status="failed", guest=None, reason="QEMU was killed")
        meta["finished_utc"] = None

    run = _copy(tmp_path / name, failed)
    lines = (run / "samples.jsonl").read_text().splitlines(keepends=True)
    (run / "samples.jsonl").write_text(
        "".join(line for line in lines if json.loads(line)["boot"] in kept))
    for index in set(range(6)) - kept:
        (run / "boots" / f"{index}.json").unlink()
    return run


def test_compared_rows_keep_their_kernel_when_one_side_has_one_kernels_samples(
        tmp_path: Path) -> None:
    """BASE of a's boot 0 and b's boots 0 and 1, NEW of a's boot 2 alone (measured apart):
    the rows both sides have are a's."""
    base = _boots_kept(tmp_path, "base", {0, 1, 2})
    new = _boots_kept(tmp_path, "new", {4})
    rows = faultbench("compare", base, new).stdout.split("\n-")[1].splitlines()
    assert any(r.startswith("a: random ") for r in rows)
    assert not any(r.startswith(("random", "seq", "sparse")) for r in rows)


def test_a_resumes_jobs_is_what_that_attempt_runs() -> None:
    """R26-4: started with --jobs 2, resumed with --jobs 1: one guest at a time, and
    meta.json keeps the most guests any attempt ran at once."""
    earlier = {"count": 2, "source": "--jobs"}
    assert attempt_jobs(earlier, jobs_record(1, "icount", "512M", 4)[0]) == (
        1, {"count": 2, "source": "--jobs; resumed with 1 (--jobs)"})
    assert attempt_jobs({"count": 1, "source": "--jobs"},
                        jobs_record(2, "icount", "512M", 4)[0])[0] == 2
    assert attempt_jobs(None, {"count": 2, "source": "--jobs"}) == (
        2, {"count": 2, "source": "--jobs"})


def test_compare_by_kernel_profiles_still_match_rows_across_the_kernels() -> None:
    """Rows keep their kernel in a run of several (R26-3), but not one side of it compared
    `--by kernel`: there the kernel is what differs, and the profiles' rows matched none."""
    run = RESULTS / "tcg-icount-profile-kernels"
    text = faultbench("compare", run, "--by", "kernel", "--profile").stdout
    assert "No row has kernel profiles on both sides" not in text
    assert "\nuffd=none: " in text
