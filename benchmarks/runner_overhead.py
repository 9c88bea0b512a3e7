"""What the runner adds per sample: worker round trip, JSON, fsync'd append, knob bookkeeping.

Times a tiny scenario (64K memfd, so the measurement itself is short) N times in this process
with measure_mappers(), then the same N samples through the runner (worker process, results
directory), and prints the difference per sample.
Run as root: python benchmarks/runner_overhead.py [N]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from faultbench import measure_mappers
from faultbench.measurement.runner import execute, start
from faultbench.measurement.workload import load

WORKLOAD = """
description = "runner overhead"
repetitions = {n}
warmups = 0

[[matrix]]
backing = "memfd"
size = "64K"
"""


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    with tempfile.TemporaryDirectory(prefix="faultbench-overhead-") as tmp:
        path = Path(tmp) / "overhead.toml"
        path.write_text(WORKLOAD.format(n=n))
        workload = load(str(path))
        spec = workload.scenarios[0].spec

        direct = []
        for _ in range(n):
            t0 = time.perf_counter()
            measure_mappers(spec)
            direct.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        run_dir = start(workload, Path(tmp) / "run")
        t1 = time.perf_counter()
        execute(run_dir, quiet=True)
        t2 = time.perf_counter()

    per_sample = (t2 - t1) / n
    direct_median = statistics.median(direct)
    print(f"samples: {n} of {workload.scenarios[0].name}")
    print(f"start (workload checks, provenance, meta.json): {(t1 - t0) * 1e3:.1f} ms")
    print(f"through the runner (incl. worker start, pyperf.json): {per_sample * 1e3:.3f} ms/sample")
    print(f"measure_mappers() in process: {direct_median * 1e3:.3f} ms/sample (median)")
    print(f"runner overhead: {(per_sample - direct_median) * 1e3:.3f} ms/sample")
    return 0


if __name__ == "__main__":
    sys.exit(main())
