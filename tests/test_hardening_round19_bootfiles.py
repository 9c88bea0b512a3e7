"""Round nineteen's known-left list: a boot's files read back by the host. boots/N.json was
read through a link and at any size, and a boot's worker.log copied whole into the run's:
whoever owns the run directory can plant either while root runs. A stand-in writes the
guest's side of the boot (tests/test_hardening_round9.py); the host's side is the real code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from images import require_boot_image
from test_hardening_round9 import _booted_run, _stand_in

from faultbench.measurement.booted import guest
from faultbench.measurement.booted.bootresult import BOOT_LOG_KEPT
from faultbench.measurement.booted.boots import run_boots


def test_a_boot_report_behind_a_link_is_not_read(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = _booted_run(tmp_path, Path(require_boot_image()), boots=1)

    def plant(path: Path) -> None:
        report = path / "boots" / "0.d" / "report.json"
        report.rename(tmp_path / "elsewhere.json")
        report.symlink_to(tmp_path / "elsewhere.json")
    monkeypatch.setattr(guest, "run_in_guest", _stand_in([], then=lambda: plant(run_dir.path)))
    meta = run_boots(run_dir, quiet=True)
    assert meta["boots"][0]["status"] == "failed"
    assert meta["boots"][0]["reason"] == (
        f"its report boots/0.d/report.json is refused: {run_dir.path}/boots/0.d/report.json "
        "is a symbolic link: "
        "faultbench does not read results through one; remove it")


def test_a_planted_sparse_worker_log_is_not_written_out_dense(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = _booted_run(tmp_path, Path(require_boot_image()), boots=1)
    size = 256 << 20

    def plant(path: Path) -> None:
        with open(path / "boots" / "0.d" / "worker.log", "wb") as fh:
            fh.write(b"the worker said this\n")
            fh.truncate(size)  # a hole: no disk, but 256 MiB read as zeros
    monkeypatch.setattr(guest, "run_in_guest", _stand_in([], then=lambda: plant(run_dir.path)))
    meta = run_boots(run_dir, quiet=True)
    assert meta["boots"][0]["status"] == "ok"
    log = (run_dir.path / "worker.log").read_bytes()
    assert log.startswith(b"the worker said this\n")
    assert len(log) < BOOT_LOG_KEPT + 200
    assert log.endswith(f"[faultbench: the last {size - BOOT_LOG_KEPT:,} bytes of "
                        "boots/0.d/worker.log not kept]\n".encode())
    assert os.stat(run_dir.path / "worker.log").st_size == len(log)
