"""The notebook runs top to bottom on the runs shipped under results/, and its committed
outputs (tables, figures) are what a re-run prints, timings masked; scripts/notebook ignores
a run named in the environment and refuses a missing one."""

from __future__ import annotations

import ast
import contextlib
import importlib.machinery
import importlib.util
import io
import os
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from groups import NOTEBOOK_RUN

ROOT = Path(__file__).resolve().parent.parent
loader = importlib.machinery.SourceFileLoader("notebook_script", str(ROOT / "scripts" / "notebook"))
spec = importlib.util.spec_from_loader(loader.name, loader)
assert spec is not None
script = importlib.util.module_from_spec(spec)
loader.exec_module(script)
pytestmark = NOTEBOOK_RUN  # both tests of the execution on one worker: it runs once


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One execution (a minute or more of the notebook's kernel) for both tests below, with
    a FAULTBENCH_RUN naming no run inherited from the environment: the notebook ignores it,
    so what it prints is still what a clean re-run prints."""
    missing = str(tmp_path_factory.mktemp("notebook") / "missing")
    with pytest.MonkeyPatch.context() as env, contextlib.redirect_stderr(io.StringIO()) as err:
        env.setenv("FAULTBENCH_RUN", missing)
        fresh = script.execute()
        left = os.environ["FAULTBENCH_RUN"]
    return {"outputs": script.outputs(fresh), "stderr": err.getvalue(), "missing": missing,
            "left": left}


def test_notebook_reruns_to_its_committed_outputs(executed: dict[str, Any]) -> None:
    committed = nbformat.read(script.NOTEBOOK, as_version=4)
    outputs = executed["outputs"]
    assert not [o for o in outputs if re.match(r"\[\d+\] error ", o)]  # a cell's exception
    assert sum("<image/png>" in o for o in outputs) >= 4  # uffd modes, mappers, break-even, ...
    assert any("plane native" in o for o in outputs)
    assert any("plane tcg-icount" in o for o in outputs)
    assert script.outputs(committed) == outputs, "re-run scripts/notebook and commit it"


def test_notebook_uses_only_the_public_api() -> None:
    notebook = nbformat.read(script.NOTEBOOK, as_version=4)
    code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    imported = {alias.name for node in ast.walk(ast.parse(code))
                if isinstance(node, ast.Import | ast.ImportFrom)
                for alias in node.names} | {node.module for node in ast.walk(ast.parse(code))
                                             if isinstance(node, ast.ImportFrom)}
    assert not [name for name in imported if name and name.startswith("faultbench.")]
    import faultbench

    used = {node.attr for node in ast.walk(ast.parse(code)) if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name) and node.value.id == "faultbench"}
    assert used and used <= set(faultbench.__all__)


def test_notebook_ignores_an_inherited_run_and_refuses_a_missing_one(
    executed: dict[str, Any], tmp_path: Path
) -> None:
    outputs = executed["outputs"]
    assert not [o for o in outputs if re.match(r"\[\d+\] error ", o)]  # a cell's exception
    assert any("plane native" in o for o in outputs)
    assert "ignoring FAULTBENCH_RUN" in executed["stderr"]
    assert executed["left"] == executed["missing"]  # left as it was
    with pytest.raises(SystemExit, match="missing: not a faultbench run directory"):
        script.main(["--run", str(tmp_path / "missing"), "--out", str(tmp_path / "nb.ipynb")])
    with pytest.raises(SystemExit, match=r"not writing .*the committed notebook"):
        script.main(["--run", str(ROOT / "results" / "example"),
                     "--out", str(ROOT / "notebooks" / "fault-around.ipynb")])
