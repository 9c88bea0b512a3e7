"""Round six, kernels/build --check-only for a user other than the checkout's: a vng it
cannot run and a patch it cannot read are said in one line (exit 2, as for a bad argument),
and a file that is not a patch is refused as one (as root too). Real script, run as
`nobody`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from console import one_line
from test_hardening_round5_dirs import sticky  # noqa: F401 (a fixture)
from test_kernels import BUILD, have_build_dependencies

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runs the script as nobody")

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture
def shared(sticky: Path) -> Path:  # noqa: F811
    """A directory nobody can read (pytest's tmp_path is root-only): the sticky one's parent."""
    return sticky.parent


def build_as_nobody(*args: str | Path, path: str = "/usr/bin:/bin"
                    ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NOBODY, "env", f"PATH={path}", "/usr/bin/python3", BUILD,
                           "--check-only", *map(str, args)], capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.mark.skipif(not have_build_dependencies(), reason="needs the build dependencies")
def test_a_vng_whose_interpreter_nobody_may_run_is_said_in_one_line(shared: Path) -> None:
    private = shared / "private"  # as a venv's interpreter under /root
    private.mkdir(mode=0o700)
    shutil.copy("/bin/true", private / "python")
    (shared / "bin").mkdir(mode=0o755)
    vng = shared / "bin" / "vng"
    vng.write_text(f"#!{private / 'python'}\n")
    vng.chmod(0o755)
    done = build_as_nobody("--cache", shared / "cache", path=f"{shared / 'bin'}:/usr/bin:/bin")
    assert done.returncode == 2, done.stderr
    assert one_line(done.stderr) == (f"kernels/build: cannot run vng ({vng}): Permission "
                                     "denied; install virtme-ng where this user can run it "
                                     "(pip install virtme-ng)")
    assert done.stdout == ""


def test_a_patch_nobody_may_read_is_said_in_one_line(shared: Path) -> None:
    patch = shared / "secret.patch"
    patch.write_text("--- a/x\n+++ b/x\n")
    patch.chmod(0o600)
    done = build_as_nobody("--patch", patch, "--cache", shared / "cache")
    assert done.returncode == 2, done.stderr
    assert one_line(done.stderr) == f"kernels/build: cannot read patch {patch}: Permission denied"


@pytest.mark.parametrize("content", ["root:*:19000:0:99999:7:::\n", ""])
def test_a_file_that_is_not_a_patch_is_refused(shared: Path, content: str) -> None:
    planted = shared / "shadow"
    planted.write_text(content)
    done = subprocess.run(["/usr/bin/python3", BUILD, "--check-only", "--patch", planted,
                           "--cache", shared / "cache"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert one_line(done.stderr) == (f"kernels/build: {planted} is not a patch: it has no diff "
                                     "headers (--- and +++, or diff --git)")
    assert not (shared / "cache").exists()
