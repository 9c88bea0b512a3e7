"""Round three of the hostile pass (issue 31), its I/O half: what a mapper process writes back,
profiles.jsonl read back and resumed, closed or failing standard streams, FIFOs where results
go, a stopped parent, and booting what is not a kernel.

Mapper substitutes run for real: the package is copied to a temp directory and its mapper
program replaced there (by /bin/true, or by a C program built here that writes a hostile
result), never in the checkout. Run directories are real runs made by `faultbench run`.
report and compare run in this process (tests/inprocess.py): what they read is tested,
not their process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from analysis_runs import measured_again
from console import one_line, said
from groups import HOST
from images import require_boot_image
from inprocess import in_process

import faultbench
from faultbench.analysis.frame import load
from faultbench.analysis.stats import median_ci
from faultbench.measurement.rundir.checks import profile_problem

TIMEOUT_S = 120
NATIVE = Path(__file__).resolve().parents[1] / "native"
RESULTS = Path(__file__).resolve().parents[1] / "results"

SMALL = """
description = "round three I/O tests"
repetitions = 3
warmups = 0
seed = 3

[defaults]
backing = "memfd"
size = "1M"

[[matrix]]
pattern = ["seq", "random"]
mappers = [1, 2]
"""


def fb(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
       timeout: float = TIMEOUT_S, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "faultbench", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=timeout, check=False, **kw)


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real native run of SMALL, profiled (one profiled round)."""
    base = tmp_path_factory.mktemp("round3io")
    (base / "small.toml").write_text(SMALL)
    result = fb("run", str(base / "small.toml"), "--out", str(base / "run"), "-q",
                "--profile", "1")
    assert result.returncode == 0, result.stderr
    assert (base / "run" / "profiles.jsonl").stat().st_size > 0
    return base / "run"


