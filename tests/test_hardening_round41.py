"""Round forty-one: what a hostile pass on 96dcf68 found. A booted run's pyperf.json pooled
its kernels in one benchmark per scenario (F1); `measure --perf` printed the same line as
without it (m5). Other findings are tested beside the earlier rounds' fixes they extend
(round 39's knob spellings and merge, test_runner's resume after kill -9)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from analysis_runs import measured_again, measuring
from inprocess import in_process

from faultbench.measurement.rundir.pyperf_suite import pyperf_suite

FAULTBENCH = [sys.executable, "-m", "faultbench"]
RESULTS = Path(__file__).parents[1] / "results"


@pytest.mark.skipif(os.geteuid() != 0, reason="perf events of the kernel need root here")
def test_measure_perf_prints_the_counts_it_asked_for_or_why_not() -> None:
    """m5: the counts were in --json alone; the line said nothing of them, nor that cycles
    and instructions could not be counted (no PMU in this VM)."""
    done = subprocess.run([*FAULTBENCH, "measure", "--size", "1M", "--repeat", "1", "--perf"],
                          capture_output=True, text=True, timeout=120, check=True)
    line = done.stdout.strip()
    minor, major = map(int, re.search(r"(\d+) minor \+ (\d+) major faults", line).groups())
    # the perf software event counts the loop's faults as getrusage does
    assert f"[perf page_faults {minor + major}; cycles " in line, line
    for name in ("cycles", "instructions"):
        assert re.search(rf"{name} (\d+|null: \S[^;\]]*)[;\]]", line), line
    plain = subprocess.run([*FAULTBENCH, "measure", "--size", "1M", "--repeat", "1"],
                           capture_output=True, text=True, timeout=120, check=True)
    assert "[perf" not in plain.stdout


def _suite(run: str) -> tuple[dict, list[dict], object]:
    meta = json.loads((RESULTS / run / "meta.json").read_text())
    records = [json.loads(line) for line in (RESULTS / run / "samples.jsonl").open()]
    return meta, records, pyperf_suite(meta, records)


def test_a_booted_runs_pyperf_json_keeps_its_kernels_apart() -> None:
    """F1: kernel a's and kernel b's rounds were one benchmark per scenario, labelled with
    the host's release, in seconds: `pyperf compare_to` read the mixture as one number."""
    meta, records, suite = _suite("uffd-2020-patch")
    releases = {k["label"]: k["release"] for k in meta["kernels"]}
    benchmarks = suite.get_benchmarks()
    measured = {(r["scenario"], r["kernel"], r["mapper"]) for r in records
                if r["status"] == "ok" and not r["warmup"] and not r.get("profiled")}
    assert len(benchmarks) == len(measured)
    for bench in benchmarks:
        metadata = bench.get_metadata()
        kernel = metadata["faultbench_kernel"]
        assert f",kernel={kernel}" in bench.get_name()
        assert metadata["platform"] == f"Linux-{releases[kernel]}"
        assert bench.get_unit() == "integer"  # guest instructions, not seconds
        values = sorted(r["ns_per_page"] for r in records
                        if (r["scenario"], r["kernel"], r["mapper"]) == (
                            metadata["faultbench_scenario"], kernel,
                            metadata["faultbench_mapper"])
                        and r["status"] == "ok" and not r["warmup"] and not r.get("profiled"))
        assert sorted(bench.get_values()) == values
    # a native run's, and a booted run of one kernel's, names are the scenarios'
    _, records, suite = _suite("tcg-fault-around-sweep")
    assert set(suite.get_benchmark_names()) == {r["scenario"] for r in records
                                                  if r["status"] == "ok"}


@pytest.mark.parametrize("run", sorted(p.name for p in RESULTS.iterdir()
                                       if (p / "pyperf.json").exists()))
