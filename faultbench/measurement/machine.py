"""How busy the machine is right before a run: load, the busiest other processes, the CPU
frequency governor. `faultbench run` prints it as one line, warns when it is busy enough to
bend timings, and records it in meta.json (`machine_state`) for the report header.

Standard library only. What cannot be read is None with its reason, never a made-up value.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from faultbench.errors import printable

GOVERNOR = "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"
# How long the other processes' CPU time is watched; short enough not to delay a run.
WINDOW_S = 0.3
# Busy: other work holds at least half of the CPUs (load average), or other processes used
# half a CPU during the window. Then the timed loop gets preempted often: measured here, a
# load of ~2.7 on 2 CPUs flagged 107 of 180 samples and moved medians by +36% to +171%.
BUSY_LOAD_PER_CPU = 0.5
BUSY_OTHERS_CPU = 0.5


def _cpu_ticks() -> dict[int, tuple[str, int]]:
    """pid -> (command name, user + system clock ticks so far) of every process."""
    out: dict[int, tuple[str, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:  # gone since the listing, or not ours to read
            continue
        comm = text[text.find("(") + 1: text.rfind(")")]
        fields = text[text.rfind(")") + 2:].split()
        out[int(entry.name)] = (comm, int(fields[11]) + int(fields[12]))
    return out


def collect() -> dict[str, Any]:
    """{load: [1, 5, 15 min], cpus, others: [[name, CPU share]] (busiest first, top 3),
    others_cpu (CPUs the others used), governor, null_reasons}."""
    state: dict[str, Any] = {"load": list(os.getloadavg()),
                             "cpus": len(os.sched_getaffinity(0)), "null_reasons": {}}
    mine = {os.getpid(), os.getppid()}
    before, start = _cpu_ticks(), time.monotonic()
    time.sleep(WINDOW_S)
    after, elapsed = _cpu_ticks(), time.monotonic() - start
    hz = os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = {}
    for pid, (comm, ticks) in after.items():
        if pid in mine or pid not in before:
            continue
        share = (ticks - before[pid][1]) / hz / elapsed
        if share > 0:
            used[comm] = used.get(comm, 0.0) + share
    busiest = sorted(used.items(), key=lambda item: -item[1])
    state["others"] = [[printable(name), round(share, 2)] for name, share in busiest[:3]]
    state["others_cpu"] = round(sum(used.values()), 2)
    try:
        state["governor"] = Path(GOVERNOR).read_text().strip()
    except OSError as exc:
        state["governor"] = None
        state["null_reasons"]["governor"] = (
            "no cpufreq (a virtual machine, or no driver)" if isinstance(exc, FileNotFoundError)
            else f"{GOVERNOR}: {exc.strerror}")
    return state


def busy(state: dict[str, Any]) -> bool:
    return (state["load"][0] >= BUSY_LOAD_PER_CPU * state["cpus"]
            or state["others_cpu"] >= BUSY_OTHERS_CPU)


LINE = 83
WARNING = "WARNING: busy enough to bend timings; compare only with runs under a like load"


def describe(state: Any) -> tuple[str, str | None] | None:
    """(one line for a human, the warning when busy), or None when `state` (read back from
    a meta.json, so untrusted) is not what collect() writes."""
    try:
        load = [float(state["load"][0])]
        cpus, others_cpu = int(state["cpus"]), float(state["others_cpu"])
        # other users' process names: a name set with PR_SET_NAME may carry escape sequences
        others = [(printable(str(name)[:16]), float(share)) for name, share in state["others"][:2]]
        governor = state["governor"]
    except (KeyError, IndexError, TypeError, ValueError, OverflowError):  # int(Infinity)
        return None
    # the 1-minute load and as many of the busiest as fit: the line stays under 100 columns
    # after a `faultbench run: ` prefix
    for shown in range(len(others), -1, -1):
        busiest = ", ".join(f"{name} {share:.0%}" for name, share in others[:shown])
        text = (f"machine: load {load[0]:.2f} on {cpus} CPUs; others used {others_cpu:.1f} CPU"
                + (f" ({busiest})" if busiest else "")
                + (f"; governor {printable(str(governor)[:20])}" if governor is not None else ""))
        if len(text) <= LINE:
            break
    checked = {"load": load, "cpus": cpus, "others_cpu": others_cpu}
    return text, WARNING if busy(checked) else None
