"""Wall time of a booted run: how long each boot takes, and how much of it is booting.

Runs a two-scenario workload on IMAGE (default: the newest /boot/vmlinuz-*) with
`faultbench run --kernel a=IMAGE --kernel b=IMAGE --boots N --clock CLOCK` as a user would,
then prints each boot's wall time from meta.json (started/finished), the samples' own time
inside it (sum of mmap + touch + munmap of every sample; on the icount clock in virtual ns,
i.e. guest instructions, so not seconds of the host's), and the rest: boot, start-up and
shutdown. Run as root: python benchmarks/boot_time.py [IMAGE] [N] [--clock icount|wall]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", nargs="?",
                        default=str(sorted(Path("/boot").glob("vmlinuz-*"))[-1]))
    parser.add_argument("boots", nargs="?", type=int, default=2)
    parser.add_argument("--clock", choices=("icount", "wall"),
                        help="the guest's clock under TCG (default: faultbench run's)")
    args = parser.parse_args()
    image, boots = args.image, args.boots
    with tempfile.TemporaryDirectory(prefix="faultbench-boot-time-") as tmp:
        workload = Path(tmp) / "boot-time.toml"
        workload.write_text(WORKLOAD.format(boots=boots))
        run = Path(tmp) / "run"
        started = time.perf_counter()
        subprocess.run([sys.executable, "-P", "-m", "faultbench", "run", str(workload),
                        "--kernel", f"a={image}", "--kernel", f"b={image}", "--boots",
                        str(boots), "--out", str(run), "-q",
                        *(["--clock", args.clock] if args.clock else [])], check=True,
                       stdout=subprocess.DEVNULL)
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
        print(f"boot {boot['index']} ({boot['kernel']}): {wall:5.0f} s wall, "
              f"{measured:6.2f} s in samples, {wall - measured:5.0f} s boot and start-up")
    print(f"median boot {statistics.median(walls):.0f} s (1 s resolution); whole run "
          f"{total:.0f} s including the host's report")
    return 0


if __name__ == "__main__":
    sys.exit(main())
