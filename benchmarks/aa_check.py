"""A/A check: how many rows does the comparison mark when nothing differs?

Design. One generated workload measures every scenario twice under two names: a tmpfs file in
two directories of the same tmpfs mount (/dev/shm), the `dir` axis. The directory is in the
scenario name, so the runner keeps both and shuffles them into the same rounds, yet the file
is on the same filesystem, so the measurement is the same. Then:

- within a run: dir A against dir B of the same run (interleaved, same rounds);
- across runs: run i against run i+1, each directory with itself (drift between runs).

Each is counted with `analysis.replicates.compare_rows` (units: rounds, mappers pooled per
round; Holm across the rows of one table) and, for contrast, with today's `faultbench compare`
(per-sample Mann-Whitney, no adjustment), through its CSV output. Prints numbers, asserts
nothing. Needs root (like `faultbench run`); sets no knob. ~25 s per run on 2 CPUs.
Sensitivity, so that 0 marked is not mistaken for a blind test: the within-run comparison
again with dir B's timings scaled by 1.10 and 1.25 (the rows a real change would mark).

Usage: python benchmarks/aa_check.py [RUNS] (default 3; at least 2)
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

import faultbench
from faultbench.analysis.replicates import compare_rows

METRIC = "ns_per_page"
# The axes the workload varies (besides dir): what tells rows apart.
ROW_KEYS = ["pattern", "uffd", "mappers", "role"]
WORKLOAD = """\
description = "A/A: each scenario twice, in two directories of one tmpfs"
repetitions = 10
warmups = 1
seed = 11

[defaults]
backing = "tmpfs"
size = "32M"
access = "read"
cache = "warm"
dir = [{dirs}]

[[matrix]]
pattern = ["seq", "random", "sparse"]
uffd = ["none", "missing", "wp"]

[[matrix]]
pattern = "seq"
mappers = 3
uffd = ["none", "wp"]
uffd_mappers = "later"
"""


def run_workload(workload: Path, out: Path) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "faultbench", "run", str(workload), "--out", str(out),
                    "-q"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - began


def ours(base: pd.DataFrame, new: pd.DataFrame) -> tuple[int, int, int]:
    """Rows, rows marked, rows with raw p < 0.05."""
    table = compare_rows(base, new, ROW_KEYS, METRIC)
    return len(table), int(table["significant"].sum()), int((table["p"] < 0.05).sum())


def todays(base: str, new: str, by: str | None = None) -> tuple[int, int]:
    """Rows and rows marked by `faultbench compare` as it is (per-sample Mann-Whitney)."""
    command = [sys.executable, "-m", "faultbench", "compare", base, new, "--format", "csv"]
    if by:
        command += ["--by", by]
    csv = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    table = pd.read_csv(io.StringIO(csv))
    return len(table), int(table["significant"].sum())


def line(what: str, counts: list[tuple[int, ...]]) -> str:
    rows = sum(c[0] for c in counts)
    marked = sum(c[1] for c in counts)
    text = f"{what:44s} {marked:3d} / {rows:3d} rows marked ({100 * marked / rows:4.1f}%)"
    if len(counts[0]) > 2:
        raw = sum(c[2] for c in counts)
        text += f"; raw p < 0.05: {raw} ({100 * raw / rows:.1f}%)"
    return text


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    if runs < 2:
        print("usage: aa_check.py [RUNS >= 2]", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="faultbench-aa-"))
    dirs = [Path(tempfile.mkdtemp(prefix=f"faultbench-aa-{side}-", dir="/dev/shm"))
            for side in "ab"]
    try:
        workload = work / "aa.toml"
        workload.write_text(WORKLOAD.format(dirs=", ".join(f'"{d}"' for d in dirs)))
        outs = [work / f"run{i}" for i in range(runs)]
        for i, out in enumerate(outs):
            print(f"run {i + 1}/{runs}: {run_workload(workload, out):.0f} s", flush=True)
        frames = [faultbench.load(out) for out in outs]
        sides = [{str(d): df[df["ok"] & (df["dir"] == str(d))] for d in dirs} for df in frames]
        a, b = (str(d) for d in dirs)
        within = [ours(s[a], s[b]) for s in sides]
        spread = pd.concat([compare_rows(s[a], s[b], ROW_KEYS, METRIC) for s in sides])
        scaled = {factor: [ours(s[a], s[b].assign(**{METRIC: s[b][METRIC] * factor}))
                           for s in sides] for factor in (1.10, 1.25)}
        across = [ours(sides[i][d], sides[i + 1][d]) for i in range(runs - 1) for d in (a, b)]
        within_today = [todays(f"{out}:{a}", f"{out}:{b}", by="dir") for out in outs]
        across_today = [todays(str(outs[i]), str(outs[i + 1])) for i in range(runs - 1)]
    finally:
        shutil.rmtree(work)
        for directory in dirs:
            directory.rmdir()  # the runner removes its files; a leftover is an error to see
    scenarios = frames[0]["scenario"].nunique() // 2
    print(f"{runs} runs of {scenarios} scenarios, each under two names; {METRIC}; plane "
          f"{frames[0]['plane'].iloc[0]}")
    print(f"round-to-round spread (half IQR in % of the median), median over rows: "
          f"{spread['base_spread_pct'].median():.1f}% (max {spread['base_spread_pct'].max():.0f}%)")
    print(line("within a run, compare_rows (rounds, Holm):", within))
    print(line("within a run, faultbench compare today:", within_today))
    for factor, counts in scaled.items():
        print(line(f"within a run, B scaled x{factor:.2f}, compare_rows:", counts))
    print(line("across runs, compare_rows (rounds, Holm):", across))
    print(line("across runs, faultbench compare today:", across_today))
    return 0


if __name__ == "__main__":
    sys.exit(main())
