"""Round twenty-six, a boot's directories. Under TMPDIR=/var/tmp every boot measured
everything and then failed blaming the kernel: the guest shares the boot's scratch
directory at its host path and mounts its scratch disk on /var/tmp, which hid it, and the
status the guest leaves there (R26-6). A boot whose own directory (boots/N.d) was a link
was refused in start(): it was left `running` in meta.json, and the exception killed the
guest started before it (R26-5). The real CLI and real run directories; no guest boots:
where a boot runs, a stand-in writes the guest's side (tests/test_hardening_round9.py)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from images import require_boot_image
from test_hardening_round3_input import fb, refused
from test_hardening_round9 import _booted_run, _stand_in

from faultbench.measurement.booted import guest
from faultbench.measurement.booted.boots import run_boots
from faultbench.measurement.booted.imagecheck import tmpdir_refusal
from faultbench.measurement.booted.scratch import SCRATCH_MOUNT, hidden_in_guest

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the TMPDIR check is root's")
WORKLOAD = ('description = "x"\nrepetitions = 1\nwarmups = 0\n[defaults]\nbacking = "memfd"\n'
            'size = "1M"\n[[matrix]]\npattern = "seq"\n')
HIDDEN = ("is at or under /var/tmp, where the guest mounts its scratch disk over the boot's "
          "scratch directory")
NOT_A_DIR = "is not a directory (a link or a file): remove it"


@pytest.fixture(params=["var-tmp", "under-var-tmp"])
def var_tmpdir(request: pytest.FixtureRequest) -> Iterator[str]:
    """/var/tmp itself, or a root 0700 directory made in it for the test."""
    if request.param == "var-tmp":
        yield SCRATCH_MOUNT
        return
    made = tempfile.mkdtemp(prefix="fb-r26e-", dir=SCRATCH_MOUNT)
    try:
        yield made
    finally:
        shutil.rmtree(made, ignore_errors=True)


def _ours(tmp: str) -> list[str]:
    return sorted(n for n in os.listdir(tmp) if n.startswith("faultbench-"))


@needs_root
def test_a_tmpdir_the_guests_scratch_disk_hides_is_refused_before_anything(
        tmp_path: Path, var_tmpdir: str) -> None:
    """R26-6: `run --kernel`, `measure --kernel` and `run --resume` refuse it in one line, before
    a run directory, a scratch directory or a boot."""
    image = require_boot_image()
    workload = tmp_path / "w.toml"
    workload.write_text(WORKLOAD)
    before = _ours(var_tmpdir)
    env = {"TMPDIR": var_tmpdir}
    line = refused(fb("run", workload, "--kernel", f"a={image}", "--out", tmp_path / "run",
                      env=env), "run", f"TMPDIR {var_tmpdir} {HIDDEN}")
    assert line.endswith("unset TMPDIR, or point it at a directory outside /var/tmp"), line
    assert not (tmp_path / "run").exists()
    refused(fb("measure", "--kernel", image, "--size", "1M", env=env), "measure",
            f"--kernel {image}: TMPDIR {var_tmpdir} {HIDDEN}")
    (tmp_path / "resumed").mkdir()
    run_dir = _booted_run(tmp_path / "resumed", Path(image), boots=1)
    meta = (run_dir.path / "meta.json").read_bytes()
    refused(fb("run", "--resume", run_dir.path, env=env), "run", HIDDEN)
    assert (run_dir.path / "meta.json").read_bytes() == meta
    assert _ours(var_tmpdir) == before


def test_only_a_directory_at_or_under_the_guests_mounts_is_hidden(tmp_path: Path) -> None:
    """The guest's /tmp is virtme-ng's overlay, mounted by its init before the host's
    directories are: the default TMPDIR is not hidden, nor a neighbour of /var/tmp. A link
    is judged by where it leads too."""
    assert hidden_in_guest("/var/tmp") == hidden_in_guest("/var/tmp/xfs/x") == "/var/tmp"
    assert hidden_in_guest("/var/tmp/../tmp/x") == "/var/tmp"
    for path in ("/tmp", "/tmp/faultbench-guest-x", "/var", "/var/tmpx", "/run"):
        assert hidden_in_guest(path) is None, path
    (tmp_path / "link").symlink_to("/var/tmp")
    assert hidden_in_guest(str(tmp_path / "link" / "sub")) == "/var/tmp"


@needs_root
def test_tmp_is_still_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", "/tmp")
    assert tmpdir_refusal() is None


def _link_boot_dir(run: Path, index: int, victim: Path) -> None:
    boots = run / "boots"
    boots.mkdir(exist_ok=True)
    (boots / f"{index}.d").symlink_to(victim, target_is_directory=True)


def test_a_boot_refused_at_its_start_is_recorded_failed(tmp_path: Path) -> None:
    """R26-5: each boot whose own directory is a link is recorded `failed` with the one-line
    reason (it was left `running`), and the run goes on to the next boot; the directory the
    link names is untouched. Neither boot reaches a guest."""
    run_dir = _booted_run(tmp_path, Path(require_boot_image()), boots=2)
    victim = tmp_path / "victim"
    victim.mkdir()
    for index in (0, 1):
        _link_boot_dir(run_dir.path, index, victim)
    done = fb("run", "--resume", run_dir.path, "--jobs", "1")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    failed = [line for line in done.stderr.splitlines() if "/2 failed: " in line]
    assert failed == [f"faultbench run: boot {i + 1}/2 failed: {run_dir.path}/boots/{i}.d "
                      f"{NOT_A_DIR}" for i in (0, 1)], done.stderr
    assert "measured rounds" not in done.stderr  # no boot was said to start
    boots = json.loads((run_dir.path / "meta.json").read_text())["boots"]
    assert [(b["status"], b["attempts"]) for b in boots] == [("failed", 1), ("failed", 1)]
    assert all(b["reason"].endswith(NOT_A_DIR) and b["finished_utc"] for b in boots)
    assert os.listdir(victim) == []


def test_a_boot_refused_at_its_start_leaves_the_running_guest_be(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """R26-5: with two guests at once, boot 2's refusal no longer stops boot 1's guest
    (killed within a second, its boot wasted, and recorded interrupted): boot 1 finishes,
    after boot 2 was recorded failed."""
    run_dir = _booted_run(tmp_path, Path(require_boot_image()), boots=2)
    victim = tmp_path / "victim"
    victim.mkdir()
    _link_boot_dir(run_dir.path, 1, victim)
    seen: list[Any] = []

    def until_boot_2_is_recorded() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            boots = json.loads((run_dir.path / "meta.json").read_text())["boots"]
            if boots[1]["status"] != "running":
                break
            time.sleep(0.05)
        seen.append(boots[1]["status"])
    monkeypatch.setattr(guest, "run_in_guest", _stand_in([], then=until_boot_2_is_recorded))
    meta = run_boots(run_dir, quiet=True, jobs=2)
    assert seen == ["failed"]
    assert [b["status"] for b in meta["boots"]] == ["ok", "failed"]
    assert meta["boots"][1]["reason"] == f"{run_dir.path}/boots/1.d {NOT_A_DIR}"
    assert meta["boots"][0]["concurrent_with"] == []  # boot 2 never ran beside it
    assert json.loads((run_dir.path / "meta.json").read_text())["boots"] == meta["boots"]
    assert os.listdir(victim) == []
