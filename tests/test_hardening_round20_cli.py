"""Round twenty's command-line findings: `compare RUN:unset OTHER:V --by KNOB` was refused as
an "unknown knob" when RUN never set KNOB, though `unset` is documented to select the
scenarios that leave it unset, and the plain compare of the two runs pointed at `--by`
(R20-3). Real runs through the CLI."""

from __future__ import annotations

from pathlib import Path

from analysis_runs import faultbench
from groups import HOST

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
