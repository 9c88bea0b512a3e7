"""The clock a booted run's guests keep: the one its meta.json records, for every boot and
every resume (a run's numbers are of one clock), what meta.json says of it, and the
scenarios an instruction-clock guest cannot measure. Standard library only."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from typing import Any

from faultbench.measurement.booted.guest import DETERMINISM_PARAMS, ICOUNT_QEMU_OPTS, qemu_binary
from faultbench.measurement.rundir.checks import clock_of
from faultbench.measurement.rundir.runfiles import META
from faultbench.measurement.rundir.safefile import ResultsError
from faultbench.measurement.workload import Workload


def run_clock(meta: dict[str, Any]) -> str:
    """The clock the run's guests boot with: the one meta.json records, which its plane
    implies (a run from before clocks existed records none, and was on the wall's)."""
    clock, implied = meta.get("clock"), clock_of(meta["plane"])
    if ("clock" not in meta and implied == "wall") or \
            (isinstance(clock, dict) and clock.get("name") == implied):
        return implied
    raise ResultsError(f"{META} records no valid clock: cannot resume with the clock it "
                       f"started with")


def without_concurrent_mappers(workload: Workload) -> Workload:
    """The workload without scenarios whose mappers run at once: they need two CPUs, and an
    instruction-clock guest has one. Each is recorded in `skipped` with the reason."""
    keep = [s for s in workload.scenarios
            if not (s.spec.mappers > 1 and s.spec.mapper_mode == "concurrent")]
    dropped = [s for s in workload.scenarios if s not in keep]
    skipped = workload.skipped + [
        {"scenario": s.name, "reason": "concurrent mappers need two CPUs; an instruction-clock "
                                       "guest has one (docs/icount.md)"} for s in dropped]
    return dataclasses.replace(workload, scenarios=keep, skipped=skipped)


def clock_record(clock: str, kvm: bool) -> dict[str, object]:
    """What meta.json says of the clock the guest's timings were taken on."""
    if clock == "icount":
        return {"name": "icount", "qemu_opts": ICOUNT_QEMU_OPTS, "vcpus": 1,
                "unit": "virtual ns; at shift=0 one virtual ns is one guest instruction "
                        "(user and kernel), not a cycle",
                "qemu": qemu_version(), "kernel_params": " ".join(DETERMINISM_PARAMS)}
    return {"name": "wall", "source": "KVM guest clock" if kvm else
            "TCG guest clock, driven by the host's real time", "qemu": qemu_version(),
            "kernel_params": " ".join(DETERMINISM_PARAMS)}


def qemu_version() -> str | None:
    binary = shutil.which(qemu_binary())
    if binary is None:
        return None
    try:
        done = subprocess.run([binary, "--version"], capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = done.stdout.splitlines()[:1]
    return first[0].strip() if first else None
