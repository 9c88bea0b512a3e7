"""Runs INSIDE a booted kernel image (see test_guest.py): one boot, every knob scenario.

Usage: python guest_knob_scenarios.py OUT.json
Writes what it saw to OUT.json (in a host directory shared with --rwdir, the only one the
guest may write: it tries the directory above too); the host test asserts.
Standard library only, like everything that runs in the guest.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

KNOB = "/sys/kernel/debug/fault_around_bytes"
SWEEP = (4096, 16384, 65536, 2097152)
SIZE = "16M"
FAULTBENCH = [sys.executable, "-m", "faultbench"]
JOURNAL = os.environ["FAULTBENCH_JOURNAL"]


def knob() -> int:
    with open(KNOB) as f:
        return int(f.read())


def run(argv: list[str], *extra: str) -> dict[str, object]:
    done = subprocess.run([*argv, *extra], capture_output=True, text=True, timeout=300)
    return {"rc": done.returncode, "stdout": done.stdout, "stderr": done.stderr}


def start_loop(original: int) -> tuple[subprocess.Popen[str], int | None]:
    """A long knob sweep in the background, once it has changed the knob."""
    proc = subprocess.Popen(
        [*FAULTBENCH, "measure", "--size", SIZE, "--repeat", "100000",
         "--set", "fault_around_bytes=4096,8192"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if knob() != original:
            return proc, knob()
        time.sleep(0.05)
    return proc, None


def udev_state() -> dict[str, object]:
    """What udev did in this boot: its processes still running, the devices it recorded
    (coldplug records every device; faultbench's guests let it see none), the
    /dev/virtio-ports links init found (faultbench's stand-in made them, as udev's rule
    would), whether the scratch disk, which no udev rule loaded a driver for, is mounted,
    and the read-ahead of each 9p mount (the stand-in for tmpfiles set the root's)."""
    processes = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue
        if "udev" in name:
            processes.append(name)
    subsystems = set()
    for device in os.listdir("/run/udev/data") if os.path.isdir("/run/udev/data") else ():
        link = f"/sys/dev/{'char' if device[0] == 'c' else 'block'}/{device[1:]}/subsystem"
        subsystems.add(os.path.basename(os.path.realpath(link)) if device[0] in "cb"
                       else device)
    with open("/proc/mounts") as f:
        mounts = [line.split()[1:3] for line in f]
    ports = "/dev/virtio-ports"
    links = {name: os.readlink(os.path.join(ports, name)) for name in os.listdir(ports)}
    read_ahead = {}
    for bdi in os.listdir("/sys/class/bdi"):
        if bdi.startswith("9p-"):
            with open(f"/sys/class/bdi/{bdi}/read_ahead_kb") as f:
                read_ahead[bdi] = int(f.read())
    return {"processes": processes, "subsystems": sorted(subsystems), "mounts": mounts,
            "links": links, "read_ahead_kb": read_ahead}


def main() -> int:
    original = knob()
    with open("/proc/meminfo") as meminfo:
        total_kb = int(meminfo.readline().split()[1])  # MemTotal
    out: dict[str, object] = {"original": original, "udev": udev_state(),
                              "mem_total_kb": total_kb}
    sweep = run([sys.executable, "-X", "importtime", "-m", "faultbench"], "measure",
                "--backing", "memfd", "--size", SIZE, "--json",
                "--set", "fault_around_bytes=" + ",".join(map(str, SWEEP)))
    out["sweep"] = {
        "rc": sweep["rc"],
        "samples": [json.loads(line) for line in str(sweep["stdout"]).splitlines() if line],
        "imported": sorted({line.split("|")[-1].strip().split(".")[0]
                            for line in str(sweep["stderr"]).splitlines()
                            if line.startswith("import time:")}),
        "errors": [line for line in str(sweep["stderr"]).splitlines()
                   if not line.startswith("import time:")],
    }
    out["after_sweep"] = knob()
    # one scenario, four samples in one process: on the instruction clock they must agree
    repeat = run(FAULTBENCH, "measure", "--backing", "memfd", "--size", "16M", "--uffd", "wp",
                 "--repeat", "4", "--json")
    out["repeat"] = {"rc": repeat["rc"], "stderr": repeat["stderr"],
                     "samples": [json.loads(line) for line in str(repeat["stdout"]).splitlines()
                                 if line]}

    proc, during = start_loop(original)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    out["sigint"] = {"during": during, "rc": proc.returncode, "after": knob(),
                     "journal_left": os.path.exists(JOURNAL), "stderr": err}

    proc, during = start_loop(original)
    proc.kill()
    proc.communicate(timeout=120)
    out["sigkill"] = {
        "during": during, "rc": proc.returncode, "after_kill": knob(),
        "journal_left": os.path.exists(JOURNAL),
        "next_run": run(FAULTBENCH, "measure", "--size", "1M", "--set", "fault_around_bytes=4096"),
        "after_refusal": knob(),
        "restore": run(FAULTBENCH, "restore"),
        "after_restore": knob(),
        "journal_after_restore": os.path.exists(JOURNAL),
    }
    # beside the shared directory: what a booted run's guest would do to the run's files
    # from its boot's own directory (the host test checks that nothing reached the host)
    beside = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(sys.argv[1]))),
                          "written-by-the-guest")
    try:
        with open(beside, "w") as f:
            f.write("the guest wrote this\n")
        out["beside"] = "written"
    except OSError as exc:
        out["beside"] = exc.strerror
    with open(sys.argv[1], "w") as f:
        json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
