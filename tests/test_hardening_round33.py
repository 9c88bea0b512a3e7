"""Round thirty-three's open item O1: the host's writes to the watchdog (which stops the guest
should the host die) raised an uncaught OSError once the watchdog was gone, and the one made
after vng started sat outside the code that stops the guest: a traceback, and a guest left
running. A watchdog gone from the start stands in for one killed at any of those writes. And
O2: a report's `complete` taken as any true value."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from images import require_boot_image
from test_hardening_round28_c import _finish, _guest, _redone, _unfinished

from faultbench.measurement.booted import guest


def test_a_boot_whose_watchdog_is_gone_ends_in_one_line_and_leaves_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    before = set(Path(tempfile.gettempdir()).glob("faultbench-guest-*"))

    def gone() -> int:
        read_end, write_end = os.pipe()
        os.close(read_end)
        return write_end
    monkeypatch.setattr(guest, "start_watchdog", gone)
    with pytest.raises(guest.GuestError, match=r"^the guest's watchdog, which stops it should "
                       r"faultbench die, is gone \(Broken pipe\): no guest runs without it$"):
        guest.run_in_guest(require_boot_image(), ["true"], timeout_s=60)
    assert set(Path(tempfile.gettempdir()).glob("faultbench-guest-*")) == before


def test_a_report_complete_only_by_a_truthy_value_fails_its_boot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """O2: `"complete": "no"` was taken as complete (its samples were still checked)."""
    run_dir, samples = _unfinished(tmp_path)
    boot = _finish(run_dir, monkeypatch, _guest(samples, lambda r: {**r, "complete": "no"}))
    assert (boot["status"], boot["reason"]) == (
        "failed", "the guest ended without recording the boot as complete")
    _redone(run_dir, monkeypatch, samples)
