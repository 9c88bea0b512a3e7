#!/usr/bin/env python3
"""The break-even density measured without faultbench: benchmarks/breakeven_loop.c.

Compiles the loop, then for --rounds rounds runs every (stride, fault-around on/off) pair in
a shuffled order, one process each taking --per-process samples of which the first (cold
page tables and caches) is dropped. Prints, per stride, the median over rounds of ns per
touched page with fault-around on (no registration) and off (uffd wp), the faults, and the
stride where the curves cross, interpolated in log(stride), for the touch loop alone and with
munmap counted. Independent of faultbench's analysis code, so the two can check each other.
Needs root (userfaultfd).

    python benchmarks/breakeven_check.py [--rounds 7] [--size 64M] [--per-process 3]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
STRIDES = (1, 2, 4, 8, 16, 32, 64, 512)  # 512: one page per page table, faultbench's sparse
MODES = ("none", "wp")


def run_loop(binary: Path, size: int, stride: int, mode: str, per_process: int) -> list[float]:
    """[touch ns/page, munmap ns/page, faults] medians of one process's samples but the first."""
    out = subprocess.run([str(binary), str(size), str(stride), mode, str(per_process)],
                         capture_output=True, text=True, check=True).stdout
    samples = [[float(x) for x in line.split()[:3]] for line in out.splitlines()[1:]]
    return [statistics.median(column) for column in zip(*samples, strict=True)]


def crossing(strides: list[int], on: list[float], off: list[float]) -> str:
    """The first stride where on stops being cheaper than off, linear in log(stride) on
    log(on/off); said in words when it lies outside the measured strides."""
    gaps = [math.log(a / b) for a, b in zip(on, off, strict=True)]
    if gaps[0] >= 0:
        return f"none: on is slower already at stride {strides[0]}"
    for i in range(len(gaps) - 1):
        if gaps[i] < 0 <= gaps[i + 1]:
            lo, hi = math.log(strides[i]), math.log(strides[i + 1])
            at = math.exp(lo + (hi - lo) * gaps[i] / (gaps[i] - gaps[i + 1]))
            return f"stride {at:.1f} ({16 / at:.2f} pages per 64K window), " \
                   f"between {strides[i]} and {strides[i + 1]}"
    return f"none: on is faster up to stride {strides[-1]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--size", default="64M")
    parser.add_argument("--per-process", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    size = int(args.size[:-1]) << 20 if args.size.endswith("M") else int(args.size)
    results: dict[tuple[int, str], list[list[float]]] = {}
    order = [(s, m) for s in STRIDES for m in MODES]
    shuffle = random.Random(args.seed).shuffle
    with tempfile.TemporaryDirectory() as tmp:
        binary = Path(tmp) / "breakeven_loop"
        subprocess.run(["cc", "-O2", "-std=gnu99", "-Wall", "-Wextra", "-Werror", "-o",
                        str(binary), str(HERE / "breakeven_loop.c")], check=True)
        for _ in range(args.rounds):
            shuffle(order)
            for stride, mode in order:
                results.setdefault((stride, mode), []).append(
                    run_loop(binary, size, stride, mode, args.per_process))

    def median(stride: int, mode: str, column: int) -> float:
        return statistics.median(r[column] for r in results[stride, mode])

    print(f"{args.size} warm memfd, 1 byte read per touched page; medians of {args.rounds} "
          f"rounds ({args.per_process - 1} samples each); ns per touched page")
    print(f"{'stride':>6} {'on':>7} {'off':>7} {'on+unmap':>9} {'off+unmap':>9} "
          f"{'faults on':>9} {'off':>6}")
    curves: dict[str, list[float]] = {"on": [], "off": [], "on+": [], "off+": []}
    for stride in STRIDES:
        on, off = median(stride, "none", 0), median(stride, "wp", 0)
        on_total = statistics.median(r[0] + r[1] for r in results[stride, "none"])
        off_total = statistics.median(r[0] + r[1] for r in results[stride, "wp"])
        for key, value in zip(curves, (on, off, on_total, off_total), strict=True):
            curves[key].append(value)
        print(f"{stride:>6} {on:>7.0f} {off:>7.0f} {on_total:>9.0f} {off_total:>9.0f} "
              f"{median(stride, 'none', 2):>9.0f} {median(stride, 'wp', 2):>6.0f}")
    print("crossing, touch only:   " + crossing(list(STRIDES), curves["on"], curves["off"]))
    print("crossing, touch+munmap: " + crossing(list(STRIDES), curves["on+"], curves["off+"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
