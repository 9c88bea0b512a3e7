"""Real runs made once per test session by `faultbench run`, shared by the analysis tests.

Native runs take seconds; the TCG run boots a kernel once (about a minute) for the knob sweep.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

# memfd: fault-around on/off via userfaultfd, and two mappers of which only the second
# registers. file: the same configurations
# in two directories of one filesystem, interleaved round by round: an A/A pair.
TINY = """
description = "analysis tests"
repetitions = 8
warmups = 1
seed = 5

[defaults]
size = "1M"

[[matrix]]
backing = "memfd"
pattern = ["seq", "random", "sparse"]
uffd = ["none", "missing", "wp"]

[[matrix]]
backing = "memfd"
uffd = ["none", "missing", "wp"]
mappers = 2
uffd_mappers = "later"

[[matrix]]
backing = "file"
dir = ["{a}", "{b}"]
pattern = ["seq", "reverse", "random", "stride:4", "sparse"]
map = ["shared", "private"]
mappers = [1, 2]
"""

OTHER = """
description = "nothing in common with TINY"
repetitions = 2
warmups = 0

[[matrix]]
backing = "memfd"
size = "2M"
"""

SWEEP = """
description = "fault_around_bytes sweep in a booted kernel"
repetitions = 6
warmups = 1

[defaults]
backing = "memfd"
size = "2M"

[[matrix]]
pattern = ["seq", "sparse"]
knobs.fault_around_bytes = [4096, 16384, 65536]
"""


def faultbench(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return subprocess.run(
        [sys.executable, "-m", "faultbench", *map(str, args)],
        capture_output=True, text=True, check=check, env=env, timeout=600,
    )


def make_run(base: Path, name: str, workload: str, *extra: str) -> Path:
    toml = base / f"{name}.toml"
    toml.write_text(workload.format(a=base / "a", b=base / "b"))
    (base / "a").mkdir(exist_ok=True)
    (base / "b").mkdir(exist_ok=True)
    out = base / name
    faultbench("run", toml, "--out", out, "-q", *extra)
    return out


@dataclass(frozen=True)
class Runs:
    tiny: Path
    tiny2: Path
    other: Path
    dir_a: Path
    dir_b: Path


# One set of runs per session whichever test module asks first (the factory is per session).
_made: dict[str, object] = {}


def native_runs(factory: pytest.TempPathFactory) -> Runs:
    if "native" not in _made:
        base = factory.mktemp("analysis")
        _made["native"] = Runs(
            tiny=make_run(base, "tiny", TINY), tiny2=make_run(base, "tiny2", TINY),
            other=make_run(base, "other", OTHER), dir_a=base / "a", dir_b=base / "b",
        )
    return _made["native"]  # type: ignore[return-value]


def tcg_run(factory: pytest.TempPathFactory) -> Path:
    if "tcg" not in _made:
        kernels = sorted(glob.glob("/boot/vmlinuz-*"))
        if not kernels:
            pytest.skip("no kernel image in /boot to boot under QEMU (linux-image-amd64)")
        _made["tcg"] = make_run(factory.mktemp("tcg"), "sweep", SWEEP, "--kernel", kernels[-1])
    return _made["tcg"]  # type: ignore[return-value]


def width_ok(text: str, width: int = 72) -> list[str]:
    """The lines wider than `width` (none expected)."""
    return [line for line in text.splitlines() if len(line) > width]
