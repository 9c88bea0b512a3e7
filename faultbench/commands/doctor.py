"""`faultbench doctor [--json]`: what this machine can measure, and why not."""

from __future__ import annotations

import argparse
import json
import sys

MARK = {True: "ok  ", False: "NO  ", None: "info"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="one JSON object: checks, summary and provenance")


def run(args: argparse.Namespace) -> int:
    from faultbench.measurement.doctor import diagnose

    report = diagnose()
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    for check in report["checks"]:
        print(f"{MARK[check['ok']]} {check['name']}: {check['detail']}")
    print()
    for line in report["summary"]:
        print(f"=> {line}")
    sys.stdout.flush()
    return 0
