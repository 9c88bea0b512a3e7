"""Round twenty-nine: what a booted run's guest may write (R29-5, R29-6, and the known-left
copy of meta.json). The guest, which runs the kernel under test as root, was given the whole
run directory read-write: it could rewrite the run's samples (another boot's, another
kernel's) and the run finished with forged numbers, or plant a link at the run's worker.log,
blamed on reading the boot's samples back. Its boot's samples were also checked against its
own copy of meta.json, which it can write. Each case redoes the last boot of a copy of
results/icount-aa with a stand-in guest (round 28's); the host's side is the real code. That
nothing a guest writes above its shared directory reaches the host is test_guest's, in a real
guest. Last, another of round 28's known-left list: a default guest memory larger than this
machine's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from images import require_boot_image
from test_hardening_round28_c import (
    LAST,
    _finish,
    _guest,
    _lines,
    _redone,
    _unfinished,
)

from faultbench.measurement.measure import meminfo


def test_each_guest_is_given_its_boots_own_directory_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir, samples = _unfinished(tmp_path)
    given: list[str] = []
    honest = _guest(samples)

    def boot(kernel: str, argv: list[str], rwdir: str, **kwargs: Any) -> int:
        given.append(rwdir)
        return honest(kernel, argv, rwdir, **kwargs)
    assert _finish(run_dir, monkeypatch, boot)["status"] == "ok"
    assert given == [str(run_dir.path / "boots" / f"{LAST}.d")]
    assert (run_dir.path / "boots" / f"{LAST}.json").is_file()  # the host's copy of its report


def test_a_guest_that_widens_its_share_in_its_copy_of_meta_json_adds_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its copy said the boot measured every round, and a sample of another boot's round
    passed: appended, it made the run refused on every load."""
    run_dir, samples = _unfinished(tmp_path)
    before = _lines(run_dir.path / "samples.jsonl")
    foreign = {**samples[-1], "round": samples[-1]["round"] - 2}  # boot 4's measured round 3
    honest = _guest([*samples, foreign])

    def boot(kernel: str, argv: list[str], rwdir: str, **kwargs: Any) -> int:
        copy = Path(rwdir) / "meta.json"
        meta = json.loads(copy.read_text())
        meta["boots"][LAST]["rounds"] = [0, meta["workload"]["repetitions"]]
        copy.write_text(json.dumps(meta))
        return honest(kernel, argv, rwdir, **kwargs)
    outcome = _finish(run_dir, monkeypatch, boot)
    assert (outcome["status"], outcome["reason"]) == ("failed", (
        f"its samples cannot be read back: {run_dir.path}/boots/{LAST}.d/samples.jsonl: has "
        f"samples of measured round 4 in boot {LAST}, whose share its meta.json records as "
        "rounds 5-6: the two files are from different runs"))
    assert _lines(run_dir.path / "samples.jsonl") == before
    _redone(run_dir, monkeypatch, samples)


def test_a_run_file_that_refuses_a_boots_samples_is_named_as_such(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """R29-6: a link at the run's worker.log failed the boot as "its samples cannot be read
    back", which they could."""
    run_dir, samples = _unfinished(tmp_path)
    log = run_dir.path / "worker.log"
    log.unlink(missing_ok=True)
    log.symlink_to(tmp_path / "elsewhere")
    honest = _guest(samples)

    def boot(kernel: str, argv: list[str], rwdir: str, **kwargs: Any) -> int:
        (Path(rwdir) / "worker.log").write_text("the worker's stderr\n")
        return honest(kernel, argv, rwdir, **kwargs)
    outcome = _finish(run_dir, monkeypatch, boot)
    assert (outcome["status"], outcome["reason"]) == ("failed", (
        f"its samples were read, but cannot be added to the run's files: {log} is a symbolic "
        "link; faultbench never writes through one (someone may have planted it): remove it"))
    assert not (tmp_path / "elsewhere").exists()
    log.unlink()
    _redone(run_dir, monkeypatch, samples)



def test_a_default_guest_memory_over_this_machines_is_refused_before_the_run(
        tmp_path: Path) -> None:
    """Known-left in round 28: a given --memory was checked against this machine's memory,
    the default one (3x the largest scenario + 512M) never: QEMU would fail every boot."""
    half = meminfo()["MemTotal"] // 2 >> 10  # MiB: 3x it is more than the machine has
    workload = tmp_path / "big.toml"
    workload.write_text(f'description = "a guest too large"\nrepetitions = 1\n\n[[matrix]]\n'
                        f'backing = "memfd"\nsize = "{half}M"\n')
    done = subprocess.run([sys.executable, "-m", "faultbench", "run", str(workload),
                           "--kernel", f"a={require_boot_image()}", "--out",
                           str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith(
        "faultbench run: the guests' memory, by default (3x the largest scenario + 512M, at "
        f"least 1G): {3 * half + 512}M is more memory than this machine has (")
    assert not (tmp_path / "run").exists()

