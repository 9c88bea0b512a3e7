"""The notebook runs top to bottom on the example run committed under results/."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def test_notebook_executes_on_the_committed_run(monkeypatch) -> None:
    run = ROOT / "results" / "example"
    assert (run / "samples.jsonl").is_file()
    monkeypatch.setenv("FAULTBENCH_RUN", str(run))
    notebook = nbformat.read(ROOT / "notebooks" / "fault-around.ipynb", as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3",
        resources={"metadata": {"path": str(ROOT / "notebooks")}},
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4  # uffd modes, sparse, mappers, distributions
    text = "".join(o.get("text", "") for o in outputs)
    assert "plane native" in text
