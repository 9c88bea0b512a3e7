"""Round nineteen, `run --resume`'s renewal of a run's files (R19-2): it copied every file in
the run directory whatever its name, sparse ones written out dense, before meta.json was even
read, so a refused resume ("nothing to resume") turned 72 KB on disk into 4 GB. Now only the
files faultbench writes are copied, holes kept, all of them within a total, and only once
every refusal is made."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from analysis_runs import faultbench, make_run
from test_hardening_round8 import one_scenario
from test_hardening_round13_resume import _interrupted

from faultbench.measurement.rundir import renew
from faultbench.measurement.rundir.results import RunDir
from faultbench.measurement.rundir.safefile import ResultsError

SPARSE = 64 << 20
SHIPPED_BOOTED = Path(__file__).parents[1] / "results" / "tcg-icount-profile-kernels"


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("round19"), "run", one_scenario(4))


def _sparse(path: Path, size: int = SPARSE) -> None:
    path.parent.mkdir(exist_ok=True)
    with open(path, "ab") as fh:
        fh.truncate(size)


def _state(run: Path) -> dict[Path, tuple[int, int, int]]:
    """Each file in `run`: its inode, size and blocks on disk."""
    return {p: (p.stat().st_ino, p.stat().st_size, p.stat().st_blocks)
            for p in run.rglob("*") if p.is_file()}


def _renewed(run: Path) -> None:
    """`run` as a resume finds it once it has renewed its files, nothing measured."""
    run_dir = RunDir.existing(run)
    run_dir.lock.release()
    run_dir.dir.close()


def _strangers(run: Path) -> list[Path]:
    """Files faultbench never writes, sparse, 64 MiB each (a few blocks on disk)."""
    files = [run / "junk1", run / "junk2", run / "figures" / "a.png", run / "boots" / "x.json"]
    for path in files:
        _sparse(path)
    return files


def test_a_refused_resume_copies_nothing(finished: Path, tmp_path: Path) -> None:
    """The reproduction: a finished run holding sparse files of other names; the resume is
    refused, and every file is as it was (the same inode, still sparse), meta.json too."""
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    _strangers(run)
    before = _state(run)
    done = faultbench("run", "--resume", run, "-q", check=False)
    assert done.returncode == 2 and "nothing to resume" in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1
    assert _state(run) == before
    assert not [p for p in run.rglob(".*") if p.name != ".lock"]


def test_a_resume_copies_only_what_faultbench_writes(finished: Path, tmp_path: Path) -> None:
    """A resume goes on: its run files are new copies, the other files are left (not
    copied, not densified)."""
    run = _interrupted(finished, tmp_path / "run")
    strangers = _strangers(run)
    before = _state(run)
    # held open: a new file could take the number of an inode freed meanwhile
    held = [os.open(run / name, os.O_RDONLY) for name in ("meta.json", "worker.log")]
    try:
        done = faultbench("run", "--resume", run, "-q", check=False)
    finally:
        for fd in held:
            os.close(fd)
    assert done.returncode == 0, done.stderr
    after = _state(run)
    assert {p: after[p] for p in strangers} == {p: before[p] for p in strangers}
    for name in ("meta.json", "worker.log"):
        assert after[run / name][0] != before[run / name][0], name  # renewed
    assert len((run / "samples.jsonl").read_text().splitlines()) == 4


def test_a_sparse_run_file_keeps_its_holes(finished: Path, tmp_path: Path) -> None:
    """A sparse worker.log within its cap is copied as it is: its size, its content, and
    no more blocks on disk than it had."""
    run = _interrupted(finished, tmp_path / "run")
    (run / "worker.log").write_bytes(b"said\n")
    _sparse(run / "worker.log")
    with open(run / "worker.log", "r+b") as log:
        log.seek(SPARSE // 2)
        log.write(b"middle\n")
    before = _state(run)[run / "worker.log"]
    _renewed(run)
    inode, size, blocks = _state(run)[run / "worker.log"]
    assert inode != before[0] and size == before[1] and blocks <= before[2]
    data = (run / "worker.log").read_bytes()
    assert data.startswith(b"said\n") and data[SPARSE // 2:SPARSE // 2 + 7] == b"middle\n"
    assert data.count(0) == SPARSE - 12


def test_the_run_files_together_are_bounded(finished: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Each file is within its cap, and all together within RUN_FILES_MOST (their caps'
    sum), checked before any is copied."""
    run = _interrupted(finished, tmp_path / "run")
    monkeypatch.setattr(renew, "RUN_FILES_MOST", 1 << 20)
    _sparse(run / "worker.log", 1 << 20)
    before = _state(run)
    with pytest.raises(ResultsError, match=f"^{run}: its run files hold more than 1,048,576 "
                                           "bytes together"):
        RunDir.existing(run)
    assert _state(run) == before
    assert not [p for p in run.rglob(".*") if p.name != ".lock"]


def test_a_run_file_over_its_cap_is_refused_before_any_copy(finished: Path,
                                                             tmp_path: Path) -> None:
    """meta.json's cap is its reader's, 64 MiB: over it the resume is refused, nothing
    copied (it was read first, and refused as every reader refuses it)."""
    run = _interrupted(finished, tmp_path / "run")
    _sparse(run / "meta.json", (64 << 20) + 1)
    before = _state(run)
    done = faultbench("run", "--resume", run, "-q", check=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "meta.json" in done.stderr
    assert _state(run) == before


def test_a_booted_runs_boot_files_are_renewed_and_no_others(tmp_path: Path) -> None:
    """boots/N.json is renewed for the N of meta.json's boots; a report past them is left, and
    so is boots/N.d/, its guest's (round 32: a link there refused every resume), which a
    resume sets aside as untrusted and removes."""
    run = tmp_path / "run"
    shutil.copytree(SHIPPED_BOOTED, run)
    meta = json.loads((run / "meta.json").read_text())
    boots = len(meta["boots"])
    ours = [run / "boots" / "0.json"]
    theirs = [run / "boots" / f"{boots}.json", run / "boots" / f"{boots}.d" / "samples.jsonl",
              run / "boots" / "0.d" / "samples.jsonl", run / "boots" / "0.d" / "notes.txt"]
    for path in ours + theirs:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}\n")
    before = _state(run)
    _renewed(run)
    after = _state(run)
    assert all(after[p][0] != before[p][0] for p in ours)
    assert all(after[p] == before[p] for p in theirs)


def test_a_meta_json_changed_after_its_check_is_not_resumed(finished: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    """The refusals judge meta.json as read before the copies: one the former owner
    rewrites in between (through a descriptor it holds) is refused, not resumed unchecked."""
    from faultbench.measurement.rundir import results

    run = _interrupted(finished, tmp_path / "run")
    real = results.renew_files

    def rewritten_first(directory: object, boots: int) -> None:
        with open(run / "meta.json", "r+b") as meta:  # the same file, not a new one
            meta.write(b" ")
        real(directory, boots)  # type: ignore[arg-type]

    monkeypatch.setattr(results, "renew_files", rewritten_first)
    with pytest.raises(ResultsError, match=f"^{run}/meta.json changed as it was being "
                                           "resumed: resume it again$"):
        RunDir.existing(run)
