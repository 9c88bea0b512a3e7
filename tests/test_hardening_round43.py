"""Round forty-three: what a hostile pass on 3c1a60c found (no major finding). A run started
on one CPU (taskset) resumed on two, and pooled the samples of both (F3); lkp's compare
refused a run without pages mapped (F1); a booted report never named a knob every row set
(F2); a resume of a meta.json without provenance (m3)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from analysis_runs import faultbench, make_run, measuring
from console import one_line

FAULTBENCH = [sys.executable, "-m", "faultbench"]
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two usable CPUs")
def test_a_resume_on_other_usable_cpus_is_refused(tmp_path: Path) -> None:
    """F3: started under `taskset -c 0`, stopped, resumed on two CPUs: the rest was measured
    with another CPU free for everything else, pooled with the first under meta.json's
    `usable: 1`. Other CPU counts and models were refused already (round 39)."""
    workload = tmp_path / "w.toml"
    workload.write_text('repetitions = 2000\n[[matrix]]\nbacking = "memfd"\nsize = "1M"\n')
    run = tmp_path / "run"
    one = min(os.sched_getaffinity(0))
    proc = subprocess.Popen([*FAULTBENCH, "run", str(workload), "--out", str(run), "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=lambda: os.sched_setaffinity(0, {one}))
    measuring(run, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    before = (run / "samples.jsonl").read_text()
    done = subprocess.run([*FAULTBENCH, "run", "--resume", str(run), "-q"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert one_line(done.stderr) == (
        f"faultbench run: {run} was measured with 1 usable CPU(s) and this process may use "
        f"{len(os.sched_getaffinity(0))} (taskset, a cpuset, isolcpus): resuming here would "
        "pool samples of both under the first; resume it on the same CPUs, or start a new run")
    assert (run / "samples.jsonl").read_text() == before


def test_a_resume_without_provenance_or_under_another_command_line_is_refused(
        tmp_path: Path) -> None:
    """m3: a meta.json without provenance was resumed as "measured on Linux None (None) on
    host None"; one without provenance.cpu was resumed on any processors. And (F3's note) a
    run resumed after a reboot with other kernel parameters pooled the samples of both: here
    as if the run had been measured with the last of this boot's parameters in place of
    another."""
    workload = tmp_path / "w.toml"
    workload.write_text('repetitions = 2000\n[[matrix]]\nbacking = "memfd"\nsize = "1M"\n')
    run = tmp_path / "run"
    proc = subprocess.Popen([*FAULTBENCH, "run", str(workload), "--out", str(run), "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    measuring(run, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    meta = json.loads((run / "meta.json").read_text())
    recorded = meta["provenance"]
    unrecorded = (" measured its samples, so a resume could pool another's with them; start a "
                  f"new run (faultbench report {run} shows its samples)")
    booted = recorded["kernel"]["cmdline"].split()  # this boot's parameters
    for provenance, said in (
            (None, f"{run}/meta.json: no provenance: nothing says which kernel and machine"
                   + unrecorded),
            ({key: value for key, value in recorded.items() if key != "cpu"},
             f"{run}/meta.json: no provenance.cpu: nothing says which kernel and machine"
             + unrecorded),
            ({**recorded, "kernel": {**recorded["kernel"], "cmdline": " ".join(
                [*booted[:-1], "faultbench.test=1"])}},
             f"{run} was measured under another kernel command line: with faultbench.test=1, "
             f"which this boot lacks; without {booted[-1]}, which this boot has: resuming "
             "here would pool the samples of both under the first; boot with the first "
             "again, or start a new run")):
        tampered = {key: value for key, value in meta.items() if key != "provenance"}
        if provenance is not None:
            tampered["provenance"] = provenance
        (run / "meta.json").write_text(json.dumps(tampered))
        done = subprocess.run([*FAULTBENCH, "run", "--resume", str(run), "-q"],
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 2 and one_line(done.stderr) == f"faultbench run: {said}", \
            done.stderr


def test_lkp_compare_of_a_run_without_pages_mapped_shows_what_it_has(tmp_path: Path) -> None:
    """F1: `compare --format lkp` of a run measured with `pagemap = false` was refused as
    "BASE has no valid values of mapped_per_touched", a metric nobody asked for."""
    run = make_run(tmp_path, "run", 'repetitions = 2\n[defaults]\npagemap = false\n[[matrix]]\n'
                   'backing = "memfd"\nsize = "1M"\nuffd = ["none", "wp"]\n')
    done = faultbench("compare", "--by", "uffd", f"{run}:none", f"{run}:wp", "--format", "lkp")
    text = " ".join(done.stdout.split())
    assert ".ns/page" in text and ".faults/page" in text and ".munmap_ns/page" in text
    assert ".mapped/page" not in text
    assert ("Not shown: mapped_per_touched, as BASE has no valid values of "
            "mapped_per_touched.") in text


@pytest.mark.parametrize(("guests", "said"), [
    ({"base": "always", "patched": "always"}, "(the guests' own: always)"),
    ({"base": "always", "patched": "advise"}, "(the guests' own: base always, patched advise)"),
])
def test_a_booted_report_names_a_knob_every_row_set(tmp_path: Path, guests: dict[str, str],
                                                    said: str) -> None:
    """F2: a booted run with `--set thp.enabled=always` never said it, where a native run's
    report says "Set for every row". Its guests record their own values before their run
    sets any (boots in meta.json): here uffd-2020-patch's, as if its guests had had others
    than the never its workload sets."""
    run = tmp_path / "run"
    shutil.copytree(ROOT / "results" / "uffd-2020-patch", run)
    meta = json.loads((run / "meta.json").read_text())
    for boot in meta["boots"]:
        boot["guest"]["thp"]["thp.shmem_enabled"] = guests[boot["kernel"]]
    (run / "meta.json").write_text(json.dumps(meta))
    faultbench("report", "--no-figures", run, "--out", tmp_path / "out")
    text = " ".join((tmp_path / "out" / "report.txt").read_text().split())
    assert f"Set for every row: thp.shmem_enabled=never {said}." in text
