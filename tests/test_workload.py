"""Workload files: matrix expansion, skipped combinations, strict validation, lookup."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from analysis_runs import faultbench

from faultbench.measurement.knobs.catalog import fault_around_max, page_size
from faultbench.measurement.spec import UFFD_MODES
from faultbench.measurement.workload import WorkloadError, load, scenario_name, shipped

SHIPPED = ("quick", "fault-around-sweep", "uffd-modes", "multi-mapper", "shutemov-2014")


def write(tmp_path: Path, text: str, name: str = "w.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


EXPANDS = """
description = "expansion"
repetitions = 2
warmups = 0
seed = 7

[defaults]
size = "1M"
cache = "warm"

[[matrix]]
backing = ["memfd", "anon"]
pattern = ["seq", "random", "stride:3"]
uffd = ["none", "wp"]

[[matrix]]
backing = "memfd"
pattern = "seq"
mappers = 3
uffd = ["none", "missing"]
uffd_mappers = ["all", "later"]
knobs."vm.swappiness" = [10, 60]
"""


def test_matrix_expands_drops_impossible_combinations_with_reasons(tmp_path: Path) -> None:
    workload = load(str(write(tmp_path, EXPANDS)))
    names = [s.name for s in workload.scenarios]
    assert len(names) == len(set(names))
    # anon has no page cache, so cache=warm drops every anon combination, with the reason
    single = [s for s in workload.scenarios if s.spec.mappers == 1]
    assert {s.spec.backing for s in single} == {"memfd"}
    assert len(single) == 3 * 2
    anon_skips = [s for s in workload.skipped if s["scenario"].startswith("anon,")]
    assert len(anon_skips) == 3 * 2
    assert all("page cache" in s["reason"] for s in anon_skips)
    # without uffd, which mappers register makes no difference: all/later collapse into one
    multi = [s for s in workload.scenarios if s.spec.mappers == 3]
    expected = {(u, w) for u, w in itertools.product(("none", "missing"), ("all", "later"))
                if u != "none" or w == "all"}
    assert {(s.spec.uffd, s.spec.uffd_mappers) for s in multi} == expected
    assert len(multi) == len(expected) * 2  # x two knob values
    assert {s.knobs["vm.swappiness"] for s in multi} == {"10", "60"}
    assert all(not s.knobs for s in single)
    assert all(s.spec.seed == 7 and s.spec.size == 1 << 20 for s in workload.scenarios)
    assert workload.rounds == 2


def test_names_are_stable_and_independent_of_which_axes_vary(tmp_path: Path) -> None:
    a = load(str(write(tmp_path, EXPANDS, "a.toml")))
    # the same scenario written as a one-value matrix gets the same name
    b = load(str(write(tmp_path, """
[[matrix]]
backing = "memfd"
size = 1048576
cache = "warm"
pattern = "stride:3"
uffd = "wp"
""", "b.toml")))
    assert [s.name for s in b.scenarios] == [
        s.name for s in a.scenarios if s.spec.pattern == "stride:3" and s.spec.uffd == "wp"
    ]
    again = load(str(tmp_path / "a.toml"))
    assert [s.name for s in again.scenarios] == [s.name for s in a.scenarios]
    assert scenario_name(a.scenarios[0].spec, {"x": 1}) != a.scenarios[0].name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[[matrix]]\npaterns = ["seq"]\n',
         ["matrix[1]", "unknown key 'paterns'", "did you mean 'pattern'", "allowed:", "backing"]),
        ('[[matrix]]\nuffd = ["none", "wpp"]\n',
         ["matrix[1].uffd", "'wpp'", ", ".join(UFFD_MODES), "did you mean 'wp'"]),
        ('repetitions = "3"\n[[matrix]]\nuffd = "none"\n',
         ["repetitions", "expected an integer", "a string ('3')"]),
        ('[[matrix]]\nsize = true\n', ["matrix[1].size", "a boolean"]),
        ('[[matrix]]\npattern = "stride:0"\n', ["matrix[1].pattern", "stride:N"]),
        ('[defaults]\nbacking = "memfd"\nmap = "sharde"\n[[matrix]]\nuffd = "none"\n',
         ["defaults.map", "'sharde'", "shared, private"]),
        ('[[matrix]]\nbacking = "memfd"\nknobs.nope = [1]\n', ["knobs.nope", "unknown knob"]),
        ('[[matrix]]\nbacking = "memfd"\nknobs.fault_around_bytes = [3000]\n',
         ["knobs.fault_around_bytes", "power of two"]),
        ('seeed = 3\n[[matrix]]\nuffd = "none"\n', ["unknown key 'seeed'", "did you mean 'seed'"]),
        ('description = "no matrix"\n', ["matrix", "[[matrix]]"]),
        ('[[matrix]\n', ["not valid TOML"]),
        ('[[matrix]]\nbacking = "anon"\ncache = "warm"\n', ["no valid scenario", "page cache"]),
    ],
)
def test_validation_names_file_key_and_allowed_values(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(WorkloadError) as caught:
        load(str(path))
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    for part in expected:
        assert part in message
    assert "\n" not in message


def test_every_error_is_found_before_anything_runs(tmp_path: Path) -> None:
    path = write(tmp_path, '[[matrix]]\nuffd = "wpp"\nbacking = "memdf"\nmappers = 0\n')
    with pytest.raises(WorkloadError, match=r"\(and 2 more\)"):
        load(str(path))


def test_cli_rejects_an_invalid_workload_with_one_line_and_status_2(tmp_path: Path) -> None:
    path = write(tmp_path, '[[matrix]]\nuffd = "wpp"\n')
    done = faultbench("run", path, "--out", tmp_path / "out", check=False)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert str(path) in done.stderr and "'wpp'" in done.stderr
    assert not (tmp_path / "out").exists()


def test_lookup_by_name_or_path(tmp_path: Path) -> None:
    assert set(SHIPPED) <= set(shipped())
    with pytest.raises(WorkloadError, match=r"no workload named 'quik'; available: .*quick"):
        load("quik")
    with pytest.raises(WorkloadError, match="no such workload file"):
        load(str(tmp_path / "missing.toml"))


def test_shipped_workloads_cover_what_they_promise() -> None:
    quick = load("quick")
    assert {s.spec.uffd for s in quick.scenarios} >= {"none", "missing", "wp"}
    assert {s.spec.pattern for s in quick.scenarios} >= {"seq", "random", "sparse"}
    assert {s.spec.mappers for s in quick.scenarios} >= {1} and max(
        s.spec.mappers for s in quick.scenarios) > 1
    sweep = load("fault-around-sweep")
    powers = {str(page_size() << k) for k in range(32)
              if page_size() << k <= fault_around_max()}
    assert {s.knobs["fault_around_bytes"] for s in sweep.scenarios} == powers
    assert {s.spec.backing for s in sweep.scenarios} == {"memfd", "file"}
    assert {s.spec.pattern for s in sweep.scenarios} == {"seq", "random", "sparse"}
    for name in SHIPPED:
        workload = load(name)
        assert workload.description and workload.scenarios, name
        assert not workload.skipped, (name, workload.skipped[:2])


def test_workloads_command_lists_each_with_a_line() -> None:
    done = faultbench("workloads", check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for name in SHIPPED:
        [line] = [ln for ln in lines if ln.startswith(f"{name} ")]
        assert load(name).description in line
        assert f"{len(load(name).scenarios)} scenarios" in line
    shown = faultbench("workloads", "quick", check=False)
    assert shown.returncode == 0
    assert all(s.name in shown.stdout for s in load("quick").scenarios)
