"""The one way faultbench turns a terminating signal into an exception, so that `with` blocks
and `finally` clauses (knobs restored, worker and guest killed) run on the way out.

Standard library only.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from faultbench.measurement.startup import (  # noqa: F401 (imported from here by others)
    TERMINATING,
    is_the_command,
    not_ignored,
    signal_name,
)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, as faultbench raises it. Not KeyboardInterrupt itself: CPython flags an exact
    KeyboardInterrupt that leaves code run by exec() of a string (scipy's imports do that)
    as unhandled, and at exit kills the process by SIGINT even though faultbench caught it
    and chose its status (-2 instead of 130)."""


class Terminated(SystemExit):
    """A signal of TERMINATING other than SIGINT: unwinds, and left uncaught ends the process
    with the status a shell gives a process they killed (128 + signal), without a
    traceback."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


# What a terminating signal raises: `except INTERRUPTED` stops cleanly on any of them.
INTERRUPTED = (KeyboardInterrupt, Terminated)


def exit_status(exc: BaseException) -> int:
    return int(exc.code) if isinstance(exc, Terminated) else 128 + signal.SIGINT


def exit_exception(signum: int) -> BaseException:
    """Ctrl-C unwinds as Interrupted (a KeyboardInterrupt); other signals as Terminated."""
    if signum == signal.SIGINT:
        return Interrupted()
    return Terminated(signum)


# Set by the first terminating signal that unwinds: later ones (INT+TERM+HUP in a burst) are
# ignored, so they cannot cut the cleanup short or end it in a traceback. A command stops
# for good; a library caller (a test) gets them back when its outermost block has unwound.
# swallowed: the number of a signal whose exception a finalizer swallowed (_unraisable).
# unwinding: the number of the signal whose exception is unwinding the command.
_state: dict[str, Any] = {"stopping": False, "command": False, "depth": 0, "swallowed": None,
                          "unwinding": None}
_unraisable_before: list[Callable[[Any], object]] = []  # sys.unraisablehook before started()
_SIGNUM = "faultbench_signum"  # the attribute that marks an exception a handler raised


def _stop(signum: int, exception: Callable[[int], BaseException] = exit_exception
          ) -> BaseException:
    _state.update(stopping=True, unwinding=signum)
    exc = exception(signum)
    setattr(exc, _SIGNUM, signum)
    return exc


def started() -> None:
    """The command begins: from here a signal unwinds (Ctrl-C as Interrupted, the others
    of TERMINATING as Terminated), once."""
    _state["command"] = True
    _unraisable_before.append(sys.unraisablehook)
    sys.unraisablehook = _unraisable
    for signum in not_ignored(TERMINATING):
        signal.signal(signum, _raise_exit)


def _unraisable(unraisable: Any) -> None:
    """A handler's exception raised while Python ran a finalizer (a weakref or gc callback,
    a __del__) is not propagated: Python hands it here as "Exception ignored in ...", and
    the command would run on and exit 0. Python runs handlers between any two bytecodes,
    and matplotlib's objects die in weakref callbacks all through `report`: 1 Ctrl-C in
    20. The signal is sent again from another thread instead, to be handled where the main
    thread is then, and again until that is outside a finalizer; a command that returns
    first ends as interrupted all the same (raise_swallowed)."""
    signum = getattr(unraisable.exc_value, _SIGNUM, None)
    if signum is None:
        _unraisable_before[-1](unraisable)
        return
    _state.update(stopping=False, swallowed=signum)
    # not threading.Thread: a finalizer may run while this thread holds threading's locks
    _thread.start_new_thread(_send_again, (signum,))


def _send_again(signum: int) -> None:
    # at a random time: a fixed delay can meet the main thread at the same point of a
    # periodic loop each time, inside its finalizer again
    time.sleep(random.uniform(0.001, 0.01))
    os.kill(os.getpid(), signum)


def raise_swallowed() -> None:
    """Unwind as the signal whose exception a finalizer swallowed would have, if one did
    and the command has not unwound since: the command has returned, its status is not 0."""
    if _state["swallowed"] is not None and not _state["stopping"]:
        raise _stop(_state["swallowed"])


def replaced(exc: Exception) -> BaseException | None:
    """What the command's signal would have raised, if `exc` escaped while that signal's
    exception was unwinding: code between the handler and the command may catch what it
    raised and raise its own. CPython's PyCapsule_Import does, so Ctrl-C during numpy's
    import came out as `ImportError: PyCapsule_Import could not import module "datetime"`."""
    if not _state["command"] or not _state["stopping"] or _state["unwinding"] is None:
        return None
    return exit_exception(_state["unwinding"])


def finished() -> None:
    """The command returns, its status decided: a signal now must not kill the interpreter
    as it shuts down (Python puts the default actions back then) and change that status."""
    if _state["command"]:
        for signum in TERMINATING:
            signal.signal(signum, signal.SIG_IGN)


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    if not _state["stopping"]:
        raise _stop(signum)


@contextlib.contextmanager
def signals_raise(
    signums: tuple[int, ...],
    first: Callable[[int], None] | None = None,
    exception: Callable[[int], BaseException] = exit_exception,
) -> Iterator[None]:
    """While the block runs, each of `signums` runs `first(signum)` (if given) and unwinds.

    How it unwinds: the handler installed before the block, if it is a Python one, decides
    (as if this block were not there; Python's own SIGINT handler raises KeyboardInterrupt),
    otherwise `exception(signum)` is raised. The previous handlers are back once a signal
    arrives, and after the block. Once a signal unwinds, further ones are ignored (see
    `_state`). Outside the main thread, which alone may handle signals, nothing is
    installed: the block's cleanup still runs on normal exit and exceptions. A signal the
    process ignores stays ignored (see `startup.not_ignored`).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()
    previous: dict[int, object] = {}

    def put_back() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def handler(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != owner:
            # A forked child inherited this handler: it has nothing to unwind, so it dies
            # as it would by default.
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if _state["stopping"]:
            return
        if first is not None:
            first(signum)
        earlier = previous.get(signum)
        put_back()
        if callable(earlier):
            earlier(signum, frame)
            return
        raise _stop(signum, exception)

    _state["depth"] += 1
    try:
        for signum in not_ignored(signums):
            previous[signum] = signal.signal(signum, handler)
        yield
    finally:
        put_back()
        _state["depth"] -= 1
        if not _state["depth"] and not _state["command"]:
            _state["stopping"] = False


@contextlib.contextmanager
def blocked(signums: tuple[int, ...] = TERMINATING) -> Iterator[None]:
    """Writes and restores are not torn by a signal arriving half-way."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, signums)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
