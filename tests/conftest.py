"""Shared fixtures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def special_mounts() -> Callable[[], list[str]]:
    """Reads the debugfs/securityfs mounts: a run must leave them as it found them."""

    def read() -> list[str]:
        return sorted(line for line in Path("/proc/mounts").read_text().splitlines()
                      if line.split()[2] in ("debugfs", "securityfs"))

    return read
