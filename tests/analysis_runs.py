"""Real runs made once per test session by `faultbench run`, shared by the analysis tests.

Native runs take seconds (the hogged one shares its CPU with a busy loop); the TCG runs boot
kernels: once (about a minute) for the knob sweep, five times for the two-kernel run, which
is killed during its second boot and resumed (test_boots checks that; the analysis tests use
the finished run: one run of the most expensive kind in the suite, not two).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from groups import shared_dir
from images import require_boot_image
from inprocess import ANALYSIS, in_process

# memfd: fault-around on/off via userfaultfd, two mappers of which only the second
# registers, and three (two later mappers per round: n counts rounds). file: the same
# configurations
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
backing = "memfd"
mappers = 3

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

# 16M: a seq loop at 64K (~2.4 M instructions) is long enough against Debian's 4 ms tick for
# test_repro to see that loops start after a tick
SWEEP = """
description = "fault_around_bytes sweep in a booted kernel"
repetitions = 6
warmups = 1

[defaults]
backing = "memfd"
size = "4M"

[[matrix]]
pattern = ["seq", "sparse"]
knobs.fault_around_bytes = [4096, 16384, 65536]
"""


# Two labels for one image, two boots each (A B B A): the structure of a kernel comparison.
KERNELS = """
description = "two kernels, booted"
repetitions = 4
warmups = 1
seed = 3

[defaults]
backing = "memfd"
size = "4M"

[[matrix]]
pattern = ["seq", "sparse"]
uffd = ["none", "wp"]
"""

# Loops of a few milliseconds (32M), long enough that a CPU hog sharing the CPU preempts
# them, and of a tenth of one (1M), which it mostly does not.
HOGGED = """
description = "a CPU hog on the worker's CPU"
repetitions = 4
warmups = 1

[defaults]
backing = "memfd"

[[matrix]]
size = ["1M", "32M"]
uffd = ["none", "wp"]
"""


def faultbench(*args: str | Path, check: bool = True,
               pin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`faultbench ARGS`; pin: a CPU list the whole process tree is confined to (taskset).
    The analysis commands run in this process (tests/inprocess.py), the others as a user
    runs them."""
    if pin is None and str(args[0]) in ANALYSIS:
        done = in_process(*args)
        if check and done.returncode:
            raise subprocess.CalledProcessError(done.returncode, done.args, done.stdout,
                                                done.stderr)
        return done
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    command = [sys.executable, "-m", "faultbench", *map(str, args)]
    return subprocess.run(
        ["taskset", "-c", pin, *command] if pin else command,
        capture_output=True, text=True, check=check, env=env, timeout=900,
    )


def make_run(base: Path, name: str, workload: str, *extra: str, pin: str | None = None) -> Path:
    toml = base / f"{name}.toml"
    toml.write_text(workload.format(a=base / "a", b=base / "b"))
    (base / "a").mkdir(exist_ok=True)
    (base / "b").mkdir(exist_ok=True)
    out = base / name
    faultbench("run", toml, "--out", out, "-q", *extra, pin=pin)
    return out


@dataclass(frozen=True)
class Runs:
    tiny: Path
    tiny2: Path
    other: Path
    dir_a: Path
    dir_b: Path


# Each run is made once per test session, whichever test (and, under pytest-xdist, whichever
# worker) asks first; the result is kept as JSON beside the run, so another worker that asks
# waits for the first to finish and reads it, rather than booting the same guests again.
_made: dict[str, dict[str, Any]] = {}


