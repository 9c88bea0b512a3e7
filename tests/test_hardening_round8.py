"""Round eight (a short fresh hostile pass): another user's matplotlibrc in root's working
directory, read-ahead values the kernel would round, `--resume` of a finished booted run, and
a sysctl value the kernel refuses in the middle of a run. Real commands, real files."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from console import one_line
from groups import ALONE, HOST
from images import require_boot_image
from test_hardening_round4_input import fb

from faultbench.commands.run_hints import recorded_command
from faultbench.measurement.knobs.catalog import KnobError, resolve
from faultbench.measurement.knobs.requested import parse_set_options
from faultbench.measurement.run_checks import RunError
from faultbench.measurement.rundir.safefile import SafeDir
from faultbench.measurement.runner import Worker
from faultbench.measurement.spec import Spec

SHIPPED = Path(__file__).parents[1] / "results"


def test_a_matplotlibrc_in_the_working_directory_is_not_read(tmp_path: Path) -> None:
    """One that asks for LaTeX, which this machine lacks, made every figure fail."""
    (tmp_path / "matplotlibrc").write_text("text.usetex: True\n")
    done = subprocess.run([sys.executable, "-m", "faultbench", "report",
                           str(SHIPPED / "native-quick"), "--out", str(tmp_path / "out")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert done.returncode == 0, done.stderr
    assert any(p.suffix == ".svg" for p in (tmp_path / "out" / "figures").iterdir())


@pytest.mark.parametrize("value,used", [("5", "4"), ("130", "128")])
def test_read_ahead_the_kernel_would_round_is_refused(value: str, used: str) -> None:
    if os.sysconf("SC_PAGE_SIZE") != 4096:
        pytest.skip("the values assume 4 KiB pages")
    try:
        resolve("read_ahead_kb", "/")
    except KnobError as exc:
        pytest.skip(f"no read-ahead here: {exc}")
    with pytest.raises(KnobError, match=f"read_ahead_kb={value} is not a multiple of the page "
                                        f"size \\(4 KB\\): the kernel would use {used}"):
        parse_set_options([f"read_ahead_kb={value}"], file_dir="/")
    assert parse_set_options(["read_ahead_kb=128"], file_dir="/") == [("read_ahead_kb",
                                                                       ["128"])]


def test_resume_of_a_finished_booted_run_is_refused_and_changes_nothing(
        tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(SHIPPED / "tcg-icount-profile-kernels", run)
    before = (run / "meta.json").read_bytes()
    done = fb("run", "--resume", run, "-q")
    assert done.returncode == 2, done.stdout
    finished = json.loads(before)["finished_utc"]
    assert one_line(done.stderr) == (
        f"faultbench run: {run} finished at {finished}; nothing to resume (faultbench report "
        f"{run} shows it)")
    assert (run / "meta.json").read_bytes() == before


@ALONE  # it lowers vm.min_free_kbytes, which a test beside it could take for the original
@HOST
@pytest.mark.skipif(os.geteuid() != 0, reason="sysctls need root")
def test_min_free_kbytes_the_kernel_raises_with_a_thp_switch_is_put_back(
        tmp_path: Path) -> None:
    """Switching THP makes the kernel raise vm.min_free_kbytes to khugepaged's recommended
    value; below that value before the run, it reads as before after it."""
    path = Path("/proc/sys/vm/min_free_kbytes")
    found = path.read_text()
    lower = str(max(int(found) // 2, 1024))
    try:
        path.write_text(lower)
        done = fb("measure", "--size", "1M", "--set", "thp.enabled=never")
        assert done.returncode == 0, done.stderr
        assert path.read_text().strip() == lower
    finally:
        path.write_text(found)


def test_a_value_inside_the_range_the_kernel_still_refuses_is_refused_up_front() -> None:
    with pytest.raises(KnobError, match=r"vm.percpu_pagelist_high_fraction=5: the kernel "
                                        r"refuses 1..7; it accepts 0 or at least 8"):
        parse_set_options(["vm.percpu_pagelist_high_fraction=0,5"])
    assert parse_set_options(["vm.percpu_pagelist_high_fraction=0,8"]) == [
        ("vm.percpu_pagelist_high_fraction", ["0", "8"])]


def one_scenario(repetitions: int, size: str = "1M") -> str:
    """A workload of one memfd seq read, `repetitions` rounds and no warm-up."""
    return (f'repetitions = {repetitions}\nwarmups = 0\n[defaults]\nbacking = "memfd"\n'
            f'size = "{size}"\n[[matrix]]\npattern = ["seq"]\n')


@HOST
@pytest.mark.skipif(os.geteuid() != 0, reason="sysctls need root")
def test_a_value_the_kernel_refuses_mid_run_is_skipped_and_the_rest_measured(
        tmp_path: Path) -> None:
    """vm.mmap_rnd_bits below the architecture's minimum passes faultbench's checks (it has
    no range of its own) and the kernel refuses it (EINVAL): that setting is skipped, the
    other measured, and the run finishes; it was a fatal error with a --resume hint that
    failed the same way for ever."""
    path = Path("/proc/sys/vm/mmap_rnd_bits")
    found = path.read_text().strip()
    workload = tmp_path / "w.toml"
    workload.write_text(one_scenario(2))
    out = tmp_path / "run"
    done = fb("run", workload, "--out", out, "-q", "--set", f"vm.mmap_rnd_bits={found},1")
    assert done.returncode == 0, done.stderr
    assert path.read_text().strip() == found
    refused = "vm.mmap_rnd_bits=1"
    assert f"{refused} skipped: the kernel refused it: cannot write '1' to " \
        f"{path}: Invalid argument" in done.stderr
    meta = json.loads((out / "meta.json").read_text())
    assert [s["scenario"] for s in meta["skipped"]] == [
        s["name"] for s in meta["scenarios"] if refused in s["name"]]
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    measured = {r["scenario"] for r in records if r["status"] == "ok"}
    assert len(measured) == 1 and refused not in measured.pop()
    assert sum(r["status"] == "ok" for r in records) == 2  # both rounds of the other
    again = fb("run", "--resume", out, "-q")
    assert again.returncode == 2 and "nothing to resume" in again.stderr


def test_a_worker_killed_mid_run_leaves_an_error_sample_the_run_can_read(
        tmp_path: Path) -> None:
    """The sample of a lost worker was written with page_size 0, which reading the run back
    (pyperf.json at its end, report, --resume) refused: the run ended in an error."""
    workload = tmp_path / "w.toml"
    workload.write_text(one_scenario(40, "8M"))
    out = tmp_path / "run"
    run = subprocess.Popen([sys.executable, "-m", "faultbench", "run", str(workload), "--out",
                            str(out), "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    killed = False
    samples = out / "samples.jsonl"
    while not killed and run.poll() is None:
        if not samples.exists() or not samples.read_text():
            continue  # a worker killed before its first sample: the run cannot start
        for child in Path(f"/proc/{run.pid}/task/{run.pid}/children").read_text().split():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # short-lived
                if b"faultbench.measurement.worker" in Path(
                        f"/proc/{child}/cmdline").read_bytes():
                    os.kill(int(child), signal.SIGKILL)
                    killed = True
    _, stderr = run.communicate(timeout=300)
    assert killed and run.returncode == 0, stderr
    records = [json.loads(line) for line in samples.read_text().splitlines()]
    lost = [r for r in records if r["status"] == "error"]
    assert len(lost) == 1 and re.fullmatch(
        r"the worker (exited before|died during) the sample \(signal SIGKILL\); see "
        r"worker.log", lost[0]["error"])
    assert len(records) == 40
    assert fb("report", out, "--out", tmp_path / "report").returncode == 0


def test_a_worker_that_cannot_start_is_one_line_with_the_last_line_of_its_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """worker.log is opened by descriptor (SafeDir): reading its last line by name gave a
    TypeError in place of the reason."""
    directory = SafeDir.open(tmp_path, create=True)
    with directory.appending("worker.log", binary=True) as log:
        log.write(b"an earlier line\nthe last line\n")
        monkeypatch.setattr(sys, "executable", "/bin/false")  # exits at once, status 1
        with pytest.raises(RunError, match=r"^the measuring worker cannot start: the worker "
                           r"died during the sample \(exit status 1\); see worker.log: the "
                           r"last line$"):
            Worker(log).measure(Spec(), 10.0)
    directory.close()


@pytest.mark.parametrize("variable", ["FAULTBENCH_GUEST_TIMEOUT_S",
                                      "FAULTBENCH_GUEST_START_TIMEOUT_S"])
def test_a_bad_guest_timeout_is_refused_before_a_resume_touches_a_boot(
        tmp_path: Path, variable: str) -> None:
    """FAULTBENCH_GUEST_TIMEOUT_S=0 on --resume left the boot it had just marked running so,
    with nothing running; a bad START timeout failed every boot, twice each."""
    run = tmp_path / "run"
    shutil.copytree(SHIPPED / "tcg-icount-profile-kernels", run)
    meta = json.loads((run / "meta.json").read_text())
    meta["boots"][-1].update(status="failed", reason="the guest printed nothing")
    meta["finished_utc"] = None
    (run / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    before = (run / "meta.json").read_bytes()
    done = subprocess.run([sys.executable, "-m", "faultbench", "run", "--resume", str(run)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, variable: "0"})
    assert done.returncode == 2 and done.stdout == ""
    assert one_line(done.stderr) == (f"faultbench run: {variable}='0': give seconds above 0 "
                                     "and at most 604800")
    assert (run / "meta.json").read_bytes() == before


def test_a_bad_guest_start_timeout_is_refused_before_the_run_directory_is_made(
        tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "faultbench", "run", "quick", "--kernel",
                           require_boot_image(), "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "FAULTBENCH_GUEST_START_TIMEOUT_S": "abc"})
    assert done.returncode == 2 and done.stdout == ""
    assert one_line(done.stderr) == ("faultbench run: FAULTBENCH_GUEST_START_TIMEOUT_S='abc': "
                                     "give seconds above 0 and at most 604800")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("given", [["--ou", "/r/x"], ["--ou=/r/x"], ["--out", "/r/x"]])
def test_the_recorded_command_has_the_results_directory_however_out_was_spelt(
        given: list[str]) -> None:
    """argparse takes `--ou` for `--out`: meta.json recorded the directory itself, and a rerun
    (scripts/reference-results) would have written into the old run."""
    recorded = recorded_command(["run", "quick", *given, "-q"])
    assert recorded[:3] == ["faultbench", "run", "quick"] and recorded[-1] == "-q"
    assert recorded[3:-1] in (["--out", "{out}"], ["--out={out}"])


@pytest.mark.parametrize("option,why", [
    ("vm.watermark_boost_factor=150001", "above 150000 (ten times the kernel's default)"),
    ("vm.admin_reserve_kbytes=999999999", "more than 1/4 of this machine's memory"),
    ("vm.user_reserve_kbytes=999999999", "more than 1/4 of this machine's memory"),
    ("vm.nr_overcommit_hugepages=99999999", "is more than 1/2 of this machine's memory"),
])
def test_sysctls_of_the_whole_machine_left_unbounded_are_bounded(option: str, why: str) -> None:
    """Round seven's re-check found these without a bound of faultbench's own."""
    with pytest.raises(KnobError, match=re.escape(why)):
        parse_set_options([option])
    name = option.partition("=")[0]
    assert parse_set_options([f"{name}=1"]) == [(name, ["1"])]


# ---- round nine, found by the next pass --------------------------------------------------

def _lines(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


SHMEM_THP = Path("/sys/kernel/mm/transparent_hugepage/shmem_enabled")


def other_shmem_thp() -> tuple[str, str]:
    """shmem THP's setting now, and another one that changes a memfd's faults."""
    found = re.search(r"\[(\w+)\]", SHMEM_THP.read_text()).group(1)
    return found, "always" if found != "always" else "never"


def run_while_changed(workload: Path, out: Path, value: str,
                      samples: int) -> subprocess.Popen[str]:
    """`faultbench run WORKLOAD --out OUT -q` started, and shmem THP set to `value` once it
    has written 10 samples, until it wrote `samples` more (or ended). The caller puts the
    setting back, in a `finally`."""
    run = subprocess.Popen([sys.executable, "-m", "faultbench", "run", str(workload), "--out",
                            str(out), "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    written = out / "samples.jsonl"
    while _lines(written) < 10 and run.poll() is None:
        time.sleep(0.01)
    SHMEM_THP.write_text(value)
    changed_at = _lines(written)
    while _lines(written) < changed_at + samples and run.poll() is None:
        time.sleep(0.01)
    return run


@ALONE  # shmem THP switched on changes every memfd's faults for a test beside it
@HOST
@pytest.mark.skipif(os.geteuid() != 0, reason="THP settings need root")
def test_a_run_without_knob_axes_marks_samples_measured_after_someone_changed_thp(
        tmp_path: Path) -> None:
    """R9-5: only knob axes were read again after each sample; a run with none recorded
    samples measured with another faultbench's THP setting as if nothing had changed."""
    found, other = other_shmem_thp()
    workload = tmp_path / "w.toml"
    workload.write_text(one_scenario(1000))  # interrupted once it has shown the drift
    out = tmp_path / "run"
    samples = out / "samples.jsonl"
    try:
        run = run_while_changed(workload, out, other, 10)
        run.send_signal(signal.SIGINT)
        _, stderr = run.communicate(timeout=300)
    finally:
        SHMEM_THP.write_text(found)
    assert run.returncode == 130, stderr
    records = [json.loads(line) for line in samples.read_text().splitlines()]
    marked = [r for r in records if "knob_drift" in r]
    assert marked and all(r["knob_drift"] == {"thp.shmem_enabled": [found, other]}
                          for r in marked)
    assert all("knob_drift" not in r for r in records[:10])
    assert "thp.shmem_enabled: " in stderr and "knob_drift" in stderr
