"""Guests at once do not move instruction-clock numbers: one plan run with --jobs 1 and --jobs N.

Runs WORKLOAD (default: a small memfd workload) with `faultbench run --kernel a=IMAGE
--kernel b=IMAGE --boots B` twice, once one guest at a time and once N at a time, and prints
each run's wall time and, per kernel and scenario, the medians of guest instructions per page
and faults per page on both sides with their difference; then the largest difference over
the rows that touch more than a few pages (sparse rows touch one page per 2 MiB, so one
timer interrupt moves them by percents: docs/icount.md). Run as root:

    python benchmarks/jobs_check.py [IMAGE] [--boots B] [--jobs N] [--workload W]
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
    """Per (kernel, scenario): the median over boots of each boot's median."""
    per_boot: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for line in (run / "samples.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["status"] == "ok" and not r["warmup"] and r.get(metric) is not None:
            per_boot[(r["kernel"], r["scenario"], r["boot"])].append(r[metric])
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
    args = parser.parse_args()
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="faultbench-jobs-check-") as tmp:
        workload = args.workload or str(Path(tmp) / "w.toml")
        if not args.workload:
            Path(workload).write_text(WORKLOAD)
        runs = {}
        for jobs in (1, args.jobs):
            out = Path(tmp) / f"jobs{jobs}"
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "faultbench", "run", workload, "--kernel",
                            f"a={args.image}", "--kernel", f"b={args.image}", "--boots",
                            str(args.boots), "--jobs", str(jobs), "--out", str(out), "-q"],
                           check=True, stdout=subprocess.DEVNULL)
            took = time.perf_counter() - started
            print(f"--jobs {jobs}: {took:.0f} s wall for {2 * args.boots} boots "
                  f"(load average now {os.getloadavg()[0]:.2f})")
            runs[jobs] = out
        worst = 0.0
        print(f"{'kernel: scenario':44} {'insn/pg j1':>10} {'jN':>8} {'diff':>7} "
              f"{'flt/pg j1':>9} {'jN':>7}")
        one, many = (medians(runs[j], "ns_per_page") for j in (1, args.jobs))
        faults = [medians(runs[j], "faults_per_page") for j in (1, args.jobs)]
        for key in sorted(one):
            diff = (many[key] - one[key]) / one[key]
            if "sparse" not in key[1]:
                worst = max(worst, abs(diff))
            print(f"{key[0] + ': ' + key[1]:44.44} {one[key]:10.0f} {many[key]:8.0f} "
                  f"{diff:+7.2%} {faults[0][key]:9.4f} {faults[1][key]:7.4f}")
        print(f"largest difference of insn/page medians, rows other than sparse: {worst:.3%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
