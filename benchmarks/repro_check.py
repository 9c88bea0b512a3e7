"""Reproducibility check: one workload, one image, two separate runs; how far apart are they?

Runs `faultbench run WORKLOAD --kernel IMAGE` twice, each into a directory of its own (two
boots or more each, so a run has a boot-to-boot spread too), then prints per row (scenario
and mapper role) each run's median, the difference between the two, each run's CV of its
per-boot medians, the spread of all the row's samples (a row whose samples fall into two
states shows it here), and the timer ticks its loops took; last, the largest difference
over the non-sparse rows and over the sparse ones. The targets (issue 28, docs/icount.md):
0.2% non-sparse, 1% sparse, boot CV 0.05%. Measures only through `faultbench run`.

Usage: python benchmarks/repro_check.py IMAGE [--workload quick-guest] [--boots 2]
           [--repetitions 2] [--only FILTER] [--keep DIR]
       python benchmarks/repro_check.py --runs RUN_A RUN_B   (two runs made already)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

import faultbench
from faultbench.analysis.labels import label_columns, labels

METRIC = "ns_per_page"


def measure(image: str, out: Path, args: argparse.Namespace) -> None:
    command = [sys.executable, "-m", "faultbench", "run", args.workload, "--kernel", image,
               "--boots", str(args.boots), "--repetitions", str(args.repetitions),
               "--clock", "icount", "--out", str(out), "-q"]
    for only in args.only:
        command += ["--only", only]
    print("$", " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True)


def rows(run: Path) -> pd.DataFrame:
    df = faultbench.load(str(run))
    df = df[df["ok"] & ~df["profiled"]]
    columns = [c for c in label_columns(df) if c != "kernel"]
    return df.assign(row=labels(df, [*columns, "role"]))


def boot_cv(df: pd.DataFrame) -> float:
    medians = df.groupby("boot")[METRIC].median()
    return float(medians.std(ddof=1) / medians.mean()) if len(medians) > 1 else float("nan")


def table(run_a: Path, run_b: Path) -> str:
    a, b = rows(run_a), rows(run_b)
    lines = [f"{'row (insn/page)':<38} {'run A':>9} {'run B':>9} {'diff':>7} "
             f"{'boot CV A/B':>13} {'spread':>7} {'ticks':>5}"]
    worst = {"non-sparse": (0.0, ""), "sparse": (0.0, "")}
    for row in sorted(set(a["row"]) & set(b["row"])):
        ra, rb = a[a["row"] == row], b[b["row"] == row]
        ma, mb = ra[METRIC].median(), rb[METRIC].median()
        diff = mb / ma - 1
        both = pd.concat([ra, rb])
        spread = (both[METRIC].max() - both[METRIC].min()) / both[METRIC].median()
        ticks = both["ticks"].dropna() if "ticks" in both else pd.Series(dtype=float)
        tick_text = f"{int(ticks.min())}-{int(ticks.max())}" if len(ticks) else "-"
        lines.append(f"{row[:38]:<38} {ma:>9.2f} {mb:>9.2f} {100 * diff:>+6.2f}% "
                     f"{100 * boot_cv(ra):>5.3f}/{100 * boot_cv(rb):>5.3f}% "
                     f"{100 * spread:>6.2f}% {tick_text:>5}")
        kind = "sparse" if (ra["pattern"] == "sparse").all() else "non-sparse"
        if abs(diff) >= abs(worst[kind][0]):
            worst[kind] = (diff, row)
    for kind, (diff, row) in worst.items():
        if row:
            lines.append(f"largest difference, {kind} rows: {100 * diff:+.3f}% ({row})")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", nargs="?")
    parser.add_argument("--runs", nargs=2, metavar=("RUN_A", "RUN_B"))
    parser.add_argument("--workload", default="quick-guest")
    parser.add_argument("--boots", type=int, default=2)
    parser.add_argument("--repetitions", type=int, default=2)
    parser.add_argument("--only", action="append", default=[])
    parser.add_argument("--keep", help="make the two runs here (default: a temporary dir)")
    args = parser.parse_args()
    if args.runs:
        print(table(Path(args.runs[0]), Path(args.runs[1])))
        return 0
    if not args.image:
        parser.error("give IMAGE, or --runs RUN_A RUN_B")
    if args.keep:
        check(args.image, Path(args.keep), args)
    else:
        with tempfile.TemporaryDirectory(prefix="repro-check-") as scratch:
            check(args.image, Path(scratch), args)
    return 0


def check(image: str, directory: Path, args: argparse.Namespace) -> None:
    runs = [directory / name for name in ("run-a", "run-b")]
    for run in runs:
        measure(image, run, args)
    print(table(*runs))


if __name__ == "__main__":
    sys.exit(main())
