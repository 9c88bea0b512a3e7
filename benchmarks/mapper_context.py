#!/usr/bin/env python3
"""Are rows x1 and x3 measured in the same kind of context? (issue 11: measurement order)

Interleaves one-mapper and three-mapper samples of the same 64 MiB warm memfd seq read
(mapper_kind process, sequential) in this process, as the worker would, and prints the first
mapper's ns/page for each: equal contexts give equal first mappers.

    python benchmarks/mapper_context.py [--samples 16] [--size 64M]
"""

from __future__ import annotations

import argparse
import statistics

from faultbench import Spec
from faultbench.measurement.measure import measure_mappers
from faultbench.measurement.spec import parse_size


def quartiles(values: list[float]) -> str:
    q1, q2, q3 = statistics.quantiles(values, n=4)
    return f"median {q2:6.0f}  IQR {q1:6.0f}-{q3:6.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--size", default="64M")
    args = parser.parse_args()
    specs = {n: Spec(backing="memfd", size=parse_size(args.size), mappers=n) for n in (1, 3)}
    rows: dict[str, list[float]] = {"x1 mapper 1": [], "x3 mapper 1": [], "x3 mappers 2-3": []}
    for spec in specs.values():  # the process's first samples are discarded
        measure_mappers(spec)
    for _ in range(args.samples):
        for n, spec in specs.items():
            samples = measure_mappers(spec)
            if any(s.status != "ok" for s in samples):
                raise SystemExit(f"x{n}: {samples[0].error}")
            rows[f"x{n} mapper 1"].append(samples[0].ns_per_page)
            rows["x3 mappers 2-3"] += [s.ns_per_page for s in samples[1:]]
    print(f"memfd {args.size} warm seq read, {args.samples} samples each, ns/page (native)")
    for name, values in rows.items():
        print(f"  {name:16} {quartiles(values)}   n {len(values)}")


if __name__ == "__main__":
    main()