def _once(factory: pytest.TempPathFactory, key: str,
          make: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """make(an empty directory of its own)'s JSON-able result, made once per session. A run
    that fails fails every test that asks, without a retry (some take minutes)."""
    if key not in _made:
        root = shared_dir(factory.getbasetemp()) / "shared-runs"
        root.mkdir(exist_ok=True)
        with open(root / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when closed: by a worker's death too
            done = root / f"{key}.json"
            if not done.exists():
                (root / key).mkdir()
                try:
                    result = {"ok": make(root / key)}
                except subprocess.CalledProcessError as exc:
                    result = {"failed": f"the {key} run failed ({exc.returncode}): {exc.stderr}"}
                except Exception as exc:
                    result = {"failed": f"the {key} run failed: {exc!r}"}
                done.write_text(json.dumps(result))
            _made[key] = json.loads(done.read_text())
    if "failed" in _made[key]:
        pytest.fail(_made[key]["failed"])
    return _made[key]["ok"]


def native_runs(factory: pytest.TempPathFactory) -> Runs:
    def make(base: Path) -> dict[str, Any]:
        return {"tiny": str(make_run(base, "tiny", TINY)),
                "tiny2": str(make_run(base, "tiny2", TINY)),
                "other": str(make_run(base, "other", OTHER)),
                "dir_a": str(base / "a"), "dir_b": str(base / "b")}

    return Runs(**{k: Path(v) for k, v in _once(factory, "native", make).items()})


def _boot_image() -> str:
    return require_boot_image()


def tcg_run(factory: pytest.TempPathFactory) -> Path:
    image = _boot_image()  # skipped (or failed in CI) by each test that cannot boot

    def make(base: Path) -> dict[str, Any]:
        return {"run": str(make_run(base, "sweep", SWEEP, "--kernel", image, "--clock",
                                    "icount"))}

    return Path(_once(factory, "tcg", make)["run"])


@dataclass(frozen=True)
class KilledRun:
    """The two-kernel run, SIGKILLed during its second boot and resumed to the end."""

    run: Path
    resumed_stderr: str
    left: list[str]  # QEMU/vng command lines still naming the run after the kill
    scratch: set[Path]  # the guest's scratch directories seen on QEMU's command line
    scratch_left: set[Path]  # of those, the ones that outlived the kill
    killed_meta: dict[str, Any]  # meta.json as the kill left it


def guest_processes(marker: str) -> list[str]:
    """Command lines (read from /proc: `ps` cuts them at 80 columns in a pipe) naming marker."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        line = " ".join(w.decode(errors="replace") for w in words)
        if marker in line:
            found.append(line)
    return found


def _killed_and_resumed(base: Path, image: str) -> dict[str, Any]:
    toml, run = base / "kernels.toml", base / "kernels"
    toml.write_text(KERNELS)
    proc = subprocess.Popen(
        [sys.executable, "-P", "-m", "faultbench", "run", toml, "--kernel", f"a={image}",
         "--kernel", f"b={image}", "--boots", "2", "--clock", "wall", "--out", run],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "boot 2/4" in line:
            break
    # killed inside the second boot, once its QEMU runs with a scratch directory: waiting
    # longer would only burn a CPU on a boot that is thrown away
    scratch: set[Path] = set()
    deadline = time.monotonic() + 60
    while not scratch and time.monotonic() < deadline:
        time.sleep(0.5)
        scratch = {Path(word) for line in guest_processes(str(run)) for word in line.split()
                   if word.startswith(f"{tempfile.gettempdir()}/faultbench-guest-")}
    time.sleep(1)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 30
    while ((guest_processes(str(run)) or any(p.exists() for p in scratch))
           and time.monotonic() < deadline):
        time.sleep(0.5)
    left = guest_processes(str(run))
    scratch_left = {p for p in scratch if p.exists()}
    killed_meta = json.loads((run / "meta.json").read_text())
    resumed = faultbench("run", "--resume", run)
    return {"run": str(run), "resumed_stderr": resumed.stderr, "left": left,
            "scratch": sorted(map(str, scratch)), "scratch_left": sorted(map(str, scratch_left)),
            "killed_meta": killed_meta}


def killed_kernels_run(factory: pytest.TempPathFactory) -> KilledRun:
    """One booted run of two kernels (the same image labelled a and b), two boots each (A B B
    A), killed with SIGKILL during its second boot and resumed. On the wall clock: what is
    tested is the boots' order, the resume and the per-boot statistics, and a wall-clock TCG
    boot takes ~30 s where an instruction-clock one takes ~45 s (the sweep run and
    test_guest cover the instruction clock). Five boots take minutes."""
    image = _boot_image()
    seen = _once(factory, "kernels", lambda base: _killed_and_resumed(base, image))
    return KilledRun(Path(seen["run"]), seen["resumed_stderr"], seen["left"],
                     set(map(Path, seen["scratch"])), set(map(Path, seen["scratch_left"])),
                     seen["killed_meta"])


def kernels_run(factory: pytest.TempPathFactory) -> Path:
    """The finished two-kernel run (killed_kernels_run)."""
    return killed_kernels_run(factory).run


def hogged_run(factory: pytest.TempPathFactory) -> Path:
    """A native run confined to CPU 0 while a busy loop spins on CPU 0 too."""

    def make(base: Path) -> dict[str, Any]:
        hog = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", "while True: pass"])
        try:
            return {"run": str(make_run(base, "hogged", HOGGED, pin="0"))}
        finally:
            hog.kill()
            hog.wait()

    return Path(_once(factory, "hogged", make)["run"])


def measured_again(run: Path, to: Path) -> Path:
    """A copy of `run` as a second run of its scenarios would be: every measured sample's
    touch time a nanosecond apart (compare and merge refuse runs sharing a measured sample,
    identity.measurements)."""
    shutil.copytree(run, to)
    lines = (to / "samples.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    for record in records:
        if record["status"] == "ok" and not record["warmup"] and not record["profiled"]:
            record["touch_ns"] += 1
            record["ns_per_page"] = record["touch_ns"] / record["pages_touched"]
    (to / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return to


def table_row(text: str, label: str) -> list[str]:
    """The cells right of `label` in a text table, whether they share its line, stand on
    the line below it (a label too long for that), or the label is split into a heading
    line and an indented row under it (rows grouped to fit one line each)."""
    lines = text.splitlines()

    def cells(line: str, start: str) -> list[str] | None:
        """The cells after `start` when what follows it is numbers, not a longer label."""
        if not line.startswith(start):
            return None
        after = line[len(start):].split()
        return after if after and after[0][:1] in "0123456789-+" else None

    for i, line in enumerate(lines):
        if line == label:  # numbers below, or a heading with its one-mapper row (x1) below
            below = lines[i + 1].split()
            return below[1:] if below and below[0] in ("x1", "-") else below
        if (found := cells(line, label + " ")) is not None:
            return found
        if line and label.startswith(line + " "):
            for below in lines[i + 1:]:
                if not below.startswith("  "):
                    break
                if (found := cells(below, "  " + label[len(line) + 1:] + " ")) is not None:
                    return found
    raise AssertionError(f"no row {label!r} in:\n{text}")


def width_ok(text: str, width: int = 72) -> list[str]:
    """The lines wider than `width` (none expected)."""
    return [line for line in text.splitlines() if len(line) > width]


def measuring(run: Path, proc: subprocess.Popen, lines: int = 2) -> None:
    """Wait, up to a minute, until the run `proc` makes in `run` has written `lines` samples:
    it is measuring, its directory locked and its knobs set."""
    deadline = time.monotonic() + 60
    while not ((run / "samples.jsonl").exists()
               and (run / "samples.jsonl").read_text().count("\n") >= lines):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.01)