def copy_run(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest


def rewrite_lines(path: Path, change: object) -> None:
    """Each JSON line of `path` passed through `change(record)` (which edits it in place)."""
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for record in records:
        change(record)  # type: ignore[operator]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


# ---- N6: what a mapper process writes back is checked --------------------------------------

@pytest.fixture()
def package_copy(tmp_path: Path) -> Path:
    """A copy of the installed package (native module and mapper program included) in which
    a test may replace the mapper program; returns the directory to put on PYTHONPATH."""
    root = tmp_path / "pkg"
    shutil.copytree(Path(faultbench.__file__).parent, root / "faultbench",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return root


def with_mapper(root: Path, program: Path) -> dict[str, str]:
    shutil.copy(program, root / "faultbench" / "measurement" / "_mapper")
    return {**os.environ, "PYTHONPATH": str(root)}


EVIL = r"""
#define _GNU_SOURCE
#define FB_INTERNAL
#include "faultbench.h"
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
int main(int argc, char **argv)
{
	struct stat st;
	int fd = atoi(argv[1]), index = atoi(argv[2]);
	struct fb_mapper_block *b;
	struct fb_result *r;

	(void)argc;
	fstat(fd, &st);
	b = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	r = &b->results[index];
	MODE
	return 0;
}
"""

EVIL_MODES = {
    # status 7 was a KeyError in the worker
    "status": ("r->status = 7;", "unknown status"),
    # pages_touched -5 gave negative ns_per_page and a run that could never finish
    "negative": ("r->status = FB_OK; r->touch_ns = 5; r->pages_touched = -5; "
                 "r->faults_minor = 3; r->faults_major = 0;", "negative count"),
    # more pages than the mapping has
    "pages": ("r->status = FB_OK; r->touch_ns = 5; r->pages_touched = 1 << 30; "
              "r->faults_minor = 3; r->faults_major = 0;", "more pages than the mapping has"),
    # a length the parent used to munmap with, a spec it used to trust, and "ok" with no
    # munmap time (a traceback in measure's description)
    "length": ("b->length = 1ULL << 40; b->spec.mappers = 1000000; r->status = FB_OK; "
               "r->touch_ns = 1; r->pages_touched = 1; r->faults_minor = 1; "
               "r->faults_major = 0;", "without the loop's own counts"),
    # text without its NUL, and a terminal escape
    "text": ("memset(r->fs_type, 'B', sizeof r->fs_type); strcpy(r->error, \"\\x1b[2Jred\");"
             " r->status = FB_ERROR;", "\\x1b[2Jred"),
}


@pytest.mark.parametrize("mode", sorted(EVIL_MODES))
def test_hostile_mapper_results_are_refused(package_copy: Path, tmp_path: Path,
                                            mode: str) -> None:
    code, expected = EVIL_MODES[mode]
    source = tmp_path / "evil.c"
    source.write_text(EVIL.replace("MODE", code))
    program = tmp_path / "evil"
    subprocess.run(["cc", "-std=gnu99", "-I", str(NATIVE), "-o", str(program), str(source)],
                   check=True)
    env = with_mapper(package_copy, program)
    result = fb("measure", "--size", "1M", "--mappers", "2", "--mapper-mode", "concurrent",
                env=env, cwd=tmp_path)
    no_traceback(result)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 and all(": error: " in line for line in lines), result.stdout
    assert all(expected in line for line in lines), result.stdout
    assert "\x1b" not in result.stdout
    # the checkout's mapper program is untouched
    mapper = Path(faultbench.__file__).parent / "measurement" / "_mapper"
    assert mapper.read_bytes() != program.read_bytes()


def test_a_mapper_that_does_not_report_fails_its_sample(package_copy: Path,
                                                          tmp_path: Path) -> None:
    """/bin/true in the mapper program's place: its slot was "ok" with every count null,
    which gave tracebacks in measure, run and report."""
    env = with_mapper(package_copy, Path("/bin/true"))
    result = fb("measure", "--size", "1M", env=env, cwd=tmp_path)
    no_traceback(result)
    assert result.returncode == 1
    assert result.stdout.strip().endswith("error: the mapper did not report"), result.stdout
    (tmp_path / "small.toml").write_text(SMALL)
    result = fb("run", "small.toml", "--out", "r", "-q", env=env, cwd=tmp_path)
    no_traceback(result)
    assert result.returncode == 1, result.stderr
    assert "the mapper did not report" in result.stdout
    samples = [json.loads(line) for line in (tmp_path / "r/samples.jsonl").open()]
    assert samples and all(s["status"] == "error" for s in samples)
    assert json.loads((tmp_path / "r/meta.json").read_text())["finished_utc"]
    result = in_process("report", tmp_path / "r", "--no-figures")
    assert "no valid samples" in one_line(result.stderr) and result.returncode == 2


def test_ok_samples_without_their_metric(small_run: Path, tmp_path: Path) -> None:
    """Samples "ok" with no ns_per_page (or no munmap time) gave tracebacks in report and
    compare; median_ci over nothing gave a pandas error."""
    nulls = copy_run(small_run, tmp_path / "nulls")
    rewrite_lines(nulls / "samples.jsonl", lambda r: r.update(ns_per_page=None))
    result = in_process("report", nulls, "--no-figures")
    assert "no valid samples" in one_line(result.stderr) and result.returncode == 2
    no_munmap = copy_run(small_run, tmp_path / "no_munmap")
    rewrite_lines(no_munmap / "samples.jsonl", lambda r: r.update(munmap_ns=None))
    result = in_process("report", no_munmap, "--no-figures")
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    result = in_process("compare", no_munmap, small_run, "--metric", "munmap_ns_per_page")
    assert one_line(result.stderr) == (
        "faultbench compare: BASE has no valid values of munmap_ns_per_page")
    df = load(no_munmap)
    table = median_ci(df, ["scenario"], "munmap_ns_per_page")
    assert table.empty and {"scenario", "n", "median", "ci_lo", "ci_hi"} <= set(table.columns)


@pytest.mark.parametrize("change", [
    {"launches_done": 0}, {"launches_done": None}, {"vmstat": {}},
], ids=["launches-0", "launches-null", "vmstat-empty"])
def test_tampered_memory_runs(tmp_path: Path, change: dict[str, object]) -> None:
    """A copy of a committed app-launch run with every session's count tampered with: report
    and compare --by fault_around_bytes gave median_ci's pandas error."""
    run = copy_run(RESULTS / "tcg-memory-256M", tmp_path / "memory")
    rewrite_lines(run / "samples.jsonl", lambda r: r.update(change))
    result = in_process("report", run, "--no-figures")
    no_traceback(result)
    assert result.returncode == 0, result.stderr
    result = in_process("compare", f"{run}:4096", f"{run}:65536", "--by", "fault_around_bytes")
    no_traceback(result)
    assert result.returncode in (0, 2), result.stderr


# ---- N4, N5: profiles.jsonl read back ----------------------------------------------------

@pytest.mark.parametrize("lost", ["x", [1], 1e400, -5])
def test_profile_lost_must_be_a_count(small_run: Path, tmp_path: Path, lost: object) -> None:
    run = measured_again(small_run, tmp_path / "lost")  # compare refuses a plain copy
    rewrite_lines(run / "profiles.jsonl", lambda r: r["loop"].update(lost=lost))
    record = json.loads((run / "profiles.jsonl").read_text().splitlines()[0])
    for value in (lost, {"a": 1}, 1.5, True):
        assert "lost is" in (profile_problem({**record, "loop": {**record["loop"],
                                                                  "lost": value}}) or "")
    assert profile_problem({**record, "loop": {**record["loop"], "lost": None}}) is None
    for args in (["report", str(run), "--no-figures"], ["report", str(run), "--json"],
                 ["compare", str(run), str(small_run), "--profile"]):
        result = in_process(*args)
        no_traceback(result)
        assert result.returncode == 0, (args, result.stderr)
    report = (run / "report.txt").read_text()
    lines = len((run / "profiles.jsonl").read_text().splitlines())
    assert f"{lines} line(s) of profiles.jsonl skipped" in report
    assert "-5 lost" not in report and "-10 lost" not in report


def unfinish(run: Path, keep: int) -> None:
    """The run as a kill leaves it: not finished, only its first `keep` sample lines."""
    meta = json.loads((run / "meta.json").read_text())
    meta["finished_utc"] = None
    (run / "meta.json").write_text(json.dumps(meta))
    lines = (run / "samples.jsonl").read_text().splitlines(keepends=True)
    (run / "samples.jsonl").write_text("".join(lines[:keep]))


def test_resume_cuts_a_partial_profile_line(small_run: Path, tmp_path: Path) -> None:
    """A profile line cut short (ENOSPC, SIGKILL) was glued to the next profile on resume,
    which lost both."""
    run = copy_run(small_run, tmp_path / "cut")
    profiles = (run / "profiles.jsonl").read_text().splitlines(keepends=True)
    samples = (run / "samples.jsonl").read_text().splitlines(keepends=True)
    last = json.loads(profiles[-1])
    # drop the last profiled sample and cut its profile line in half
    key = (last["scenario"], last["round"], last["mapper"])
    kept = [s for s in samples if (lambda r: (r["scenario"], r["round"], r["mapper"]))(
        json.loads(s)) != key]
    assert len(kept) == len(samples) - 1
    (run / "samples.jsonl").write_text("".join(kept))
    (run / "profiles.jsonl").write_text("".join(profiles[:-1]) + profiles[-1][:40])
    unfinish(run, len(kept))
    result = fb("run", "--resume", str(run), "-q")
    assert result.returncode == 0, result.stderr
    after = [json.loads(line) for line in (run / "profiles.jsonl").read_text().splitlines()]
    assert len(after) >= len(profiles)
    assert all(profile_problem(record) is None for record in after)
    assert key in {(r["scenario"], r["round"], r["mapper"]) for r in after}
    result = in_process("report", run, "--no-figures")
    assert result.returncode == 0 and "skipped" not in (run / "report.txt").read_text()


# ---- N15: a FIFO where an append goes ----------------------------------------------------

@HOST  # its resume must print one line: beside a knob writer, it warns of it first
@pytest.mark.parametrize("name", ["worker.log", "profiles.jsonl"])
def test_fifo_in_a_run_directory_is_refused(small_run: Path, tmp_path: Path,
                                            name: str) -> None:
    run = copy_run(small_run, tmp_path / "fifo")
    (run / name).unlink()
    os.mkfifo(run / name)
    unfinish(run, 2)
    result = fb("run", "--resume", str(run), "-q", timeout=60)
    line = one_line(result.stderr)
    assert result.returncode == 2 and f"{name} is" in line and "not a regular file" in line, line
    assert said(result.stderr) == [line]


# ---- N7: closed or failing standard streams ----------------------------------------------

def shell(command: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`command` run by sh in tmp_path, FB standing for this Python's faultbench."""
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "FB": f"{sys.executable} -m faultbench"},
                          timeout=TIMEOUT_S, check=False)


@pytest.mark.parametrize("command", ["workloads", "doctor", "measure --size 1M",
                                     "run small.toml --out r -q"])
def test_closed_stdout_is_an_output_error(tmp_path: Path, command: str) -> None:
    (tmp_path / "small.toml").write_text(SMALL)
    result = shell(f"exec >&-; $FB {command}", tmp_path)
    assert "Traceback" not in result.stderr
    # a run may warn first (knobs another program changed meanwhile): the error is last
    line = said(result.stderr)[-1]
    # a run says where its samples are (round 44 m3): everything measured, the run finished
    finished = (" after the run finished: every sample is in r; see them with: faultbench "
                "report r" if command.startswith("run") else "")
    assert result.returncode == 2 and line.endswith("cannot write standard output: it is "
                                                    f"closed{finished}"), result.stderr
    if finished:
        assert json.loads((tmp_path / "r/meta.json").read_text())["finished_utc"]


@pytest.mark.parametrize("redirect", ["2>&-", "2>/dev/full"], ids=["closed", "full"])
def test_a_closed_or_full_stderr_loses_only_progress(tmp_path: Path, redirect: str) -> None:
    """With stderr closed a run died after meta.json; on a full device it measured nothing
    and blamed the results directory."""
    (tmp_path / "small.toml").write_text(SMALL)
    result = shell(f"exec {redirect}; $FB run small.toml --out r", tmp_path)
    assert result.returncode == 0, result.stdout
    samples = (tmp_path / "r/samples.jsonl").read_text().splitlines()
    assert len(samples) == 3 * (2 + 2 * 2)  # rounds x (two 1-mapper + two 2-mapper rows)
    assert json.loads((tmp_path / "r/meta.json").read_text())["finished_utc"]
    # nothing faultbench wrote landed on descriptor 2's file
    assert (tmp_path / "r/meta.json").read_text().startswith("{")


# ---- N13: a parent stopped past the deadline ---------------------------------------------

def test_an_answer_waiting_past_the_deadline_is_taken() -> None:
    """A run stopped (Ctrl-Z) for longer than deadline + grace woke up past the deadline and
    called the sample lost without looking at the answer the worker had given in time. Here
    the parent asks, does not read until the worker has answered, then reads with the
    deadline already gone, as a stopped parent does when it resumes."""
    import selectors
    import time

    from faultbench.measurement.runner import Worker
    from faultbench.measurement.spec import Spec

    worker = Worker()
    spec = Spec(size=1 << 20).normalized()
    try:
        proc = worker._start()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps({"spec": spec.to_dict(), "profile": False}).encode() + b"\n")
        proc.stdin.flush()
        with selectors.DefaultSelector() as selector:  # the answer is there, unread
            selector.register(proc.stdout.fileno(), selectors.EVENT_READ)
            assert selector.select(TIMEOUT_S)
        line = worker._readline(proc.stdout.fileno(), time.monotonic() - 1)
        assert line is not None
        [sample] = json.loads(line)["samples"]
        assert sample["status"] == "ok"
    finally:
        worker.close()


