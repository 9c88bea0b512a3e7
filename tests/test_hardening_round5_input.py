"""Round five, minor defects: `run --only` on a field no scenario has says so, a resume stopped
by a bad or repeated line of samples.jsonl says which line to delete and how, and
`kernels/build --check-only` refuses a cache a build would refuse, in the build's words.
Real runs, real files, the real commands."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from analysis_runs import faultbench, make_run
from console import one_line
from kbuild import build
from test_hardening_round4_input import SMALL
from test_kernels import have_build_dependencies

from faultbench.measurement.rundir.results import sample_key


def fb(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return faultbench(*args, check=False)


# ---- `--only FIELD=...` on no field ----------------------------------------------------------

@pytest.mark.parametrize("only", ["nonsense=1", "fault_around_bytes=64K"])
def test_only_on_a_field_the_workload_lacks_names_it_and_the_fields(
        tmp_path: Path, only: str) -> None:
    done = fb("run", "quick", "--out", tmp_path / "r", "--only", only)
    line = one_line(done.stderr)
    field = only.partition("=")[0]
    assert done.returncode == 2 and f"quick has no field {field}; its fields: " in line, line
    assert "backing, size, map" in line and "none of the" not in line, line
    assert not (tmp_path / "r").exists()


def test_only_on_a_name_part_that_is_no_field_still_filters(tmp_path: Path) -> None:
    """`offset=4K` is how a name writes map_offset: a pattern on names, not a field."""
    workload = tmp_path / "w.toml"
    workload.write_text(SMALL + 'map_offset = ["0", "4K"]\n')
    done = fb("run", workload, "--out", tmp_path / "r", "--only", "offset=4K", "-q")
    assert done.returncode == 0, done.stderr
    names = [s["name"] for s in json.loads((tmp_path / "r" / "meta.json").read_text())
             ["scenarios"]]
    assert len(names) == 4 and all(",offset=4K" in name for name in names), names


# ---- a resume stopped by a line of samples.jsonl ---------------------------------------------

@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("round5"), "run", SMALL)


def interrupted(source: Path, to: Path, change: Callable[[list[str]], list[str]]) -> Path:
    """A copy of run `source` at `to`, as a kill leaves it (not finished), its samples.jsonl
    lines changed by `change`."""
    shutil.copytree(source, to)
    meta = json.loads((to / "meta.json").read_text())
    meta["finished_utc"] = None
    (to / "meta.json").write_text(json.dumps(meta))
    path = to / "samples.jsonl"
    path.write_text("".join(line + "\n" for line in change(path.read_text().splitlines())))
    return to


def _keys(run: Path) -> list[tuple[object, ...]]:
    return [sample_key(json.loads(line)) for line in
            (run / "samples.jsonl").read_text().splitlines()]


def _resume_as_told(run: Path, base: Path, deleted: str) -> None:
    """Refused in one line naming the lines `deleted` (sed's script); the sed command it
    gives, run, lets the resume finish with every sample of `base` once."""
    done = fb("run", "--resume", run, "-q")
    line = one_line(done.stderr)
    assert done.returncode == 2, line
    command = re.search(r"\(sed -i '([0-9d;]+)' (\S+);", line)
    assert command is not None and command[1] == deleted, line
    assert f"then faultbench run --resume {run};" in line, line
    subprocess.run(["sed", "-i", command[1], command[2]], check=True)
    done = fb("run", "--resume", run, "-q")
    assert done.returncode == 0, done.stderr
    assert sorted(_keys(run)) == sorted(_keys(base))


@pytest.fixture
def copy_of(base: Path, tmp_path: Path) -> Callable[[Callable[[list[str]], list[str]]], Path]:
    return lambda change: interrupted(base, tmp_path / "run", change)


def test_a_corrupt_line_in_the_middle_says_which_and_how_to_resume_past_it(
        base: Path, copy_of: Callable[..., Path]) -> None:
    run = copy_of(lambda lines: [*lines[:2], lines[2][:40], *lines[3:]])
    done = fb("run", "--resume", run)
    line = one_line(done.stderr)
    assert "samples.jsonl:3: not a JSON object; resuming builds on every line: delete " \
           "line 3 (sed -i '3d'" in line, line
    _resume_as_told(run, base, "3d")


def test_an_exact_copy_of_a_sample_line_is_refused_naming_the_copy(
        base: Path, copy_of: Callable[..., Path]) -> None:
    run = copy_of(lambda lines: [*lines, lines[1]])
    last = len(_keys(run))
    done = fb("run", "--resume", run)
    line = one_line(done.stderr)
    assert f"samples.jsonl:{last}: the sample of line 2 again (scenario " in line, line
    assert "round 0, mapper 0): an exact copy;" in line and f"delete line {last} " in line
    _resume_as_told(run, base, f"{last}d")


def test_two_measurements_of_one_sample_are_refused_naming_both(
        base: Path, copy_of: Callable[..., Path]) -> None:
    def remeasured(lines: list[str]) -> list[str]:
        again = json.loads(lines[1])
        again["touch_ns"] += again["pages_touched"]  # a nanosecond a page slower
        again["ns_per_page"] = again["touch_ns"] / again["pages_touched"]
        return [*lines, json.dumps(again)]

    run = copy_of(remeasured)
    last = len(_keys(run))
    line = one_line(fb("run", "--resume", run).stderr)
    assert "measured differently;" in line and f"delete lines 2 and {last} " in line, line
    _resume_as_told(run, base, f"2d;{last}d")


# ---- kernels/build --check-only: the cache's refusals ----------------------------------------

def _entry(cache: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """The entry a base build's inputs use in `cache` (a check-only on an empty cache)."""
    assert build.main(["--cache", str(cache), "--check-only"]) == 0
    return Path(capsys.readouterr().out.splitlines()[-1]).parent


def _foreign_owner(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache.mkdir()
    os.chown(cache, 65534, 65534)  # nobody's cache: root does not build below it


def _planted_lock(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    entry = _entry(cache, capsys)
    entry.mkdir(parents=True)
    (entry / ".lock").symlink_to("/etc/hostname")


def _entry_a_link(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    entry = _entry(cache, capsys)
    cache.mkdir()
    (cache / "elsewhere").mkdir()
    entry.symlink_to(cache / "elsewhere")


@pytest.mark.skipif(not have_build_dependencies(), reason="kernel build dependencies missing")
@pytest.mark.skipif(os.geteuid() != 0, reason="the cache's owner checks are root's")
@pytest.mark.parametrize("plant", [_foreign_owner, _planted_lock, _entry_a_link])
def test_check_only_refuses_a_cache_a_build_refuses_in_its_words(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, plant: Callable[..., None]) -> None:
    cache = tmp_path / "cache"
    plant(cache, capsys)
    before = sorted(p for p in tmp_path.rglob("*"))
    assert build.main(["--cache", str(cache), "--check-only"]) == 2
    checked = capsys.readouterr()
    assert checked.out == "" and "would build" not in checked.err
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing made

    def no_build(*args: object) -> None:
        raise AssertionError("the build went past its cache checks")

    monkeypatch.setattr(build, "_build_locked", no_build)
    assert build.main(["--cache", str(cache)]) == 2
    assert capsys.readouterr().err == checked.err


# ---- kernels/build: --jobs and --cache checked as a build would take them -----------------

@pytest.mark.parametrize("args,message", [
    (["--jobs", "99999999999999999999"], "--jobs must be from 1 to 4096"),
    (["--cache", "/tmp/x\x1b[31m"],
     "--cache /tmp/x\\x1b[31m: control characters are not allowed in a path"),
])
def test_check_only_refuses_absurd_jobs_and_a_cache_with_escapes(
        args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as refused:
        build.main([*args, "--check-only"])
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert err.endswith(f"kernels/build: error: {message}\n") and "\x1b" not in err
