"""Round twenty's command-line findings: `compare RUN:unset OTHER:V --by KNOB` was refused as
an "unknown knob" when RUN never set KNOB, though `unset` is documented to select the
scenarios that leave it unset, and the plain compare of the two runs pointed at `--by`
(R20-3); the hints printed for a run directory named `-x`, or not UTF-8, named no run
(R20-4); `report --out DIR` removed a user's own plot and replaced their report.txt
(R20-6). Real runs through the CLI."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from analysis_runs import faultbench
from console import one_line
from groups import HOST

RESULTS = Path(__file__).parents[1] / "results"

WORKLOAD = """
repetitions = 3
warmups = 0
[defaults]
backing = "memfd"
size = "1M"
[[matrix]]
uffd = ["none", "wp"]
"""
# the machine's own value (groups.py: pinning it changes no count)
PINNED = '[knobs]\n"thp.shmem_enabled" = "never"\n'


@HOST
def test_a_run_that_never_set_a_knob_is_its_unset_side(tmp_path: Path) -> None:
    for name, text in (("plain", WORKLOAD), ("pinned", WORKLOAD + PINNED)):
        (tmp_path / f"{name}.toml").write_text(text)
        faultbench("run", tmp_path / f"{name}.toml", "--out", tmp_path / name, "-q")
    plain, pinned = tmp_path / "plain", tmp_path / "pinned"
    refused = faultbench("compare", plain, pinned, check=False)
    assert refused.returncode == 2 and "differ in thp.shmem_enabled (unset vs never)" in \
        refused.stderr
    for sides in ((f"{plain}:unset", f"{pinned}:never"), (f"{pinned}:never", f"{plain}:unset")):
        done = faultbench("compare", *sides, "--by", "thp.shmem_enabled")
        assert "uffd=none" in done.stdout and "uffd=wp" in done.stdout
    wrong = faultbench("compare", f"{plain}:never", f"{pinned}:never", "--by",
                       "thp.shmem_enabled", check=False)
    assert wrong.returncode == 2
    assert f"BASE {plain}: no samples with thp.shmem_enabled=never (values: unset)" in \
        wrong.stderr
    unknown = faultbench("compare", f"{plain}:unset", f"{pinned}:never", "--by", "thp.bogus",
                         check=False)
    assert unknown.returncode == 2 and "unknown knob 'thp.bogus'" in unknown.stderr


def _cli(cwd: Path, *args: str | bytes) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "faultbench", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize("name", [b"-x", b"r\xff\xfe", b"a\nb"])
def test_a_hint_names_the_run_so_that_the_shell_finds_it(tmp_path: Path, name: bytes) -> None:
    """R20-4: the hints quoted a path with shlex: `faultbench report -x` is an option to
    argparse, and a name that is no UTF-8 came out as its surrogates, another file."""
    (tmp_path / "w.toml").write_text(WORKLOAD)
    assert _cli(tmp_path, "run", "w.toml", b"--out=" + name, "-q").returncode == 0
    again = _cli(tmp_path, "run", "w.toml", b"--out=" + name, "-q")
    assert again.returncode == 2
    hint = re.search(r"\((faultbench report .*) shows it\)", again.stderr)
    assert hint, again.stderr
    shown = subprocess.run(["bash", "-c", f"{sys.executable} -m {hint[1]} --no-figures"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0 and "uffd=wp" in shown.stdout, shown.stderr


def test_report_out_removes_only_what_a_report_drew(tmp_path: Path) -> None:
    """R20-6: `report --out DIR` removed every file named like a figure in DIR/figures, a
    user's own plot among them, and replaced a DIR/report.txt no report had written."""
    out = tmp_path / "out"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "myplot.png").write_text("precious")
    (out / "report.txt").write_text("my notes\n")
    refused = faultbench("report", RESULTS / "example", "--out", out, check=False)
    assert refused.returncode == 2
    assert one_line(refused.stderr) == (
        f"faultbench report: --out {out}: its report.txt is no faultbench report, and this "
        "would replace it; move it away or choose another directory")
    assert (out / "report.txt").read_text() == "my notes\n"
    (out / "report.txt").unlink()
    faultbench("report", RESULTS / "example", "--out", out)
    drawn = {p.name for p in (out / "figures").glob("*.[ps][nv]g")} - {"myplot.png"}
    assert drawn
    for again in (["--no-figures"], []):  # a report's own report.txt and figures are replaced
        faultbench("report", RESULTS / "example", "--out", out, *again)
        assert (out / "figures" / "myplot.png").read_text() == "precious"
    assert {p.name for p in (out / "figures").glob("*.[ps][nv]g")} == drawn | {"myplot.png"}
