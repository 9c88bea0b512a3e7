"""Round six, runs and their directories: a SIGTERM that lands after a run sealed its
meta.json says the run finished (not "continue with --resume", which would find nothing to
resume); merge refuses a shard's sample labelled with a kernel its meta.json does not list.
Real commands."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from analysis_runs import make_run
from console import one_line, said
from test_hardening_round4_input import SMALL, fb
from test_hardening_round5_merge import _copy, merge_refused

ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}


def test_sigterm_after_the_run_finished_says_it_finished(tmp_path: Path) -> None:
    workload = tmp_path / "w.toml"
    workload.write_text('repetitions = 1\nwarmups = 0\n[defaults]\nsize = "1M"\n'
                        '[[matrix]]\npattern = "seq"\n')
    out = tmp_path / "r"
    for _ in range(5):  # the window (the report's imports) is a second or so: retried if missed
        run = subprocess.Popen([sys.executable, "-m", "faultbench", "run", workload, "--out",
                                out, "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=ENV)
        while run.poll() is None:
            try:
                sealed = json.loads((out / "meta.json").read_text()).get("finished_utc")
            except (OSError, ValueError):
                sealed = None
            if sealed:
                run.send_signal(signal.SIGTERM)
                break
            time.sleep(0.005)
        _, stderr = run.communicate(timeout=120)
        if run.returncode == 128 + signal.SIGTERM:
            break
        subprocess.run(["rm", "-rf", out], check=True)
    else:
        pytest.skip("the SIGTERM never landed between the sealing and the exit")
    assert "Traceback" not in stderr
    assert said(stderr)[-1] == (f"faultbench run: interrupted after the run finished: every "
                                f"sample is in {out}; see them with: faultbench report {out}")


def _relabel(src: Path, dst: Path, kernel: str, host: str | None = None) -> Path:
    """A copy of the run at `src` whose first sample says it was measured on `kernel`."""
    shutil.copytree(src, dst)
    lines = (dst / "samples.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["kernel"] = kernel
    (dst / "samples.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    if host is not None:
        meta = json.loads((dst / "meta.json").read_text())
        meta["provenance"]["host"]["name"] = host
        (dst / "meta.json").write_text(json.dumps(meta))
    return dst


def test_merge_refuses_a_sample_of_a_kernel_its_part_does_not_list(tmp_path: Path) -> None:
    part = make_run(tmp_path, "here", SMALL)
    other = _relabel(part, tmp_path / "there", "b", host="other-machine")
    done = fb("merge", part, other, "--out", tmp_path / "out")
    assert done.returncode == 2, done.stdout
    assert one_line(done.stderr) == (f"faultbench merge: {other}/samples.jsonl: has samples of "
                                     "kernel 'b', which its meta.json does not list: the two "
                                     "files are from different runs")
    assert not (tmp_path / "out").exists()


def test_report_refuses_a_booted_sample_of_a_kernel_the_run_does_not_list(
        tmp_path: Path) -> None:
    run = _relabel(Path(__file__).parents[1] / "results" / "icount-aa", tmp_path / "r", "c")
    done = fb("report", run, "--no-figures")
    assert done.returncode == 2, done.stdout
    assert one_line(done.stderr).endswith(f"{run}/samples.jsonl: has samples of kernel 'c', "
                                          "which its meta.json does not list: the two files "
                                          "are from different runs")


@pytest.mark.skipif(os.geteuid() != 0, reason="runs restore as nobody")
def test_restore_as_another_user_says_it_needs_root(tmp_path: Path) -> None:
    journal = Path(tempfile.mkdtemp(prefix="faultbench-r6-")) / "journal.json"
    try:
        journal.parent.chmod(0o755)
        journal.write_text("{}")
        journal.chmod(0o600)
        done = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3",
             "-m", "faultbench", "restore", "--journal", journal], capture_output=True,
            text=True, timeout=60, check=False, env={**ENV, "PATH": "/usr/bin:/bin"})
    finally:
        shutil.rmtree(journal.parent)
    assert done.returncode == 2, done.stdout
    assert one_line(done.stderr) == ("faultbench restore: needs root: what a run left changed "
                                     "(knobs, mounts) is root's to put back; run it as root")


@pytest.mark.parametrize("kind", ["device", "fifo"])
def test_a_kernel_that_is_not_a_regular_file_is_called_what_it_is(
        tmp_path: Path, kind: str) -> None:
    kernel = Path("/dev/zero")
    what = "a character device"
    if kind == "fifo":
        kernel, what = tmp_path / "fifo", "a FIFO"
        os.mkfifo(kernel)
    workload = tmp_path / "w.toml"
    workload.write_text('repetitions = 1\n[defaults]\nsize = "1M"\n[[matrix]]\npattern = "seq"\n')
    done = fb("run", workload, "--kernel", kernel, "--out", tmp_path / "r")
    assert done.returncode == 2, done.stdout
    assert one_line(done.stderr) == (f"faultbench run: --kernel {kernel}: {what}, not a "
                                     "regular file")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("directory,fs", [("/proc", "proc"), ("/sys/kernel", "sysfs")])
def test_a_dir_on_a_pseudo_filesystem_is_refused_as_one(directory: str, fs: str) -> None:
    done = fb("measure", "--backing", "file", "--dir", directory, "--size", "1M")
    assert done.returncode == 2, done.stdout
    assert one_line(done.stderr) == (f"faultbench measure: dir {directory} is on {fs}, not a "
                                     "filesystem faultbench can write a file in: give a "
                                     "directory on a disk or a tmpfs")


@pytest.mark.skipif(os.geteuid() != 0, reason="resumes root's run as nobody")
def test_resuming_roots_run_as_another_user_says_it_is_roots(tmp_path: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="faultbench-r6-"))
    try:
        base.chmod(0o755)
        run = base / "run"
        shutil.copytree(Path(__file__).parents[1] / "results" / "native-quick", run)
        run.chmod(0o755)
        done = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3",
             "-m", "faultbench", "run", "--resume", run], capture_output=True, text=True,
            timeout=60, check=False, env={**ENV, "PATH": "/usr/bin:/bin"})
    finally:
        shutil.rmtree(base)
    assert done.returncode == 2, done.stdout
    assert one_line(done.stderr) == (f"faultbench run: cannot lock {run}/.lock: Permission "
                                     "denied (the directory is root's: run this as root)")


@pytest.mark.parametrize("command", ["workloads", "run"])
def test_a_workload_file_over_a_mebibyte_is_refused_unread(tmp_path: Path, command: str) -> None:
    big = tmp_path / "big.toml"
    with big.open("wb") as stream:  # sparse: the test costs no disk
        stream.truncate(64 << 20)
    done = fb(command, big, *(["--out", tmp_path / "r"] if command == "run" else []))
    assert done.returncode == 2, done.stdout
    assert one_line(done.stderr) == (f"faultbench {command}: {big}: over 1,048,576 bytes, too "
                                     "large to be a workload")


@pytest.mark.parametrize("host", ["a,b=c", "h:1"])
def test_a_machine_name_that_would_split_is_refused(tmp_path: Path, host: str) -> None:
    part = make_run(tmp_path, "here", SMALL)
    other = _copy(part, tmp_path / "there", host)
    assert merge_refused(part, other, out=tmp_path / "out") == (
        f"faultbench merge: {other} is from machine {host!r}, whose name has a ',', ':' or "
        "'=': it cannot name a level of the `machine` factor; merge runs of hosts whose names "
        "have none")
