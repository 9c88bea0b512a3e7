"""Round thirty-four: a booted run's guest printed onto root's terminal whatever it liked
(escape sequences, any volume), and onto `run`'s stdout beside the host's summary (R34-1);
what a guest returns (its provenance in meta.json, its worker log) was kept in a run
directory every user could read, and it can read any of the host's files (R34-3); a low
limit on open files ended `run` in a traceback (R34-2; lower, R35-1); a run killed with its
watchdog left its guest's scratch directory for ever (R34-5); a resume after a THP setting
changed pooled both settings in every row (R34-6); and three minor ones. Round 3's journal
test covers R34-4 (a command that sets no knob, run after a killed knob writer, says it
measured at the knobs left)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from analysis_runs import killed_kernels_run, measured_again
from groups import ALONE, HOST, KERNELS_RUN
from images import require_boot_image

from faultbench.measurement.booted import held, vngproc
from faultbench.measurement.booted.shown import SHOWN_MAX
from faultbench.measurement.measure import meminfo

FAULTBENCH = [sys.executable, "-m", "faultbench"]


def _shown(tmp_path: Path, script: str, capfd: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """What the host shows of a guest (its pipes: a shell running `script`), the guest's
    stdout sent to our stderr as a booted run's is."""
    started = tmp_path / "started"
    started.touch()
    proc = subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        vngproc.copy_until_exit(proc, time.monotonic() + 60, vngproc.GuestError("late"),
                               str(started), threading.Event(), sys.stderr)
    finally:
        proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    return capfd.readouterr()


