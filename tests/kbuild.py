"""kernels/build (a script without .py) loaded as a module, once, for the tests that call its
functions directly."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

KERNELS = Path(__file__).resolve().parent.parent / "kernels"
BUILD = KERNELS / "build"


def _load():
    loader = importlib.machinery.SourceFileLoader("kernels_build", str(BUILD))
    spec = importlib.util.spec_from_loader("kernels_build", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    loader.exec_module(module)
    return module


build = _load()
