"""Wall time of a booted run: how long each boot takes, and how much of it is booting.

Runs a two-scenario workload on IMAGE (default: the newest /boot/vmlinuz-*) with
`faultbench run --kernel a=IMAGE --kernel b=IMAGE --boots N --clock CLOCK` as a user would,
then prints each boot's wall time from meta.json (started/finished), the samples' own time
inside it (sum of mmap + touch + munmap of every sample; on the icount clock in virtual ns,
i.e. guest instructions, so not seconds of the host's), the rest (boot, start-up and
shutdown), and the host seconds from the boot's directory appearing (just before QEMU starts)
to its first sample reaching the host, polled every 0.1 s. Run as root:
python benchmarks/boot_time.py [IMAGE] [N] [--clock icount|wall] [--jobs J]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from faultbench.measurement.rundir.results import BOOTS_DIR, SAMPLES

WORKLOAD = """\
description = "boot time benchmark: two small scenarios"
repetitions = {boots}
warmups = 1
seed = 3

[knobs]
"thp.shmem_enabled" = "never"

[defaults]
backing = "memfd"
size = "4M"
cache = "warm"

[[matrix]]
pattern = ["seq", "sparse"]
"""


def _seconds(start: str, end: str) -> float:
    parse = lambda text: datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def _first_samples(proc: subprocess.Popen[bytes], run: Path) -> dict[int, float]:
    """Boot index -> host seconds from its boots/<index>.d appearing (the host makes it just
    before starting the guest) to a sample in it, polled until `proc` ends."""
    seen: dict[int, float] = {}
    first: dict[int, float] = {}
    while proc.poll() is None:
        now = time.perf_counter()
        for boot_dir in (run / BOOTS_DIR).glob("*.d"):
            index = int(boot_dir.name.removesuffix(".d"))
            seen.setdefault(index, now)
            with contextlib.suppress(OSError):
                if index not in first and (boot_dir / SAMPLES).stat().st_size:
                    first[index] = now - seen[index]
        time.sleep(0.1)
    return first


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", nargs="?",
                        default=str(sorted(Path("/boot").glob("vmlinuz-*"))[-1]))
    parser.add_argument("boots", nargs="?", type=int, default=2)
    parser.add_argument("--clock", choices=("icount", "wall"),
                        help="the guest's clock under TCG (default: faultbench run's)")
    parser.add_argument("--jobs", type=int,
                        help="guests at once (default: faultbench run's); 1 times a boot alone")
    args = parser.parse_args()
    image, boots = args.image, args.boots
    with tempfile.TemporaryDirectory(prefix="faultbench-boot-time-") as tmp:
        workload = Path(tmp) / "boot-time.toml"
        workload.write_text(WORKLOAD.format(boots=boots))
        run = Path(tmp) / "run"
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-P", "-m", "faultbench", "run", str(workload),
                                 "--kernel", f"a={image}", "--kernel", f"b={image}", "--boots",
                                 str(boots), "--out", str(run), "-q",
                                 *(["--clock", args.clock] if args.clock else []),
                                 *(["--jobs", str(args.jobs)] if args.jobs else [])],
                                stdout=subprocess.DEVNULL)
        to_first = _first_samples(proc, run)
        if proc.returncode:
            raise SystemExit(f"faultbench run failed ({proc.returncode})")
        total = time.perf_counter() - started
        meta = json.loads((run / "meta.json").read_text())
        samples = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]
    walls = []
    print(f"image {image}, plane {meta['plane']}, {len(meta['boots'])} boots"
          f"{', samples timed on the instruction clock' if 'icount' in meta['plane'] else ''}")
    for boot in meta["boots"]:
        wall = _seconds(boot["started_utc"], boot["finished_utc"])
        measured = sum((s.get("mmap_ns") or 0) + (s.get("touch_ns") or 0)
                       + (s.get("munmap_ns") or 0) for s in samples
                       if s["boot"] == boot["index"]) / 1e9
        walls.append(wall)
        first = to_first.get(boot["index"])
        print(f"boot {boot['index']} ({boot['kernel']}): {wall:5.0f} s wall, "
              f"{measured:6.2f} s in samples, {wall - measured:5.0f} s boot and start-up, "
              + (f"{first:5.1f} s to the first sample" if first else "first sample not seen"))
    print(f"median boot {statistics.median(walls):.0f} s (1 s resolution); whole run "
          f"{total:.0f} s including the host's report; load average "
          f"{os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
