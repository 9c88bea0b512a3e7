"""Round thirteen, the command line: what `--only` takes. Real commands, real runs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from faultbench.measurement.spec import INT_FIELDS, SIZE_FIELDS, Spec
from faultbench.measurement.workload import AXES, WorkloadError, load

QUICK = Path(__file__).resolve().parent.parent / "results" / "native-quick"
VMAS = """
repetitions = 1
[defaults]
backing = "memfd"
size = "1M"
[[matrix]]
vmas = [0, 100]
mappers = [1, 2]
pattern = ["seq", "random"]
"""


def test_only_parses_every_integer_field_as_an_integer(tmp_path: Path) -> None:
    """R13-2: `--only vmas=100` matched nothing ("none of the 19 scenarios matches"): vmas
    was missing from the list of integer axes, so "100" was compared with the int 100."""
    toml = tmp_path / "vmas.toml"
    toml.write_text(VMAS)
    workload = load(str(toml))
    kept = workload.select(["vmas=100"]).scenarios
    assert len(kept) == 4 and all(s.spec.vmas == 100 for s in kept)
    assert len(workload.select(["vmas=0,100", "mappers=2"]).scenarios) == 4
    with pytest.raises(WorkloadError, match="expected an integer from 0 to 60000"):
        workload.select(["vmas=60001"])
    # the list cannot miss a field again: every integer field is an integer or a size there
    ints = {f.name for f in dataclasses.fields(Spec) if "int" in str(f.type).split(" | ")}
    assert ints == set(INT_FIELDS) | set(SIZE_FIELDS)
    assert ints & set(AXES) <= set(INT_FIELDS) | set(SIZE_FIELDS)
