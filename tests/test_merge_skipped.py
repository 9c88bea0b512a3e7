"""`merge` and meta.json's `skipped` (round 28's known-left list: merge took the union of its
parts' lists). A scenario one part skipped and another measured made a merged run refused on
every load ("has measured samples of scenario S, which its meta.json records as skipped"):
the shards of a booted run where a kernel refused a setting in one boot and measured it in
another, as bootresult.py allows within one run, and native runs of two machines of which
one's kernel refused a setting the other's measured. Copies of shipped runs, split or
measured again; the real commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from analysis_runs import faultbench, measured_again
from test_hardening_round17_merge import AA, RESULTS, shards
from test_hardening_round28_c import TAGS

from faultbench.measurement.measure import sample_without_result
from faultbench.measurement.spec import Spec

Record = dict[str, Any]
FIRST = json.loads((AA / "meta.json").read_text())["scenarios"][0]["name"]


def _refused(record: Record) -> Record:
    """`record` as the sample of a boot whose kernel refused its setting."""
    return {**sample_without_result(Spec.from_dict(record["spec"]), record["plane"],
                                    "unsupported", "the kernel refused it").to_dict(),
            **{key: record[key] for key in TAGS if key in record}}


def _a_refused_the_first_scenario(index: int, meta: dict[str, Any],
                                  samples: list[Record]) -> None:
    """Shard 1 (kernel a's boots 1 and 3): its kernel refused the first scenario."""
    if index != 1:
        return
    samples[:] = [_refused(r) if (r["scenario"], r["kernel"]) == (FIRST, "a") else r
                  for r in samples]
    meta["skipped"] = [{"scenario": FIRST, "kernel": "a",
                        "reason": "kernel a refused it: the kernel refused it"}]


def test_a_scenario_one_shard_skipped_and_another_measured_is_not_skipped(
        tmp_path: Path) -> None:
    parts = shards(AA, tmp_path, change=_a_refused_the_first_scenario)
    faultbench("merge", *parts, "--out", tmp_path / "merged")
    assert json.loads((tmp_path / "merged" / "meta.json").read_text())["skipped"] == []
    report = faultbench("report", tmp_path / "merged", "--no-figures").stdout
    assert "6 unsupported sample(s): the kernel refused it" in report


def test_a_machine_that_skipped_a_scenario_another_measured_keeps_its_skip(
        tmp_path: Path) -> None:
    here = RESULTS / "native-quick"
    there = measured_again(RESULTS / "native-quick", tmp_path / "there")
    meta = json.loads((there / "meta.json").read_text())
    meta["provenance"]["host"]["name"] = "there"
    name = meta["scenarios"][0]["name"]
    meta["skipped"] = [{"scenario": name, "reason": "the kernel refused it: the kernel refused it"}]
    (there / "meta.json").write_text(json.dumps(meta))
    records = [json.loads(line) for line in (there / "samples.jsonl").open()]
    (there / "samples.jsonl").write_text("".join(
        json.dumps(_refused(r) if r["scenario"] == name else r) + "\n" for r in records))
    done = faultbench("merge", here, there, "--out", tmp_path / "merged", check=False)
    assert done.returncode == 0, done.stderr
    merged = json.loads((tmp_path / "merged" / "meta.json").read_text())
    assert merged["skipped"] == [{"scenario": name, "machine": "there",
                                  "reason": "on there: the kernel refused it: the kernel "
                                            "refused it"}]
    report = " ".join(faultbench("report", tmp_path / "merged", "--no-figures").stdout.split())
    assert f"skipped {name}: on there: the kernel refused it" in report
