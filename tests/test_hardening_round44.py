"""Round forty-four: what a hostile pass on a225717 found (no major finding). An A/A booted
run of one boot a side marked a 2-instruction difference `*`, "exact: the sides differ"
(F1); a sysctl every row set was named nowhere in the report (m1); a run with stdout closed
ended in an error that did not say the run was complete (m3); `ulimit -v` was named
nowhere (m4); a THP sweep's baseline was its alphabetically first value (m5). A guest
calling itself "docker" (m2): tests/test_analysis.py."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from analysis_runs import faultbench
from console import one_line
from groups import HOST

import faultbench as fb
from faultbench.analysis.replicates import (
    EXACT_METHOD,
    ONE_BOOT_APART_METHOD,
    ROUND_METHOD,
    compare_rows,
)
from faultbench.analysis.sweep import default_baseline

FAULTBENCH = [sys.executable, "-m", "faultbench"]
RESULTS = Path(__file__).parents[1] / "results"
TINY = 'repetitions = 2\n[[matrix]]\nbacking = "memfd"\nsize = "1M"\n'


def test_one_boot_a_side_on_the_instruction_clock_is_not_tested() -> None:
    """F1: a boot's rounds repeat to the instruction, boots of one image land a few
    instructions apart (icount-aa, one image as a and b). With one boot a side the timing
    rows were "exact" and a 2-instruction difference marked `*`; now they are untested ("?").
    Fault counts, the kernel's own, stay exact; both sides in one boot are tested as before."""
    df = fb.load(RESULTS / "icount-aa")
    first = df[df["boot"].isin([df.loc[df["kernel"] == k, "boot"].min() for k in ("a", "b")])]
    base, new = (first[first["kernel"] == k] for k in ("a", "b"))
    timing = compare_rows(base, new, ["scenario"], "ns_per_page")
    assert (timing["method"] == ONE_BOOT_APART_METHOD).all()
    assert (timing["mark"] == "?").all() and not timing["exact"].any()
    assert timing["p"].isna().all() and (timing["unit"] == "round").all()
    counts = compare_rows(base, new, ["scenario"], "faults_per_page")
    assert ONE_BOOT_APART_METHOD not in set(counts["method"])
    assert (counts["method"] == EXACT_METHOD).any()
    # three boots a side: boots are the units, tested
    every = compare_rows(df[df["kernel"] == "a"], df[df["kernel"] == "b"], ["scenario"],
                         "ns_per_page")
    assert (every["unit"] == "boot").all() and every["p"].notna().any()
    # two patterns of one boot: the sides share the boot, as a knob sweep's do
    one_boot = df[df["boot"] == base["boot"].iloc[0]]
    seq, sparse = (one_boot[one_boot["pattern"] == p] for p in ("seq", "sparse"))
    patterns = compare_rows(seq, sparse, ["uffd"], "ns_per_page")
    assert set(patterns["method"]) <= {EXACT_METHOD, ROUND_METHOD}


@HOST  # it sets vm.swappiness to the value it reads (no count depends on it), under the lock
@pytest.mark.skipif(os.geteuid() != 0, reason="setting a knob needs root")
def test_a_sysctl_every_row_set_is_named_in_the_report(tmp_path: Path) -> None:
    """m1: `--set vm.swappiness=61` was named nowhere in report.txt: "Set for every row"
    knew the machine's own value of THP settings and fault_around_bytes only."""
    value = Path("/proc/sys/vm/swappiness").read_text().strip()
    workload = tmp_path / "w.toml"
    workload.write_text(TINY)
    run = tmp_path / "run"
    faultbench("run", workload, "--out", run, "-q", "--set", f"vm.swappiness={value}")
    text = " ".join(faultbench("report", "--no-figures", run).stdout.split())
    assert f"Set for every row: vm.swappiness={value} (this machine's own: not recorded)." \
        in text


@pytest.mark.parametrize("stdout", ["closed", "full"])
def test_a_run_whose_stdout_fails_says_it_is_complete(tmp_path: Path, stdout: str) -> None:
    """m3: with stdout closed a run measured everything, sealed its directory, then ended
    "cannot write standard output: it is closed" (status 2) and nothing more."""
    workload = tmp_path / "w.toml"
    workload.write_text(TINY)
    run = tmp_path / "run"
    with open("/dev/full", "w") as full:
        done = subprocess.run([*FAULTBENCH, "run", str(workload), "--out", str(run), "-q"],
                              stdout=full if stdout == "full" else None, stderr=subprocess.PIPE,
                              text=True, timeout=120, check=False,
                              preexec_fn=(lambda: os.close(1)) if stdout == "closed" else None)
    why = "it is closed" if stdout == "closed" else "No space left on device"
    assert done.returncode == 2 and one_line(done.stderr) == (
        f"faultbench run: cannot write standard output: {why} after the run finished: every "
        f"sample is in {run}; see them with: faultbench report {run}"), done.stderr
    records = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert sum(not record["warmup"] for record in records) == 2  # both rounds


def test_an_address_space_limit_is_named_before_anything_is_mapped() -> None:
    """m4: under `ulimit -v` 3 GB `measure --size 4G` passed the memory check (23 GiB
    available) and failed in mmap: "Cannot allocate memory", no limit named."""
    limit = 3 << 30
    done = subprocess.run(
        [*FAULTBENCH, "measure", "--size", "4G", "--backing", "anon"], capture_output=True,
        text=True, timeout=120, check=False,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
    line = one_line(done.stderr)
    assert done.returncode == 2 and done.stdout == "", done.stderr
    assert line.startswith("faultbench measure: size 4G needs 4,100 MiB of address space "
                           "beside the "), line
    assert line.endswith("and the limit on address space is 3,072 MiB: raise `ulimit -v`")


def test_a_sweep_of_words_is_measured_against_the_first_the_workload_lists() -> None:
    """m5: a sweep of thp.shmem_enabled = ["never", "always"] was reported against
    "always", alphabetically first, and the kernel's default never read "+1818%"."""
    levels = pd.Series(["always", "never", "always", "never"])
    assert default_baseline("thp.shmem_enabled", levels, ["never", "always"]) == "never"
    assert default_baseline("thp.shmem_enabled", levels, ["advise", "always"]) == "always"
    numbers = pd.Series([61, 60])
    assert default_baseline("vm.swappiness", numbers, [61, 60]) == 60  # the smallest
    assert default_baseline("fault_around_bytes", pd.Series([65536, 4096]), [65536]) == 4096
