"""Round twenty-eight: what the host takes from a guest's report, boots/N.json (R28-2, R28-3,
R28-5). The guest runs the kernel under test and writes its report over a shared directory:
its `unsupported` names went into meta.json's `skipped` unchecked (a measured scenario
among them made the run unreadable for ever), a large report made a meta.json faultbench
then refused, and a boot reported complete with samples missing was recorded done, its
rounds never measured. Each case redoes the last boot of a copy of a shipped booted run
(results/icount-aa): a stand-in guest writes the boot's report and samples (the shipped
ones, changed as a hostile guest would) where the guest writes them; the host's side is
the real code, booting the run's real image up to QEMU."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from analysis_runs import faultbench

from faultbench.measurement.booted import guest
from faultbench.measurement.booted.boots import run_boots
from faultbench.measurement.measure import sample_without_result
from faultbench.measurement.rundir.results import RunDir
from faultbench.measurement.spec import Spec

AA = Path(__file__).parents[1] / "results" / "icount-aa"  # boots a b b a a b, 12 scenarios
LAST = 5  # kernel b, measured rounds 5-6 and the warm-up: 36 measurements, 54 samples
Record = dict[str, Any]
TAGS = ("mapper", "knobs", "scenario", "round", "warmup", "profiled", "kernel", "boot",
        "kernel_release", "kernel_version", "kernel_sha256")  # what the runner adds


def _lines(path: Path) -> list[Record]:
    return [json.loads(line) for line in path.open()]


def _write_lines(path: Path, records: list[Record]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _unfinished(tmp_path: Path) -> tuple[RunDir, list[Record]]:
    """A copy of icount-aa whose last boot is still to run, and that boot's shipped samples."""
    meta = json.loads((AA / "meta.json").read_text())
    image = Path(meta["kernels"][1]["image"])
    if not image.is_file() or \
            hashlib.sha256(image.read_bytes()).hexdigest() != meta["kernels"][1]["sha256"]:
        pytest.skip(f"needs the image icount-aa booted, {image}")
    run = tmp_path / "run"
    shutil.copytree(AA, run)
    records = _lines(run / "samples.jsonl")
    _write_lines(run / "samples.jsonl", [r for r in records if r["boot"] != LAST])
    meta["boots"][LAST].update(status="pending", attempts=0, started_utc=None,
                               finished_utc=None, reason=None)
    meta["finished_utc"] = None
    (run / "meta.json").write_text(json.dumps(meta))
    (run / "boots" / f"{LAST}.json").unlink()
    return RunDir(run), [r for r in records if r["boot"] == LAST]


def _guest(samples: list[Record], report: Callable[[Record], Any] = lambda r: r,
           raw: bytes | None = None) -> Callable[..., int]:
    """guest.run_in_guest as a guest that writes `samples` and the shipped report changed by
    `report` (or the bytes `raw`), and exits 0."""
    shipped = json.loads((AA / "boots" / f"{LAST}.json").read_text())

    def boot(kernel: str, argv: list[str], rwdir: str, **_: Any) -> int:
        assert int(argv[5]) == LAST
        own = Path(rwdir)  # the one directory the guest is given, its boot's
        assert (own.parent.name, own.name) == ("boots", f"{LAST}.d")
        _write_lines(own / "samples.jsonl", samples)
        text = raw if raw is not None else json.dumps(report(dict(shipped))).encode()
        (own / "report.json").write_bytes(text)
        return 0
    return boot


def _finish(run_dir: RunDir, monkeypatch: pytest.MonkeyPatch, boot: Callable[..., int],
            quiet: bool = True) -> Record:
    monkeypatch.setattr(guest, "run_in_guest", boot)
    try:
        return run_boots(run_dir, quiet=quiet)["boots"][LAST]
    finally:
        run_dir.close()


def _redone(run_dir: RunDir, monkeypatch: pytest.MonkeyPatch, samples: list[Record]) -> None:
    """The resume an honest guest makes of the boot: done, and the run whole."""
    assert _finish(run_dir, monkeypatch, _guest(samples))["status"] == "ok"
    assert _lines(run_dir.path / "samples.jsonl") == _lines(AA / "samples.jsonl")
    meta = json.loads((run_dir.path / "meta.json").read_text())
    assert meta["skipped"] == []
    faultbench("report", "--json", run_dir.path)


# ---- R28-2: the guest's `unsupported` names, copied into meta.json's `skipped` --------------

