"""What a command costs in imports: analysis/__init__.py imported matplotlib (0.2-0.3 s) for
every command that loads a run, `faultbench run`'s closing summary and `report --no-figures`
too, only so that it was imported from / (no matplotlibrc of the working directory read);
now analysis/mpl.py does that guarded import for the modules that draw, and only they."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

FAULTBENCH = Path(__file__).parents[1] / "faultbench"


def test_run_summary_and_a_report_without_figures_import_no_matplotlib(tmp_path: Path) -> None:
    run = FAULTBENCH.parent / "results" / "native-quick"
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from faultbench import cli\n"
        "from faultbench.analysis.summary import summary\n"
        f"summary(Path({str(run)!r}))\n"
        f"assert cli.main(['report', {str(run)!r}, '--out', {str(tmp_path)!r},"
        " '--no-figures']) == 0\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, env={**os.environ, "PYTHONPATH": str(FAULTBENCH.parent)})
    assert done.stdout.splitlines()[-1] == "[]"


def _type_checking_only(tree: ast.Module) -> set[ast.AST]:
    return {node for block in ast.walk(tree) if isinstance(block, ast.If)
            and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
            for statement in block.body for node in ast.walk(statement)}


def test_matplotlib_is_imported_only_through_analysis_mpl() -> None:
    """The one place that imports it from / (tests/test_hardening_round8.py: another user's
    matplotlibrc in the working directory is not read); every module that draws gets it
    there, so whichever is imported first, the guard comes first."""
    elsewhere = []
    for path in sorted(FAULTBENCH.rglob("*.py")):
        if path == FAULTBENCH / "analysis" / "mpl.py":
            continue
        tree = ast.parse(path.read_text())
        typing_only = _type_checking_only(tree)
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if node not in typing_only and any(n.split(".")[0] == "matplotlib" for n in names):
                elsewhere.append(f"{path.relative_to(FAULTBENCH)}:{node.lineno}")
    assert elsewhere == []
