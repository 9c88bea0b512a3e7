"""The checkout a guest runs: the host's faultbench package, which the guest imports over 9p
from the host's root, read-only (and the watchdog, by path). Standard library only."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def package_root() -> str:
    """The directory holding the `faultbench` package (faultbench/measurement/booted/..)."""
    return str(Path(__file__).resolve().parents[3])


def write_bytecode() -> None:
    """Compile faultbench's modules into their __pycache__ where missing or stale. The guest
    cannot write bytecode (its root is the host's, read-only), so a checkout whose host never
    writes it (PYTHONDONTWRITEBYTECODE=1) had every boot compile the measurement plane under
    emulation, ~0.8 s of guest instructions (docs/scale.md). Best effort: a read-only
    checkout boots as before."""
    import compileall  # here: only a booting host needs it

    with contextlib.suppress(OSError):
        compileall.compile_dir(os.path.join(package_root(), "faultbench"), quiet=2)
