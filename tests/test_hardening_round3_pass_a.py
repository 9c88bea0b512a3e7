"""Round three of the hostile pass, pass A: a base build planted in a shared kernel cache
(D3), merging an unfinished run (D2), a parent stopped inside select past a sample's
deadline (N13), and a sample line whose round no workload has (M6).

Nothing here boots a guest or builds a kernel: kernels/build runs up to the first command
it would run in the planted tree, which is what the attack needs.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import selectors
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from analysis_runs import measured_again
from inprocess import ANALYSIS, in_process
from kbuild import build

TIMEOUT_S = 120
FAULTBENCH = [sys.executable, "-P", "-m", "faultbench"]
NATIVE = """\
description = "pass A: a native run"
repetitions = 2
warmups = 0

[[matrix]]
backing = "memfd"
size = "1M"
"""


# ---- D3: a base build planted in a shared cache ------------------------------------------

def _inputs(tmp_path: Path):
    """Inputs with one patch (a new file, so it applies to any tree)."""
    patch = tmp_path / "new-file.patch"
    patch.write_text("--- /dev/null\n+++ b/faultbench-new-file\n@@ -0,0 +1 @@\n+x\n")
    digest = hashlib.sha256(patch.read_bytes()).hexdigest()
    return build.Inputs("1.0", "0" * 64, "vng 0", build.CONFIG_FRAGMENT,
                        (build.Patch(patch.name, patch, digest, patch.read_bytes()),))


def _plant_base(cache: Path, inputs, marker: Path, uid: int, gid: int,
                record: bool = False) -> Path:
    """The base entry a finished build leaves, with a scripts/config that leaves `marker`;
    everything in it owned by `uid` (as if that user had made it in the shared cache)."""
    base = cache / inputs.without_patches().key()
    image = base / "tree" / build.IMAGE_IN_TREE
    image.parent.mkdir(parents=True)
    image.write_bytes(b"not a kernel")
    (base / "bzImage").write_bytes(b"not a kernel")
    if record:
        digest = hashlib.sha256(b"not a kernel").hexdigest()
        (base / "meta.json").write_text(json.dumps({"image_sha256": digest}))
    script = base / "tree" / "scripts" / "config"
    script.parent.mkdir()
    script.write_text(f"#!/bin/sh\ntouch {marker}\n")
    script.chmod(0o755)
    for directory, dirs, files in os.walk(base):
        for name in [".", *dirs, *files]:
            os.chown(Path(directory, name), uid, gid, follow_symlinks=False)
    return base


@pytest.fixture
def shared_cache(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("planting another user's entry needs root")
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o1777)  # like /var/cache/... made world-writable and sticky for a team
    return cache


def test_a_base_build_planted_by_another_user_is_not_run(tmp_path: Path,
                                                         shared_cache: Path) -> None:
    """A root build with a patch copied the base entry's tree, which anyone could plant in
    a shared cache (the key is computable), and ran its scripts/config as root."""
    nobody = pwd.getpwnam("nobody")
    inputs = _inputs(tmp_path)
    marker = tmp_path / "ran-as-root"
    _plant_base(shared_cache, inputs, marker, nobody.pw_uid, nobody.pw_gid, record=True)
    with pytest.raises(build.BuildError) as refused:
        build.build(inputs, shared_cache, 1, "/bin/true")
    assert not marker.exists()
    message = str(refused.value)
    assert "\n" not in message and "nobody" in message, message


def test_a_base_build_whose_image_is_not_recorded_is_refused(tmp_path: Path,
                                                             shared_cache: Path) -> None:
    """Root's own base entry whose bzImage is not the one its meta.json records (changed
    since, or never built here) is not built from either."""
    inputs = _inputs(tmp_path)
    marker = tmp_path / "ran-as-root"
    _plant_base(shared_cache, inputs, marker, 0, 0)
    with pytest.raises(build.BuildError, match=r"not the one its meta\.json records"):
        build.build(inputs, shared_cache, 1, "/bin/true")
    assert not marker.exists()


def test_a_recorded_base_build_of_root_is_built_from(tmp_path: Path,
                                                     shared_cache: Path) -> None:
    inputs = _inputs(tmp_path)
    base = _plant_base(shared_cache, inputs, tmp_path / "marker", 0, 0, record=True)
    assert build.find_base_tree(shared_cache, inputs) == base / "tree"


# ---- N13: a parent stopped inside select past the deadline -------------------------------

def test_an_answer_given_while_select_was_interrupted_is_taken(monkeypatch) -> None:
    """A parent stopped (SIGSTOP) inside select() past the deadline resumes into EINTR;
    CPython's retry sees the deadline gone and returns [] without polling, and the sample
    the worker had answered in time was declared lost. The first select here returns []
    as that retry does, with the answer waiting."""
    from faultbench.measurement import runner
    from faultbench.measurement.spec import Spec

    real = selectors.DefaultSelector

    class Interrupted(real):  # type: ignore[misc, valid-type]
        interrupted = False

        def select(self, timeout=None):
            if not Interrupted.interrupted:
                Interrupted.interrupted = True
                return []
            return super().select(timeout)

    worker = runner.Worker()
    spec = Spec(size=1 << 20).normalized()
    try:
        proc = worker._start()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps({"spec": spec.to_dict(), "profile": False}).encode() + b"\n")
        proc.stdin.flush()
        with real() as selector:  # the worker has answered
            selector.register(proc.stdout.fileno(), selectors.EVENT_READ)
            assert selector.select(TIMEOUT_S)
        monkeypatch.setattr(runner.selectors, "DefaultSelector", Interrupted)
        line = worker._readline(proc.stdout.fileno(), time.monotonic() + 0.2)
        assert Interrupted.interrupted
        assert line is not None
        [sample] = json.loads(line)["samples"]
        assert sample["status"] == "ok"
    finally:
        worker.close()


# ---- D2: merging an unfinished run, and what a failed merge leaves -----------------------

def faultbench(*args: object) -> subprocess.CompletedProcess[str]:
    """The command in a Python of its own; merge and report in this one (a subprocess each
    would import pandas again: what they read is tested, not their process)."""
    if str(args[0]) in ANALYSIS:
        return in_process(*map(str, args), timeout_s=TIMEOUT_S)
    return subprocess.run([*FAULTBENCH, *map(str, args)], capture_output=True, text=True,
                          check=False, timeout=TIMEOUT_S)


def _copy(src: Path, dst: Path, **changes: Any) -> Path:
    """The run `src` as another machine's (faultbench offers no way to claim another host
    name; one sample's time a nanosecond apart, or merge refuses the copy's identical
    samples), with `changes` made to its meta.json."""
    measured_again(src, dst)
    meta = json.loads((dst / "meta.json").read_text())
    meta["provenance"]["host"]["name"] = "other-machine"
    meta.update(changes)
    (dst / "meta.json").write_text(json.dumps(meta))
    return dst


@pytest.fixture(scope="module")
def native_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("native")
    (where / "w.toml").write_text(NATIVE)
    done = faultbench("run", where / "w.toml", "--out", where / "here", "-q")
    assert done.returncode == 0, done.stderr
    return where / "here"


def test_an_unfinished_part_is_not_merged(native_run: Path, tmp_path: Path) -> None:
    """A part with finished_utc null was merged silently; `run --resume` of the merge then
    measured nothing and sealed the gap."""
    unfinished = _copy(native_run, tmp_path / "there", finished_utc=None)
    done = faultbench("merge", native_run, unfinished, "--out", tmp_path / "out")
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert f"{unfinished} is not finished (finished_utc is null)" in line, line
    assert f"faultbench run --resume {unfinished} first" in line, line
    assert not (tmp_path / "out").exists()


def test_a_merge_into_a_run_is_not_told_to_resume_it(native_run: Path, tmp_path: Path) -> None:
    """--out holding a run (a merge made before) was refused with "continue it with
    faultbench run --resume", which would measure more on this machine into a merge."""
    other = _copy(native_run, tmp_path / "there")
    assert faultbench("merge", native_run, other, "--out", tmp_path / "out").returncode == 0
    done = faultbench("merge", native_run, other, "--out", tmp_path / "out")
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert "already exists and is not empty" in line and "--resume" not in line, line


