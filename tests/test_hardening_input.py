"""Bad input, tried the way a clumsy or hostile user would (issue 13, items 4, 6 and 7).

Every case must end as one line `faultbench CMD: message` on stderr with exit status 2, no
traceback, within a timeout, and leave the files it was given as they were. Run directories
are copies of real runs made by `faultbench run`; the filesystem cases mount small tmpfs
instances (root only).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from analysis_runs import faultbench as run_faultbench
from analysis_runs import measured_again
from console import one_line
from groups import HOST
from inprocess import ANALYSIS, in_process

from faultbench import cli
from faultbench.measurement.rundir.results import read_samples, sample_key, sample_problem
from faultbench.measurement.runner import schedule
from faultbench.measurement.workload import MAX_MEASUREMENTS, MAX_SCENARIOS, load

# native runs and resumes whose output must be exactly what they say: beside a test that
# holds the knob lock they would warn of it, or leave out samples (HOST: tests/groups.py)
pytestmark = HOST

TIMEOUT_S = 60

SMALL = """
description = "hardening tests"
repetitions = 3
warmups = 0
seed = 3

[defaults]
backing = "memfd"
size = "1M"

[[matrix]]
pattern = ["seq", "random"]
"""

OTHER = """
description = "another workload: same scenario names, another size"
repetitions = 3
warmups = 0
seed = 3

[defaults]
backing = "memfd"
size = "2M"

