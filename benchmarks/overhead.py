#!/usr/bin/env python3
"""What faultbench adds to the timed region: `faultbench measure` vs a bare C loop.

Both time the same mmap + touch with CLOCK_MONOTONIC_RAW around the touch loop. Each side
takes --per-process samples in one process and drops the first: the first sample in any
process is slower (page tables, allocator and caches are cold), in the C loop as much as in
faultbench, and the runner discards it too (persistent worker, warm-up rounds). Pairs run
interleaved (order alternating) so drift hits both alike. Prints the median of per-pair
ratios faultbench/reference for each scenario. Goal: <= 1.01.

    python benchmarks/overhead.py [--pairs 15] [--size 64M] [--per-process 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCENARIOS = {  # name: (reference loop backing, faultbench measure arguments)
    "memfd warm seq read": ("memfd", ["--backing", "memfd"]),
    "anon seq read": ("anon", ["--backing", "anon"]),
}


def reference_ns(binary: Path, backing: str, size: int, per_process: int) -> float:
    out = subprocess.run([str(binary), backing, str(size), "1", "read"],
                         env={"REFERENCE_REPEAT": str(per_process)},
                         capture_output=True, text=True, check=True)
    return statistics.median(int(line) for line in out.stdout.split()[1:])


def faultbench_ns(args: list[str], size: int, per_process: int) -> float:
    out = subprocess.run(
        [sys.executable, "-m", "faultbench", "measure", "--json", "--size", str(size),
         "--repeat", str(per_process), *args],
        capture_output=True, text=True, check=True,
    )
    samples = [json.loads(line) for line in out.stdout.splitlines()]
    if any(sample["status"] != "ok" for sample in samples):
        raise SystemExit(f"faultbench measure failed: {samples[0]['error']}")
    return statistics.median(sample["touch_ns"] for sample in samples[1:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--size", default="64M")
    parser.add_argument("--per-process", type=int, default=5)
    args = parser.parse_args()
    from faultbench.measurement.spec import parse_size

    size = parse_size(args.size)
    with tempfile.TemporaryDirectory() as tmp:
        binary = Path(tmp) / "reference_loop"
        subprocess.run(["cc", "-O2", "-std=gnu99", "-o", str(binary),
                        str(HERE / "reference_loop.c")], check=True)
        for name, (backing, fb_args) in SCENARIOS.items():
            ratios = []
            for pair in range(args.pairs):
                if pair % 2:
                    fb = faultbench_ns(fb_args, size, args.per_process)
                    ref = reference_ns(binary, backing, size, args.per_process)
                else:
                    ref = reference_ns(binary, backing, size, args.per_process)
                    fb = faultbench_ns(fb_args, size, args.per_process)
                ratios.append(fb / ref)
            print(f"{name} ({args.size}, {args.pairs} pairs): median faultbench/reference "
                  f"touch time = {statistics.median(ratios):.3f} "
                  f"(min {min(ratios):.3f}, max {max(ratios):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