def test_each_shipped_pyperf_json_is_what_its_samples_give(run: str, tmp_path: Path) -> None:
    """F1's fix rewrote the shipped files: a pyperf.json is derived from meta.json and
    samples.jsonl, and one left from an older pyperf_suite would say what the docs do not."""
    _, _, suite = _suite(run)
    suite.dump(str(tmp_path / "pyperf.json"))
    assert json.loads((tmp_path / "pyperf.json").read_text()) == json.loads(
        (RESULTS / run / "pyperf.json").read_text())


def test_a_wall_clock_run_of_guests_at_once_is_said_to_be(tmp_path: Path) -> None:
    """m8: `run --jobs 2` on the wall clock warned on its own stderr only; report and compare
    of it said nothing (two boots of one image came out 18% and 10% apart)."""
    run = measured_again(RESULTS / "tcg-memory-1G", tmp_path / "run")
    meta = json.loads((run / "meta.json").read_text())
    meta["jobs"] = {"count": 2, "source": "--jobs"}
    (run / "meta.json").write_text(json.dumps(meta))
    said = ("its guests ran 2 at once on the wall clock (--jobs): sharing the host's CPUs they "
            "slowed each other down, which moves wall-clock times")
    done = in_process("report", run, "--no-figures", "--out", tmp_path / "report")
    assert done.returncode == 0, done.stderr
    assert f"NOTE: {said}" in " ".join((tmp_path / "report" / "report.txt").read_text().split())
    alone = in_process("report", RESULTS / "tcg-memory-1G", "--no-figures", "--out",
                       tmp_path / "alone")
    assert said not in " ".join((tmp_path / "alone" / "report.txt").read_text().split()), \
        alone.stderr
    done = in_process("compare", RESULTS / "tcg-memory-1G", run)
    assert done.returncode == 0, done.stderr
    assert "NEW's guests ran 2 at once on the wall clock (--jobs)" in " ".join(
        done.stdout.split()) and "BASE's guests" not in done.stdout


@pytest.mark.parametrize("name", ["v\u043c", "\uff56\uff4d"])
def test_a_machine_name_that_only_looks_like_another_is_refused(
        name: str, tmp_path: Path) -> None:
    """m12 (round 39's m14): "vm" and "v" with a Cyrillic em, or "vm" in fullwidth letters,
    merged as two machines whose rows a reader cannot tell apart."""
    other = measured_again(RESULTS / "native-quick", tmp_path / "other")
    meta = json.loads((other / "meta.json").read_text())
    meta["provenance"]["host"]["name"] = name
    (other / "meta.json").write_text(json.dumps(meta))
    done = in_process("merge", RESULTS / "native-quick", other, "--out", tmp_path / "merged")
    assert done.returncode == 2 and done.stderr == (
        f"faultbench merge: {other} is from machine {name!a}, whose name is not ASCII: a "
        "reader could not tell it from a name it looks like; merge runs of hosts with ASCII "
        "names\n")
    assert not (tmp_path / "merged").exists()


