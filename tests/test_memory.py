"""App-launch sessions (measurement/launch.py, native/launch.c) on the running kernel: the
vmstat deltas against an independent reading around the same window, the launches' own
counts against them, deadlines, validation, and nothing left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from inprocess import in_process

from faultbench.analysis.frame import load as load_run
from faultbench.analysis.memory import count_totals, memory_section, per_launch, sessions
from faultbench.measurement.booted.boots import chosen_memory
from faultbench.measurement.launch import (
    VMSTAT_NAMES,
    launch_order,
    read_vmstat,
    release_files,
)
from faultbench.measurement.measure import measure_mappers
from faultbench.measurement.runner import RunError
from faultbench.measurement.spec import Spec, SpecError
from faultbench.measurement.workload import WorkloadError, load, scenario_name

SCRATCH = "/var/tmp"
SESSION = Spec(backing="file", size="4M", apps=3, app_files=2, cache="cold", deadline_s=60)


def _children() -> list[str]:
    """Our child processes still alive or unreaped (app processes must be neither)."""
    path = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    return path.read_text().split()


def _state() -> tuple[list[str], list[str], int]:
    """What a session could leave: files, processes, descriptors (its kept files released)."""
    release_files()
    return sorted(os.listdir(SCRATCH)), _children(), len(os.listdir("/proc/self/fd"))


def test_vmstat_deltas_are_bounded_by_a_reading_around_them() -> None:
    before_state = _state()
    outer_before = read_vmstat()
    sample = measure_mappers(SESSION)[0]
    outer_after = read_vmstat()
    assert sample.status == "ok", sample.error
    assert sample.launches_done == 6 and sample.launch_outcome == "ok"
    inner = sample.vmstat
    assert set(inner) == set(outer_before) and set(VMSTAT_NAMES) - {"oom_kill"} <= set(inner)
    for name, delta in inner.items():
        assert 0 <= delta <= outer_after[name] - outer_before[name], name
    # every fault the launches counted themselves happened inside the window
    assert sample.faults_minor + sample.faults_major > 0
    assert inner["pgfault"] >= sample.faults_minor + sample.faults_major
    assert inner["pgmajfault"] >= sample.faults_major
    assert sample.pages_touched > 0 and sample.pages_mapped >= sample.pages_touched
    assert _children() == []  # every app process killed and reaped with the session
    assert _state() == before_state  # no file or descriptor left once released


def test_every_launch_of_an_app_reads_the_same_pages() -> None:
    one = measure_mappers(SESSION)[0]
    two = measure_mappers(SESSION)[0]
    assert one.pages_touched == two.pages_touched > 0
    # a one-in-4 density reads about 4x the pages of one in 16
    dense = measure_mappers(Spec(**{**SESSION.to_dict(), "touch_one_in": 4}))[0]
    assert 3 * one.pages_touched < dense.pages_touched < 5 * one.pages_touched


def test_a_session_past_its_deadline_is_recorded_as_such() -> None:
    before_state = _state()
    spec = Spec(backing="file", size="64M", apps=2, app_files=1, cache="cold",
                deadline_s=0.001)
    sample = measure_mappers(spec)[0]
    assert sample.status == "error" and sample.launch_outcome == "deadline"
    assert "deadline" in sample.error and sample.launches_done == 0
    assert sample.vmstat  # the window still has its deltas
    assert _state() == before_state


def test_an_app_killed_during_its_launch_is_an_error_not_a_hang() -> None:
    """A launch child that dies (here: its heap exceeds RLIMIT_AS in a subprocess) ends the
    session as an error with the reason; nothing waits for it."""
    code = (
        "import json, resource\n"
        "from faultbench.measurement.measure import measure_mappers\n"
        "from faultbench.measurement.spec import Spec\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 31, 1 << 31))\n"
        "s = measure_mappers(Spec(backing='file', size='4M', apps=2, app_files=1,"
        " app_anon='4G', deadline_s=60))[0]\n"
        "print(json.dumps(s.to_dict()))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    sample = json.loads(done.stdout)
    assert sample["status"] == "error" and sample["launch_outcome"] == "error"
    assert "heap mmap" in sample["error"] and sample["launches_done"] == 0


def test_launch_order_passes_over_every_app() -> None:
    order = launch_order(5, 12, 7)
    assert sorted(order[:5]) == sorted(order[5:10]) == list(range(5))
    assert order == launch_order(5, 12, 7) and len(order) == 12


@pytest.mark.parametrize(("fields", "message"), [
    ({"backing": "memfd", "cache": "warm"}, "backing 'file'"),
    ({"cache": "hot"}, "backing 'file'"),
    ({"size": "4M", "app_files": 3}, "whole pages"),
    ({"uffd": "wp"}, "uffd 'none'"),
    ({"apps": 65}, "apps must be"),
    ({"app_anon": "3K"}, "multiple of"),
])
def test_invalid_sessions_are_refused(fields: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        Spec(**{**SESSION.to_dict(), **fields}).normalized()


def test_app_fields_need_apps() -> None:
    with pytest.raises(SpecError, match="app_anon applies"):
        Spec(app_anon="1M").normalized()
    spec = SESSION.normalized()
    assert spec.launches == 6 and spec.map == "private" and spec.pattern == "random"
    assert scenario_name(spec, {}).endswith("apps=3x2files,launches=6,one-in=16")


def test_workload_guest_memory(tmp_path: Path) -> None:
    shipped = load("memory-pressure")
    assert shipped.guest_memory == "256M" and shipped.meta()["guest_memory"] == "256M"
    assert {s.knobs["fault_around_bytes"] for s in shipped.scenarios} == {
        "4096", "16384", "65536", "2097152"}
    bad = tmp_path / "bad.toml"
    bad.write_text('guest_memory = "lots"\n[[matrix]]\n')
    with pytest.raises(WorkloadError, match="guest_memory"):
        load(str(bad))
    assert chosen_memory("512m", "384M") == ("512M", "--memory")
    assert chosen_memory(None, "384M") == ("384M", "workload")
    assert chosen_memory(None, None)[0] is None
    with pytest.raises(RunError, match="at least 128M"):
        chosen_memory("64M", None)


def test_report_shows_counts_per_launch(tmp_path: Path) -> None:
    """A real native run of a small session workload: report's memory section."""
    workload = tmp_path / "apps.toml"
    workload.write_text(
        'repetitions = 6\nwarmups = 0\n[defaults]\nbacking = "file"\nsize = "2M"\n'
        'apps = 2\napp_files = 1\ndeadline_s = 60\n[[matrix]]\n')
    out = tmp_path / "run"
    subprocess.run([sys.executable, "-m", "faultbench", "run", str(workload), "--out",
                    str(out), "-q"], check=True, capture_output=True, timeout=300)
    from faultbench import load as load_run

    df = load_run(out)
    apps = sessions(df)
    assert len(apps) == 6 and (apps["outcome"] == "ok").all()
    table = per_launch(apps, ["guest_memory"])
    faults = table[table["metric"] == "faults"].iloc[0]
    expected = apps["faults"].median()
    assert faults["median"] == expected and faults["n"] == 6
    assert faults["ci_lo"] <= expected <= faults["ci_hi"]
    text = memory_section(df)
    assert "App launches, per launch" in text and "stalls" in text and "refaults" in text
    assert max(len(line) for line in text.splitlines()) <= 72
    report = in_process("report", out, "--no-figures")  # what it says, not its figures
    assert report.returncode == 0 and "App launches, per launch" in report.stdout, report.stderr


def test_a_dir_axis_gets_rows_and_a_base_of_its_own() -> None:
    """memory-large-folios launches from ext4 and XFS: each filesystem's settings are rows of
    their own, compared with that filesystem's fault_around_bytes=4096, never pooled."""
    run = Path(__file__).resolve().parent.parent / "results" / "tcg-memory-large-folios"
    apps = sessions(load_run(run))
    totals = count_totals(apps, ["dir", "fault_around_bytes"], "refault")
    assert len(totals) == 6 and set(totals["sessions"]) == {6}
    for _, part in totals.groupby("dir"):
        base, *others = part.sort_values("fault_around_bytes").to_dict("records")
        assert base["fault_around_bytes"] == 4096 and base["ratio"] != base["ratio"]
        for row in others:
            assert row["ratio"] == pytest.approx(row["rate"] / base["rate"])
    section = memory_section(load_run(run))
    assert "dir=xfs fa=64K" in section and "dir=tmp fa=4K" in section
