"""Hostile pass, round twenty-nine: a booted meta.json
claiming a plan of billions of boots, built before it was checked (R29-1); the kernel a
guest says it ran, printed raw on root's terminal (R29-2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_hardening_round26_f import AA

from faultbench.measurement.booted.imagecheck import kernel_mismatch
from faultbench.measurement.rundir.meta_checks import check_meta
from faultbench.measurement.rundir.safefile import ResultsError


def _meta() -> dict[str, Any]:
    return json.loads((AA / "meta.json").read_text())


def _more_kernels(meta: dict[str, Any], count: int) -> None:
    meta["kernels"] += [{**meta["kernels"][0], "label": f"x{i}", "sha256": f"{i:064x}"}
                        for i in range(count)]


def test_a_shard_of_a_million_boots_a_kernel_is_refused_from_its_counts(
        tmp_path: Path) -> None:
    """R29-1: boot_order built the whole plan (101 kernels x 10^6 boots: 7.3 GB and 42 s,
    or a MemoryError) before anything said it could not be; the counts say it first. (A
    run's boots_per_kernel is bounded by its boots already.)"""
    meta = _meta()
    _more_kernels(meta, 99)
    meta["boots_per_kernel"] = 10**6
    meta["shard"] = {"index": 1, "count": 1, "plan_boots": 10**6,
                     "split": "plan position p goes to shard p mod count + 1"}
    for boot in meta["boots"]:
        boot["plan_index"] = boot["index"]
    with pytest.raises(ResultsError, match="make a plan of 101000000 boots, and "):
        check_meta(meta, tmp_path / "meta.json")


def test_the_kernel_a_guest_says_it_ran_is_escaped_and_cut() -> None:
    """R29-2: the release and version come from the guest's boot record; printed raw, they
    sent escapes to root's terminal and a fake "all boots ok" line, 30 KB long."""
    lying = "\x1b[31mEVIL\x1b]0;pwned\x07\r\nfaultbench run: all boots ok" + "A" * 30000
    said = kernel_mismatch({"label": "a", "release": "6.1", "version": "#1"},
                           {"kernel": {"release": lying, "version": lying}})
    assert said is not None and said.isprintable() and len(said) < 500, said
    assert said.startswith("the guest ran kernel \\x1b[31mEVIL")
