"""Round seventeen, R17-5: `report --baseline V` of a run sweeping two knobs refused every
value, naming the other knob ("--baseline 10 is not a value of thp.shmem_enabled"): the one
value was applied to every swept knob. A bare VALUE now sets the baseline of each swept knob
it is a value of, KNOB=VALUE that knob's, and --baseline may be repeated; only a value of no
swept knob is refused, naming them. A copy of a shipped run whose samples are edited into a
sweep of vm.swappiness x thp.shmem_enabled (no knob is set)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_hardening_round4_input import fb
from test_hardening_round11 import _records, _rewritten, _words

RESULTS = Path(__file__).resolve().parent.parent / "results"


@pytest.fixture(scope="module")
def two_knobs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    records = _records(RESULTS / "native-quick")
    for record in records:
        record["knobs"] = {"vm.swappiness": 61 if record["round"] % 2 else 10,
                           "thp.shmem_enabled": "advise" if record["round"] % 4 < 2 else "never"}
    return _rewritten(RESULTS / "native-quick", tmp_path_factory.mktemp("r17") / "run", records,
                      swept=True)


def _against(two_knobs: Path, *baselines: str) -> tuple[str, str]:
    """What each sweep is compared against, with these --baseline arguments."""
    args = [a for b in baselines for a in ("--baseline", b)]
    done = fb("report", "--no-figures", *args, two_knobs)
    assert done.returncode == 0, done.stderr
    words = _words(done.stdout)
    return tuple(words.split(f"change of the median against {knob}=")[1].split(".")[0]
                 for knob in ("thp.shmem_enabled", "vm.swappiness"))


@pytest.mark.parametrize(("baselines", "against"), [
    ((), ("advise", "10")),
    (("61",), ("advise", "61")),
    (("never",), ("never", "10")),
    (("vm.swappiness=61",), ("advise", "61")),
    (("61", "never"), ("never", "61")),
    (("thp.shmem_enabled=never", "vm.swappiness=61"), ("never", "61")),
    (("61", "vm.swappiness=61"), ("advise", "61")),
])
def test_a_value_is_the_baseline_of_the_knob_it_belongs_to(
        two_knobs: Path, baselines: tuple[str, ...], against: tuple[str, str]) -> None:
    assert _against(two_knobs, *baselines) == against


def test_the_baseline_rows_are_the_ones_compared_against(two_knobs: Path) -> None:
    done = fb("report", "--no-figures", "--baseline", "61", two_knobs)
    assert done.returncode == 0, done.stderr
    sweep = done.stdout[done.stdout.index("Sweep of vm.swappiness"):]
    rows = [line for line in sweep.splitlines() if line.startswith("61 ")]
    assert rows and all("+0.0%" in row for row in rows), sweep


@pytest.mark.parametrize(("baselines", "said"), [
    (("7",), "--baseline 7 is not a value of any knob this run sweeps: "
             "vm.swappiness: 10, 61; thp.shmem_enabled: advise, never"),
    (("vm.swappiness=never",), "--baseline vm.swappiness=never is not a value of "
                               "vm.swappiness in this run: 10, 61"),
    (("vm.dirty_ratio=10",), "--baseline vm.dirty_ratio=10: this run sweeps "
                             "vm.swappiness, thp.shmem_enabled, not vm.dirty_ratio"),
    (("61", "vm.swappiness=10"), "--baseline 61 and --baseline vm.swappiness=10 are both "
                                 "baselines of vm.swappiness: give one"),
])
def test_only_a_value_of_no_swept_knob_is_refused(
        two_knobs: Path, baselines: tuple[str, ...], said: str) -> None:
    args = [a for b in baselines for a in ("--baseline", b)]
    done = fb("report", "--no-figures", *args, two_knobs)
    assert done.returncode == 2 and done.stderr == f"faultbench report: {said}\n", done.stderr
