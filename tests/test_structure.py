"""The planes and the error contract, checked on the installed package."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import faultbench
import faultbench.measurement
from faultbench.errors import FaultbenchError
from faultbench.measurement.rundir.results import ResultsError, read_samples

ANALYSIS_LIBRARIES = ("pandas", "numpy", "scipy", "matplotlib", "pyperf")


def test_the_measurement_plane_imports_no_analysis_library() -> None:
    """Every measurement module, imported in a fresh interpreter (as in a guest), leaves
    pandas, numpy, scipy, matplotlib and pyperf unimported."""
    names = [m.name for m in pkgutil.walk_packages(faultbench.measurement.__path__,
                                                   "faultbench.measurement.")]
    assert "faultbench.measurement.runner" in names
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}: importlib.import_module(name)\n"
        f"print(sorted(m for m in {ANALYSIS_LIBRARIES!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


def test_the_public_api() -> None:
    assert {"measure", "measure_mappers", "Spec", "Sample", "SpecError", "FaultbenchError",
            "load"} <= set(faultbench.__all__)
    assert callable(faultbench.measure)  # not shadowed by a submodule of that name
    assert issubclass(faultbench.SpecError, FaultbenchError)


def test_a_faultbench_error_is_one_line_and_status_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "faultbench", "report", str(tmp_path / "missing")],
        capture_output=True, text=True,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (f"faultbench report: {tmp_path / 'missing'}: not a directory "
                           "(expected a faultbench run directory)\n")


def _samples(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def test_the_samples_reader_is_strict_or_counts_bad_lines(tmp_path: Path) -> None:
    good = json.dumps({"spec": {"backing": "memfd"}, "status": "ok"})
    path = _samples(tmp_path, [good, "", "[1, 2]", '{"spec": {"back', good])
    records, bad = read_samples(path, strict=False)
    assert records == [json.loads(good)] * 2
    assert bad == 2
    with pytest.raises(ResultsError, match=r"samples.jsonl:3: not a JSON object"):
        read_samples(path, strict=True)
