"""Round seventeen, whether two runs hold the same samples: a copy of a run with its
samples.jsonl lines reversed (`tac`) was compared as a second run (every row +0.0%, with
confidence intervals) and merged as a second machine once its host name was edited, because
the fingerprint hashed the records in file order (R17-2). Copies of a shipped run, the real
commands."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from analysis_runs import faultbench, measured_again
from console import one_line

from faultbench.measurement.rundir.identity import measurements

QUICK = Path(__file__).parents[1] / "results" / "native-quick"


def _reversed_copy(to: Path, host: str | None = None) -> Path:
    shutil.copytree(QUICK, to)
    lines = (QUICK / "samples.jsonl").read_text().splitlines(keepends=True)
    (to / "samples.jsonl").write_text("".join(reversed(lines)))
    if host is not None:
        meta = json.loads((to / "meta.json").read_text())
        meta["provenance"]["host"]["name"] = host
        (to / "meta.json").write_text(json.dumps(meta))
    return to


def test_measurements_ignore_line_order_but_not_a_changed_time() -> None:
    records = [json.loads(line) for line in (QUICK / "samples.jsonl").open()]
    meta = json.loads((QUICK / "meta.json").read_text())
    assert measurements(reversed(records), meta) == measurements(records, meta)
    first = next(i for i, r in enumerate(records) if r["status"] == "ok" and not r["warmup"])
    changed = [*records[:first], dict(records[first], touch_ns=records[first]["touch_ns"] + 1),
               *records[first + 1:]]
    assert len(measurements(changed, meta) & measurements(records, meta)) == \
        len(measurements(records, meta)) - 1


def test_compare_refuses_a_copy_with_its_lines_reversed(tmp_path: Path) -> None:
    copy = _reversed_copy(tmp_path / "tac")
    done = faultbench("compare", QUICK, copy, check=False)
    assert done.returncode == 2 and not done.stdout
    # the same line as for a plain copy (test_hardening_round13_cli)
    assert f"are the same samples ({QUICK} and {copy}):" in one_line(done.stderr)


def test_merge_refuses_a_reversed_copy_as_a_second_machine(tmp_path: Path) -> None:
    copy = _reversed_copy(tmp_path / "tac", host="othervm")
    done = faultbench("merge", "--out", tmp_path / "merged", QUICK, copy, check=False)
    assert done.returncode == 2 and not (tmp_path / "merged").exists()
    assert one_line(done.stderr) == (
        f"faultbench merge: {QUICK} and {copy} share 216 measured sample(s): a copy of one "
        "run, or a run and a part of it, is not a second measurement; merge runs measured apart")
    # the control: reversed and measured apart (every time a nanosecond off), it merges
    apart = measured_again(copy, tmp_path / "apart")
    faultbench("merge", "--out", tmp_path / "merged", QUICK, apart)