# ---- booting what is not a kernel, and provenance ----------------------------------------

def test_a_file_that_is_not_a_kernel_is_refused_before_qemu(tmp_path: Path) -> None:
    """`measure --kernel /boot/config-*` started QEMU, printed nothing and spun a CPU."""
    short = bytearray(0x208)
    short[0x202:0x206] = b"HdrS"  # the magic, but cut before the header's version pointer
    (tmp_path / "short").write_bytes(bytes(short))
    (tmp_path / "config").write_text("CONFIG_MMU=y\n" * 100)
    for image in (tmp_path / "config", tmp_path / "short"):
        for command in (["measure", "--size", "1M"], ["run", "quick", "--out", "r"]):
            result = fb(*command, "--kernel", str(image), cwd=tmp_path, timeout=30)
            line = one_line(result.stderr)
            assert result.returncode == 2 and "is not a bootable x86 kernel image" in line, line
    assert not (tmp_path / "r").exists()


def test_a_guest_that_does_not_start_is_killed_with_what_it_said(tmp_path: Path) -> None:
    """A real boot given 3 s to reach its command: killed, in one line, at once (not after
    the 1800 s guest timeout); and a booted measure says it is booting first."""
    image = require_boot_image()
    env = {**os.environ, "FAULTBENCH_GUEST_START_TIMEOUT_S": "3"}
    result = fb("measure", "--size", "1M", "--kernel", image, env=env, cwd=tmp_path,
                timeout=60)
    no_traceback(result)
    lines = said(result.stderr)
    assert result.returncode == 2 and len(lines) == 2, result.stderr
    assert lines[0].startswith(f"faultbench measure: booting {image} (")
    assert "command had not started 3 s after QEMU started, so it was killed" in lines[1]
    assert "FAULTBENCH_GUEST_START_TIMEOUT_S" in lines[1]