def test_a_guest_that_calls_a_measured_scenario_unsupported_leaves_the_run_readable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir, samples = _unfinished(tmp_path)
    name = samples[0]["scenario"]
    boot = _finish(run_dir, monkeypatch, _guest(samples, lambda r: {**r, "unsupported": {
        name: "evil \x1b[31mRED\x1b[0m", "bogus\x1b]0;TITLE\x07name": "r", "x": ["y"]}}))
    assert boot["status"] == "ok"
    meta = json.loads((run_dir.path / "meta.json").read_text())
    assert meta["skipped"] == []  # the samples say what was refused, never the guest's word
    faultbench("report", "--json", run_dir.path)


def test_a_failed_boot_adds_nothing_to_skipped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir, samples = _unfinished(tmp_path)
    boot = _finish(run_dir, monkeypatch, _guest(samples, lambda r: {
        **r, "complete": False, "unsupported": {samples[0]["scenario"]: "refused"}}))
    assert boot["status"] == "failed"
    assert json.loads((run_dir.path / "meta.json").read_text())["skipped"] == []
    _redone(run_dir, monkeypatch, samples)


def test_a_scenario_one_boot_found_unsupported_and_others_measured_is_not_skipped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not hostile: this boot's kernel refused a setting (every sample of its rounds
    unsupported), which the kernel's two other boots measured: recorded skipped for the
    kernel, their measured samples made the run unreadable."""
    run_dir, samples = _unfinished(tmp_path)
    name = samples[0]["scenario"]
    refused = [{**sample_without_result(Spec.from_dict(r["spec"]), r["plane"], "unsupported",
                                        "the kernel refused it").to_dict(),
                **{key: r[key] for key in TAGS}} if r["scenario"] == name else r
               for r in samples]
    boot = _finish(run_dir, monkeypatch, _guest(
        refused, lambda r: {**r, "unsupported": {name: "the kernel refused it"}}))
    assert boot["status"] == "ok", boot["reason"]
    assert json.loads((run_dir.path / "meta.json").read_text())["skipped"] == []
    faultbench("report", "--json", run_dir.path)


# ---- R28-3: a large report, and the meta.json it made ---------------------------------------

def test_an_oversized_report_fails_its_boot_and_the_resume_finishes_the_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir, samples = _unfinished(tmp_path)
    names = {f"x{i}": "r" for i in range(100_000)}  # 1.6 MB: within meta.json's 64 MiB cap
    boot = _finish(run_dir, monkeypatch, _guest(samples, lambda r: {**r, "unsupported": names}))
    assert boot["status"] == "failed"
    report = run_dir.path / "boots" / f"{LAST}.d" / "report.json"
    assert boot["reason"] == (
        f"its report boots/{LAST}.d/report.json is refused: {report} is {report.stat().st_size:,} "
        "bytes, over the 65,536 faultbench reads of such a file (the ones it writes are far "
        "smaller): not read")
    assert (run_dir.path / "meta.json").stat().st_size < 100_000
    _redone(run_dir, monkeypatch, samples)


def test_a_report_of_no_json_object_fails_its_boot(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir, samples = _unfinished(tmp_path)
    boot = _finish(run_dir, monkeypatch, _guest(samples, raw=b"[" * 50_000))
    assert (boot["status"], boot["reason"]) == (
        "failed", f"its report boots/{LAST}.d/report.json is not valid JSON")


# ---- R28-5: a boot reported complete, its share not measured -------------------------------

@pytest.mark.parametrize(("kept", "missing", "first"), [
    (lambda r: False, 36, "warm-up round 1"),
    (lambda r: r["round"] != 6, 12, "measured round 6"),
])
def test_a_boot_reported_complete_without_its_share_is_failed_and_redone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
        kept: Callable[[Record], bool], missing: int, first: str) -> None:
    run_dir, samples = _unfinished(tmp_path)
    boot = _finish(run_dir, monkeypatch, _guest([r for r in samples if kept(r)]), quiet=False)
    lacking = next(r["scenario"] for r in samples if not kept(r))
    reason = (f"the guest recorded the boot complete, but {missing} of the 36 measurements of "
              f"its share have no sample (the first: scenario {lacking}, {first}): its samples "
              "were not added")
    assert (boot["status"], boot["reason"]) == ("failed", reason)
    assert f"faultbench run: boot {LAST + 1}/6 failed: {reason}\n" in capfd.readouterr().err
    assert [r for r in _lines(run_dir.path / "samples.jsonl") if r["boot"] == LAST] == []
    _redone(run_dir, monkeypatch, samples)
