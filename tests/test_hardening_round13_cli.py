"""Round thirteen, the command line: what `--only` takes, what stdout can print, what
`compare` takes for two runs. Real commands, real runs."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from analysis_runs import faultbench
from console import one_line

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


def _copy(tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(QUICK, tmp_path / name))


def test_text_the_locale_cannot_encode_is_escaped_whatever_the_handler(tmp_path: Path) -> None:
    """R13-5: in the C locale without UTF-8 mode stdout is ASCII with surrogateescape, which
    was left as it was (only strict was switched to escapes): a host named café ended
    `report` in a UnicodeEncodeError, status 1."""
    run = _copy(tmp_path, "cafe")
    meta = json.loads((run / "meta.json").read_text())
    meta["provenance"]["host"]["name"] = "caf\u00e9"
    (run / "meta.json").write_text(json.dumps(meta))
    c_locale = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    for extra in ({}, {"PYTHONIOENCODING": "ascii:strict"}):
        done = subprocess.run(
            [sys.executable, "-m", "faultbench", "report", run, "--no-figures", "--out",
             tmp_path / "report"], capture_output=True, env={**c_locale, **extra}, timeout=300)
        stderr = done.stderr.decode("ascii")  # ASCII: what could not be encoded is escaped
        assert done.returncode == 0 and "Traceback" not in stderr, (extra, stderr)
        assert b"caf\\xe9" in done.stdout


def test_a_copy_of_a_run_is_the_same_samples(tmp_path: Path) -> None:
    """R13-8: `compare A A` is refused, but `compare A COPY-OF-A` (cp -r) printed a table of
    +0.0% with confidence intervals such as -8.7..+9.5%, computed from identical data."""
    copy = _copy(tmp_path, "copy")
    refused = faultbench("compare", QUICK, copy, check=False)
    assert refused.returncode == 2 and not refused.stdout
    assert one_line(refused.stderr) == (
        f"faultbench compare: BASE and NEW are the same samples ({QUICK} and {copy}): one "
        "measurement on both sides tests nothing (a run or its copy, a merged run and a part of "
        "it, two resumes of one interrupted run); compare runs measured apart, or two values of "
        "one run with --by")
    assert faultbench("compare", f"{QUICK}:none", f"{copy}:none", "--by", "uffd",
                      check=False).returncode == 2
    # two values of the copy's samples are two sides, as they are of the one run
    by_uffd = faultbench("compare", f"{QUICK}:none", f"{copy}:wp", "--by", "uffd")
    assert f"{copy.name} uffd=wp (Linux" in " ".join(by_uffd.stdout.split())
