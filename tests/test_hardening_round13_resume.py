"""Round thirteen, `run --resume`: a native run was resumed on another kernel or host, its new
samples pooled with the old ones and credited to the first kernel on the first host (R13-6);
a run was resumed by a faultbench of another harness epoch (even 99) or version, two
harnesses' samples pooled under the old epoch (R13-7); as root, a resume appended to a
samples.jsonl or worker.log another user owned in root's run directory, who could then rewrite
root's numbers in place (R13-3). Each is refused in one line before anything is written. Real
native runs, the real command."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from analysis_runs import faultbench, make_run
from console import one_line
from test_hardening_round7 import _tamper
from test_hardening_round8 import one_scenario

from faultbench._version import __version__
from faultbench.measurement.rundir.meta_checks import HARNESS_EPOCH
from faultbench.measurement.rundir.safefile import ResultsError, SafeDir

SHIPPED_BOOTED = Path(__file__).parents[1] / "results" / "tcg-icount-profile-kernels"
STRANGER = 4242  # a uid no user has: chown needs no account for it
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="ownership is checked as root")


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("round13"), "run", one_scenario(4))


def _interrupted(source: Path, to: Path, **meta_changes: Any) -> Path:
    """A copy of the finished run `source` as a kill after its first two samples leaves it,
    `meta_changes` made to its meta.json (_tamper's: `provenance__host__name=...`)."""
    shutil.copytree(source, to)
    lines = (to / "samples.jsonl").read_text().splitlines(keepends=True)
    (to / "samples.jsonl").write_text("".join(lines[:2]))
    (to / "pyperf.json").unlink()
    _tamper(to, finished_utc=None, **meta_changes)
    return to


def _contents(run: Path) -> dict[Path, tuple[bytes | None, int, int]]:
    """Everything in `run`: its bytes (a file's), mode and owner."""
    return {p: (p.read_bytes() if p.is_file() else None, p.stat().st_mode, p.stat().st_uid)
            for p in run.rglob("*")}


def _refused(run: Path) -> str:
    """The one line `run --resume RUN` is refused with; it changed nothing in RUN."""
    before = _contents(run)
    done = faultbench("run", "--resume", run, "-q", check=False)
    assert done.returncode == 2, done.stderr
    assert _contents(run) == before
    return one_line(done.stderr)


def test_a_resume_on_this_kernel_and_host_goes_on(finished: Path, tmp_path: Path) -> None:
    """The control: the copy is resumable as it is; and a native run of harness epoch 1,
    whose samples count what epoch 2's do on this plane (EPOCH_PLANES), is resumed too."""
    for name, changes in (("same", {}), ("epoch1", {"harness_epoch": 1})):
        run = _interrupted(finished, tmp_path / name, **changes)
        done = faultbench("run", "--resume", run, "-q", check=False)
        assert done.returncode == 0, done.stderr
        assert len((run / "samples.jsonl").read_text().splitlines()) == 4


HERE = os.uname()
OTHER_KERNEL = {
    "release": ({"provenance__kernel__release": "6.1.0-57-amd64"},
                ("6.1.0-57-amd64", HERE.version, HERE.nodename)),
    # the same release rebuilt (a patch applied, `make` again): only uname -v tells them apart
    "version": ({"provenance__kernel__version": "#2 SMP PREEMPT_DYNAMIC Debian 6.1.158-1"},
                (HERE.release, "#2 SMP PREEMPT_DYNAMIC Debian 6.1.158-1", HERE.nodename)),
    "host": ({"provenance__host__name": "othermachine"},
             (HERE.release, HERE.version, "othermachine")),
}


@pytest.mark.parametrize("what", list(OTHER_KERNEL))
def test_a_native_run_is_not_resumed_on_another_kernel_or_host(
        finished: Path, tmp_path: Path, what: str) -> None:
    """R13-6: interrupted on one kernel (or machine), resumed after a reboot into another
    (or on another machine): the rest was measured here and credited to the first."""
    changes, (release, version, host) = OTHER_KERNEL[what]
    run = _interrupted(finished, tmp_path / "run", **changes)
    assert _refused(run) == (
        f"faultbench run: {run} was measured on Linux {release} ({version}) on host {host} "
        f"and this is Linux {HERE.release} ({HERE.version}) on host {HERE.nodename}: resuming "
        "here would pool the samples of both under the first one's name; resume it on that "
        f"kernel and host, or start a new run (faultbench report {run} shows its samples)")


@pytest.mark.parametrize("epoch", [0, 99])
def test_a_run_of_another_harness_epoch_is_not_resumed(finished: Path, tmp_path: Path,
                                                       epoch: int) -> None:
    """R13-7: a run started at epoch 0 (before a `git pull`) or 99 (by a newer faultbench)
    was resumed at this epoch, and kept saying its own."""
    run = _interrupted(finished, tmp_path / "run", harness_epoch=epoch)
    revision = json.loads((run / "meta.json").read_text())["provenance"]["faultbench"][
        "git_revision"]
    that = f"faultbench {__version__}" + (f" (git {revision})" if revision else "")
    assert _refused(run) == (
        f"faultbench run: {run} was measured at harness epoch {epoch} and this faultbench "
        f"measures at epoch {HARNESS_EPOCH}, which counts other things in a sample "
        f"(docs/results.md, harness epochs): a resume would pool the two under epoch {epoch}; "
        f"finish it with {that}, the one that started it, or start a new run (faultbench "
        f"report {run} shows its samples)")


def test_a_run_another_version_started_is_not_resumed(finished: Path, tmp_path: Path) -> None:
    """R13-7: another version at the same epoch: nothing says what else it changed."""
    run = _interrupted(finished, tmp_path / "run", faultbench_version="0.1.0",
                       provenance__faultbench__git_revision="0123abc")
    assert _refused(run) == (
        f"faultbench run: {run} was started by faultbench 0.1.0 and this is {__version__}: a "
        "resume would add this version's samples to a run meta.json credits to that one; "
        "finish it with faultbench 0.1.0 (git 0123abc), the one that started it, or start a "
        f"new run (faultbench report {run} shows its samples)")


def test_a_booted_run_of_another_epoch_is_refused_before_a_boot(tmp_path: Path) -> None:
    """R13-7, booted: refused before any boot (a guest runs this faultbench's harness); its
    kernels are checked by sha256 (test_hardening_round9), not against this machine's."""
    run = tmp_path / "booted"
    shutil.copytree(SHIPPED_BOOTED, run)
    _tamper(run, finished_utc=None, harness_epoch=0)
    meta = json.loads((run / "meta.json").read_text())
    meta["boots"][-1]["status"] = "failed"  # the last boot to do again
    (run / "meta.json").write_text(json.dumps(meta))
    assert f"{run} was measured at harness epoch 0 and this faultbench measures at epoch " \
        f"{HARNESS_EPOCH}" in _refused(run)


@needs_root
@pytest.mark.parametrize("name", ["samples.jsonl", "worker.log", "profiles.jsonl",
                                  "discarded.jsonl"])
def test_root_adds_to_no_run_file_another_user_owns(finished: Path, tmp_path: Path,
                                                    name: str) -> None:
    """R13-3: root's run directory holding a file another user owns (`cp -a` of their
    partial run, `chown root:` without -R): root appended its samples, which that user
    could rewrite in place afterwards."""
    run = _interrupted(finished, tmp_path / "run")
    (run / name).touch()
    os.chown(run / name, STRANGER, STRANGER)
    assert _refused(run) == (
        f"faultbench run: {run / name} is owned by uid {STRANGER}: root does not add to a file "
        "another user can change (they could rewrite its lines afterwards); make the run "
        f"root's (chown -R root: {run}; chmod -R go-w {run})")


@needs_root
def test_root_adds_to_no_run_file_others_may_write(finished: Path, tmp_path: Path) -> None:
    """R13-3: root's own samples.jsonl, but writable by every user."""
    run = _interrupted(finished, tmp_path / "run")
    (run / "samples.jsonl").chmod(0o666)
    assert _refused(run).startswith(f"faultbench run: {run}/samples.jsonl is writable by "
                                    "other users: root does not add to a file")


@needs_root
def test_every_append_checks_the_owner(tmp_path: Path) -> None:
    """R13-3 at its cause: every file faultbench appends to (a merge's output, a booted
    run's boot records) goes through SafeDir, which took any regular file with one link."""
    (tmp_path / "theirs.jsonl").touch()
    os.chown(tmp_path / "theirs.jsonl", STRANGER, STRANGER)
    with SafeDir.open(tmp_path) as directory:
        with pytest.raises(ResultsError, match=f"is owned by uid {STRANGER}: root does not"):
            directory.appending("theirs.jsonl")
        with pytest.raises(ResultsError, match=f"is owned by uid {STRANGER}: root does not"):
            directory.truncate("theirs.jsonl", 0)
        directory.appending("ours.jsonl").close()  # made by root: root's