def test_guest_command_lines_name_no_host_path() -> None:
    from faultbench.measurement.rundir.provenance import machine_paths_out

    cmdline = ("console=ttyS0 virtme_initmount0=tmp/faultbench-guest-x1 "
               "virtme_initmount1=work/kbuild/tree virtme_chdir=work/wt/x quiet "
               "PATH=/tmp/faultbench-guest-x1/init-bin:/usr/sbin:/bin")
    assert machine_paths_out(cmdline) == (
        "console=ttyS0 virtme_initmount0=<mount 0> virtme_initmount1=<mount 1> "
        "virtme_chdir=<cwd> quiet PATH=<scratch>/init-bin:/usr/sbin:/bin")


# ---- memory bounds -----------------------------------------------------------------------

def test_guest_memory_beyond_the_host_is_refused_up_front(tmp_path: Path) -> None:
    image = require_boot_image()
    result = fb("run", "quick", "--out", "r", "--memory", "1P", "--kernel", image,
                cwd=tmp_path, timeout=30)
    line = one_line(result.stderr)
    assert result.returncode == 2 and "1P is more memory than this machine has" in line, line
    assert not (tmp_path / "r").exists()


def test_app_sessions_beyond_memory_and_swap_are_refused(tmp_path: Path) -> None:
    """apps = 64 with 8G heaps each passed on a 23.5 GiB machine: app sessions had no memory
    check at all."""
    (tmp_path / "apps.toml").write_text(
        'repetitions = 1\nwarmups = 0\n[defaults]\nbacking = "file"\nsize = "64M"\n'
        'apps = 64\napp_anon = "8G"\n[[matrix]]\npattern = "random"\n')
    result = fb("run", "apps.toml", "--out", "r", "-q", cwd=tmp_path, timeout=30)
    line = one_line(result.stderr)
    assert result.returncode == 2 and "more than this machine's memory and swap" in line, line
    assert not (tmp_path / "r").exists()
