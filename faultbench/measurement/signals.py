"""The one way faultbench turns a terminating signal into an exception, so that `with` blocks
and `finally` clauses (knobs restored, worker and guest killed) run on the way out.

Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

TERMINATING = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def exit_exception(signum: int) -> BaseException:
    """Ctrl-C unwinds as KeyboardInterrupt; other signals as the status a shell gives a
    process they killed (128 + signal number)."""
    if signum == signal.SIGINT:
        return KeyboardInterrupt()
    return SystemExit(128 + signum)


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
    arrives, and after the block. Outside the main thread, which alone may handle signals,
    nothing is installed: the block's cleanup still runs on normal exit and exceptions.
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
        if first is not None:
            first(signum)
        earlier = previous.get(signum)
        put_back()
        if callable(earlier):
            earlier(signum, frame)
            return
        raise exception(signum)

    for signum in signums:
        previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        put_back()


@contextlib.contextmanager
def blocked(signums: tuple[int, ...] = TERMINATING) -> Iterator[None]:
    """Writes and restores are not torn by a signal arriving half-way."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, signums)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
