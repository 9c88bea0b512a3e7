"""The notebook runs top to bottom on the runs shipped under results/, and its committed
outputs (tables, figures) are what a re-run prints, timings masked."""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
loader = importlib.machinery.SourceFileLoader("notebook_script", str(ROOT / "scripts" / "notebook"))
spec = importlib.util.spec_from_loader(loader.name, loader)
assert spec is not None
script = importlib.util.module_from_spec(spec)
loader.exec_module(script)


def test_notebook_reruns_to_its_committed_outputs() -> None:
    committed = nbformat.read(script.NOTEBOOK, as_version=4)
    fresh = script.execute()
    outputs = script.outputs(fresh)
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
