"""How many guests a booted run keeps running at once (`run --jobs N`), and the loop that
keeps them running in the plan's order.

On the instruction clock a guest's counts do not depend on what the host is doing, so its
boots may share the machine: by default one guest per CPU this process may use, fewer when
memory would not hold them (each guest's memory plus HEADROOM_MIB for QEMU itself, against
MemAvailable). On the wall clock guests that share CPUs slow each other down and move the
timings, so the default stays one. Boots start in the plan's order (boot_order.py), the
next one whenever a guest ends; the host thread that started a guest only waits for it:
meta.json and samples.jsonl are written by the main thread alone. Standard library only.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from faultbench.measurement.measure import meminfo
from faultbench.measurement.runner import RunError
from faultbench.measurement.signals import signals_raise
from faultbench.measurement.spec import parse_size

# What a TCG guest's QEMU takes beyond the guest's memory (code cache, 9p, virtme-ng).
HEADROOM_MIB = 256
MAX_JOBS = 64
WALL_WARNING = ("--jobs {jobs} on the wall clock: guests sharing the machine slow each other "
                "down, which moves wall-clock times (the instruction clock is not moved)")


def default_jobs(clock: str, memory: str) -> tuple[int, str]:
    """How many guests to run at once, and why that many."""
    if clock != "icount":
        return 1, "the wall clock: one guest at a time (contention moves wall-clock times)"
    cpus = len(os.sched_getaffinity(0))
    per_guest = parse_size(memory) + (HEADROOM_MIB << 20)
    available_kb = meminfo().get("MemAvailable")
    if available_kb is None:
        return 1, "no MemAvailable in /proc/meminfo: one guest at a time"
    fit = max(1, available_kb * 1024 // per_guest)
    return min(cpus, fit), (f"{cpus} CPU(s) available, memory for {fit} guest(s) of {memory} "
                            f"+ {HEADROOM_MIB}M")


def refuse_over_memory(requested: int | None, memory: str) -> None:
    """RunError when `requested` guests of `memory` at once (--jobs; the default is fitted
    to the memory available) need more memory than this machine has."""
    total_kb = meminfo().get("MemTotal")
    if requested is None or requested < 2 or total_kb is None:
        return
    need = requested * (parse_size(memory) + (HEADROOM_MIB << 20))
    if need > total_kb * 1024:
        raise RunError(f"--jobs {requested}: {requested} guests of {memory} (+ {HEADROOM_MIB}M "
                       f"each for QEMU) need {need / 2**30:.1f} GiB, more memory than this "
                       f"machine has ({total_kb / 2**20:.1f} GiB): ask for fewer")


def jobs_record(requested: int | None, clock: str, memory: str,
                boots: int) -> tuple[dict[str, Any], str | None]:
    """meta.json's `jobs` (how many guests at once, and why) and the warning to print; never
    more guests than the `boots` left to run."""
    refuse_over_memory(requested and min(requested, boots), memory)
    if requested is None:
        count, why = default_jobs(clock, memory)
        source = f"default: {why}"
    else:
        count, source = requested, "--jobs"
    if boots < count:
        count, source = max(boots, 1), f"{source}; {boots} boot(s) to run"
    warning = WALL_WARNING.format(jobs=count) if requested is not None and count > 1 \
        and clock != "icount" else None
    return {"count": count, "source": source}, warning


def attempt_jobs(earlier: Any, record: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """How many guests at once this attempt runs, and meta.json's `jobs` once it has, given
    this attempt's `record` (jobs_record: its --jobs or the default) and the run's `earlier`
    one (None for a new run). The attempt runs its own count: a resume given a lower --jobs
    (less memory, or the wall clock) gets it. The record keeps the most guests at once any
    attempt ran, since a boot of the run may have shared the machine with that many, and
    each attempt's count in its source."""
    if not (isinstance(earlier, dict) and isinstance(earlier.get("count"), int)
            and earlier["count"] != record["count"]):
        return record["count"], record
    return record["count"], {
        "count": max(earlier["count"], record["count"]),
        "source": f"{earlier.get('source')}; resumed with {record['count']} ({record['source']})"}


Start = Callable[[dict[str, Any]], Callable[[threading.Event], Any] | None]


def run_in_order(boots: list[dict[str, Any]], jobs: int, start: Start,
                 end: Callable[[dict[str, Any], Future[Any]], None],
                 stopped: Callable[[dict[str, Any]], None]) -> None:
    """Run `boots` in their order, at most `jobs` at once.

    `start(boot)` (main thread) prepares a boot and returns what a worker thread runs: a
    function of a cancel event; or None when it refused the boot before its guest started
    (and recorded why), and the others go on. `end(boot, future)` (main thread) records
    its outcome, in the order boots end. On an interruption (or any exception) every running
    guest is cancelled and waited for (so none outlives the call), `stopped(boot)` records
    each, and the exception propagates (a boot whose `end` raised is not among them: `end`
    records it).
    Each boot's `concurrent_with` lists the boots that ran at some moment beside it.
    """
    queue = list(boots)
    running: dict[Future[Any], dict[str, Any]] = {}
    cancel = threading.Event()
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="faultbench-boot") as pool, \
            signals_raise((signal.SIGTERM, signal.SIGHUP)):
        try:
            while queue or running:
                while queue and len(running) < jobs:
                    boot = queue.pop(0)
                    body = start(boot)
                    if body is None:
                        continue
                    boot["concurrent_with"] = sorted(b["index"] for b in running.values())
                    for other in running.values():
                        other["concurrent_with"] = sorted({*other["concurrent_with"],
                                                           boot["index"]})
                    running[pool.submit(body, cancel)] = boot
                done, _ = wait(running, timeout=1.0, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: running[f]["index"]):
                    end(running.pop(future), future)
        except BaseException:  # an interruption, or a boot's results that cannot be written
            cancel.set()
            wait(running)  # each guest killed and its scratch disk removed
            for boot in running.values():
                stopped(boot)
            raise
