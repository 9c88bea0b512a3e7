"""One boot of a booted run, inside the guest.

`python -P -m faultbench.measurement.booted.boot_guest RUN N`

Measures boot N's share of the run in RUN into RUN/boots/N.d, the one directory of the run
the host shares read-write with this guest (which runs the kernel under test: it may not
touch the run's own files, nor another boot's). There the host left a copy of meta.json, and
from there it adds the samples to the run's own once the boot is done. Tags every sample
with the kernel, the boot and what this kernel says it is, and writes boots/N.d/report.json:
the guest's provenance and whether the share was completed, which the host reads back as
untrusted input and records as the boot's outcome. Measurement plane: standard library and
the compiled module only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from faultbench.errors import FaultbenchError
from faultbench.measurement.rundir.provenance import collect, file_dir
from faultbench.measurement.rundir.results import BOOTS_DIR, RunDir
from faultbench.measurement.rundir.runfiles import BOOT_REPORT, boot_dir_name
from faultbench.measurement.runner import BootShare, execute
from faultbench.measurement.signals import INTERRUPTED, exit_status
from faultbench.measurement.spec import Spec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="faultbench.measurement.booted.boot_guest")
    parser.add_argument("run", type=Path)
    parser.add_argument("boot", type=int)
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    try:
        # the host checked the directory; over 9p its owner is the host user
        own = RunDir.existing(args.run / BOOTS_DIR / boot_dir_name(args.boot), any_owner=True)
        meta = own.read_meta()
        boot = meta["boots"][args.boot]
        kernel = next(k for k in meta["kernels"] if k["label"] == boot["kernel"])
        uname = os.uname()
        share = BootShare(args.boot, boot["rounds"][0], boot["rounds"][1], {
            "kernel": kernel["label"], "boot": args.boot, "kernel_release": uname.release,
            "kernel_version": uname.version, "kernel_sha256": kernel["sha256"],
        })
        specs = (Spec.from_dict(s["spec"]) for s in meta["scenarios"])
        report = {"boot": args.boot, "kernel": kernel["label"], "complete": False,
                  "guest": collect(file_dir(specs), git=False)}
        write_report(own, report)
        execute(own, quiet=args.quiet, boot=share)
    except FaultbenchError as exc:
        print(f"faultbench run: boot {args.boot}: {exc}", file=sys.stderr)
        return 2
    except INTERRUPTED as exc:
        return exit_status(exc)
    report.update(complete=True)  # the kernel's refusals: in the samples
    try:
        write_report(own, report)
    except FaultbenchError as exc:
        print(f"faultbench run: boot {args.boot}: {exc}", file=sys.stderr)
        return 2
    return 0


def write_report(own: RunDir, report: dict[str, Any]) -> None:
    own.dir.replace(BOOT_REPORT, json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
