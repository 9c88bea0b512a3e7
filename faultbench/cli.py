"""The faultbench command: one module per sub-command in faultbench.commands.

Command modules import the planes only when run, which keeps `faultbench measure` (and so a
guest boot) free of pandas. Every FaultbenchError ends as `faultbench COMMAND: message` and
exit status 2; any other exception is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import sys
from typing import Any, NoReturn, TextIO

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


class OutputError(FaultbenchError):
    """Standard output cannot be written (a full device, a failing disk): the command's
    output is lost, which is said in one line rather than a traceback."""


class _Stdout:
    """sys.stdout, with a failed write or flush raised as OutputError. A closed pipe stays
    BrokenPipeError: main() ends quietly then."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def _call(self, name: str, *args: Any) -> Any:
        try:
            return getattr(self._stream, name)(*args)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputError(f"cannot write standard output: {exc.strerror}") from None

    def write(self, text: str) -> int:
        return self._call("write", text)

    def flush(self) -> None:
        self._call("flush")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _discard_output(stream: TextIO) -> None:
    """What is still buffered for `stream` goes to /dev/null at exit, not to an error."""
    # no file descriptor (a test's capture): nothing is flushed at exit then
    with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())


class _Parser(argparse.ArgumentParser):
    """A wrong argument is one line, `faultbench CMD: message`, exit status 2, as every
    other refusal: the 5-15 lines of usage argparse prints would bury it (--help has them)."""

    def error(self, message: str) -> NoReturn:
        if message.endswith("expected one argument"):  # `--size -4K`: -4K read as an option
            message += " (a value that starts with '-' is given as --OPTION=VALUE)"
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="faultbench",
        description="Measure what the Linux kernel's read fault-around costs and saves.",
    )
    parser.add_argument("--version", action="version", version=f"faultbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
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
    stdout, sys.stdout = sys.stdout, _Stdout(sys.stdout)  # type: ignore[assignment]
    try:
        if signals.is_the_command():
            signals.started()
        status = importlib.import_module(args._module).run(args)
        sys.stdout.flush()
        return status
    except FaultbenchError as exc:
        if isinstance(exc, OutputError):
            _discard_output(stdout)
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
        if isinstance(sys.stdout, _Stdout):
            sys.stdout = stdout
        signals.finished()


if __name__ == "__main__":
    sys.exit(main())