def test_a_guests_output_reaches_the_terminal_escaped_and_never_on_runs_stdout(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    out, err = _shown(tmp_path, r"printf '\033]0;PWN\007\033[2J\033[31mRED\r\n'; "
                      r"printf 'B\033[5mLINK \233\061m\ttab\n' >&2", capfd)
    assert out == ""
    assert "\x1b" not in err and "\x07" not in err and "\x9b" not in err and "\r" not in err
    assert "\\x1b]0;PWN\\x07\\x1b[2J\\x1b[31mRED\n" in err  # a console line's \r\n: a line
    assert "B\\x1b[5mLINK \\x9b1m\ttab\n" in err  # no UTF-8: as \xNN


def test_a_guest_that_prints_on_and_on_is_shown_up_to_a_bound(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    _, err = _shown(tmp_path, f"head -c {SHOWN_MAX + (1 << 20)} /dev/zero | tr '\\0' a", capfd)
    assert len(err) < SHOWN_MAX + 200
    assert err.endswith(f"[the guest printed more than {SHOWN_MAX >> 20} MiB here: the rest "
                        "is not shown]\n")


@KERNELS_RUN
@pytest.mark.skipif(os.geteuid() != 0, reason="other users' reach is root's problem")
def test_a_booted_runs_directory_is_out_of_other_users_reach(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """Its guest could have put a copy of /etc/shadow into its provenance: the guest's record
    is in meta.json, its log in worker.log (a real booted run, resumed after a kill)."""
    run = killed_kernels_run(tmp_path_factory).run
    assert run.stat().st_mode & 0o777 == 0o700
    other = subprocess.run(["cat", str(run / "meta.json")], capture_output=True, text=True,
                           user=65534, group=65534, check=False)
    assert other.returncode != 0 and "Permission denied" in other.stderr


def test_a_low_limit_on_open_files_ends_a_run_in_one_line(tmp_path: Path) -> None:
    """R34-2 (the worker's pipes, at 8-13 here) and R35-1 (provenance's scandir, at 6-7):
    at every limit a run either measures or says in one line what it could not open."""
    workload = tmp_path / "w.toml"
    workload.write_text('repetitions = 1\n[[matrix]]\nbacking = "memfd"\nsize = "1M"\n')
    said = set()
    for limit in range(5, 17):
        def few_files(limit: int = limit) -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
        done = subprocess.run([*FAULTBENCH, "run", str(workload), "--out",
                               str(tmp_path / f"r{limit}"), "-q"], capture_output=True,
                              text=True, preexec_fn=few_files, timeout=120, check=False)
        if done.returncode == 0:
            continue
        last = done.stderr.splitlines()[-1]
        assert done.returncode == 2 and "Traceback" not in done.stderr, (limit, done.stderr)
        assert last.startswith("faultbench run: cannot ") and "Too many open files" in last
        said.add(last.split(":")[1])
        if "measuring worker" in last:  # R38 minor: the run it leaves is named, to resume
            left = tmp_path / f"r{limit}"
            assert f"continue with: faultbench run --resume {left}" in last, last
    assert {" cannot start the measuring worker", " cannot read this machine's provenance"} \
        <= said, said
    resumed = subprocess.run([*FAULTBENCH, "run", "--resume", str(left), "-q"],
                             capture_output=True, text=True, timeout=120, check=False)
    assert resumed.returncode == 0, resumed.stderr


def test_a_private_directory_no_live_process_holds_is_removed_by_the_next_boot(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """R34-5: a run killed together with its watchdog (its whole cgroup) left its guest's
    scratch directory, GiB-sized disks in it, for ever. Here its maker is SIGKILLed."""
    maker = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from faultbench.measurement.booted.held import make_held\n"
         f"print(make_held('faultbench-guest-', {str(tmp_path)!r})[0], flush=True)\n"
         "time.sleep(600)"], stdout=subprocess.PIPE, text=True)
    assert maker.stdout is not None
    try:
        left = Path(maker.stdout.readline().strip())
        (left / "shared").mkdir()
        (left / "shared" / "scratch-ext4.img").write_bytes(b"disk")
        live, fd = held.make_held("faultbench-kernel-", str(tmp_path))  # held here
        unmarked = Path(tempfile.mkdtemp(prefix="faultbench-guest-", dir=tmp_path))  # older
        capfd.readouterr()
        held.remove_left(str(tmp_path))
        assert left.is_dir() and Path(live).is_dir()  # both held
        maker.kill()
        maker.wait()
        held.remove_left(str(tmp_path))
        assert not left.exists() and Path(live).is_dir() and unmarked.is_dir()
        assert capfd.readouterr().err == (
            f"faultbench: removed {left}, which an earlier boot left (killed with its "
            "watchdog, or its removal cut short)\n")
        os.close(fd)
    finally:
        maker.kill()
        maker.wait()
        maker.stdout.close()


def _run(tmp_path: Path, name: str, matrix: str, *options: str) -> subprocess.CompletedProcess[str]:
    workload = tmp_path / f"{name}.toml"
    workload.write_text(f"repetitions = 2\n[[matrix]]\nsize = \"1M\"\n{matrix}")
    return subprocess.run([*FAULTBENCH, "run", str(workload), "--out", str(tmp_path / name),
                           "-q", *options], capture_output=True, text=True, timeout=300,
                          check=False)


@pytest.mark.skipif(meminfo().get("HugePages_Free", 0) > 0, reason="huge pages reserved here")
def test_a_run_says_which_scenario_the_kernel_refused(tmp_path: Path) -> None:
    """Minor: with -q it said nothing, and its summary's one row was labelled `all`."""
    done = _run(tmp_path, "huge", 'backing = ["hugetlb", "memfd"]\n')
    assert done.returncode == 0, done.stderr
    assert ("faultbench run: 1 scenario(s) skipped (`skipped` in meta.json); the first: "
            "hugetlb,1M,shared,read,warm,seq,uffd=none: the kernel refused it: hugetlb needs "
            "1M of free huge pages") in done.stderr


def test_two_runs_compared_at_a_value_each_are_named(tmp_path: Path) -> None:
    """Minor: `compare A:V1 B:V2 --by FIELD` titled its table with the values alone."""
    for name in ("a", "b"):
        assert _run(tmp_path, name, 'backing = "memfd"\npattern = ["seq", "sparse"]\n'
                    ).returncode == 0
    done = subprocess.run([*FAULTBENCH, "compare", "a:seq", "b:sparse", "--by", "pattern"],
                          capture_output=True, text=True, timeout=300, check=False,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "base a pattern=seq, new b pattern=sparse" in " ".join(done.stdout.split())


def test_guests_at_once_that_would_not_fit_in_memory_are_refused_before_anything(
        tmp_path: Path) -> None:
    """Minor: an explicit --jobs was never checked against memory (the default is fitted to
    it): two guests of 20G started on a 23.5 GiB machine."""
    image = require_boot_image()
    each = meminfo()["MemTotal"] * 6 // 10 >> 10  # one fits, two do not
    done = _run(tmp_path, "jobs", 'backing = "memfd"\n', "--kernel", image, "--memory",
                f"{each}M", "--boots", "2", "--jobs", "2")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"faultbench run: --jobs 2: 2 guests of {each}M (+ 256M each "
                                  "for QEMU) need ")
    assert not (tmp_path / "jobs").exists()


@ALONE  # it changes thp.defrag, which every native run beside it watches
@HOST
@pytest.mark.skipif(os.geteuid() != 0, reason="THP settings need root")
def test_a_resume_where_a_thp_setting_changed_is_refused(tmp_path: Path) -> None:
    """R34-6: the resume measured the rest at the new setting, pooled with the old in every
    row, under the setting meta.json records."""
    workload = tmp_path / "w.toml"
    workload.write_text('repetitions = 200\n[[matrix]]\nbacking = "memfd"\nsize = "8M"\n')
    run, defrag = tmp_path / "run", Path("/sys/kernel/mm/transparent_hugepage/defrag")
    proc = subprocess.Popen([*FAULTBENCH, "run", str(workload), "--out", str(run), "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not ((run / "samples.jsonl").exists()
               and (run / "samples.jsonl").read_text().count("\n") >= 2):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.terminate()
    assert proc.wait() == 143
    choices = defrag.read_text().split()
    then = next(c for c in choices if c.startswith("["))[1:-1]
    other = next(c for c in choices if not c.startswith("["))
    try:
        defrag.write_text(other)
        done = subprocess.run([*FAULTBENCH, "run", "--resume", str(run), "-q"],
                              capture_output=True, text=True, timeout=300, check=False)
    finally:
        defrag.write_text(then)
    assert done.returncode == 2 and done.stderr.endswith(
        f"faultbench run: {run} was measured with thp.defrag {then} then, {other} now: resuming "
        "now would pool samples of both settings under the first; put it back (`faultbench "
        "restore`, if a killed run left it) or start a new run\n"), done.stderr


def test_two_runs_at_different_thp_settings_are_said_to_be(tmp_path: Path) -> None:
    """R34-4: a run after a killed run's leftover (THP on for memfd) against one without:
    seq -89.8%, and no line said why. Here the second run's provenance says it."""
    assert _run(tmp_path, "a", 'backing = "memfd"\n').returncode == 0
    other = measured_again(tmp_path / "a", tmp_path / "b")
    meta = json.loads((other / "meta.json").read_text())
    then = meta["provenance"]["thp"]["thp.shmem_enabled"]
    meta["provenance"]["thp"]["thp.shmem_enabled"] = "always" if then != "always" else "never"
    (other / "meta.json").write_text(json.dumps(meta))
    done = subprocess.run([*FAULTBENCH, "compare", "a", "b"], capture_output=True, text=True,
                          timeout=300, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    now = meta["provenance"]["thp"]["thp.shmem_enabled"]
    assert ("BASE and NEW ran at different kernel settings that no scenario of theirs set "
            f"(their provenance): thp.shmem_enabled {then} vs {now}; part of any change here "
            "may be that.") in " ".join(done.stdout.split())
