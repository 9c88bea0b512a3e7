"""Round fifteen, kernel labels (R15-2): `--kernel unset=IMAGE` was booted, and then `compare
--by kernel` could not select it (`RUN:unset` selects a value left unset, as for a machine
named so, R14-5); labels `a` and `a ` (or `a` and `A`) were two kernels whose rows look
alike. Each is refused in one line before anything boots: the real image, the real command
(a guest timeout of 2 s bounds what a regression would boot)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from console import one_line
from images import boot_image, require_boot_image
from test_hardening_round8 import one_scenario

from faultbench.measurement.booted.boot_order import BootPlanError, boot_order
from faultbench.measurement.booted.boots import parse_kernel
from faultbench.measurement.runner import RunError


def _image() -> str:
    image = boot_image()
    if image is None:
        pytest.skip("no kernel image in /boot")
    return image


@pytest.mark.parametrize("label", ["unset", "a ", " a", "\ta", "a\u00a0", "a\x1b[2J",
                                   "a,b", ",", "a,b,c"])
def test_a_label_compare_cannot_select_or_tell_apart_is_refused(label: str) -> None:
    with pytest.raises(RunError, match=re.escape(f"label {label!r}: ") + ".*a label is "
                       "printable text with no spaces at its ends and no `,` or `=`, other "
                       "than `unset`"):
        parse_kernel(f"{label}={_image()}")


def test_an_empty_label_is_refused_not_taken_for_the_release() -> None:
    """`--kernel =IMAGE` named a label and gave none: the release was taken silently."""
    with pytest.raises(RunError, match=re.escape("label '': a label cannot be empty")):
        parse_kernel(f"={_image()}")


def test_a_bad_label_is_refused_before_the_image_is_looked_at() -> None:
    with pytest.raises(RunError, match=re.escape("label 'a,b': ")):
        parse_kernel("a,b=/nonexistent/bzImage")


@pytest.mark.parametrize("label", ["a b", "Unset", "base-6.1", "x:y"])
def test_other_printable_labels_are_taken(label: str) -> None:
    assert parse_kernel(f"{label}={_image()}").label == label


def test_labels_that_differ_only_in_case_are_refused() -> None:
    with pytest.raises(BootPlanError, match="'base' and 'Base' differ only in case"):
        boot_order(["base", "patched", "Base"], 1)
    assert boot_order(["base", "patched"], 1) == [("base", 0), ("patched", 0)]


@pytest.mark.parametrize(("labels", "said"), [
    (["unset", "b"], "label 'unset': a label is printable text"),
    (["a ", "a"], "label 'a ': a label is printable text"),
    (["a", "A"], "kernel labels 'a' and 'A' differ only in case"),
])
def test_run_refuses_such_labels_before_booting(tmp_path: Path, labels: list[str],
                                                said: str) -> None:
    image = require_boot_image()
    workload = tmp_path / "w.toml"
    workload.write_text(one_scenario(1))
    kernels = [arg for label in labels for arg in ("--kernel", f"{label}={image}")]
    done = subprocess.run(
        [sys.executable, "-m", "faultbench", "run", workload, *kernels, "--out",
         tmp_path / "run", "-q"],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "FAULTBENCH_GUEST_TIMEOUT_S": "2"})
    assert done.returncode == 2, done.stderr
    assert said in one_line(done.stderr)
    assert not (tmp_path / "run").exists()
