"""Round twenty-five, R25-7: compare of two booted runs matches rows by kernel label, so the
same two kernels under swapped labels (`--kernel A=6.1 --kernel B=6.12` against `A=6.12
B=6.1`) gave each row as one kernel against another, with nothing said. A label that names
another kernel (sha256) on each side now gets a note. The shipped large-folios run (6.1 and
6.12), against its own meta.json with the labels swapped."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from faultbench.analysis.compare_checks import relabelled_kernel_notes
from faultbench.analysis.frame import load

RUN = Path(__file__).parents[1] / "results" / "tcg-icount-large-folios"


def _swapped(meta: dict) -> dict:
    swapped = copy.deepcopy(meta)
    for kernel in swapped["kernels"]:
        kernel["label"] = {"6.1": "6.12", "6.12": "6.1"}[kernel["label"]]
    return swapped


def test_a_label_naming_another_kernel_on_each_side_is_noted() -> None:
    df = load(RUN)
    meta = json.loads((RUN / "meta.json").read_text())
    notes = relabelled_kernel_notes(df, df, [meta, _swapped(meta)])
    assert len(notes) == 2
    assert notes[0].startswith("NOTE: kernel 6.1 is Linux 6.1.") and " in BASE and Linux 6.12." \
        in notes[0] and notes[0].endswith("its rows compare two kernels under one label.")
    assert notes[1].startswith("NOTE: kernel 6.12 is Linux 6.12.")


def test_labels_naming_the_same_kernels_need_no_note() -> None:
    df = load(RUN)
    meta = json.loads((RUN / "meta.json").read_text())
    assert relabelled_kernel_notes(df, df, [meta, meta]) == []
