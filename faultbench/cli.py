"""The faultbench command: one module per sub-command in faultbench.commands.

Command modules import the planes only when run, which keeps `faultbench measure` (and so a
guest boot) free of pandas. Every FaultbenchError ends as `faultbench COMMAND: message` and
exit status 2; any other exception is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from faultbench._version import __version__
from faultbench.errors import FaultbenchError
from faultbench.measurement import signals

# name -> (module, one-line help). Each module has add_arguments(parser) and run(args) -> int.
COMMANDS: dict[str, tuple[str, str]] = {
    "measure": ("faultbench.commands.measure", "measure one scenario (mmap + touch, timed in C)"),
    "run": ("faultbench.commands.run", "run a workload (default: quick) into a results directory"),
    "workloads": ("faultbench.commands.workloads", "list the shipped workloads, or show one"),
    "doctor": ("faultbench.commands.doctor", "what this machine can measure, and why not"),
    "restore": ("faultbench.commands.restore", "put back kernel knobs a killed run left changed"),
    "report": ("faultbench.commands.report", "tables (report.txt) and figures for a run directory"),
    "compare": ("faultbench.commands.compare",
                "compare two runs, or two values of a knob, per scenario"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faultbench",
        description="Measure what the Linux kernel's read fault-around costs and saves.",
    )
    parser.add_argument("--version", action="version", version=f"faultbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(command)
        command.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    args = build_parser().parse_args(argv)
    args._argv = argv
    try:
        if signals.is_the_command():
            signals.started()
        return importlib.import_module(args._module).run(args)
    except FaultbenchError as exc:
        print(f"faultbench {args.command}: {exc}", file=sys.stderr)
        return 2
    except signals.INTERRUPTED as exc:
        print("faultbench: interrupted", file=sys.stderr)
        return signals.exit_status(exc)
    except BrokenPipeError:
        # the reader (e.g. `| head`) has gone; say nothing more on a closed pipe
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - must outlive this frame
        return 141
    finally:
        signals.finished()


if __name__ == "__main__":
    sys.exit(main())
