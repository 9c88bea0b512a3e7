"""`faultbench merge DIR... --out DIR`: shards of one booted run, or native runs of one
workload from different machines, combined into one run directory (docs/scale.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from faultbench.commands import check_text, filesystem_errors
from faultbench.errors import printable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "runs", metavar="DIR", nargs="+",
        help="run directories: every shard of one `run --shard I/N`, or native runs of one "
        "workload, each from another machine",
    )
    parser.add_argument("--out", metavar="DIR", required=True,
                        help="the merged run directory (new or empty)")


def run(args: argparse.Namespace) -> int:
    from faultbench.measurement.rundir.merge import merge

    for value in (*args.runs, args.out):
        check_text(value, "DIR")
    with filesystem_errors(f"writing {args.out}"):
        meta = merge([Path(p) for p in args.runs], Path(args.out))
    merged = meta["merged"]
    what = (f"{len(meta['boots'])} boots from {len(merged['from'])} shards"
            if merged["kind"] == "shards" else
            f"{len(merged['from'])} machines ({meta['provenance']['host']['name']}) as the "
            "`machine` factor")
    print(f"merged {printable(what)} into {printable(args.out)}/ (meta.json, samples.jsonl, "
          "pyperf.json)")
    return 0
