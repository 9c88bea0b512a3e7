"""Issue 22, hardening round two: paths above the results directory, journals from other
users, concurrent writers, the last tracebacks, wrong exit statuses and words, leftovers.

Real runs (memfd, 1 MiB), real files planted as `nobody`, a real sysctl (vm.swappiness) for
the journal cases, real devices (/dev/full, /dev/zero), a read-only tmpfs for a run whose
every sample fails. Each test failed on the code before the fix.
"""

from __future__ import annotations

import json
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from console import said
from groups import HOST
from images import require_boot_image
from inprocess import ANALYSIS, in_process

from faultbench.measurement.rundir.results import sample_key

FAULTBENCH = [sys.executable, "-m", "faultbench"]
SWAPPINESS = Path("/proc/sys/vm/swappiness")
NOBODY = 65534

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="root's problems, planted by nobody")

TINY = """
description = "round two: tiny"
repetitions = {reps}
warmups = 0
seed = 1
[defaults]
backing = "memfd"
size = "1M"
[[matrix]]
pattern = {patterns}
"""


def workload(where: Path, reps: int = 2, patterns: str = '["seq", "random"]',
             extra: str = "", name: str = "tiny.toml") -> Path:
    path = where / name
    path.write_text(TINY.format(reps=reps, patterns=patterns) + extra)
    return path


def cli(*argv: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: float = 120, stdout: int | None = None) -> subprocess.CompletedProcess[str]:
    """The command in a subprocess; tried again while another test (of any worktree) holds
    the machine's knob lock."""
    for _ in range(40):
        result = subprocess.run(
            [*FAULTBENCH, *map(str, argv)], text=True, timeout=timeout, cwd=cwd,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), **(env or {})},
            stdout=stdout if stdout is not None else subprocess.PIPE, stderr=subprocess.PIPE,
            # a bug that reads /dev/zero whole ends in MemoryError, not in a swapping machine
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30)))
        if "is changing kernel knobs; wait" not in result.stderr:
            break
        time.sleep(3)
    return result


