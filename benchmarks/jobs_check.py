"""Guests at once do not move instruction-clock numbers: one plan run with --jobs 1 and --jobs N.

Runs WORKLOAD (default: a small memfd workload) with `faultbench run --kernel a=IMAGE
--kernel b=IMAGE --boots B` (or the --kernel LABEL=IMAGE given) twice, once N guests at a time
and then one at a time, and prints each run's wall time and, per kernel and scenario, the
medians of guest instructions per page and faults per page on both sides with their
difference; then the largest difference over the rows that touch more than a few pages
(sparse rows touch one page per 2 MiB, so one timer interrupt moves them by percents:
docs/icount.md). Run as root:

    python benchmarks/jobs_check.py [IMAGE] [--boots B] [--jobs N] [--workload W]
    python benchmarks/jobs_check.py --workload uffd-2020-patch --kernel base=IMAGE \
        --kernel patched=IMAGE --boots 3 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from statistics import median

WORKLOAD = """\
description = "jobs check: four small scenarios"
repetitions = 4
warmups = 1
seed = 11

[defaults]
backing = "memfd"
size = "16M"
access = "read"
cache = "warm"

[[matrix]]
pattern = ["seq", "sparse"]
uffd = ["none", "wp"]
"""


def medians(run: Path, metric: str) -> dict[tuple[str, str], float]:
    """Per (kernel, scenario and mapper role): the median over boots of each boot's
    median."""
    per_boot: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for line in (run / "samples.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["status"] == "ok" and not r["warmup"] and r.get(metric) is not None:
            # the first and the later mappers of a multi-mapper scenario are rows of their
            # own, as in the report (they take different faults)
            role = "" if r["spec"].get("mappers", 1) == 1 else \
                " [first]" if r["mapper"] == 0 else " [later]"
            per_boot[(r["kernel"], r["scenario"] + role, r["boot"])].append(r[metric])
    rows: dict[tuple[str, str], list[float]] = defaultdict(list)
    for (kernel, scenario, _), values in per_boot.items():
        rows[(kernel, scenario)].append(median(values))
    return {key: median(values) for key, values in rows.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", nargs="?",
                        default=str(sorted(Path("/boot").glob("vmlinuz-*"))[-1]))
    parser.add_argument("--boots", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--workload", help="a workload name or .toml (default: built in)")
    parser.add_argument("--kernel", action="append", metavar="LABEL=IMAGE",
                        help="the kernels to run (default: IMAGE as a and as b)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="make the two runs in DIR (jobs1, jobsN) and keep them")
    args = parser.parse_args()
    if args.jobs < 2:
        parser.error("--jobs N compares N guests at once with one: give N >= 2")
    kernels = args.kernel or [f"a={args.image}", f"b={args.image}"]
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="faultbench-jobs-check-") as scratch:
        tmp = str(args.keep or scratch)
        workload = args.workload or str(Path(tmp) / "w.toml")
        if not args.workload:
            Path(workload).write_text(WORKLOAD)
        runs = {}
        for jobs in (args.jobs, 1):
            out = Path(tmp) / f"jobs{jobs if jobs == 1 else 'N'}"
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "faultbench", "run", workload,
                            *(f"--kernel={k}" for k in kernels), "--boots", str(args.boots),
                            "--jobs", str(jobs), "--out", str(out), "-q"],
                           check=True, stdout=subprocess.DEVNULL)
            took = time.perf_counter() - started
            print(f"--jobs {jobs}: {took:.0f} s wall ({took // 60:.0f} min {took % 60:02.0f} s) "
                  f"for {len(kernels) * args.boots} boots (load average now "
                  f"{os.getloadavg()[0]:.2f})", flush=True)
            runs[jobs] = out
        worst = 0.0
        one, many = (medians(runs[j], "ns_per_page") for j in (1, args.jobs))
        width = max(len(f"{kernel}: {scenario}") for kernel, scenario in one)
        print(f"{'kernel: scenario':{width}} {'insn/pg j1':>10} {'jN':>8} {'diff':>7} "
              f"{'flt/pg j1':>9} {'jN':>7}")
        faults = [medians(runs[j], "faults_per_page") for j in (1, args.jobs)]
        for key in sorted(one):
            diff = (many[key] - one[key]) / one[key]
            if "sparse" not in key[1]:
                worst = max(worst, abs(diff))
            print(f"{key[0] + ': ' + key[1]:{width}} {one[key]:10.0f} {many[key]:8.0f} "
                  f"{diff:+7.2%} {faults[0][key]:9.4f} {faults[1][key]:7.4f}")
        print(f"largest difference of insn/page medians, rows other than sparse: {worst:.3%}")
        differ = sum(faults[0][key] != faults[1][key] for key in one)
        print(f"rows whose faults/page medians differ: {differ} of {len(one)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
