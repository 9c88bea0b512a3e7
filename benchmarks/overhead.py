#!/usr/bin/env python3
"""What faultbench adds to the timed region: `faultbench measure` vs a bare C loop.

Both time the same mmap + touch with CLOCK_MONOTONIC_RAW around the touch loop; pairs run
interleaved (order alternating) so drift hits both alike. Prints the median of per-pair
ratios faultbench/reference for each scenario. Goal: <= 1.01.

    python benchmarks/overhead.py [--pairs 15] [--size 64M]
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


def reference_ns(binary: Path, backing: str, size: int) -> int:
    out = subprocess.run([str(binary), backing, str(size), "1", "read"],
                         capture_output=True, text=True, check=True)
    return int(out.stdout)


def faultbench_ns(args: list[str], size: int) -> int:
    out = subprocess.run(
        [sys.executable, "-m", "faultbench", "measure", "--json", "--size", str(size), *args],
        capture_output=True, text=True, check=True,
    )
    sample = json.loads(out.stdout)
    if sample["status"] != "ok":
        raise SystemExit(f"faultbench measure failed: {sample['error']}")
    return sample["touch_ns"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--size", default="64M")
    args = parser.parse_args()
    from faultbench._spec import parse_size

    size = parse_size(args.size)
    with tempfile.TemporaryDirectory() as tmp:
        binary = Path(tmp) / "reference_loop"
        subprocess.run(["cc", "-O2", "-std=gnu99", "-o", str(binary),
                        str(HERE / "reference_loop.c")], check=True)
        for name, (backing, fb_args) in SCENARIOS.items():
            ratios = []
            for pair in range(args.pairs):
                if pair % 2:
                    fb = faultbench_ns(fb_args, size)
                    ref = reference_ns(binary, backing, size)
                else:
                    ref = reference_ns(binary, backing, size)
                    fb = faultbench_ns(fb_args, size)
                ratios.append(fb / ref)
            print(f"{name} ({args.size}, {args.pairs} pairs): median faultbench/reference "
                  f"touch time = {statistics.median(ratios):.3f} "
                  f"(min {min(ratios):.3f}, max {max(ratios):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
