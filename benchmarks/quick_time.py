"""Wall time of `faultbench run` (the quick workload), start-up and summary included.

Runs the command as a user would, N times (default 3), into a temporary directory, and prints
each time and the median. The acceptance bound is 45 s on a 2-core machine.
Run as root: python benchmarks/quick_time.py [N]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BOUND_S = 45.0


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    times = []
    with tempfile.TemporaryDirectory(prefix="faultbench-quick-") as tmp:
        for i in range(n):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "faultbench", "run", "--out",
                            str(Path(tmp) / str(i)), "-q"], check=True, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - t0)
            print(f"run {i + 1}: {times[-1]:.2f} s")
    median = statistics.median(times)
    verdict = "within" if median <= BOUND_S else "OVER"
    print(f"faultbench run (quick): median {median:.2f} s over {n} runs "
          f"({verdict} the {BOUND_S:.0f} s bound)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
