"""`faultbench run [WORKLOAD]`: run a workload into a results directory, print a summary."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_WORKLOAD = "quick"
# Boot, start-up and slack on top of the samples' own deadlines when running in a guest.
GUEST_OVERHEAD_S = 300.0


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
    from faultbench._results import ResultsError, RunDir
    from faultbench._runner import RunError, execute, start, utc_now
    from faultbench._workload import WorkloadError, load

    run_dir: RunDir | None = None
    try:
        if args.resume:
            if args.workload or args.out:
                raise RunError("--resume DIR takes the workload and directory from DIR; "
                               "give no WORKLOAD or --out with it")
            run_dir = RunDir.existing(Path(args.resume))
            meta = run_dir.read_meta()
            if args.kernel:
                return _in_guest(args, None, run_dir.path, _units(meta))
        else:
            workload = load(args.workload or DEFAULT_WORKLOAD)
            stamp = utc_now().replace("-", "").replace(":", "")
            out = Path(args.out or f"results/{stamp}-{workload.name}")
            if args.kernel:
                deadlines = sum(s.spec.deadline_s * s.spec.mappers for s in workload.scenarios)
                return _in_guest(args, workload.file, RunDir.create(out).path,
                                 deadlines * workload.rounds)
            run_dir = start(workload, out)
        execute(run_dir, quiet=args.quiet)
    except (WorkloadError, RunError, ResultsError) as exc:
        print(f"faultbench run: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        where = "" if run_dir is None else (
            f"; samples so far are in {run_dir.path}; continue with: "
            f"faultbench run --resume {run_dir.path}")
        print(f"\nfaultbench run: interrupted{where}", file=sys.stderr)
        return 130
    return _report(run_dir.path)


def _report(path: Path) -> int:
    from faultbench._report import summary

    print(f"results in {path}/ (samples.jsonl, meta.json, pyperf.json)")
    print(summary(path), end="")
    return 0


def _units(meta: dict[str, object]) -> float:
    """Seconds the run's samples may take at most: their deadlines, all rounds."""
    workload = meta["workload"]
    assert isinstance(workload, dict) and isinstance(meta["scenarios"], list)
    deadlines = sum(s["spec"]["deadline_s"] * s["spec"]["mappers"] for s in meta["scenarios"])
    return deadlines * (workload["warmups"] + workload["repetitions"])


def _in_guest(
    args: argparse.Namespace, workload_file: str | None, out: Path, deadlines_s: float
) -> int:
    """The same command inside one boot of IMAGE, writing into `out` on the host; the boot
    is given the samples' deadlines plus start-up time before it is stopped."""
    from faultbench import _guest

    out = out.resolve()
    argv = ["run", "--resume", str(out)] if workload_file is None else [
        "run", str(Path(workload_file).resolve()), "--out", str(out)]
    if args.quiet:
        argv.append("-q")
    status = _guest.run_in_guest(args.kernel, argv, rwdir=out,
                                 timeout_s=GUEST_OVERHEAD_S + deadlines_s)
    if status != 0:
        return status
    return _report(out)
