"""Round fourteen, `merge`: a machine named `unset` was merged, and `compare RUN:unset
--by machine` then selected no sample (`unset` is the value of a field or knob left unset)
while listing `unset` among the run's values (R14-5). Copies of a shipped run, the real
commands."""

from __future__ import annotations

from pathlib import Path

from analysis_runs import faultbench
from test_hardening_round4_input import fb
from test_hardening_round5_merge import _copy, merge_refused

NATIVE = Path(__file__).parents[1] / "results" / "native-quick"


def test_a_machine_named_unset_is_refused(tmp_path: Path) -> None:
    here = _copy(NATIVE, tmp_path / "here", "other")
    there = _copy(here, tmp_path / "there", "unset")  # measured apart from `here` too
    assert merge_refused(here, there, out=tmp_path / "out") == (
        f"faultbench merge: {there} is from machine 'unset', the name `compare` gives a value "
        "left unset: it cannot name a level of the `machine` factor; merge runs of hosts named "
        "otherwise")


def test_a_machine_named_unset_in_other_letters_is_one_compare_selects(tmp_path: Path) -> None:
    """The control: `Unset` is a name like any other (compare matches names exactly)."""
    here = _copy(NATIVE, tmp_path / "here", "other")
    there = _copy(here, tmp_path / "there", "Unset")
    faultbench("merge", here, there, "--out", tmp_path / "out")
    done = fb("compare", f"{tmp_path / 'out'}:Unset", f"{tmp_path / 'out'}:other", "--by",
              "machine")
    assert done.returncode == 0, done.stderr
