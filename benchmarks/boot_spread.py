"""How much a booted run's timings vary: within one boot and from boot to boot.

For each row (scenario, mapper role, kernel) of a run made with `faultbench run W --kernel ...
--boots N`, prints the within-boot spread (coefficient of variation of the per-round values
inside each boot, the median over boots) and the boot-to-boot spread (the CV of the per-boot
medians), in percent. On the wall clock of an emulated guest the second is tens of percent;
on the instruction clock it is what a kernel comparison of N boots can resolve.

    python benchmarks/boot_spread.py RUN_DIR [--metric ns_per_page]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

import faultbench as fb

KEYS = ["kernel", "scenario", "role"]


def spreads(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (kernel, scenario, role): boots, rounds, median, within- and between-boot
    CV. Mappers of one round are pooled into the round's median first: they are not
    independent of each other."""
    valid = df[df["ok"]]
    rounds = valid.groupby([*KEYS, "boot", "round"], dropna=False)[metric].median()
    per_boot = rounds.groupby(level=[*KEYS, "boot"], dropna=False)
    within = (per_boot.std(ddof=1) / per_boot.mean()).groupby(level=KEYS, dropna=False)
    boot_medians = per_boot.median().groupby(level=KEYS, dropna=False)
    table = pd.DataFrame({
        "boots": boot_medians.size(),
        "rounds": rounds.groupby(level=KEYS, dropna=False).size(),
        "median": boot_medians.median(),
        "within_cv_pct": 100 * within.median(),
        "between_cv_pct": 100 * boot_medians.std(ddof=1) / boot_medians.mean(),
    })
    return table.reset_index()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--metric", default="ns_per_page")
    args = parser.parse_args()
    df = fb.load(args.run)
    if df["boot"].isna().all():
        print(f"{args.run}: not a booted run (no boots to compare)", file=sys.stderr)
        return 2
    table = spreads(df, args.metric)
    plane = ", ".join(sorted(df["plane"].dropna().unique()))
    print(f"{args.run}: {args.metric} on {plane}; CV in % (within: median over boots of the "
          f"per-round CV; between: CV of per-boot medians)")
    with pd.option_context("display.width", 200, "display.max_rows", None,
                           "display.max_colwidth", 60):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for column in ("within_cv_pct", "between_cv_pct"):
        values = table[column].dropna()
        print(f"{column}: median {np.median(values):.3f}, max {values.max():.3f} "
              f"over {len(values)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
