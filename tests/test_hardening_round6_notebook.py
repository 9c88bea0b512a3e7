"""Round six, scripts/notebook --out: written as faultbench writes results as root (no link
another user planted followed, on the way or at the file, at any time; a temp file renamed
into place), never into a run's directory, never over a file it did not write. Links planted
as `nobody`; the notebook's execution is replaced by a stub where it would only take time
(what is tested is where the result goes)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from test_hardening_round5_dirs import as_nobody, sticky  # noqa: F401 (a fixture)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="root's problems, planted by nobody")

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "results" / "uffd-2020-patch"
loader = importlib.machinery.SourceFileLoader("notebook_r6", str(ROOT / "scripts" / "notebook"))
spec = importlib.util.spec_from_loader(loader.name, loader)
assert spec is not None
script = importlib.util.module_from_spec(spec)
loader.exec_module(script)


def notebook(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, ROOT / "scripts" / "notebook", *map(str, args)],
                          capture_output=True, text=True, timeout=900, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def _victim(sticky: Path) -> Path:  # noqa: F811 (the fixture's value)
    victim = sticky.parent / "victim"
    victim.write_text("precious\n")
    victim.chmod(0o600)
    return victim


def test_out_through_a_parent_link_another_user_planted_is_refused_before_executing(
        sticky: Path) -> None:  # noqa: F811
    victims = sticky.parent / "victims"
    victims.mkdir()
    as_nobody("ln", "-s", victims, sticky / "evdir")
    done = notebook("--run", SHIPPED, "--out", sticky / "evdir" / "out.ipynb")
    assert done.returncode == 1, done.stdout
    assert done.stderr.strip().endswith(
        f"{sticky / 'evdir'} is a symbolic link owned by uid 65534 (nobody): root does not "
        "follow it (it could lead anywhere); give the real path"), done.stderr
    assert not list(victims.iterdir())


def test_a_link_planted_at_out_while_executing_is_not_followed(
        sticky: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    victim = _victim(sticky)
    out = sticky / "race.ipynb"

    def execute(run: Path) -> Any:  # the execution's minute, in which the link is planted
        as_nobody("ln", "-s", victim, out)
        return nbformat.v4.new_notebook()

    monkeypatch.setattr(script, "execute", execute)
    with pytest.raises(SystemExit, match=r"race.ipynb is a symbolic link"):
        script.main(["--run", str(SHIPPED), "--out", str(out)])
    assert victim.read_text() == "precious\n"
    assert out.is_symlink()  # left for root to look at


def test_out_in_a_run_directory_is_refused_before_executing(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(SHIPPED, run)
    samples = (run / "samples.jsonl").read_bytes()
    for name in ("samples.jsonl", "new.ipynb"):
        done = notebook("--run", SHIPPED, "--out", run / name)
        assert done.returncode == 1, done.stdout
        assert done.stderr.strip() == (f"scripts/notebook: not writing {run / name}: {run} is "
                                       "a faultbench run's directory; write the notebook "
                                       "outside it")
    assert (run / "samples.jsonl").read_bytes() == samples
    assert not (run / "new.ipynb").exists()


def test_out_replaces_only_a_notebook_it_wrote(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(script, "execute", lambda run: nbformat.v4.new_notebook())
    mine, other = tmp_path / "mine.ipynb", tmp_path / "other.ipynb"
    other.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}\n')
    with pytest.raises(SystemExit, match=r"other.ipynb: it exists and is not a notebook "
                                         r"scripts/notebook --out wrote; remove it or choose"):
        script.main(["--run", str(SHIPPED), "--out", str(other)])
    assert other.read_text().startswith('{"cells": []')
    for _ in range(2):  # written, then replaced on a re-run
        assert script.main(["--run", str(SHIPPED), "--out", str(mine)]) == 0
    assert script.WRITTEN_BY in nbformat.read(mine, as_version=4).metadata


def test_a_run_of_another_workload_is_refused_before_executing(tmp_path: Path) -> None:
    done = notebook("--run", ROOT / "results" / "native-quick", "--out", tmp_path / "nb.ipynb")
    assert done.returncode == 1, done.stdout
    assert done.stderr.strip() == (f"scripts/notebook: {ROOT / 'results' / 'native-quick'}: a "
                                   "run of workload quick, not of uffd-2020-patch, which "
                                   "section 1 reads")
    assert not (tmp_path / "nb.ipynb").exists()