[[matrix]]
pattern = ["seq", "random"]
"""


@dataclass(frozen=True)
class Runs:
    small: Path
    other: Path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    base = tmp_path_factory.mktemp("hardening")
    made = []
    for name, text in (("small", SMALL), ("other", OTHER)):
        toml = base / f"{name}.toml"
        toml.write_text(text)
        run_faultbench("run", toml, "--out", base / name, "-q")
        made.append(base / name)
    return Runs(*made)


def faultbench(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it, but the analysis commands in this process (a
    subprocess each would import pandas again); a hang fails the test at TIMEOUT_S."""
    if str(args[0]) in ANALYSIS:
        return in_process(*args, timeout_s=TIMEOUT_S)
    return subprocess.run(
        [sys.executable, "-m", "faultbench", *map(str, args)], capture_output=True, text=True,
        timeout=TIMEOUT_S, env={**os.environ, "PATH": f"{Path(sys.executable).parent}:"
                                f"{os.environ.get('PATH', '')}"},
    )


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root with its size and modification time; a directory by its
    entries alone (its mtime moves with the .lock a refused resume takes and removes)."""
    found = {}
    for path in sorted(root.rglob("*")):
        stat = path.lstat()
        found[str(path.relative_to(root))] = (
            (0, 0) if path.is_dir() and not path.is_symlink() else
            (stat.st_size, stat.st_mtime_ns))
    return found


def assert_refused(result: subprocess.CompletedProcess[str], command: str,
                   message: str) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, (result.returncode, result.stderr)
    line = one_line(result.stderr)
    assert line.startswith(f"faultbench {command}: "), result.stderr
    assert message in line, result.stderr


def copy_run(source: Path, tmp: Path, name: str = "run") -> Path:
    target = tmp / name
    shutil.copytree(source, target)
    return target


def edit_meta(run: Path, change: Callable[[dict], object]) -> None:
    """meta.json changed in place by `change`."""
    meta = json.loads((run / "meta.json").read_text())
    change(meta)
    (run / "meta.json").write_text(json.dumps(meta))


def edit_samples(run: Path, change: Callable[[list[dict]], list[object]]) -> None:
    records = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    lines = change(records)
    (run / "samples.jsonl").write_text(
        "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    )


def workload_file(tmp: Path, text: str, name: str = "w.toml") -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def matrix(repetitions: str = "2", **fields: str) -> str:
    """A one-matrix workload of memfd 1M but for `fields` (TOML values as written)."""
    axes = {"backing": '"memfd"', "size": '"1M"', **fields}
    body = "\n".join(f"{key} = {value}" for key, value in axes.items())
    return f"repetitions = {repetitions}\nwarmups = 0\n[[matrix]]\n{body}\n"


# ---- the case table: (id, command, message, setup(tmp, runs) -> arguments) -------------------

Setup = Callable[[Path, Runs], list[str | Path]]
CASES: list[tuple[str, str, str, Setup]] = []


def case(name: str, command: str, message: str) -> Callable[[Setup], Setup]:
    def register(setup: Setup) -> Setup:
        CASES.append((name, command, message, setup))
        return setup
    return register


def simple(name: str, command: str, message: str, *args: str) -> None:
    CASES.append((name, command, message, lambda tmp, runs: list(args)))


# measure: options out of range, non-finite, or absurd
BIG = str(2**76)
simple("measure-seed-huge", "measure", "seed must be an integer from 0", "--seed", BIG)
simple("measure-seed-negative", "measure", "seed must be", "--seed", "-1")
simple("measure-mappers-huge", "measure", "mappers must be an integer from 1 to 256",
       "--mappers", "99999999999")
simple("measure-mappers-257", "measure", "mappers must be", "--mappers", "257")
simple("measure-mappers-zero", "measure", "mappers must be", "--mappers", "0")
simple("measure-deadline-nan", "measure", "deadline_s must be", "--deadline", "nan")
simple("measure-deadline-inf", "measure", "deadline_s must be", "--deadline", "inf")
simple("measure-deadline-1e400", "measure", "deadline_s must be", "--deadline", "1e400")
simple("measure-deadline-negative", "measure", "deadline_s must be", "--deadline", "-5")
simple("measure-size-huge", "measure", "above the maximum", "--size", "99999999999999999T")
simple("measure-size-many-digits", "measure", "not a number", "--size", "9" * 5000)
simple("measure-size-exponent", "measure", "not a number", "--size", "1e9")
simple("measure-size-zero", "measure", "size must be positive", "--size", "0")
simple("measure-size-not-page", "measure", "multiple of the", "--size", "4097")
simple("measure-stride-huge", "measure", "pattern", "--pattern", f"stride:{BIG}")
simple("measure-stride-zero", "measure", "pattern", "--pattern", "stride:0")
simple("measure-repeat-zero", "measure", "--repeat must be from 1", "--repeat", "0")
simple("measure-repeat-above-1e9", "measure", "--repeat must be from 1 to 1,000,000,000",
       "--repeat", "1000000001")
simple("measure-repeat-huge", "measure", "--repeat must be from 1", "--repeat", BIG)
simple("measure-warmups-negative", "measure", "--warmups must be", "--warmups", "-1")
simple("measure-warmups-huge", "measure", "--warmups must be", "--warmups", "10000000000")
simple("measure-set-huge", "measure", "fault_around_bytes",
       "--set", f"fault_around_bytes={BIG}")
simple("measure-set-empty", "measure", "--set wants", "--set", "")
simple("measure-dir-missing", "measure", "--dir /nonexistent/dir: no such directory",
       "--backing", "file", "--dir", "/nonexistent/dir")


@case("measure-dir-is-a-file", "measure", "not a directory")
def _(tmp: Path, runs: Runs) -> list[str | Path]:
    (tmp / "f").write_text("")
    return ["--backing", "file", "--dir", tmp / "f"]


# workload files, through `faultbench workloads FILE` (reads only)
WORKLOAD_CASES = {
    "repetitions-1e9": ("repetitions = 1000000000\n[[matrix]]\nbacking = \"memfd\"\n",
                        "repetitions: must be an integer from 1 to 100000"),
    "repetitions-2^70": (f"repetitions = {2**70}\n[[matrix]]\nbacking = \"memfd\"\n",
                         "repetitions: must be an integer"),
    "repetitions-float": ("repetitions = 1e3\n[[matrix]]\nbacking = \"memfd\"\n",
                          "expected an integer"),
    "repetitions-nan": ("repetitions = nan\n[[matrix]]\nbacking = \"memfd\"\n",
                        "expected an integer"),
    "warmups-huge": ("warmups = 99999999999\n[[matrix]]\nbacking = \"memfd\"\n",
                     "warmups: must be an integer"),
    "seed-2^64": (f"seed = {2**64}\n[[matrix]]\nbacking = \"memfd\"\n", "seed: must be"),
    "seed-negative": ("seed = -3\n[[matrix]]\nbacking = \"memfd\"\n", "seed: must be"),
    "measurements-cap": ("repetitions = 60000\n[[matrix]]\nbacking = \"memfd\"\n"
                         "pattern = [\"seq\", \"random\"]\n",
                         "120,002 measurements, more than the 100,000"),
    "15M-scenarios": (
        "[[matrix]]\n" + "\n".join(
            f"{axis} = [{', '.join(values)}]" for axis, values in {
                "backing": ['"memfd"', '"tmpfs"', '"file"'],
                "size": [f'"{n}M"' for n in range(1, 31)],
                "pattern": ['"seq"', '"random"', '"sparse"', '"reverse"'] +
                           [f'"stride:{n}"' for n in range(2, 28)],
                "mappers": [str(n) for n in range(1, 31)],
                "uffd": ['"none"', '"missing"', '"wp"', '"minor"'],
                "mapper_mode": ['"sequential"', '"concurrent"'],
                "mapper_kind": ['"process"', '"thread"'],
                "populate": ['"none"', '"madvise"', '"map"'],
                "access": ['"read"', '"write"'],
                "map": ['"shared"', '"private"'],
            }.items()
        ) + "\n", "more than the 10,000 scenarios"),
    "size-huge": (matrix(size=f"{2**62}"), "above the maximum"),
    "size-float": (matrix(size="1.5e9"), "expected a size"),
    "size-inf": (matrix(size="inf"), "expected a size"),
    "size-bool": (matrix(size="true"), "expected a size"),
    "size-many-digits": (matrix(size='"' + "9" * 400 + '"'), "not a number"),
    "deadline-nan": (matrix(deadline_s="nan"), "deadline_s"),
    "deadline-inf": (matrix(deadline_s="inf"), "deadline_s"),
    "deadline-string": (matrix(deadline_s='"10"'), "deadline_s"),
    "mappers-huge": (matrix(mappers=str(10**18)), "integer from 1 to 256"),
    "mappers-float": (matrix(mappers="2.0"), "integer from 1 to 256"),
    "dir-nul": ('repetitions = 2\n[[matrix]]\nbacking = "file"\ndir = "a\\u0000b"\n',
                "without NUL bytes"),
    "dir-empty": ('repetitions = 2\n[[matrix]]\nbacking = "file"\ndir = ""\n',
                  "without NUL bytes"),
    "stride-huge": (matrix(pattern=f'"stride:{BIG}"'), "pattern"),
    "pattern-int": (matrix(pattern="3"), "expected a string"),
    "knob-huge": (matrix() + "[knobs]\nfault_around_bytes = " + str(2**70) + "\n",
                  "fault_around_bytes"),
    "knob-float": (matrix() + "[knobs]\nfault_around_bytes = 1e400\n", "fault_around_bytes"),
    "matrix-not-table": ("matrix = 5\n", "matrix"),
    "defaults-list": ("defaults = [1]\n[[matrix]]\nbacking = \"memfd\"\n", "defaults"),
    "description-int": ("description = 5\n" + matrix(), "description"),
    "empty-file": ("", "matrix"),
}
for _name, (_text, _message) in WORKLOAD_CASES.items():
    CASES.append((f"workload-{_name}", "workloads", _message,
                  lambda tmp, runs, text=_text: [workload_file(tmp, text)]))


@case("workload-not-utf8", "workloads", "not UTF-8")
def _(tmp: Path, runs: Runs) -> list[str | Path]:
    path = tmp / "w.toml"
    path.write_bytes(b"description = \"\xff\xfe\"\n[[matrix]]\nbacking = \"memfd\"\n")
    return [path]


@case("workload-is-a-directory", "workloads", "a directory, not a regular file")
def _(tmp: Path, runs: Runs) -> list[str | Path]:
    (tmp / "w.toml").mkdir()
    return [tmp / "w.toml"]


@case("run-workload-huge-nothing-created", "run", "more than the 10,000 scenarios")
def _(tmp: Path, runs: Runs) -> list[str | Path]:
    text = "[[matrix]]\nsize = [" + ", ".join(f'"{n}M"' for n in range(1, 200)) + "]\n" \
        "pattern = [" + ", ".join(f'"stride:{n}"' for n in range(1, 200)) + "]\n"
    return [workload_file(tmp, text), "--out", tmp / "out"]


@case("run-boots-zero", "run", "--boots must be from 1 to 3")
def _(tmp: Path, runs: Runs) -> list[str | Path]:
    kernel = tmp / "vmlinuz"
    kernel.write_bytes(b"not a kernel")
    return [workload_file(tmp, SMALL), "--kernel", kernel, "--boots", "0", "--out", tmp / "o"]


@case("run-boots-huge", "run", "--boots must be from 1 to 3")
def _(tmp: Path, runs: Runs) -> list[str | Path]:
    kernel = tmp / "vmlinuz"
    kernel.write_bytes(b"not a kernel")
    return [workload_file(tmp, SMALL), "--kernel", kernel, "--boots", "1000000000",
            "--out", tmp / "o"]


# results directories: meta.json and samples.jsonl of the wrong shape, for report, compare
# and run --resume alike
def corrupt_meta(change: Callable[[dict], object]) -> Callable[[Path, Runs], Path]:
    def make(tmp: Path, runs: Runs) -> Path:
        run = copy_run(runs.small, tmp)
        edit_meta(run, change)
        return run
    return make


def corrupt_samples(change: Callable[[list[dict]], list[object]]) -> Callable[[Path, Runs], Path]:
    def make(tmp: Path, runs: Runs) -> Path:
        run = copy_run(runs.small, tmp)
        edit_samples(run, change)
        return run
    return make


def write_file(name: str, data: bytes) -> Callable[[Path, Runs], Path]:
    def make(tmp: Path, runs: Runs) -> Path:
        run = copy_run(runs.small, tmp)
        (run / name).write_bytes(data)
        return run
    return make


def make_directory(name: str) -> Callable[[Path, Runs], Path]:
    def make(tmp: Path, runs: Runs) -> Path:
        run = copy_run(runs.small, tmp)
        (run / name).unlink()
        (run / name).mkdir()
        return run
    return make


def another_workloads_meta(tmp: Path, runs: Runs) -> Path:
    run = copy_run(runs.small, tmp)
    shutil.copy(runs.other / "meta.json", run / "meta.json")
    return run


def renamed(meta: dict) -> None:
    meta["scenarios"][0]["name"] = "memfd,64M,renamed"


def spec_changed(meta: dict) -> None:
    meta["scenarios"][0]["spec"]["size"] = 2 << 20


BAD_RUNS: dict[str, tuple[Callable[[Path, Runs], Path], str, str]] = {
    # name: (make, message from report/compare, message from run --resume)
    "meta-list": (write_file("meta.json", b'[{"format": "faultbench-run/1"}]'),
                  "a JSON list, not an object", "not an object"),
    "meta-string": (write_file("meta.json", b'"meta"'), "not an object", "not an object"),
    "meta-old-format": (corrupt_meta(lambda m: m.update(format="faultbench-run/0")),
                        "faultbench-run/0", "faultbench-run/0"),
    "meta-no-format": (corrupt_meta(lambda m: m.pop("format")), "format None", "format None"),
    "meta-no-workload": (corrupt_meta(lambda m: m.pop("workload")), "workload is not",
                         "workload is not"),
    "meta-no-scenarios": (corrupt_meta(lambda m: m.pop("scenarios")), "scenarios is not",
                          "scenarios is not"),
    "meta-scenarios-dict": (corrupt_meta(lambda m: m.update(scenarios={"a": 1})),
                            "scenarios is not", "scenarios is not"),
    "meta-scenario-no-spec": (corrupt_meta(lambda m: m["scenarios"][0].pop("spec")),
                              "a spec is an object", "a spec is an object"),
    "meta-spec-mappers-huge": (
        corrupt_meta(lambda m: m["scenarios"][0]["spec"].update(mappers=10**9)),
        "mappers must be", "mappers must be"),
    "meta-repetitions-1e9": (
        corrupt_meta(lambda m: m["workload"].update(repetitions=10**9)),
        "workload.repetitions", "workload.repetitions"),
    "meta-repetitions-string": (
        corrupt_meta(lambda m: m["workload"].update(repetitions="5")),
        "workload.repetitions", "workload.repetitions"),
    "meta-skipped-strings": (corrupt_meta(lambda m: m.update(skipped=["x"])),
                             "skipped is not", "skipped is not"),
    # a resume refuses first a scenario whose spec and knobs make another name (R22-1)
    "meta-scenario-renamed": (corrupt_meta(renamed), "does not list", "has the spec and knobs of"),
    "meta-spec-changed": (corrupt_meta(spec_changed), "another spec", "has the spec and knobs of"),
    "meta-of-another-workload": (another_workloads_meta, "does not list", "does not list"),
    "meta-not-utf8": (write_file("meta.json", b'{"format": "\xff"}'), "not UTF-8",
                      "not UTF-8"),
    "meta-not-json": (write_file("meta.json", b"{"), "not valid JSON", "not valid JSON"),
    "meta-deep-json": (write_file("meta.json", b"[" * 100000), "not valid JSON",
                       "not valid JSON"),
    "meta-is-a-directory": (make_directory("meta.json"), "meta.json is a directory",
                            "meta.json is a directory"),
    "samples-is-a-directory": (make_directory("samples.jsonl"), "samples.jsonl is a directory",
                               "samples.jsonl is a directory"),
    "samples-all-lists": (corrupt_samples(lambda rs: [[r] for r in rs]), "no valid samples",
                          "not a JSON object"),
    "samples-no-scenario": (corrupt_samples(lambda rs: [{k: v for k, v in r.items()
                                                         if k != "scenario"} for r in rs]),
                            "no valid samples", "scenario is None"),
    "samples-round-string": (corrupt_samples(lambda rs: [{**r, "round": "0"} for r in rs]),
                             "no valid samples", "round is '0'"),
    "samples-spec-string": (corrupt_samples(lambda rs: [{**r, "spec": "memfd"} for r in rs]),
                            "no valid samples", "a spec is an object"),
    "samples-not-utf8": (write_file("samples.jsonl", b"\xff\xfe{}\n"), "no valid samples",
                         "not a JSON object"),
}
for _name, (_make, _message, _resume) in BAD_RUNS.items():
    CASES.append((f"report-{_name}", "report", _message,
                  lambda tmp, runs, make=_make: [make(tmp, runs), "--no-figures"]))
    CASES.append((f"compare-{_name}", "compare", _message,
                  lambda tmp, runs, make=_make: [runs.small, make(tmp, runs)]))
    CASES.append((f"resume-{_name}", "run", _resume,
                  lambda tmp, runs, make=_make: ["--resume", make(tmp, runs), "-q"]))


@case("report-run-dir-is-a-file", "report", "not a directory")
def _(tmp: Path, runs: Runs) -> list[str | Path]:
    (tmp / "f").write_text("")
    return [tmp / "f"]


@case("report-report-txt-is-a-directory", "report", "report.txt is a directory")
def _(tmp: Path, runs: Runs) -> list[str | Path]:
    run = copy_run(runs.small, tmp)
    (run / "report.txt").mkdir()
    return [run, "--no-figures"]


@case("resume-worker-log-is-a-directory", "run", "worker.log is a directory")
def _(tmp: Path, runs: Runs) -> list[str | Path]:
    run = copy_run(runs.small, tmp)
    lines = (run / "samples.jsonl").read_text().splitlines(keepends=True)
    (run / "samples.jsonl").write_text("".join(lines[:2]))
    (run / "worker.log").unlink()
    (run / "worker.log").mkdir()
    return ["--resume", run, "-q"]


@case("report-baseline-without-sweep", "report", "--baseline applies to knob sweeps")
def _(tmp: Path, runs: Runs) -> list[str | Path]:
    return [copy_run(runs.small, tmp), "--no-figures", "--baseline", BIG]


@case("compare-by-huge-value", "compare", "no samples with uffd=")
def _(tmp: Path, runs: Runs) -> list[str | Path]:
    return [f"{runs.small}:none", f"{runs.small}:{BIG}", "--by", "uffd"]


@case("resume-not-a-directory", "run", "f is not a directory")
def _(tmp: Path, runs: Runs) -> list[str | Path]:
    (tmp / "f").write_text("")
    return ["--resume", tmp / "f"]


@case("run-out-is-a-file", "run", "f is not a directory")
def _(tmp: Path, runs: Runs) -> list[str | Path]:
    (tmp / "f").write_text("")
    return [workload_file(tmp, SMALL), "--out", tmp / "f", "-q"]


def ids(cases: list[tuple[str, str, str, Setup]]) -> list[str]:
    return [c[0] for c in cases]


@pytest.mark.parametrize(("name", "command", "message", "setup"), CASES, ids=ids(CASES))
def test_bad_input_is_one_line(runs: Runs, tmp_path: Path, name: str, command: str,
                               message: str, setup: Setup) -> None:
    args = setup(tmp_path, runs)
    before = snapshot(tmp_path)
    result = faultbench(command, *args)
    assert_refused(result, command, message)
    assert snapshot(tmp_path) == before, "a refused command changed or left files"


def test_the_table_is_large() -> None:
    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)


# ---- NUL bytes: only reach faultbench in-process or from files (argv cannot hold them) ------

NUL_CASES = [
    ("measure", ["measure", "--backing", "file", "--dir", "a\0b"], "--dir"),
    ("measure", ["measure", "--kernel", "a\0b"], "--kernel"),
    ("measure", ["measure", "--set", "vm.swappiness=1\0"], "--set"),
    ("run", ["run", "quick", "--out", "x\0y"], "--out"),
    ("run", ["run", "--resume", "x\0y"], "--resume"),
    ("run", ["run", "w\0.toml"], "NUL"),
    ("run", ["run", "quick", "--kernel", "a\0b"], "--kernel"),
    ("report", ["report", "x\0y"], "RUN_DIR"),
    ("compare", ["compare", "a\0b", "c"], "BASE"),
    ("workloads", ["workloads", "q\0uick"], "WORKLOAD"),
    ("restore", ["restore", "--journal", "j\0"], "--journal"),
]


@pytest.mark.parametrize(("command", "argv", "message"), NUL_CASES,
                         ids=[" ".join(c[1]).replace("\0", "<NUL>") for c in NUL_CASES])
def test_nul_bytes_in_paths_are_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    command: str, argv: list[str], message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"faultbench {command}: ") and message in err
    assert "NUL" in err
    assert list(tmp_path.iterdir()) == []


# ---- filesystems that refuse: full, read-only (root ignores permission bits) ---------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@contextmanager
def tmpfs(where: Path, size: str = "64k") -> Iterator[Path]:
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                   check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)
        where.rmdir()


def fill(mount: Path) -> None:
    """Leave no free block: a file grown until the filesystem says ENOSPC."""
    fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


def remount_read_only(mount: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)


@needs_root
def test_report_on_a_read_only_run_dir(runs: Runs, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "8m") as mount:
        run = copy_run(runs.small, mount)
        remount_read_only(mount)
        before = snapshot(mount)
        result = faultbench("report", run, "--no-figures")
        assert_refused(result, "report", "Read-only file system")
        assert snapshot(mount) == before


@needs_root
def test_run_into_a_read_only_directory(tmp_path: Path) -> None:
    toml = workload_file(tmp_path, SMALL)
    with tmpfs(tmp_path / "ro") as mount:
        remount_read_only(mount)
        result = faultbench("run", toml, "--out", mount / "out", "-q")
        assert_refused(result, "run", "Read-only file system")
        assert list(mount.iterdir()) == []


@needs_root
def test_run_onto_a_full_disk(tmp_path: Path) -> None:
    toml = workload_file(tmp_path, SMALL)
    with tmpfs(tmp_path / "full") as mount:
        fill(mount)
        result = faultbench("run", toml, "--out", mount / "out", "-q")
        assert_refused(result, "run", "No space left on device")


@needs_root
def test_report_onto_a_full_disk(runs: Runs, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "full", "1m") as mount:
        run = copy_run(runs.small, mount)
        fill(mount)
        result = faultbench("report", run, "--no-figures")
        assert_refused(result, "report", "No space left on device")


@needs_root
def test_disk_full_mid_run_keeps_the_samples_and_says_how_to_resume(tmp_path: Path) -> None:
    """The disk fills after meta.json is written: the samples so far stay, resumable."""
    toml = workload_file(tmp_path, SMALL.replace("repetitions = 3", "repetitions = 400"))
    with tmpfs(tmp_path / "full", "256k") as mount:
        result = faultbench("run", toml, "--out", mount / "out", "-q")
        assert_refused(result, "run", "No space left on device")
        assert f"--resume {mount / 'out'}" in result.stderr
        records, _ = read_samples(mount / "out" / "samples.jsonl", strict=False)
        assert records


# ---- item 4: oversized workloads are refused quickly, schedules are lazy --------------------

def test_an_oversized_workload_is_refused_before_expanding(tmp_path: Path) -> None:
    """15 M combinations: refused from the axis lengths, long before 15 M specs are made."""
    text = WORKLOAD_CASES["15M-scenarios"][0]
    path = workload_file(tmp_path, text)
    started = time.process_time()
    with pytest.raises(Exception, match=r"crosses into 15,552,000 combinations") as refused:
        load(str(path))
    assert "split it into several workload files" in str(refused.value)
    assert f"{MAX_SCENARIOS:,}" in str(refused.value)
    # a property, not a speed goal: expanding even 1% of the matrix takes far longer
    assert time.process_time() - started < 5


def test_repetitions_are_capped_with_the_numbers(tmp_path: Path) -> None:
    path = workload_file(tmp_path, matrix(repetitions="1000000000"))
    with pytest.raises(Exception, match=f"from 1 to {MAX_MEASUREMENTS}, got 1000000000"):
        load(str(path))


def test_the_schedule_is_made_lazily(tmp_path: Path) -> None:
    workload = load(str(workload_file(tmp_path, SMALL)))
    units = schedule(workload.scenarios, 0, 10**12, 1)
    assert isinstance(units, Iterator)
    first = [next(units) for _ in range(4)]
    assert [u.round for u in first] == [0, 0, 1, 1]
    # deterministic: the same seed gives the same order, which resuming relies on
    again = schedule(workload.scenarios, 0, 10**12, 1)
    assert [next(again).scenario.name for _ in range(4)] == [u.scenario.name for u in first]


# ---- item 7: bad values in samples are dropped and counted, duplicates count once --------

def lines_fit(text: str) -> None:
    assert all(len(line) <= 72 for line in text.splitlines()), text


def test_non_finite_and_huge_values_are_dropped_and_counted(runs: Runs, tmp_path: Path) -> None:
    run = copy_run(runs.small, tmp_path)
    original = faultbench("report", runs.small, "--no-figures").stdout
    extra = []
    records = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    for index, value in enumerate(("NaN", "Infinity", "-Infinity", "1e300", '"fast"')):
        extra.append(json.dumps({**records[index], "round": 100 + index})
                     .replace(f'"ns_per_page": {json.dumps(records[index]["ns_per_page"])}',
                              f'"ns_per_page": {value}'))
    extra.append(json.dumps({**records[0], "round": 200, "touch_ns": 10**300}))
    extra.append(json.dumps({**records[0], "round": 201, "faults_minor": -1}))
    with (run / "samples.jsonl").open("a") as handle:
        handle.write("".join(f"{line}\n" for line in extra))
    result = faultbench("report", run, "--no-figures")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    lines_fit((run / "report.txt").read_text())
    tables = text.split("95% CI:")[0]
    assert not re.search(r"\b(inf|nan)\b", tables, re.IGNORECASE)
    flat = " ".join(text.split())
    assert "7 invalid sample(s) in samples.jsonl were dropped" in flat
    # the tables are the original run's: the dropped rows changed nothing
    assert original.split("95% CI:")[0] == text.split("95% CI:")[0]
    # against the run measured apart: a copy shares its samples, which compare refuses
    compared = faultbench("compare", measured_again(runs.small, tmp_path / "apart"), run)
    assert compared.returncode == 0, compared.stderr
    lines_fit(compared.stdout)
    assert "NEW: NOTE: 7 invalid sample(s)" in " ".join(compared.stdout.split())


def test_duplicate_lines_count_once(runs: Runs, tmp_path: Path) -> None:
    run = copy_run(runs.small, tmp_path)
    lines = (run / "samples.jsonl").read_text().splitlines(keepends=True)
    with (run / "samples.jsonl").open("a") as handle:
        handle.write("".join(lines[:4]))
    import faultbench as fb

    df = fb.load(run)
    assert len(df) == len(lines)
    assert df.attrs["dropped"][run.name].duplicates == 4
    keys = [sample_key(r) for r in read_samples(run / "samples.jsonl", strict=False)[0]]
    assert len(set(keys)) == len(lines)
    text = faultbench("report", run, "--no-figures").stdout
    assert "4 duplicate sample line(s)" in " ".join(text.split())
    original = faultbench("report", runs.small, "--no-figures").stdout
    assert original.split("95% CI:")[0] == text.split("95% CI:")[0]


def test_resume_refuses_a_file_with_nan(runs: Runs, tmp_path: Path) -> None:
    run = copy_run(runs.small, tmp_path)
    text = (run / "samples.jsonl").read_text()
    first = json.loads(text.splitlines()[0])
    broken = text.replace(json.dumps(first["ns_per_page"]), "NaN", 1)
    (run / "samples.jsonl").write_text(broken)
    result = faultbench("run", "--resume", run, "-q")
    assert_refused(result, "run", "samples.jsonl:1: scenario")
    assert "ns_per_page is nan" in result.stderr


def test_resume_of_a_valid_run_still_works(runs: Runs, tmp_path: Path) -> None:
    """The checks refuse bad files, not good ones: a run cut short resumes and completes."""
    run = copy_run(runs.small, tmp_path)
    lines = (run / "samples.jsonl").read_text().splitlines(keepends=True)
    (run / "samples.jsonl").write_text("".join(lines[:3]))
    result = faultbench("run", "--resume", run, "-q")
    assert result.returncode == 0, result.stderr
    records, bad = read_samples(run / "samples.jsonl", strict=True, validate=True)
    assert bad == 0 and len(records) == len(lines)
    assert len({sample_key(r) for r in records}) == len(lines)


def test_a_spec_is_checked_by_value_and_type() -> None:
    """Specs are checked once per distinct spec; `true` is not the valid 1 it equals."""
    records = [json.loads(line) for line in
               (Path(__file__).parents[1] / "results/example/samples.jsonl").open()][:1]
    good = records[0]
    assert sample_problem(good) is None
    assert "mappers must be" in sample_problem({**good, "spec": {**good["spec"], "mappers": True}})
    assert "a spec is an object" in sample_problem({**good, "spec": [good["spec"]]})
    assert "backing" in sample_problem({**good, "spec": {**good["spec"], "backing": ["memfd"]}})


def test_figures_where_a_file_is(runs: Runs, tmp_path: Path) -> None:
    run = copy_run(runs.small, tmp_path)
    shutil.rmtree(run / "figures", ignore_errors=True)
    (run / "figures").write_text("")
    result = faultbench("report", run)
    assert_refused(result, "report", "figures")
    assert (run / "figures").read_text() == ""
