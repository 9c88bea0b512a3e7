"""Round thirty: what a booted run's guest, confined to its boot's directory since R29-5, still
did with it. It writes there as root in any mode (9p passes it through), in a directory others
could reach: a setuid-root program, a copy of /etc/shadow (R30-1). The host added every
sample its directory held once the boot's own share was there: a sample of another boot
stood beside that boot's, and the run was refused on every load (R30-3). A resume set aside
whatever lines an unfinished boot's directory held as "samples" (R30-5). Each case redoes
the last boot of a copy of results/icount-aa with round 28's stand-in guest; the host's side
is the real code."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from test_hardening_round28_c import AA, LAST, _finish, _guest, _lines, _redone, _unfinished

from faultbench.measurement.booted.setaside import set_aside
from faultbench.measurement.rundir.checks import short
from faultbench.measurement.rundir.results import RunDir
from faultbench.measurement.rundir.runfiles import DISCARDED


def test_what_a_guest_leaves_in_its_directory_is_out_of_other_users_reach(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """R30-1, in a run directory others can reach (not under pytest's, root's alone)."""
    public = Path(tempfile.mkdtemp(prefix="faultbench-r30-", dir="/tmp"))
    try:
        public.chmod(0o755)
        run_dir, samples = _unfinished(public)
        honest = _guest(samples)

        def boot(kernel: str, argv: list[str], rwdir: str, **kwargs: Any) -> int:
            honest(kernel, argv, rwdir, **kwargs)
            (Path(rwdir) / "planted").write_text("root's secret\n")
            Path(rwdir).chmod(0o777)
            return 3
        assert _finish(run_dir, monkeypatch, boot)["status"] == "failed"
        assert (run_dir.path / "boots").stat().st_mode & 0o777 == 0o700
        other = subprocess.run(["cat", str(run_dir.path / "boots" / f"{LAST}.d" / "planted")],
                               capture_output=True, text=True, user=65534, group=65534)
        assert other.returncode != 0 and "Permission denied" in other.stderr
    finally:
        shutil.rmtree(public)


def test_a_guest_that_adds_a_sample_of_another_boot_fails_its_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """R30-3: boot 0's sample, forged tenfold, was added beside boot 0's own."""
    run_dir, samples = _unfinished(tmp_path)
    before = _lines(run_dir.path / "samples.jsonl")
    genuine = next(r for r in before if r["boot"] == 0 and r["status"] == "ok")
    forged = {**genuine, "touch_ns": 10 * genuine["touch_ns"],
              "ns_per_page": 10 * genuine["ns_per_page"]}
    outcome = _finish(run_dir, monkeypatch, _guest([*samples, forged]))
    assert (outcome["status"], outcome["reason"]) == ("failed", (
        f"its samples hold 1 of another boot (the first: boot 0, scenario "
        f"{short(genuine['scenario'])}): its samples were not added"))
    assert _lines(run_dir.path / "samples.jsonl") == before
    _redone(run_dir, monkeypatch, samples)


def test_a_resume_sets_aside_only_the_samples_of_the_unfinished_boot(tmp_path: Path) -> None:
    """R30-5: 300 lines of 1 MB objects were "set aside 300 samples" into discarded.jsonl."""
    run_dir, samples = _unfinished(tmp_path)
    meta = json.loads((run_dir.path / "meta.json").read_text())
    meta["boots"][LAST].update(status="running", attempts=1)
    (run_dir.path / "meta.json").write_text(json.dumps(meta))
    own = run_dir.path / "boots" / f"{LAST}.d"
    own.mkdir()
    other = next(r for r in _lines(AA / "samples.jsonl") if r["boot"] == 0)
    junk = [{"k": 0}, {"scenario": samples[0]["scenario"], "boot": LAST}, other]
    (own / "samples.jsonl").write_text("".join(
        json.dumps(r) + "\n" for r in [*samples[:5], *junk]))
    run_dir.close()
    resumed = RunDir.existing(run_dir.path)  # as the resume opens it
    try:
        assert set_aside(resumed, LAST, "killed") == 5
    finally:
        resumed.lock.release()
        resumed.dir.close()
    assert _lines(run_dir.path / DISCARDED) == [{**r, "discarded": "killed"}
                                                for r in samples[:5]]
