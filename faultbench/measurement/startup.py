"""What the faultbench command does about signals before anything else is imported: a
terminating signal then ends it at once, with one line (signals.py takes over once it has
started). Only os, signal and sys: every import before these handlers is a window in which
Ctrl-C gives a traceback, and faultbench/__init__.py holds every signal while this one is.

Standard library only.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

# Signals whose default action does not end the process (POSIX): it ignores them, or they
# stop or continue it. SIGKILL and SIGSTOP cannot be caught.
_NOT_ENDING = {signal.SIGCHLD, signal.SIGURG, signal.SIGWINCH, signal.SIGCONT, signal.SIGTSTP,
               signal.SIGTTIN, signal.SIGTTOU, signal.SIGSTOP, signal.SIGKILL}
# Signals that report the process's own failure, for the instruction that raised them, and
# keep their default action (a core dump; the knob journal stays for `faultbench restore`).
# A Python handler runs only once the C code returns, which after these it does wrongly or
# never: a faulting load (SEGV, BUS), a division (FPE) or an instruction (ILL) is run again,
# abort() (ABRT) raises again by default, seccomp's SECCOMP_RET_TRAP (SYS) would see the
# forbidden system call "return" whatever its register held, and a breakpoint (TRAP) is a
# debugger's, who would no longer stop at it.
_OWN_FAILURE = {signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGABRT,
                signal.SIGSYS, signal.SIGTRAP}
# Python ignores these: a write to a closed pipe (PIPE) or past RLIMIT_FSIZE (XFSZ) fails
# (EPIPE, EFBIG) and unwinds as an error.
_IGNORED_BY_PYTHON = {signal.SIGPIPE, signal.SIGXFSZ}
# Every other signal ends the process by default and may be caught (SIGQUIT, SIGPWR, SIGIO,
# the real-time ones, ...): each unwinds as SIGTERM does (knobs restored first). Derived from
# the signals the platform has, so one added is not left to end a run with knobs changed.
TERMINATING = tuple(sorted(signal.valid_signals() - _NOT_ENDING - _OWN_FAILURE
                           - _IGNORED_BY_PYTHON))


def signal_name(signum: int) -> str:
    """`signum`'s name: SIGQUIT, or SIGRTMIN+3 for a real-time signal without a name."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"SIGRTMIN+{signum - signal.SIGRTMIN}"


def is_the_command() -> bool:
    """Whether this process is the faultbench command (not a worker, guest side or
    library user, which are started as other modules or import the package)."""
    argv = sys.orig_argv
    if "-m" in argv[:-1] and argv[argv.index("-m") + 1] == "faultbench":
        return True
    return os.path.basename(sys.argv[0]) == "faultbench" if sys.argv else False


def not_ignored(signums: tuple[int, ...]) -> tuple[int, ...]:
    """The signals of `signums` that this process does not ignore. One ignored when the
    command starts stays ignored, as Python leaves SIGINT: nohup ignores SIGHUP, and a
    non-interactive shell SIGINT and SIGQUIT for `cmd &`, so that the job outlives the
    terminal or the shell's Ctrl-C. The worker, mappers and guest inherit that too (exec
    keeps SIG_IGN); none is ended by these signals, only by SIGTERM (worker: installed by
    itself), SIGKILL, the parent's death or EOF."""
    return tuple(s for s in signums if signal.getsignal(s) is not signal.SIG_IGN)


def exit_quietly_until_started() -> None:
    """A terminating signal while the command is still importing ends it at once, with one
    line and the status a shell expects: nothing has been changed yet, and unwinding an
    import half done could only end in a traceback. `started()` ends this."""
    for signum in not_ignored(TERMINATING):
        signal.signal(signum, _exit_quietly)


def _exit_quietly(signum: int, frame: FrameType | None) -> None:
    os.write(2, f"faultbench: {signal_name(signum)} while starting; nothing was "
                "changed\n".encode())
    os._exit(128 + signum)
