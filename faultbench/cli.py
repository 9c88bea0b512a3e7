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
from typing import IO, Any, NoReturn, TextIO

from faultbench._version import __version__
from faultbench.errors import FaultbenchError, printable, printable_lines
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
    "merge": ("faultbench.commands.merge",
              "combine the shards of a booted run, or native runs of several machines"),
}


class OutputError(FaultbenchError):
    """Standard output cannot be written (a full device, a failing disk): the command's
    output is lost, which is said in one line rather than a traceback."""


class _Stdout:
    """sys.stdout, with a failed write or flush raised as OutputError (a closed standard
    output too: Python's is None then). A closed pipe stays BrokenPipeError: main() ends
    quietly then."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream

    def _call(self, name: str, *args: Any, binary: bool = False) -> Any:
        if self._stream is None:
            raise OutputError("cannot write standard output: it is closed")
        try:
            return getattr(self._stream.buffer if binary else self._stream, name)(*args)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputError(f"cannot write standard output: {exc.strerror}") from None

    def write(self, text: str) -> int:
        # the one place every command's output passes: text from results files (a host
        # name, a stack's function) sends the terminal no escape sequence
        return self._call("write", printable_lines(text))

    def flush(self) -> None:
        if self._stream is not None:  # nothing was written to a closed one
            self._call("flush")

    def isatty(self) -> bool:
        return self._stream is not None and self._stream.isatty()

    buffer = property(lambda self: _Binary(self))

    def discard(self) -> None:
        """What is still buffered goes nowhere (see _discard_output)."""
        if self._stream is not None:
            _discard_output(self._stream)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _Stderr:
    """sys.stderr while it works: closed (None) or failing (a full device), /dev/null
    instead. Progress lines, warnings and even the error line are lost then, but never the
    run: a failing stderr is not a failing results directory."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream if stream is not None else _null()

    def _call(self, name: str, *args: Any, binary: bool = False) -> Any:
        try:
            return getattr(self._stream.buffer if binary else self._stream, name)(*args)
        except (OSError, ValueError):
            _discard_output(self._stream)  # what it still buffers too, when Python exits
            self._stream = _null()
            return getattr(self._stream.buffer if binary else self._stream, name)(*args)

    def write(self, text: str) -> int:
        return self._call("write", text)

    def flush(self) -> None:
        self._call("flush")

    buffer = property(lambda self: _Binary(self))

    def isatty(self) -> bool:
        return bool(self._call("isatty"))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _Binary:
    """The `buffer` of a _Stdout or _Stderr, whose writes fail as its text's do: a booted
    guest's output is copied there as it comes, and a full or closed standard output is
    then the same one line, not a traceback."""

    def __init__(self, text: _Stdout | _Stderr) -> None:
        self._text = text

    def write(self, data: bytes) -> int:
        return int(self._text._call("write", data, binary=True))

    def flush(self) -> None:
        self._text._call("flush", binary=True)


def _null() -> TextIO:
    return open(os.devnull, "w")


def _reserve_standard_fds() -> None:
    """/dev/null on a closed descriptor 0, 1 or 2, so that no file faultbench opens gets one
    of them (a meta.json opened as descriptor 2 would receive every warning)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)  # the lowest free descriptor: this one


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
        self.exit(2, f"{self.prog}: {printable(message)} (see {self.prog} --help)\n")

    def _print_message(self, message: str, file: IO[str] | None = None) -> None:
        try:
            super()._print_message(message, file)
        except OutputError as exc:
            # --help and --version print while the arguments are parsed, before _command
            # can catch anything: the same line and status as a command whose output fails
            if isinstance(sys.stdout, _Stdout):
                sys.stdout.discard()
            self.exit(2, f"{self.prog}: {exc}\n")


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
    _reserve_standard_fds()
    # never a file or directory others may write, whatever umask we were given (000: every
    # directory made 0777, then refused as another user's, and root's meta.json rewritable)
    os.umask(os.umask(0o022) | 0o022)
    # text the stream's encoding lacks (a host named café under LC_ALL=C, where stdout is
    # ASCII with surrogateescape; any locale with PYTHONIOENCODING=ascii) is printed with
    # escapes, not a UnicodeEncodeError after report.txt is written. Whatever the handler:
    # surrogateescape fails on é as strict does, and printable() has already escaped the
    # surrogates that stand for a path's non-UTF-8 bytes.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    stderr, sys.stderr = sys.stderr, _Stderr(sys.stderr)  # type: ignore[assignment]
    stdout, sys.stdout = sys.stdout, _Stdout(sys.stdout)  # type: ignore[assignment]
    try:
        return _command(argv, stdout)
    finally:
        sys.stderr = stderr
        if isinstance(sys.stdout, _Stdout):  # not the /dev/null after a broken pipe
            sys.stdout = stdout


def _command(argv: list[str], stdout: TextIO | None) -> int:
    from faultbench.measurement.trust import trusted_environment

    args = build_parser().parse_args(argv)
    args._argv = argv
    try:
        if signals.is_the_command():
            signals.started()
        if changed := trusted_environment():  # before the command reads HOME, PATH, ...
            print(printable(f"faultbench {args.command}: WARNING: as root, nothing another "
                            f"user can change is used: {'; '.join(changed)}"), file=sys.stderr)
        status = importlib.import_module(args._module).run(args)
        signals.raise_swallowed()
        sys.stdout.flush()
        return status
    except FaultbenchError as exc:
        if isinstance(exc, OutputError) and stdout is not None:
            _discard_output(stdout)
        # the one place every refusal is printed: the user's arguments, paths and foreign
        # text it quotes show their control characters as escapes
        print(f"faultbench {args.command}: {printable(str(exc))}", file=sys.stderr)
        return 2
    except signals.INTERRUPTED as exc:
        return _interrupted(args.command, exc)
    except (MemoryError, ImportError) as exc:  # `ulimit -v`: pandas' libraries do not map
        if (signal_exc := signals.replaced(exc)) is not None:  # Ctrl-C inside an import
            return _interrupted(args.command, signal_exc)
        cause = (f"cannot import {exc.name or 'a module'} ({exc})"
                 if isinstance(exc, ImportError) else "out of memory")
        print(printable(f"faultbench {args.command}: {cause}: raise the limit on address "
                        "space (`ulimit -v`), free memory, or reinstall"), file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader (e.g. `| head`) has gone; say nothing more on a closed pipe
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - must outlive this frame
        return 141
    except Exception as exc:
        signal_exc = signals.replaced(exc)
        if signal_exc is None:
            raise
        return _interrupted(args.command, signal_exc)
    finally:
        signals.finished()


def _interrupted(command: str, exc: BaseException) -> int:
    print(f"faultbench {command}: interrupted", file=sys.stderr)
    return signals.exit_status(exc)


if __name__ == "__main__":
    sys.exit(main())