def test_csv_rows_go_to_stdout_and_its_notes_to_stderr(tmp_path: Path) -> None:
    """m11 (round 40's m2): `compare --format csv` said nothing of two runs' different THP
    settings, which the text format names."""
    other = measured_again(RESULTS / "native-quick", tmp_path / "other")
    meta = json.loads((other / "meta.json").read_text())
    thp = meta["provenance"]["thp"]
    thp["thp.enabled"] = "always" if thp["thp.enabled"] != "always" else "never"
    (other / "meta.json").write_text(json.dumps(meta))
    done = in_process("compare", RESULTS / "native-quick", other, "--format", "csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert rows and all(row["label"] and row["change_pct"] for row in rows)
    assert "BASE and NEW ran at different kernel settings that no scenario of theirs set " \
        "(their provenance): thp.enabled" in " ".join(done.stderr.split()), done.stderr


def test_strict_names_a_row_it_left_one_side_no_sample_of(tmp_path: Path) -> None:
    """m10: every sample of one row preempted on one side: --strict dropped the row from
    every format of compare, and from report, without a word (only_in empty: both sides
    have valid samples there)."""
    run = measured_again(RESULTS / "native-quick", tmp_path / "hit")
    records = [json.loads(line) for line in (run / "samples.jsonl").open()]
    row = next(r["scenario"] for r in records if r["status"] == "ok")
    for record in records:
        if record["scenario"] == row:
            record["nivcsw"] = 2  # preempted while it measured
    (run / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    done = in_process("compare", "--strict", RESULTS / "native-quick", run, "--format", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    [label] = data["left_by_strict"]
    assert label not in {r["label"] for r in data["rows"]}
    assert data["only_in"] == {"BASE": [], "NEW": []}
    assert (f"NOTE: 1 row ({label}) is not compared: --strict left out every sample of one "
            "side there (preempted or stolen from).") in data["footer"]
    plain = json.loads(in_process("compare", RESULTS / "native-quick", run, "--format",
                                  "json").stdout)
    assert plain["left_by_strict"] == [] and label in {r["label"] for r in plain["rows"]}
    done = in_process("report", "--strict", run, "--no-figures", "--out", tmp_path / "report")
    assert done.returncode == 0, done.stderr
    assert f"--strict: they are excluded from every number above; it left no sample of 1 " \
        f"row(s), not shown: {label}." in " ".join(
            (tmp_path / "report" / "report.txt").read_text().split())


def test_a_run_still_measured_is_not_reported_into(tmp_path: Path) -> None:
    """m9: `report RUN` while RUN was measured wrote a report.txt of its first rounds ("has
    not finished") that stayed in the finished run; resume and merge refuse then."""
    workload = tmp_path / "w.toml"
    workload.write_text('repetitions = 2000\n[[matrix]]\nbacking = "memfd"\nsize = "1M"\n')
    run = tmp_path / "run"
    proc = subprocess.Popen([*FAULTBENCH, "run", str(workload), "--out", str(run), "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        measuring(run, proc)
        done = in_process("report", run, "--no-figures")
        assert done.returncode == 2 and done.stderr.startswith(
            f"faultbench report: {run} is being written by another faultbench process (pid "
            f"{proc.pid}: "), done.stderr
        assert done.stderr.endswith("; wait for it to finish, or give --out DIR to report it "
                                    "as it is now\n")
        assert not (run / "report.txt").exists()
        done = in_process("report", run, "--no-figures", "--out", tmp_path / "now")
        assert done.returncode == 0, done.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=60)


# the profiler unavailable, as for a user at kernel.perf_event_paranoid 2 (root, which these
# tests run as, always has it): the run is real, its profiler's probe says no
NO_PROFILER = """
import sys
from faultbench import cli
from faultbench.measurement import profile
profile.unavailable = lambda: "perf_event_open(cpu-clock sampling): Permission denied"
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_run_that_could_not_profile_says_so_in_its_report(tmp_path: Path) -> None:
    """m7: `run --profile 2` where the profiler is unavailable (a user at
    kernel.perf_event_paranoid 2) said so once on stderr and ended 0; meta.json records
    profile 2, and the report said nothing of profiles."""
    workload = tmp_path / "w.toml"
    workload.write_text('repetitions = 2\nprofile = 2\n[[matrix]]\nbacking = "memfd"\n'
                        'size = "1M"\n')
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-c", NO_PROFILER, "run", str(workload), "--out",
                           str(run), "-q"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0 and "no kernel profiles: perf_event_open" in done.stderr, \
        done.stderr
    done = in_process("report", run, "--no-figures")
    assert done.returncode == 0, done.stderr
    assert "NOTE: the workload asks for 2 kernel-profiled round(s) per scenario, and the run " \
        "has none: the profiler was not available where it ran" in " ".join(
            (run / "report.txt").read_text().split())
