"""Input the third hostile pass found unchecked (issue 31: N10, N11 and the minor list).

Scenario names that two scenarios share, names pyperf cannot hold, `report --out` over
another run, a `run --set` axis that cannot be applied, `--only` values, digits of other
scripts, paths that are not UTF-8, and scripts/notebook following an inherited
$FAULTBENCH_RUN. Runs are real (1 MiB samples, seconds each).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pyperf
import pytest
from console import one_line
from images import require_boot_image

from faultbench import cli
from faultbench.analysis.compare import match_text
from faultbench.measurement.booted import guest, vngproc
from faultbench.measurement.knobs.catalog import KnobError
from faultbench.measurement.knobs.requested import parse_set_options
from faultbench.measurement.rundir.pyperf_suite import metadata_text
from faultbench.measurement.rundir.results import META, PYPERF, read_samples
from faultbench.measurement.runner import start
from faultbench.measurement.workload import Scenario, parse, scenario_name

ROOT = Path(__file__).resolve().parent.parent
SMALL = """
repetitions = 2
warmups = 0
[defaults]
size = "1M"
[[matrix]]
pattern = ["seq", "random"]
"""


def fb(*args: str | bytes | Path, env: dict[str, str] | None = None
       ) -> subprocess.CompletedProcess[str]:
    """`faultbench ARGS` (bytes arguments pass as they are: paths that are not UTF-8)."""
    return subprocess.run([sys.executable, "-m", "faultbench", *args], capture_output=True,
                          encoding="utf-8", errors="backslashreplace", timeout=300,
                          env={**os.environ, **(env or {})})


def refused(result: subprocess.CompletedProcess[str], command: str, message: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    line = one_line(result.stderr)
    assert line.startswith(f"faultbench {command}: ") and message in line, line
    return line


@contextlib.contextmanager
def shm_dir(name: str) -> Iterator[str]:
    """A directory named `name` on /dev/shm (tmpfs), removed afterwards."""
    path = os.path.join("/dev/shm", name)
    os.mkdir(path)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# ---- N10: scenario names are injective ------------------------------------------------------

@pytest.mark.parametrize("suffix", [",populate=madvise", "=x", "\nline2", "\x1b[31mred"],
                         ids=["comma", "equals", "newline", "escape"])
def test_a_dir_a_name_cannot_hold_is_refused_in_one_line(tmp_path: Path, suffix: str) -> None:
    with shm_dir(f"fb-r3-{os.getpid()}{suffix}") as odd, shm_dir(f"fb-r3-{os.getpid()}") as plain:
        toml = tmp_path / "collide.toml"
        toml.write_text(f'[defaults]\nbacking = "tmpfs"\nsize = "1M"\n'
                        f'[[matrix]]\ndir = {json.dumps(odd)}\npopulate = "none"\n'
                        f'[[matrix]]\ndir = {json.dumps(plain)}\npopulate = "madvise"\n')
        line = refused(fb("run", toml, "--out", tmp_path / "r", "-q"), "run",
                       "has a ',', '=' or control character, which a scenario name cannot hold")
        assert "\x1b" not in line  # shown with its escapes
        assert not (tmp_path / "r").exists()


def test_scenarios_that_would_share_a_name_are_refused(tmp_path: Path) -> None:
    toml = tmp_path / "deadlines.toml"
    toml.write_text('[defaults]\nsize = "1M"\n[[matrix]]\ndeadline_s = [5, 10]\n')
    refused(fb("workloads", toml), "workloads",
            "two scenarios are both named memfd,1M,shared,read,warm,seq,uffd=none: they differ "
            "only in deadline_s")
    # fields the name leaves out because they cannot matter still make one scenario
    toml.write_text('[defaults]\nsize = "1M"\n[[matrix]]\n'
                    'mapper_mode = ["sequential", "concurrent"]\ntouch_one_in = [2, 3]\n')
    shown = fb("workloads", toml)
    assert shown.returncode == 0 and "1 scenarios" in shown.stdout, shown.stderr


def test_a_text_knob_value_with_a_control_character_is_refused() -> None:
    """Knob values go into scenario names too; a sysctl that holds text (not a number) is
    the one place a value is free text."""
    texts = [p for p in Path("/proc/sys/vm").iterdir() if p.stat().st_mode & 0o444
             and p.read_text().strip() and not p.read_text().split()[0].lstrip("-").isdigit()]
    if not texts:
        pytest.skip("no /proc/sys/vm sysctl holds text on this kernel")
    name = f"vm.{texts[0].name}"
    with pytest.raises(KnobError, match="control characters are not allowed"):
        parse_set_options([f"{name}=a\x1b[2Jb"])
    assert parse_set_options([f"{name}=default"]) == [(name, ["default"])]


# ---- N11: names pyperf cannot hold ------------------------------------------------------------

def test_a_control_character_in_a_workload_file_name_is_refused(tmp_path: Path) -> None:
    toml = tmp_path / "evil\x1b[31mRED\nline2.toml"
    toml.write_text(SMALL)
    refused(fb("run", toml, "--out", tmp_path / "r", "-q"), "run",
            r"evil\x1b[31mRED\nline2.toml': a workload's name or path has no NUL bytes, "
            "control characters")
    assert not (tmp_path / "r").exists()


def test_a_run_written_with_a_newline_in_its_names_still_finishes(tmp_path: Path) -> None:
    """A run directory an older faultbench wrote, its workload named and a dir chosen with a
    newline and an escape: resuming measures it and writes pyperf.json, report reads it."""
    data = {"repetitions": 2, "warmups": 1, "defaults": {"size": "1M"},
            "matrix": [{"pattern": ["seq", "random"]}]}
    workload = parse(data, tmp_path / "evil\x1b[31m\nname.toml")
    with shm_dir(f"fb-r3-{os.getpid()}\nb\\n ") as odd:
        spec = parse({"defaults": {"backing": "tmpfs", "size": "1M"}, "matrix": [{}]},
                     tmp_path / "x.toml").scenarios[0].spec
        spec = replace(spec, dir=odd)
        odd_scenario = Scenario(scenario_name(spec, {}), spec, {})
        workload = replace(workload, scenarios=[*workload.scenarios, odd_scenario])
        run = tmp_path / "run"
        start(workload, run).lock.release()
        resumed = fb("run", "--resume", run, "-q")
    assert resumed.returncode == 0, resumed.stderr
    assert "Traceback" not in resumed.stderr
    meta = json.loads((run / META).read_text())
    assert meta["finished_utc"] is not None
    samples, _ = read_samples(run / "samples.jsonl", strict=True)
    assert len(samples) == 3 * 3
    suite = pyperf.BenchmarkSuite.load(str(run / PYPERF))
    names = suite.get_benchmark_names()
    assert len(names) == 3 and metadata_text(odd_scenario.name) in names
    assert all("\n" not in name for name in names)
    metadata = suite.get_benchmarks()[0].get_metadata()
    assert metadata["faultbench_workload"] == "evil\\x1b[31m\\nname"
    out = subprocess.run([sys.executable, "-m", "pyperf", "show", str(run / PYPERF)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = fb("report", run, "--no-figures")
    assert report.returncode == 0 and "Traceback" not in report.stderr, report.stderr


def test_metadata_text_is_injective_and_what_pyperf_takes() -> None:
    texts = ["a\nb", "a\\nb", "a\\\nb", " a", "a ", "\\x20a", "a\rb", "a\x1bb", "plain,x=1",
             "é", "\udcff"]
    escaped = [metadata_text(t) for t in texts]
    assert len(set(escaped)) == len(texts)
    assert metadata_text("plain,x=1") == "plain,x=1" and metadata_text("é") == "é"
    for text in escaped:
        pyperf.Run([1.0], metadata={"name": text}, collect_metadata=False)


# ---- the minor list ---------------------------------------------------------------------------

def _run(tmp_path: Path, name: str) -> Path:
    toml = tmp_path / "small.toml"
    toml.write_text(SMALL)
    done = fb("run", toml, "--out", tmp_path / name, "-q")
    assert done.returncode == 0, done.stderr
    return tmp_path / name


def test_report_out_refuses_another_runs_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = _run(tmp_path, "a")
    b = shutil.copytree(a, tmp_path / "b")  # another run's directory: a copy is one
    assert cli.main(["report", str(b), "--no-figures"]) == 0
    before = (b / "report.txt").read_bytes()
    capsys.readouterr()
    assert cli.main(["report", str(a), "--out", str(b), "--no-figures"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("faultbench report: ") and "another run's directory" in err, err
    assert (b / "report.txt").read_bytes() == before
    # the run's own directory, however spelled, and a fresh one are fine
    assert cli.main(["report", str(a), "--out", str(a / ".." / "a"), "--no-figures"]) == 0
    assert cli.main(["report", str(a), "--out", str(tmp_path / "new"), "--no-figures"]) == 0


def test_a_run_set_axis_that_cannot_be_set_is_refused(tmp_path: Path) -> None:
    # doctor probes without writing (and without the machine-wide knob lock that another
    # faultbench may hold meanwhile); `measure --set` refuses the same knob with this reason
    doctor = json.loads(fb("doctor", "--json").stdout)["checks"]
    [check] = [c for c in doctor if c["name"] == "fault_around_bytes"]
    if check["ok"]:
        pytest.skip("fault_around_bytes is settable here (no lockdown): nothing to refuse")
    why = check["detail"].removeprefix("not settable: ")
    toml = tmp_path / "small.toml"
    toml.write_text(SMALL)
    refused(fb("run", toml, "--out", tmp_path / "r", "-q", "--set", "fault_around_bytes=8K"),
            "run", f"--set fault_around_bytes: {why}")
    swept = tmp_path / "swept.toml"
    swept.write_text(SMALL + 'knobs.fault_around_bytes = ["4K", "64K"]\n')
    refused(fb("run", swept, "--out", tmp_path / "r", "-q", "--only",
               "fault_around_bytes=64K"), "run",
            f"--only fault_around_bytes=64K: {why}")
    assert not (tmp_path / "r").exists()
    # the workload file's own axis is still skipped, and the run goes on
    done = fb("run", swept, "--out", tmp_path / "r", "-q")
    assert done.returncode == 0 and "knob axis fault_around_bytes skipped" in done.stderr


@pytest.mark.parametrize(("only", "message"), [
    ("uffd=", "give a value after ="),
    ("uffd=none,", "give a value after ="),
    ("mappers=abc", "mappers 'abc' is not an integer (ASCII digits)"),
    ("mappers=\u0663", "mappers '\u0663' is not an integer"),
    ("deadline_s=\uff15", "deadline_s '\uff15' is not a number"),
    ("uffd=wpp", "'wpp' is not one of: none, missing, wp, minor"),
    ("mappers=999", "expected an integer from 1 to 256"),
])
def test_only_values_are_checked_as_a_workload_files_are(tmp_path: Path, only: str,
                                                        message: str) -> None:
    toml = tmp_path / "small.toml"
    toml.write_text(SMALL)
    refused(fb("run", toml, "--out", tmp_path / "r", "-q", "--only", only), "run", message)
    assert not (tmp_path / "r").exists()


def test_only_matches_values_as_the_spec_holds_them(tmp_path: Path) -> None:
    toml = tmp_path / "strides.toml"
    toml.write_text('repetitions = 1\nwarmups = 0\n[defaults]\nsize = "1M"\n[[matrix]]\n'
                    'pattern = ["seq", "stride:4"]\nmap_offset = [0, "4K"]\n')
    done = fb("run", toml, "--out", tmp_path / "r", "-q", "--only", "pattern=stride:04",
              "--only", "map_offset=4K")
    assert done.returncode == 0, done.stderr
    scenarios = json.loads((tmp_path / "r" / META).read_text())["scenarios"]
    assert [s["name"] for s in scenarios] == ["memfd,1M,shared,read,warm,stride:4,uffd=none,"
                                              "offset=4K"]


@pytest.mark.parametrize(("args", "option"), [
    (("measure", "--seed", "\u0661\u0662"), "--seed"),
    (("measure", "--mappers", "\uff12"), "--mappers"),
    (("measure", "--deadline", "\u0665"), "--deadline"),
    (("measure", "--repeat", "1_0"), "--repeat"),
    (("run", "--repetitions", "\uff13"), "--repetitions"),
    (("run", "--boots", "\u0662", "--kernel", "x"), "--boots"),
    (("run", "--profile", "\u0662"), "--profile"),
    (("run", "--jobs", "\u0662", "--kernel", "x"), "--jobs"),
])
def test_digits_of_other_scripts_are_not_numbers(args: tuple[str, ...], option: str) -> None:
    result = fb(*args)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert f"argument {option}: invalid" in result.stderr, result.stderr


@pytest.mark.parametrize("shard", ["\u00b2/3", "\u0661/3", "1/\uff13"])
def test_a_shard_in_other_digits_is_refused_in_one_line(tmp_path: Path, shard: str) -> None:
    # checked once the image is: no boot happens
    refused(fb("run", "--kernel", require_boot_image(), "--shard", shard, "--out",
               tmp_path / "r"), "run", "give I/N with 1 <= I <= N")


def test_digits_of_other_scripts_are_refused_in_values_too(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(vngproc.TIMEOUT_ENV, "\u0666\u0660")
    with pytest.raises(guest.GuestError, match="give seconds above 0"):
        guest.timeout_from_env()
    monkeypatch.setenv(vngproc.TIMEOUT_ENV, "60")
    assert guest.timeout_from_env() == 60
    # compare RUN:VALUE: a knob value given in other digits matches no run's value
    knob = "vm.swappiness"
    assert match_text(knob, "\u0666\u0660") != match_text(knob, 60) == match_text(knob, "60")


def test_a_dir_that_is_not_utf8_is_measured(tmp_path: Path) -> None:
    name = f"/dev/shm/fb-r3-{os.getpid()}-\xffd".encode("latin-1")
    os.mkdir(name)
    try:
        strict = {"PYTHONIOENCODING": "utf-8:strict"}
        done = fb("measure", "--backing", "tmpfs", "--size", "1M", "--dir", name, env=strict)
        assert done.returncode == 0, done.stderr
        assert "256 pages" in done.stdout
        assert os.listdir(name) == []  # the sample's file was made there and removed
        out = os.fsencode(tmp_path) + b"/r\xff"
        toml = tmp_path / "small.toml"
        toml.write_text(SMALL)
        run = fb("run", toml, "--out", out, "-q", env=strict)
        assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
        assert "r\\udcff/" in run.stdout  # shown with an escape
        report = fb("report", out, "--no-figures", env=strict)
        assert report.returncode == 0 and "Traceback" not in report.stderr, report.stderr
    finally:
        os.rmdir(name)
