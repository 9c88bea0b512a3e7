"""FaultbenchError: the base of every error faultbench reports to its user.

`cli.main` prints any FaultbenchError as `faultbench COMMAND: message` and exits with status 2;
any other exception is a bug and keeps its traceback. The subclasses live with the code that
raises them and say which part refused. Standard library only.
"""

from __future__ import annotations

import errno
import os
import shlex
import stat


class FaultbenchError(Exception):
    """A request faultbench refuses or cannot carry out; the message is one line: why, and
    what to do."""


def printable(text: str) -> str:
    """`text` with control characters escaped: foreign text (a workload's description,
    another process's command line) must not send a terminal escape sequences."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def printable_lines(text: str) -> str:
    """`text` with control characters escaped but its newlines kept: what a command prints
    and report.txt, whose text comes in part from results files (a host or workload name, a
    profiled stack's function name: untrusted input)."""
    return "\n".join(printable(line) for line in text.split("\n"))


def limit_hint(exc: OSError) -> str:
    """What to say after an OSError that a resource limit caused (ulimit -n)."""
    return (" (the limit on open files: raise `ulimit -n`)"
            if exc.errno in (errno.EMFILE, errno.ENFILE) else "")


def error_text(error: object) -> str:
    """A sample's error for a line that names it: a sample may carry none (null in
    samples.jsonl, NaN in a DataFrame), which is said, not shown as "None" or "nan"."""
    return error if isinstance(error, str) and error else "(no error text)"


def shell_word(path: str | os.PathLike[str]) -> str:
    """`path` as a command a hint shows it, for a shell (bash) to read back as the same file:
    quoted; `./` before a leading dash, which the command would take for an option; bytes
    that are no UTF-8 text, and control characters, as $'\\xNN' (shlex would quote the
    surrogates Python decodes them to, naming another file)."""
    text = os.fspath(path)
    if text.startswith("-"):
        text = "./" + text
    raw = os.fsencode(text)
    if raw.decode("utf-8", "replace") == text and text.isprintable():
        return shlex.quote(text)
    return "$'" + "".join(chr(b) if 0x20 <= b < 0x7F and b not in b"'\\" else f"\\x{b:02x}"
                          for b in raw) + "'"


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISLNK, "a symbolic link"))


def not_a_file(path: str | os.PathLike[str], dir_fd: int | None = None,
               follow: bool = True) -> str | None:
    """Why `path` is not a regular file to read, for a refusal ("no such file", "a FIFO,
    not a regular file"); None when it is one. A FIFO or device named where a file belongs
    must be called what it is, not missing."""
    try:
        mode = os.stat(path, dir_fd=dir_fd, follow_symlinks=follow).st_mode
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return exc.strerror or str(exc)
    return None if stat.S_ISREG(mode) else f"{file_kind(mode)}, not a regular file"


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is ("a FIFO"), from its st_mode."""
    return next((name for test, name in _KINDS if test(mode)), "not a file")
