#!/usr/bin/env python3
"""Does the pagemap walk before munmap change munmap_ns? (issue 11: measurement order)

faultbench counts pages_mapped by walking /proc/self/pagemap, then times munmap, so teardown
runs after a walk that read every page table entry and page of the range. This runs the same
64 MiB warm memfd seq read in one C process with the two orders interleaved — walk then
munmap (fb_run with pagemap on) and munmap straight after the loop — and prints the
medians; then faultbench's munmap_ns for the scenario with and without the walk (spec
`pagemap`), for a freshly written backing (cache warm) and for one mapped and unmapped just
before (cache hot), all four interleaved.

    python benchmarks/munmap_order.py [--samples 16] [--size 64M]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
from pathlib import Path

from faultbench import Spec, measure
from faultbench.measurement.spec import parse_size

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--size", default="64M")
    args = parser.parse_args()
    size = parse_size(args.size)
    with tempfile.TemporaryDirectory() as tmp:
        binary = Path(tmp) / "munmap_order"
        subprocess.run(["cc", "-O2", "-std=gnu99", "-o", str(binary),
                        str(HERE / "munmap_order.c")], check=True)
        out = subprocess.run([str(binary), str(size), str(args.samples)], check=True,
                             capture_output=True, text=True).stdout
    times: dict[str, list[int]] = {"munmap straight after the loop": [],
                                   "munmap after the pagemap walk": []}
    names = list(times)
    for line in out.splitlines():
        walk, ns, _present, _ = line.split()
        times[names[int(walk)]].append(int(ns))
    specs = {f"faultbench {cache}, pagemap {'walked' if walk else 'off'}":
             Spec(backing="memfd", size=size, cache=cache, pagemap=walk)
             for cache in ("warm", "hot") for walk in (True, False)}
    measure(Spec(backing="memfd", size=size))  # the process's first sample is discarded
    for name in specs:
        times[name] = []
    for _ in range(args.samples):
        for name, spec in specs.items():
            times[name].append(measure(spec).munmap_ns)
    print(f"memfd {args.size} seq read, {args.samples} samples each, munmap (native)")
    for name, values in times.items():
        q1, q2, q3 = statistics.quantiles(values, n=4)
        print(f"  {name:32} median {q2 / 1e3:7.0f} us   IQR {q1 / 1e3:5.0f}-{q3 / 1e3:5.0f} us"
              f"   min {min(values) / 1e3:5.0f} us")


if __name__ == "__main__":
    main()
