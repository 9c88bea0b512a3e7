"""Round thirteen, signals (R13-4): a handler runs between any two bytecodes, and when those
were a finalizer's (a weakref or gc callback, a __del__: matplotlib's objects die in weakref
callbacks all through `report`), Python swallowed the Interrupted it raised as "Exception
ignored", with a traceback; the command ran on to exit 0, about one Ctrl-C in 20. Real
commands, real signals sent from inside real finalizers."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from console import one_line

QUICK = Path(__file__).resolve().parent.parent / "results" / "native-quick"

# The command, its Ctrl-C sent by a garbage-collector callback once the command has started:
# the handler runs in the callback, where Python swallows what it raises.
IN_COLLECTION = r"""
import gc, os, signal, sys
sys.argv[0] = "faultbench"  # the command, as its console script runs
from faultbench import cli
from faultbench.measurement import signals
sent = []
def in_collection(phase, info):
    if phase == "start" and signals._state["command"] and not sent:
        sent.append(phase)
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(10000):  # the handler runs here, between two bytecodes
            pass
gc.callbacks.append(in_collection)
sys.exit(cli.main(sys.argv[1:]))
"""

# Ctrl-C sent from a finalizer while the process spends most of its time in finalizers
# (argv[1]: __del__ or a weakref callback): the signal sent again lands in one again, most
# times, until it does not. argv[1] "return": the command returns at once after the
# finalizer, before the signal can be sent again.
IN_FINALIZERS = r"""
import os, signal, sys, time, weakref
sys.argv[0] = "faultbench"
from faultbench.measurement import signals
sent = []
def busy(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
def finalizing(*_):
    if not sent:
        sent.append(1)
        os.kill(os.getpid(), signal.SIGINT)
    busy(0.0004)
class Dying:
    __del__ = finalizing
class Referent:
    pass
signals.started()
try:
    if sys.argv[1] == "return":
        ref = weakref.ref(Referent(), finalizing)
        signals.raise_swallowed()
    until = time.monotonic() + 5
    while time.monotonic() < until:
        if sys.argv[1] == "del":
            Dying()
        else:
            ref = weakref.ref(Referent(), finalizing)
        busy(0.0001)
    print("ran to the end", file=sys.stderr)
except signals.INTERRUPTED as exc:
    print("interrupted", file=sys.stderr)
    sys.exit(signals.exit_status(exc))
finally:
    signals.finished()
"""


@pytest.mark.parametrize("command", [("report", "--no-figures"), ("compare", "--brief")])
def test_ctrl_c_in_a_gc_callback_interrupts_the_command(tmp_path: Path,
                                                         command: tuple[str, ...]) -> None:
    name, option = command
    args = ([name, QUICK, "--out", tmp_path / "report", option] if name == "report"
            else [name, f"{QUICK}:none", f"{QUICK}:wp", "--by", "uffd", option])
    done = subprocess.run([sys.executable, "-c", IN_COLLECTION, *map(str, args)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 128 + signal.SIGINT, done.stderr
    assert one_line(done.stderr) == f"faultbench {name}: interrupted"


def test_ctrl_c_in_finalizers_is_never_lost() -> None:
    for trial in range(30):
        kind = ("del", "weakref", "return")[trial % 3]
        done = subprocess.run([sys.executable, "-c", IN_FINALIZERS, kind],
                              capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stderr) == (128 + signal.SIGINT, "interrupted\n"), kind


# Ctrl-C while a C extension imports: CPython's PyCapsule_Import catches what the handler
# raised and raises ImportError instead (numpy: `PyCapsule_Import could not import module
# "datetime"`). The finder does the same for numpy, which `compare` imports once started.
IN_IMPORT = r"""
import importlib.abc, os, signal, sys
sys.argv[0] = "faultbench"
from faultbench import cli
class ReplacingImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "numpy":
            sys.meta_path.remove(self)
            try:
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(10000):
                    pass
            except BaseException:
                raise ImportError("PyCapsule_Import could not import module") from None
        return None
sys.meta_path.insert(0, ReplacingImport())
sys.exit(cli.main(sys.argv[1:]))
"""


def test_ctrl_c_that_an_import_turns_into_another_error_interrupts_the_command() -> None:
    done = subprocess.run([sys.executable, "-c", IN_IMPORT, "compare", f"{QUICK}:none",
                           f"{QUICK}:wp", "--by", "uffd", "--brief"],
                          capture_output=True, text=True, timeout=300)
    assert (done.returncode, one_line(done.stderr)) == (128 + signal.SIGINT,
                                                        "faultbench compare: interrupted")
