"""commands.imported_meanwhile: `faultbench run` imports its summary's module (pandas) while
machine.collect() waits through its window. The module is imported by the block's end; an
import that fails there says nothing and is raised by the import that uses the module. In a
fresh interpreter each, where nothing is imported yet."""

from __future__ import annotations

import subprocess
import sys

import pytest

DONE = """
import sys
from faultbench.commands import imported_meanwhile
assert "faultbench.analysis.summary" not in sys.modules
with imported_meanwhile("faultbench.analysis.summary"):
    pass
assert "faultbench.analysis.summary" in sys.modules and "pandas" in sys.modules
"""

FAILED = """
import importlib
from faultbench.commands import imported_meanwhile
with imported_meanwhile("faultbench.analysis.no_such_module"):
    pass
try:
    importlib.import_module("faultbench.analysis.no_such_module")
except ModuleNotFoundError as exc:
    print(exc.name)
"""


@pytest.mark.parametrize(("code", "said"),
                         [(DONE, ""), (FAILED, "faultbench.analysis.no_such_module\n")])
def test_the_module_is_imported_by_the_blocks_end_or_left_to_fail_later(code: str,
                                                                         said: str) -> None:
    done = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True,
                          check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, said, "")
