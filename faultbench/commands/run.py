"""`faultbench run [WORKLOAD]`: run a workload into a results directory, print a summary."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from faultbench.measurement.spec import Spec

DEFAULT_WORKLOAD = "quick"
# Boot, start-up and slack on top of the samples' own deadlines when running in a guest.
GUEST_OVERHEAD_S = 300.0
GUEST_MIN_MEMORY_MIB = 1024


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "workload", nargs="?", metavar="WORKLOAD",
        help=f"a shipped workload (see `faultbench workloads`) or a .toml file "
        f"(default: {DEFAULT_WORKLOAD})",
    )
    parser.add_argument(
        "--out", metavar="DIR", help="results directory (default: results/<UTC time>-<workload>)"
    )
    parser.add_argument(
        "--resume", metavar="DIR",
        help="continue the interrupted run in DIR, measuring only what is missing",
    )
    parser.add_argument(
        "--kernel", metavar="IMAGE",
        help="boot IMAGE under QEMU (virtme-ng) and run the whole workload in that one boot",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def run(args: argparse.Namespace) -> int:
    from faultbench.measurement.results import RunDir
    from faultbench.measurement.runner import RunError, execute, start, utc_now
    from faultbench.measurement.spec import Spec
    from faultbench.measurement.workload import KNOB_AXIS, load

    run_dir: RunDir | None = None
    try:
        if args.resume:
            if args.workload or args.out:
                raise RunError("--resume DIR takes the workload and directory from DIR; "
                               "give no WORKLOAD or --out with it")
            run_dir = RunDir.existing(Path(args.resume))
            meta = run_dir.read_meta()
            if args.kernel:
                rounds = meta["workload"]["warmups"] + meta["workload"]["repetitions"]
                specs = [Spec.from_dict(s["spec"]) for s in meta["scenarios"]]
                return _in_guest(args, None, run_dir.path, specs, rounds)
            _restore_knobs(meta)
        else:
            workload = load(args.workload or DEFAULT_WORKLOAD)
            stamp = utc_now().replace("-", "").replace(":", "")
            out = Path(args.out or f"results/{stamp}-{workload.name}")
            if args.kernel:
                return _in_guest(args, workload.file, RunDir.create(out).path,
                                 [s.spec for s in workload.scenarios], workload.rounds)
            run_dir = start(workload, out)
            for skipped in run_dir.read_meta()["skipped"]:
                if skipped["scenario"].startswith(KNOB_AXIS):
                    print(f"faultbench run: {skipped['scenario']} skipped: {skipped['reason']}",
                          file=sys.stderr)
        execute(run_dir, quiet=args.quiet)
    except KeyboardInterrupt:
        where = "" if run_dir is None else (
            f"; samples so far are in {run_dir.path}; continue with: "
            f"faultbench run --resume {run_dir.path}")
        print(f"\nfaultbench run: interrupted{where}", file=sys.stderr)
        return 130
    return _report(run_dir.path)


def _restore_knobs(meta: dict[str, Any]) -> None:
    """A run killed with SIGKILL left its knobs changed and journaled: put them back before
    resuming (the knob session refuses to start over a stale journal)."""
    if not any(s["knobs"] for s in meta["scenarios"]):
        return
    from faultbench.measurement.journal import restore_journal

    for line in restore_journal():
        print(f"faultbench run: restored {line} (left by the interrupted run)", file=sys.stderr)


def _report(path: Path) -> int:
    from faultbench.analysis.report import summary

    print(f"results in {path}/ (samples.jsonl, meta.json, pyperf.json)")
    print(summary(path), end="")
    return 0


def _in_guest(
    args: argparse.Namespace, workload_file: str | None, out: Path, specs: list[Spec],
    rounds: int,
) -> int:
    """The same command inside one boot of IMAGE, writing into `out` on the host. The boot
    gets room for the largest scenario, and the samples' deadlines plus start-up time
    before it is stopped."""
    from faultbench.measurement.guest import run_cli_in_guest

    out = out.resolve()
    argv = ["run"]
    argv += ["--resume", str(out)] if workload_file is None else [
        str(Path(workload_file).resolve()), "--out", str(out)]
    if args.quiet:
        argv.append("-q")
    deadlines = sum(s.deadline_s * s.mappers for s in specs) * rounds
    memory_mib = max(GUEST_MIN_MEMORY_MIB, 3 * max(s.size for s in specs) // 2**20 + 512)
    # the guest's run prints where results went and the summary
    return run_cli_in_guest(args.kernel, argv, rwdir=str(out),
                            timeout_s=GUEST_OVERHEAD_S + deadlines, memory=f"{memory_mib}M")
