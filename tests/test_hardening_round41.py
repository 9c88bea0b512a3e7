"""Round forty-one: what a hostile pass on 96dcf68 found. A booted run's pyperf.json pooled
its kernels in one benchmark per scenario (F1); `measure --perf` printed the same line as
without it (m5). Other findings are tested beside the earlier rounds' fixes they extend
(round 39's knob spellings and merge, test_runner's resume after kill -9)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

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
