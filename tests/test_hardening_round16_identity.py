"""Round sixteen, identity and types of what meta.json and samples.jsonl record: a list as a
scenario's `pagemap` or a boot's `kernel` gave a traceback (R16-1). Copies of shipped runs,
the real commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from analysis_runs import faultbench
from console import one_line
from test_hardening_round15_identity import RESULTS, Record, _copy


def _unchanged(records: list[Record]) -> None:
    pass


def _pagemap(value: Any) -> Callable[[dict[str, Any]], None]:
    def change(meta: dict[str, Any]) -> None:
        meta["scenarios"][0]["spec"]["pagemap"] = value
    return change


def _boot_kernel(meta: dict[str, Any]) -> None:
    meta["boots"][0]["kernel"] = []


@pytest.mark.parametrize(("name", "meta_change", "problem"), [
    ("native-quick", _pagemap([]), "pagemap must be true or false, got []"),
    ("native-quick", _pagemap({}), "pagemap must be true or false, got {}"),
    ("native-quick", _pagemap(1.5), "pagemap must be true or false, got 1.5"),
    ("icount-aa", _boot_kernel, "boots[0]: kernel must be a string (a label of kernels)"),
])
def test_untyped_pagemap_and_boot_kernel_are_one_line(
        tmp_path: Path, name: str, meta_change: Callable[[dict[str, Any]], None],
        problem: str) -> None:
    """R16-1: report, compare and merge stopped with `TypeError: unhashable type`."""
    run = _copy(name, tmp_path / "run", _unchanged, meta_change)
    for args in (("report", "--json", run), ("compare", RESULTS / name, run),
                 ("merge", "--out", tmp_path / "merged", run, RESULTS / name)):
        done = faultbench(*args, check=False)
        assert done.returncode == 2, done.stderr
        line = one_line(done.stderr)
        assert line.startswith(f"faultbench {args[0]}: {run}/meta.json") and problem in line, \
            line
