"""`faultbench workloads [NAME]`: the shipped workloads, or one workload's expanded matrix."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from faultbench.commands import check_text
from faultbench.errors import printable

if TYPE_CHECKING:
    from faultbench.measurement.workload import Workload


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "workload", nargs="?", metavar="WORKLOAD",
        help="show this workload's scenarios and skipped combinations (a name or a .toml file)",
    )


def run(args: argparse.Namespace) -> int:
    from faultbench.measurement.workload import WorkloadError, load, shipped, workload_dirs

    if args.workload is not None:
        _show(load(check_text(args.workload, "WORKLOAD")))
        return 0
    found = shipped()
    if not found:
        raise WorkloadError("no workloads found (looked in: "
                            f"{', '.join(map(str, workload_dirs())) or 'no workloads directory'})")
    workloads = [load(name) for name in found]
    width = max(len(w.name) for w in workloads)
    for w in workloads:
        size = f"{len(w.scenarios)} scenarios x {w.rounds} rounds"
        print(f"{printable(w.name):<{width}}  {size:<26} {printable(w.description)}")
    # the shipped directory by its place in the package, not this machine's path (the README
    # shows this output)
    print("\n(shipped in workloads/; run one with `faultbench run NAME`, show its matrix with "
          "`faultbench workloads NAME`)")
    return 0


def _show(workload: Workload) -> None:
    print(f"{printable(workload.name)} ({printable(workload.file)}): "
          f"{printable(workload.description)}")
    profiled = f" + {workload.profile} profiled" if workload.profile else ""
    if workload.detects:
        print(f"detects: {printable(workload.detects)}")
    print(f"{workload.repetitions} repetitions + {workload.warmups} warm-up{profiled} rounds, "
          f"seed {workload.seed}; {len(workload.scenarios)} scenarios:")
    for scenario in workload.scenarios:
        print(f"  {scenario.name}")
    if workload.skipped:
        print(f"skipped {len(workload.skipped)}:")
        for skipped in workload.skipped:
            print(f"  {skipped['scenario']}: {skipped['reason']}")
