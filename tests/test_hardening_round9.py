"""Round nine: results directories virtme-ng cannot share. Real commands and files; no test
here boots (a TCG boot costs minutes): each refusal comes before QEMU would start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from console import one_line
from images import require_boot_image
from test_hardening_round4_input import fb
from test_hardening_round8 import TWO_ROUNDS

from faultbench.commands.run import _start_booted
from faultbench.measurement.booted.boots import parse_kernel
from faultbench.measurement.booted.imagecheck import vng_refuses
from faultbench.measurement.rundir.results import RunDir
from faultbench.measurement.workload import load

RULE = "virtme-ng takes only ASCII letters, digits and _ + / . - in the paths it shares"


def _booted_run(tmp_path: Path, image: Path, boots: int) -> RunDir:
    """A booted run of `image` as `faultbench run --kernel` starts it, its lock released."""
    workload = tmp_path / "w.toml"
    workload.write_text(TWO_ROUNDS)
    run_dir = _start_booted(load(str(workload)), tmp_path / "run", [parse_kernel(str(image))],
                            boots, None, {})
    run_dir.lock.release()
    return run_dir


def test_the_characters_refused_are_virtme_ngs_own() -> None:
    """R9-4: virtme-run's pattern for --rwdir, less the space, which vng's `sh -c` line
    splits on."""
    from virtme.commands import run as virtme_run

    def virtme_takes(path: str) -> bool:
        match = virtme_run._RWDIR_RE.match(path)
        return bool(match) and match.group(1) == path and match.group(2) is None

    chars = [chr(c) for c in range(1, 0x300)] + ["\u2028", "\U0001f600"]
    ours = {c for c in chars if vng_refuses(f"/r/a{c}b") is None}
    theirs = {c for c in chars if virtme_takes(f"/r/a{c}b")}
    assert ours == theirs - {" "}
    assert vng_refuses("/r/caf\u00e9") == "'\u00e9' (U+00E9)"
    assert vng_refuses("/r/a\nb") == "(U+000A)"


@pytest.mark.parametrize("char", [":", ",", "=", "@", "~", "%", "\u00e9", " "])
def test_a_results_directory_virtme_cannot_share_is_refused_before_it_is_made(
        tmp_path: Path, char: str) -> None:
    """R9-4: the directory was made, then every boot failed blaming the kernel, and its
    resume failed the same way for ever; with `=` virtme shared another directory."""
    image = require_boot_image()
    workload = tmp_path / "w.toml"
    workload.write_text(TWO_ROUNDS)
    out = tmp_path / f"fa{char}64K"
    done = fb("run", workload, "--kernel", image, "--boots", "1", "--out", out)
    assert done.returncode == 2
    assert one_line(done.stderr) == (
        f"faultbench run: {out} has {vng_refuses(str(out))}: {RULE}, so no boot could write "
        "there; choose another directory")
    assert not out.exists()


def test_resume_of_a_run_moved_where_virtme_cannot_share_it_is_refused(
        tmp_path: Path) -> None:
    run_dir = _booted_run(tmp_path, Path(require_boot_image()), boots=1)
    moved = run_dir.path.rename(tmp_path / "run:moved")
    before = (moved / "meta.json").read_bytes()
    done = fb("run", "--resume", moved, "-q")
    assert done.returncode == 2
    assert one_line(done.stderr) == (
        f"faultbench run: {moved} has ':' (U+003A): {RULE}, so no boot could write there; "
        "choose another directory")
    assert (moved / "meta.json").read_bytes() == before  # no boot marked running


def test_a_tmpdir_virtme_cannot_share_is_refused_before_a_boot(tmp_path: Path) -> None:
    """Each boot shares a scratch directory made in $TMPDIR."""
    image = require_boot_image()
    tmp = tmp_path / "t@x"
    tmp.mkdir()
    done = subprocess.run([sys.executable, "-m", "faultbench", "measure", "--size", "1M",
                           "--kernel", image], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TMPDIR": str(tmp),
                               "PYTHONPATH": str(Path(__file__).parents[1])})
    assert done.returncode == 2
    assert one_line(done.stderr) == (
        f"faultbench measure: --kernel {image}: TMPDIR {tmp} has '@' (U+0040): {RULE}; set "
        "another TMPDIR")
