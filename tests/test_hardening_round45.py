"""Round forty-five: what a hostile pass on fbdfe23 found (no major finding). A booted run on
the instruction clock printed an ETA about 4 times too short (F2): a guest times it in
instructions. A table no test could mark said it could not detect "a change below 2x"
(m3). The knob-lock holder's command cut at 80 characters (F1):
tests/test_hardening_round42.py."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from faultbench.analysis.compare_text import blind_line
from faultbench.measurement.measure import sample_without_result
from faultbench.measurement.progress import Progress
from faultbench.measurement.workload import Unit, load


class _Log(io.StringIO):
    def isatty(self) -> bool:
        return self.tty

    tty = False


def _lines(eta: bool, tty: bool) -> str:
    scenario = load("quick").scenarios[0]
    stream = _Log()
    stream.tty = tty
    progress = Progress(2, 0, quiet=False, stream=stream, names=[scenario.name], eta=eta)
    sample = sample_without_result(scenario.spec, "native", "error", "stand-in").to_dict()
    for number in range(2):
        progress.update(Unit(scenario, number, False), [sample])
    return stream.getvalue()


def test_a_guest_on_the_instruction_clock_prints_no_eta() -> None:
    """F2: `[3795/6004] ETA 1:25` with six minutes left: the guest's monotonic clock runs
    one ns per guest instruction under -icount. The runner asks for no ETA on the tcg-icount
    plane (runner.execute); a terminal's bar and a log's lines both leave it out then."""
    for tty in (False, True):
        assert "ETA" in _lines(eta=True, tty=tty)
        said = _lines(eta=False, tty=tty)
        assert "ETA" not in said and "2/2" in said


def test_a_table_no_test_can_pass_says_so_without_a_threshold() -> None:
    """m3: "cannot detect a change below 2x in any tested row (detect: no change at all...)"
    for a table where no change of any size could be marked."""
    never = pd.DataFrame({"detect": [np.inf, np.inf]})
    assert " ".join(blind_line(never).split()) == (
        "NOTE: this table cannot detect any change: too few units for any p to pass Holm's "
        "threshold; a row without * is no evidence of no change.")
    some = pd.DataFrame({"detect": [np.inf, 3.0]})
    assert "cannot detect a change below 2x in any tested row (detect: x3.0 or more)" in \
        " ".join(blind_line(some).split())
