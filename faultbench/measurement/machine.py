"""How busy the machine is right before a run: load, the busiest other processes, the CPU
frequency governor, and another faultbench changing kernel knobs. `faultbench run` prints it
as one line, warns when it is busy enough to bend timings or measured at another run's knob
settings, and records it in meta.json (`machine_state`) for the report header.

Standard library only. What cannot be read is None with its reason, never a made-up value.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from faultbench.errors import printable
from faultbench.measurement.spec import clipped

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


def collect(host_knobs: bool = True) -> dict[str, Any]:
    """{load: [1, 5, 15 min], cpus, others: [[name, CPU share]] (busiest first, top 3),
    others_cpu (CPUs the others used), governor, null_reasons}, and when the run measures
    at this machine's knobs (`host_knobs`: not in a booted guest) knob_writer."""
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
    if host_knobs:
        state["knob_writer"] = knob_writer(state["null_reasons"])
    return state


def knob_writer(null_reasons: dict[str, str]) -> dict[str, Any] | None:
    """The live holder of the knob lock ({pid, command}): a run started then measures at
    the values it set for a while, not at the machine's own (it sweeps them, and puts them
    back when it ends). With none, a killed writer's journal ({left: in words}): its values
    stay until `faultbench restore`. The lock keeps knob writers apart; a run that only reads cannot
    wait for it, not knowing it ever sets none."""
    from faultbench.measurement.knobs.journal import knobs_left
    from faultbench.measurement.knobs.knoblock import LOCK_PATH, live_holder

    try:
        holder = live_holder()
    except OSError as exc:
        null_reasons["knob_writer"] = f"{LOCK_PATH}: {exc.strerror}"
        return None
    if holder is None and (left := knobs_left()) is not None:
        return {"pid": None, "command": None, "left": left}  # killed: what it set stays
    return holder


def busy(state: dict[str, Any]) -> bool:
    return (state["load"][0] >= BUSY_LOAD_PER_CPU * state["cpus"]
            or state["others_cpu"] >= BUSY_OTHERS_CPU)


LINE = 83
WARNING = "WARNING: busy enough to bend timings; compare only with runs under a like load"


def describe(state: Any, plane: Any = "native") -> tuple[str, list[str]] | None:
    """(one line for a human, its warnings), or None when `state` (read back from a
    meta.json, so untrusted) is not what collect() writes. The instruction clock
    (`plane` tcg-icount) counts guest instructions, which the host's load does not change:
    no warning that it is busy there."""
    try:
        load = [float(state["load"][0])]
        cpus, others_cpu = int(state["cpus"]), float(state["others_cpu"])
        # other users' process names: a name set with PR_SET_NAME may carry escape sequences,
        # stored escaped (collect); 15 bytes escaped are at most 60 characters, so a cut at 64
        # bounds a planted name without cutting a real one inside an escape
        others = [(printable(str(name)[:64]), float(share)) for name, share in state["others"][:2]]
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
    warnings = [WARNING] if busy(checked) and plane != "tcg-icount" else []
    knobs_warning = knob_writer_warning(state.get("knob_writer"))
    return text, warnings + ([knobs_warning] if knobs_warning else [])


def knob_writer_warning(writer: Any) -> str | None:
    """The warning for knob_writer (read back from a meta.json: untrusted); None for none."""
    if not isinstance(writer, dict):
        return None
    if isinstance(left := writer.get("left"), str):
        return (f"WARNING: {printable(left[:300])}: measured at the kernel knobs it left "
                "changed, not the machine's own (`faultbench restore` puts them back)")
    pid, command = writer.get("pid"), writer.get("command")
    holder = ", ".join(
        ([f"pid {pid}"] if isinstance(pid, int) and not isinstance(pid, bool) else [])
        + ([f"`{printable(clipped(command))}`"] if isinstance(command, str) else []))
    return (f"WARNING: another faultbench{f' ({holder})' if holder else ''} held the knob "
            "lock: measured at the kernel knobs it had changed, not the machine's own")
