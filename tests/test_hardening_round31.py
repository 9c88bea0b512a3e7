"""Round thirty-one: what a guest's report.json may make the host keep, and who is blamed for
what a guest did to its own directory. A `guest` record nested 980 deep made writing it raise
RecursionError, or went into meta.json, which every resume then refused (R31-1); 64 KiB of
nested empty lists, indented, became 28 MB in meta.json and boots/N.json, and three such boots
put meta.json past its cap (R31-2); NaN and lone surrogates made meta.json no JSON other tools
read (R31-3). A guest that gave its directory to another uid had that user blamed, and every
resume refused (R31-4); a link at its worker.log was blamed on its samples (R31-5). Each case
redoes the last boot of a copy of results/icount-aa with round 28's stand-in guest; the host's
side is the real code."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from test_hardening_round28_c import LAST, _finish, _guest, _lines, _redone, _unfinished

REPORT = f"boots/{LAST}.d/report.json"


def _nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(("guest", "why"), [
    (_nested(20), "it nests deeper than 8 levels"),
    (_nested(500), "it nests deeper than 8 levels"),
    ({"lists": [_nested(5)] * 2000},  # 24 KB as JSON, 126 KB indented in the report
     "written out it is 126,101 bytes, over the 16,384 faultbench keeps of a boot's report"),
])
def test_a_report_faultbench_would_not_keep_fails_its_boot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, guest: Any, why: str) -> None:
    run_dir, samples = _unfinished(tmp_path)
    boot = _finish(run_dir, monkeypatch, _guest(samples, lambda r: {**r, "guest": guest}))
    assert (boot["status"], boot["reason"]) == ("failed", f"its report {REPORT} is refused: "
                                                          f"{why}")
    assert (run_dir.path / "meta.json").stat().st_size < 100_000
    assert not (run_dir.path / "boots" / f"{LAST}.json").exists()
    _redone(run_dir, monkeypatch, samples)


@pytest.mark.parametrize("value", [b"NaN", b"-Infinity", b'"\\ud800"'])
def test_a_report_of_no_plain_json_fails_its_boot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: bytes) -> None:
    run_dir, samples = _unfinished(tmp_path)
    raw = b'{"boot": %d, "complete": true, "guest": {"x": %s}}' % (LAST, value)
    boot = _finish(run_dir, monkeypatch, _guest(samples, raw=raw))
    assert (boot["status"], boot["reason"]) == ("failed", (
        f"its report {REPORT} is refused: it holds a NaN, an infinity or a lone surrogate, "
        "which is no JSON"))
    json.loads((run_dir.path / "meta.json").read_text(), parse_constant=pytest.fail)


def test_a_guest_that_gives_its_directory_away_is_blamed_and_set_aside(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """R31-4: uid 1001, who did nothing and cannot reach boots/, was blamed, and every
    resume refused until root chowned the directory back."""
    run_dir, samples = _unfinished(tmp_path)
    honest = _guest(samples)

    def boot(kernel: str, argv: list[str], rwdir: str, **kwargs: Any) -> int:
        status = honest(kernel, argv, rwdir, **kwargs)
        os.chown(rwdir, 65534, 65534)
        return status
    outcome = _finish(run_dir, monkeypatch, boot)
    assert outcome["status"] == "failed"
    assert outcome["reason"].startswith(
        f"its report {REPORT} is refused: the guest gave its directory or files to another "
        "owner (owned by uid 65534")
    _redone(run_dir, monkeypatch, samples)


def test_a_link_at_the_boots_worker_log_is_blamed_on_the_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """R31-5: "its samples cannot be read back", which they could."""
    run_dir, samples = _unfinished(tmp_path)
    honest = _guest(samples)

    def boot(kernel: str, argv: list[str], rwdir: str, **kwargs: Any) -> int:
        (Path(rwdir) / "worker.log").symlink_to("/etc/hostname")
        return honest(kernel, argv, rwdir, **kwargs)
    outcome = _finish(run_dir, monkeypatch, boot)
    assert outcome["status"] == "failed"
    assert outcome["reason"].startswith(
        f"its worker log cannot be read back: {run_dir.path}/boots/{LAST}.d/worker.log is a "
        "symbolic link")
    assert [r for r in _lines(run_dir.path / "samples.jsonl") if r["boot"] == LAST] == []
    _redone(run_dir, monkeypatch, samples)
