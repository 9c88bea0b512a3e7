"""Round four: results files are untrusted input. A sample whose page_size is not a page
size, whose kernel or machine is no label, or whose faults make a ratio infinite is skipped
and counted, or the command refuses in one line; text read from results (host and workload
names, profiled stack names) reaches the terminal with its control characters escaped.
Real runs, real files, the real commands."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from analysis_runs import faultbench, make_run, measured_again
from console import one_line

REFERENCE = Path(__file__).parents[1] / "results" / "icount-aa"  # two kernels, a and b
SMALL = """
repetitions = 3
warmups = 0
[defaults]
backing = "memfd"
size = "1M"
[[matrix]]
pattern = ["seq", "sparse"]
populate = ["none", "madvise"]
"""


def fb(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return faultbench(*args, check=False)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real run: plain reads, and populated ones whose loops take no fault."""
    return make_run(tmp_path_factory.mktemp("round4"), "run", SMALL)


def tampered(source: Path, to: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of run `source` at `to`, every line of its samples.jsonl changed by `change`."""
    shutil.copytree(source, to)
    path = to / "samples.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in records:
        change(record)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return to


def _no_infinity(constant: str) -> None:
    raise AssertionError(f"{constant} in JSON output")


@pytest.mark.parametrize("page_size", [None, 0, 3000, "4096", 1 << 40])
def test_a_sample_without_a_page_size_is_refused_in_one_line(
        base: Path, tmp_path: Path, page_size: Any) -> None:
    run = tampered(base, tmp_path / "run", lambda r: r.update(page_size=page_size))
    for args in (("--no-figures",), ("--json",)):
        done = fb("report", run, *args)
        assert done.returncode == 2, done.stderr
        line = one_line(done.stderr)
        assert "no valid samples" in line and "page_size is" in line, line


def test_a_sample_without_a_page_size_among_good_ones_is_counted(
        base: Path, tmp_path: Path) -> None:
    def one_bad(record: dict[str, Any]) -> None:
        if record["round"] == 0:
            record["page_size"] = None
    done = fb("report", tampered(base, tmp_path / "run", one_bad), "--no-figures")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "invalid sample(s)" in done.stdout and "page_size is None" in done.stdout


def test_samples_whose_loops_took_no_fault_report_as_json_without_infinity(
        base: Path, tmp_path: Path) -> None:
    for run in (base, tampered(base, tmp_path / "run", lambda r: r.update(faults_minor=0))):
        done = fb("report", run, "--json")
        assert done.returncode == 0, done.stderr
        json.loads(done.stdout, parse_constant=_no_infinity)


@pytest.mark.parametrize("kernel", [[1], float("inf"), {"a": 1}, 7])
def test_a_kernel_that_is_not_a_name_is_refused_in_one_line(
        tmp_path: Path, kernel: Any) -> None:
    run = tampered(REFERENCE, tmp_path / "run", lambda r: r.update(kernel=kernel))
    for args in (("report", run, "--json"), ("compare", run, "--by", "kernel")):
        done = fb(*args)
        assert done.returncode == 2, done.stderr
        assert "kernel is" in one_line(done.stderr)


# ---- NEW-3: text from results files reaches the terminal escaped ------------------------------

ESCAPES = "\x1b]0;PWN\x07\x1b[2J\x1b[31m"


def _escaped(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text, text
    assert "\\x1b" in text, text


def test_host_and_workload_names_from_meta_are_printed_escaped(
        base: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(base, run)
    meta = json.loads((run / "meta.json").read_text())
    meta["provenance"]["host"]["name"] += ESCAPES
    meta["workload"]["name"] += ESCAPES
    (run / "meta.json").write_text(json.dumps(meta))
    done = fb("report", run, "--no-figures")
    assert done.returncode == 0, done.stderr
    _escaped(done.stdout)
    _escaped((run / "report.txt").read_text())


@pytest.fixture(scope="module")
def profiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from faultbench.measurement.profile import unavailable

    if (why := unavailable()) is not None:
        pytest.skip(why)
    where = tmp_path_factory.mktemp("round4-profiled")
    (where / "w.toml").write_text(SMALL)
    done = fb("run", where / "w.toml", "--out", where / "run", "--profile", "2", "-q")
    assert done.returncode == 0, done.stderr
    return where / "run"


def test_profiled_stack_names_are_printed_escaped(profiled: Path, tmp_path: Path) -> None:
    run = measured_again(profiled, tmp_path / "run")  # compare refuses a plain copy
    path = run / "profiles.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in records:
        stacks = (record.get("loop") or {}).get("stacks") or {}
        for name in [n for n in stacks if n != "[user]"]:
            stacks[name + ESCAPES] = stacks.pop(name)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    done = fb("report", run, "--no-figures")
    assert done.returncode == 0, done.stderr
    _escaped(done.stdout)
    _escaped((run / "report.txt").read_text())
    done = fb("compare", profiled, run, "--profile")
    assert done.returncode == 0, done.stderr
    _escaped(done.stdout)
