"""Round seventeen, R17-3: every key of a sample's `null_reasons` became a column of the
report's footer frame, so 16 valid lines of 70,000 keys each (16 MB) took `report` 44 s and
2 GB. A key that names no Sample field now makes the line invalid, as a `knobs` name that
is no knob's does: dropped and counted at load, never held. Copies of the shipped results,
edited as anyone can edit a run directory."""

from __future__ import annotations

import json
from pathlib import Path

from test_hardening_round4_input import fb
from test_hardening_round11 import _records, _rewritten, _words

import faultbench
from faultbench.measurement.rundir.checks import sample_problem

RESULTS = Path(__file__).resolve().parent.parent / "results"
KEYS = 20_000  # per planted line; the finding's had 70,000


def test_a_null_reason_of_no_sample_field_makes_the_line_invalid() -> None:
    """The fields the measurement leaves null are named; anything else is not a sample."""
    record = _records(RESULTS / "native-quick")[0]
    assert sample_problem(record) is None
    assert sample_problem({**record, "null_reasons": {"ticks": "no LOC line"}}) is None
    problem = sample_problem({**record, "null_reasons": {"k0": ""}})
    assert problem is not None and problem.endswith("null_reasons names 'k0', not a sample field")


def test_a_planted_file_of_many_null_reason_keys_is_dropped_at_load(tmp_path: Path) -> None:
    """Half the measured lines carry 20,000 made-up keys each: they are refused and counted
    in the footer and `report --json`; the rest are reported, and the frame holds no such
    key (nothing of the planted lines is kept)."""
    records = _records(RESULTS / "native-quick")
    measured = [r for r in records if r["status"] == "ok" and not r["warmup"]]
    planted = measured[::2]
    for n, record in enumerate(planted):
        record["null_reasons"] = {**record["null_reasons"],
                                  **{f"k{n}_{i}": "" for i in range(KEYS)}}
    copy = _rewritten(RESULTS / "native-quick", tmp_path / "run", records)
    assert (copy / "samples.jsonl").stat().st_size > len(planted) * KEYS * 10

    df = faultbench.load(copy)
    assert len(df) == len(records) - len(planted)
    assert {k for reasons in df["null_reasons"] for k in reasons} <= {
        "perf_page_faults", "cycles", "instructions", "resident_before_pages",
        "populate_ns", "populate_faults", "uffd_events", "uffd_ns"}

    done = fb("report", "--no-figures", "--out", tmp_path / "out", copy)
    assert done.returncode == 0, done.stderr
    assert (f"NOTE: {len(planted)} invalid sample(s) in samples.jsonl were dropped, e.g. 1 "
            "with null_reasons names 'k") in _words(done.stdout)
    done = fb("report", "--json", copy)
    assert done.returncode == 0, done.stderr
    invalid = json.loads(done.stdout)["dropped_lines"]["invalid"]
    assert sum(invalid.values()) == len(planted)
    assert all("not a sample field" in problem for problem in invalid)