def test_a_failed_merge_leaves_its_out_empty(native_run: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A merge failing while it wrote (here pyperf.json: no space left) left meta.json and
    samples.jsonl behind: a run directory that looked whole, or one to resume."""
    import errno

    from faultbench.measurement.rundir import merge
    from faultbench.measurement.rundir.results import RunDir

    other = _copy(native_run, tmp_path / "there")

    def no_space(*_: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        patch.setattr(RunDir, "write_pyperf", no_space)
        with pytest.raises(OSError):
            merge.merge([native_run, other], out)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == []
    merge.merge([native_run, other], out)
    assert (out / "meta.json").is_file() and (out / "pyperf.json").is_file()


# ---- M6: a sample in a round the workload does not have -----------------------------------

def test_a_sample_beyond_the_workloads_rounds_is_refused(native_run: Path,
                                                        tmp_path: Path) -> None:
    """A line with a round past warm-ups + repetitions in an unfinished run was taken by
    `run --resume` and counted as one more repetition; a report counted it too."""
    run = tmp_path / "run"
    shutil.copytree(native_run, run)
    meta = json.loads((run / "meta.json").read_text())
    meta["finished_utc"] = None
    (run / "meta.json").write_text(json.dumps(meta))
    rounds = meta["workload"]["warmups"] + meta["workload"]["repetitions"]
    lines = (run / "samples.jsonl").read_text().splitlines()
    extra = {**json.loads(lines[-1]), "round": rounds}
    (run / "samples.jsonl").write_text("\n".join([*lines, json.dumps(extra)]) + "\n")
    done = faultbench("run", "--resume", run)
    assert done.returncode == 2, done.stdout
    [line] = done.stderr.strip().splitlines()
    assert f"round {rounds} is past the run's {rounds} rounds" in line, line
    report = faultbench("report", run, "--no-figures")  # dropped and counted, as other lines
    assert report.returncode == 0, report.stderr
    assert "1 invalid sample(s) in samples.jsonl were dropped" in " ".join(report.stdout.split())