def refused(result: subprocess.CompletedProcess[str], command: str, *words: str) -> str:
    """The one line of a refusal, checked: exit 2, no traceback, containing `words`."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = said(result.stderr)
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith(f"faultbench {command}: "), lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def as_nobody(*argv: str) -> None:
    subprocess.run(list(argv), check=True, user=NOBODY, group=NOBODY)


@pytest.fixture
def shared() -> Iterator[Path]:
    """A root-owned directory others can reach (pytest's tmp_path is root-only)."""
    base = Path(tempfile.mkdtemp(prefix="faultbench-round2-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def made_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run (2 scenarios x 2 rounds), copied by the tests that change it."""
    tmp = tmp_path_factory.mktemp("round2")
    done = cli("run", workload(tmp), "--out", tmp / "run", "-q")
    assert done.returncode == 0, done.stderr
    return tmp / "run"


def copy_run(run: Path, where: Path, name: str = "run") -> Path:
    shutil.copytree(run, where / name)
    return where / name


@pytest.fixture
def swappiness() -> Iterator[str]:
    """vm.swappiness now; put back whatever the code under test did."""
    before = SWAPPINESS.read_text().strip()
    yield before
    SWAPPINESS.write_text(before)


# 1. report reaches figures/ through the directory it opened; parents others can change


def test_report_writes_through_the_directory_it_opened_not_its_path(
    made_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run directory is renamed away and a link put in its place once the report has
    started (as `nobody` did 2 s after report.txt appeared): report.txt and figures/ still
    go into the directory that was opened, nothing into the link's target."""
    from faultbench.analysis import report

    run = copy_run(made_run, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    real_text = report.report_text

    def swap_then_text(*args: object, **kwargs: object) -> str:
        run.rename(tmp_path / "moved")
        run.symlink_to(elsewhere)
        return real_text(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(report, "report_text", swap_then_text)
    _, figures = report.write_report(run)
    assert list(elsewhere.iterdir()) == []
    moved = tmp_path / "moved"
    assert (moved / "report.txt").is_file()
    assert figures and all((moved / "figures" / p.name).is_file() for p in figures)


@needs_root
@pytest.mark.parametrize("parent", ["world-writable", "nobody's"])
def test_a_results_directory_whose_parent_others_can_change_is_refused(
    made_run: Path, shared: Path, parent: str
) -> None:
    public = shared / "public"
    public.mkdir()
    if parent == "nobody's":
        os.chown(public, NOBODY, NOBODY)
        who = "owned by uid 65534 (nobody)"
    else:
        public.chmod(0o777)
        who = "writable by other users"
    run = copy_run(made_run, public)
    refused(in_process("report", run, "--no-figures"), "report", who)
    assert not (run / "report.txt").exists()
    refused(cli("run", workload(shared), "--out", public / "new" / "run", "-q"), "run", who)
    assert sorted(p.name for p in public.iterdir()) == ["run"]  # nothing made there


@needs_root
def test_a_sticky_parent_like_tmp_is_accepted(made_run: Path, shared: Path) -> None:
    """In a sticky directory only root may rename root's run directory: no refusal."""
    sticky = shared / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    done = in_process("report", copy_run(made_run, sticky), "--no-figures")
    assert done.returncode == 0, done.stderr


# 2. the default output path follows no link someone else planted


@needs_root
def test_the_default_output_path_follows_no_link_nobody_planted(shared: Path) -> None:
    cwd = shared / "cwd"
    cwd.mkdir()
    os.chown(cwd, NOBODY, NOBODY)
    target = shared / "target"
    target.mkdir()
    as_nobody("ln", "-s", str(target), str(cwd / "results"))
    line = refused(cli("run", workload(shared), "-q", cwd=cwd), "run", "results is a symbolic "
                   "link owned by uid 65534 (nobody)")
    assert "root does not follow it" in line
    assert list(target.iterdir()) == []


@needs_root
def test_a_link_root_made_in_its_own_directory_is_followed(shared: Path) -> None:
    from faultbench.measurement.rundir.safefile import SafeDir

    target = shared / "target"
    target.mkdir()
    (shared / "results").symlink_to(target)
    SafeDir.open(shared / "results" / "run", create=True).close()
    assert [p.name for p in target.iterdir()] == ["run"]


# 3 and 5. journals: another user's file, FIFOs and devices, a size cap


def journal_text(original: str) -> str:
    return json.dumps({"format": "faultbench-journal/1", "pid": 1, "pid_start": "0",
                       "unmount": [], "knobs": [{"name": "vm.swappiness",
                                                 "path": str(SWAPPINESS),
                                                 "original": original}]})


@HOST
@needs_root
def test_restore_refuses_a_journal_another_user_owns(shared: Path, swappiness: str) -> None:
    other = "61" if swappiness != "61" else "62"
    (shared / "nobodys").mkdir()
    os.chown(shared / "nobodys", NOBODY, NOBODY)
    path = shared / "nobodys" / "journal.json"
    as_nobody("sh", "-c", f"printf '%s' {shlex.quote(journal_text(other))} > {path}")
    refused(cli("restore", "--journal", path), "restore", "owned by uid 65534 (nobody)",
            "nothing was restored")
    assert SWAPPINESS.read_text().strip() == swappiness
    assert path.exists()  # someone else's file is not deleted either


@HOST
@needs_root
@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "/dev/full"])
@pytest.mark.parametrize("command", ["measure", "restore", "run"])
def test_a_journal_that_is_a_fifo_or_device_is_refused_before_it_is_read(
    tmp_path: Path, swappiness: str, kind: str, command: str
) -> None:
    """A FIFO blocked the open with signals deferred (SIGINT ignored, the knob lock held);
    /dev/zero grew to MemoryError. Now: one line at once, before anything is changed."""
    path = kind
    if kind == "fifo":
        path = str(tmp_path / "fifo")
        os.mkfifo(path)
    argv = {"measure": ["measure", "--size", "1M", "--set", f"vm.swappiness={swappiness}"],
            "restore": ["restore", "--journal", path],
            "run": ["run", workload(tmp_path, reps=1, extra='[knobs]\n"vm.swappiness" = '
                                     f'[{swappiness}]\n'), "--out", tmp_path / "out", "-q"]}
    result = cli(*argv[command], env={"FAULTBENCH_JOURNAL": path}, timeout=60)
    refused(result, command, "is not a regular file")
    assert not (tmp_path / "out").exists()


@needs_root
def test_a_journal_over_the_size_cap_is_not_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "journal.json"
    path.write_text(journal_text("60")[:-1] + ", \"pad\": \"" + "x" * (2 << 20) + "\"}")
    refused(cli("restore", "--journal", path), "restore", "over 1,048,576 bytes")


@needs_root
def test_restore_does_not_advise_deleting_a_file_that_is_no_journal() -> None:
    line = refused(cli("restore", "--journal", "/etc/passwd"), "restore",
                   "is not a faultbench journal")
    assert "delete" not in line


@HOST
@needs_root
def test_directories_made_for_the_journal_are_removed(tmp_path: Path, swappiness: str) -> None:
    journal = tmp_path / "a" / "b" / "journal.json"
    done = cli("measure", "--size", "1M", "--warmups", "0", "--set",
               f"vm.swappiness={swappiness}", env={"FAULTBENCH_JOURNAL": str(journal)})
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.iterdir()) == []


@HOST
@needs_root
def test_an_unwritable_journal_path_leaves_no_results_directory(
    tmp_path: Path, swappiness: str
) -> None:
    knob = f'[knobs]\n"vm.swappiness" = [{swappiness}]\n'
    out = tmp_path / "out"
    for _ in range(2):  # and the same --out is not refused the second time for being there
        refused(cli("run", workload(tmp_path, reps=1, extra=knob), "--out", out, "-q",
                    env={"FAULTBENCH_JOURNAL": "/proc/self/nowhere/journal.json"}), "run",
                "cannot write the restore journal")
        assert not out.exists()


# 4. one writer per results directory


def test_a_concurrent_resume_is_refused_naming_the_writer(tmp_path: Path) -> None:
    out = tmp_path / "run"
    # long enough to be interrupted after the checks below: 60 rounds once finished first
    first = subprocess.Popen([*FAULTBENCH, "run", workload(tmp_path, reps=1000), "--out",
                              out, "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out / "samples.jsonl").exists():
            assert first.poll() is None and time.monotonic() < deadline, "run did not start"
            time.sleep(0.05)
        line = refused(cli("run", "--resume", out, "-q"), "run", "being written by another",
                       f"pid {first.pid}", "run ", "since 20")
        assert "wait for it to finish" in line
        refused(cli("run", workload(tmp_path, reps=60), "--out", out, "-q"), "run",
                "already exists")
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=60)
    keys = [sample_key(json.loads(line))
            for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(keys) == len(set(keys))
    # the lock went with the writer: a resume measures (interrupted once it has, rather than
    # left to measure the ~1000 rounds still to go) and leaves no lock behind it either
    resumed = subprocess.Popen([*FAULTBENCH, "run", "--resume", out, "-q"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while (out / "samples.jsonl").read_text().count("\n") <= len(keys):
            assert resumed.poll() is None and time.monotonic() < deadline, "none measured"
            time.sleep(0.05)
    finally:
        resumed.send_signal(signal.SIGINT)
        _, err = resumed.communicate(timeout=60)
    lines = said(err)
    assert len(lines) == 1 and lines[0].startswith("faultbench run: interrupted;"), err
    assert resumed.returncode == 128 + signal.SIGINT
    keys = [sample_key(json.loads(line))
            for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(keys) == len(set(keys))
    assert not any(p.name.startswith(".") for p in out.iterdir())


# 6. tracebacks


@pytest.mark.parametrize("nesting", ["arrays", "inline-tables", "dotted-knob"])
@pytest.mark.parametrize("command", ["workloads", "run"])
def test_a_toml_nested_3000_deep_is_one_line(tmp_path: Path, nesting: str,
                                            command: str) -> None:
    deep = {"arrays": f"x = {'[' * 3000}{']' * 3000}\n",
            "inline-tables": f"x = {'{a = ' * 3000}1{'}' * 3000}\n",
            "dotted-knob": "[matrix.knobs]\n" + ".".join(["a"] * 3000) + " = 1\n"}[nesting]
    path = tmp_path / "deep.toml"
    path.write_text(deep if nesting != "dotted-knob" else
                    TINY.format(reps=1, patterns='["seq"]').replace("[[matrix]]\n", "") +
                    "[[matrix]]\n" + deep)
    argv = [path] if command == "workloads" else [path, "--out", tmp_path / "out"]
    refused(cli(command, *argv), command)
    assert not (tmp_path / "out").exists()


LONG = "n" * 300


@pytest.mark.parametrize("argv", [
    ["run", "{tmp}/w.toml", "--out", f"{{tmp}}/{LONG}"],
    ["run", "--resume", f"{{tmp}}/{LONG}"],
    ["report", "--json", f"{{tmp}}/{LONG}"],
    ["workloads", f"{{tmp}}/{LONG}.toml"],
    ["measure", "--backing", "tmpfs", "--dir", f"{{tmp}}/{LONG}"],
    ["measure", "--backing", "file", "--dir", f"{{tmp}}/{LONG}"],
], ids=["run-out", "run-resume", "report-json", "workloads", "measure-tmpfs", "measure-file"])
def test_a_name_over_255_bytes_is_one_line(tmp_path: Path, argv: list[str]) -> None:
    workload(tmp_path, name="w.toml")
    argv = [a.format(tmp=tmp_path) for a in argv]
    refused((in_process if argv[0] in ANALYSIS else cli)(*argv), argv[0], "File name too long")


@pytest.mark.parametrize("argv", [
    ["workloads"], ["compare", "{run}:seq", "{run}:random", "--by", "pattern"],
    ["report", "--no-figures", "{run}"],
    ["report", "--json", "{run}"], ["measure", "--size", "1M"], ["doctor"],
    # beside a knob writer's test, restore refuses to act for it: host (tests/groups.py)
    pytest.param(["restore"], marks=HOST),
], ids=lambda argv: "-".join(a for a in argv if "{" not in a))
def test_stdout_on_a_full_device_is_one_line(made_run: Path, tmp_path: Path,
                                             argv: list[str]) -> None:
    run = copy_run(made_run, tmp_path)
    argv = [a.format(run=run) for a in argv]
    with open("/dev/full", "w") as full:
        result = in_process(*argv, stdout=full) if argv[0] in ANALYSIS else cli(
            *argv, stdout=full.fileno(), env={"FAULTBENCH_JOURNAL": str(tmp_path / "j.json")})
    refused(result, argv[0], "cannot write standard output: No space left on device")


def test_a_finished_run_on_a_full_stdout_is_not_called_resumable(tmp_path: Path) -> None:
    with open("/dev/full", "w") as full:
        result = cli("run", workload(tmp_path, reps=1, patterns='["seq"]'), "--out",
                     tmp_path / "run", "-q", stdout=full.fileno())
    line = refused(result, "run", "cannot write standard output")
    assert "--resume" not in line


@HOST
@needs_root
def test_measure_set_restores_its_knob_when_stdout_is_full(tmp_path: Path,
                                                          swappiness: str) -> None:
    other = "61" if swappiness != "61" else "62"
    with open("/dev/full", "w") as full:
        result = cli("measure", "--size", "1M", "--set", f"vm.swappiness={other}",
                     stdout=full.fileno(),
                     env={"FAULTBENCH_JOURNAL": str(tmp_path / "journal.json")})
    refused(result, "measure", "cannot write standard output")
    assert SWAPPINESS.read_text().strip() == swappiness


META_EDITS = {
    "provenance-list": (lambda m: m.update(provenance=[]), "provenance is not an object"),
    "provenance-kernel-string": (lambda m: m.update(provenance={"kernel": "x"}),
                                 "provenance.kernel is not an object"),
    "kernels-empty-object": (lambda m: m.update(kernels=[{}]), "kernels[0] has no label"),
    "kernel-without-sha256": (
        lambda m: m.update(kernels=[{"label": "a", "image": "/x"}], boots_per_kernel=1,
                           boots=[{"index": 0, "kernel": "a"}]),
        "kernels[0] has no sha256"),
    "boot-of-no-kernel": (
        lambda m: m.update(kernels=[{"label": "a", "image": "/x", "sha256": "0" * 64,
                                     "release": None, "tree": None}],
                           boots_per_kernel=1, boots=[{"index": 0, "kernel": "b"}]),
        "boots[0] names no kernel"),
}


@pytest.mark.parametrize("edit", list(META_EDITS))
@pytest.mark.parametrize("command", ["run", "report", "compare"])
def test_meta_json_is_checked_in_one_place_for_every_reader(
    made_run: Path, tmp_path: Path, edit: str, command: str
) -> None:
    run = copy_run(made_run, tmp_path)
    meta = json.loads((run / "meta.json").read_text())
    change, message = META_EDITS[edit]
    change(meta)
    (run / "meta.json").write_text(json.dumps(meta))
    argv = {"run": ["--resume", run, "-q"], "report": [run, "--no-figures"],
            "compare": [made_run, run]}[command]
    refused((in_process if command in ANALYSIS else cli)(command, *argv), command,
            "meta.json: ", message)


# 7. wrong exit statuses and misleading words


@needs_root
def test_a_run_whose_every_sample_fails_exits_1_and_names_them(tmp_path: Path) -> None:
    readonly = tmp_path / "ro"
    readonly.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4M,ro", "none", readonly], check=True)
    try:
        path = workload(tmp_path, reps=1).read_text().replace(
            'backing = "memfd"', f'backing = "file"\ndir = "{readonly}"')
        (tmp_path / "fail.toml").write_text(path)
        done = cli("run", tmp_path / "fail.toml", "--out", tmp_path / "run", "-q")
    finally:
        subprocess.run(["umount", readonly], check=True)
    assert done.returncode == 1, done.stderr
    assert "pyperf.json" not in done.stdout and not (tmp_path / "run" / "pyperf.json").exists()
    note = done.stdout.split("No valid sample", 1)[1]
    assert ",seq," in note and ",random," in note and "Read-only" in note  # each named


def test_the_printed_resume_command_is_quoted_for_a_shell(made_run: Path,
                                                          tmp_path: Path) -> None:
    hostile = tmp_path / "r; echo pwned"
    shutil.copytree(made_run, hostile)
    line = refused(cli("run", workload(tmp_path), "--out", hostile, "-q"), "run",
                   "already holds a finished run")
    command = line.split(" (", 1)[1].split(" shows it)", 1)[0]
    assert shlex.split(command) == ["faultbench", "report", str(hostile)]
    meta = json.loads((hostile / "meta.json").read_text())
    (hostile / "meta.json").write_text(json.dumps({**meta, "finished_utc": None}))
    line = refused(cli("run", workload(tmp_path), "--out", hostile, "-q"), "run",
                   "already exists")
    command = line.split("continue it with ", 1)[1].rstrip(")")
    assert shlex.split(command) == ["faultbench", "run", "--resume", str(hostile)]


@pytest.mark.parametrize("out", ["/dev/null", "fifo", "file"])
def test_out_that_is_not_a_directory_is_named_so(tmp_path: Path, out: str) -> None:
    path = Path(out) if out.startswith("/") else tmp_path / out
    if out == "fifo":
        os.mkfifo(path)
    elif out == "file":
        path.write_text("x")
    line = refused(cli("run", workload(tmp_path), "--out", path, "-q"), "run",
                   f"{path} is not a directory")
    assert "--resume" not in line


def test_a_knob_named_twice_in_a_workload_is_refused(tmp_path: Path) -> None:
    extra = '[knobs]\n"vm.swappiness" = [60]\n"/proc/sys/vm/swappiness" = [61]\n'
    refused(cli("workloads", workload(tmp_path, extra=extra)), "workloads",
            "vm.swappiness is given twice; list all its values under one name")


def test_stride_spellings_are_one_scenario(tmp_path: Path) -> None:
    done = cli("workloads", workload(tmp_path, patterns='["stride:5", "stride:05", '
                                                        '"stride:005"]'))
    assert done.returncode == 0, done.stderr
    assert "1 scenarios:" in done.stdout and ",stride:5," in done.stdout
    assert "stride:05" not in done.stdout


@pytest.mark.parametrize("argv", [
    ["measure", "--size", "\u0661\u0662M"],
    ["measure", "--size", "1M", "--set", "vm.swappiness=\u0666\u0660"],
    ["workloads", "{workload}"],
], ids=["size", "set", "workload-size"])
def test_only_ascii_digits_are_numbers(tmp_path: Path, argv: list[str]) -> None:
    path = workload(tmp_path)
    path.write_text(path.read_text().replace('size = "1M"', 'size = "\u0661\u0662M"'))
    result = cli(*(a.format(workload=path) for a in argv),
                 env={"FAULTBENCH_JOURNAL": str(tmp_path / "journal.json")})
    refused(result, argv[0], "not a number")


@needs_root
def test_a_bad_guest_timeout_is_refused_before_the_run_directory_exists(
    tmp_path: Path
) -> None:
    image = require_boot_image()
    refused(cli("run", workload(tmp_path), "--kernel", image, "--out", tmp_path / "run",
                env={"FAULTBENCH_GUEST_TIMEOUT_S": "soon"}), "run",
            "FAULTBENCH_GUEST_TIMEOUT_S='soon'")
    assert not (tmp_path / "run").exists()


def test_a_huge_pattern_is_not_echoed_whole(tmp_path: Path) -> None:
    path = workload(tmp_path, patterns=f'["{"x" * 10_000_000}"]')
    result = cli("workloads", path)
    assert result.returncode == 2 and len(result.stderr) < 2000, len(result.stderr)
    result = cli("measure", "--pattern", "y" * 100_000)
    refused(result, "measure", "(100,002 characters)")
    assert len(result.stderr) < 2000


def test_escapes_in_a_workload_description_are_shown_not_sent(tmp_path: Path) -> None:
    path = workload(tmp_path)
    path.write_text(path.read_text().replace('"round two: tiny"',
                                             '"evil \\u001b]2;owned\\u0007 \\u001b[2J"'))
    done = cli("workloads", path)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout
    assert "evil \\x1b]2;owned\\x07 \\x1b[2J" in done.stdout


@needs_root
@pytest.mark.parametrize("command", ["report", "compare"])
def test_a_samples_file_linked_elsewhere_is_not_read(made_run: Path, shared: Path,
                                                     command: str) -> None:
    owned = shared / "nobodys"
    shutil.copytree(made_run, owned)
    for path in [owned, *owned.iterdir()]:
        os.chown(path, NOBODY, NOBODY)
    (owned / "samples.jsonl").unlink()
    as_nobody("ln", "-s", "/etc/shadow", str(owned / "samples.jsonl"))
    argv = ["--json", owned] if command == "report" else [made_run, owned]
    result = in_process(command, *argv)
    refused(result, command, "samples.jsonl is a symbolic link")
    assert result.stdout == ""


# 8. leftovers


def test_stale_figure_temp_files_are_removed_by_the_next_report(made_run: Path,
                                                                tmp_path: Path) -> None:
    """Only faultbench's own pattern of a dead writer; a link is removed, not followed."""
    from faultbench.analysis.report import write_report

    run = copy_run(made_run, tmp_path)
    figures = run / "figures"
    figures.mkdir()
    dead = _dead_pid()
    stale = figures / f".distributions.svg.{dead}.0123abcd.tmp"
    stale.write_text("half a figure")
    target = tmp_path / "target"
    target.write_text("not faultbench's")
    link = figures / f".distributions.png.{dead}.4567cdef.tmp"
    link.symlink_to(target)
    live = figures / f".distributions.png.{os.getpid()}.89abcdef.tmp"
    live.write_text("another report's, still writing")
    foreign = figures / ".notes.tmp"
    foreign.write_text("someone's")
    write_report(run)
    assert not stale.exists() and not link.is_symlink() and target.read_text()
    assert live.exists() and foreign.exists()


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid
