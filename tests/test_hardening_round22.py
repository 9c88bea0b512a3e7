"""Round twenty-two: `run --resume` took a meta.json scenario's knobs as they were, though
they contradicted the scenario's name: it wrote a sysctl no scenario had, and filed 35
rounds under the old name, one scenario then two rows labelled wrong (R22-1). A real
finished run, cut as a kill leaves it, its meta.json edited."""

from __future__ import annotations

import json
from pathlib import Path

from test_hardening_round13_resume import _interrupted, _refused, finished  # noqa: F401


def test_a_scenario_whose_knobs_are_not_its_names_is_not_resumed(
        finished: Path, tmp_path: Path) -> None:  # noqa: F811
    run = _interrupted(finished, tmp_path / "run")
    meta = json.loads((run / "meta.json").read_text())
    name = meta["scenarios"][0]["name"]
    meta["scenarios"][0]["knobs"] = {"vm.overcommit_ratio": "51"}
    (run / "meta.json").write_text(json.dumps(meta))
    assert _refused(run) == (
        f"faultbench run: {run}: meta.json's scenario {name} has the spec and knobs of "
        f"{name},vm.overcommit_ratio=51: a resume would set those and file them under the "
        f"first name; faultbench report {run} shows its samples, and a new run measures what "
        "its name says")
