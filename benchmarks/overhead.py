#!/usr/bin/env python3
"""What faultbench adds to the timed region: `faultbench measure` vs a bare C loop.

Both sides map the same backing at the same place (a page-table boundary), touch one byte per
page in the same pattern with the same loop instructions, and read CLOCK_MONOTONIC_RAW around
the loop (benchmarks/reference_loop.c). faultbench takes --samples samples after one it
discards (the first of a run finds its backing colder), each in a new mapper process.

--clock icount boots ONE guest (QEMU -icount, 1 vCPU; plane tcg-icount) and runs both sides
of every backing and pattern there: a virtual ns is one guest instruction. There the bare
loop runs as a faultbench mapper does: each sample a new process (whose first faults can cost
more than a reused process's: page tables above the PTE level), address-space randomization
off (`setarch -R`; where the mapping lands decides which of those it must allocate). Another
task that preempts a loop (the guest's rcu_preempt kthread, at a timer tick) can only add
instructions, and both sides count those switches (nivcsw), so each side's fewest
instructions is its own cost and the ratio of the two is what faultbench adds, the same on
every run; the ratio of medians, with the preempted samples in, is printed beside it. It also
prints how many mappings each side faulted in (a fault's VMA lookup walks them): a faultbench
mapper execs a small program of its own for that reason.
--clock wall (the default) runs here, the bare loop's --samples in one process after one it
discards (natively the first in a process is slower: caches are cold), in pairs alternating
which side goes first, in --blocks independent blocks, and prints how much the median ratio
varies between blocks: on a shared VM, a lot.

    python benchmarks/overhead.py --clock icount [--kernel IMAGE] [--size 16M] [--samples 9]
    python benchmarks/overhead.py [--blocks 3] [--pairs 5] [--size 64M] [--samples 5]
    python benchmarks/overhead.py --short [--clock icount]  # seconds natively (for tests)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BACKINGS = ("anon", "memfd", "tmpfs", "file")
PATTERNS = ("seq", "random", "sparse")
RESULT = "overhead.json"


def reference_arg(pattern: str, page_size: int) -> str:
    """reference_loop's STEP_PAGES for a faultbench pattern."""
    if pattern == "random":
        return "random"
    return str(page_size // 8 if pattern == "sparse" else 1)


def reference_ns(binary: Path, backing: str, pattern: str, size: int,
                 samples: int) -> tuple[list[list[int]], int]:
    """The bare loop's samples ([ns, involuntary switches] each) after the one it discards,
    and how many mappings it had."""
    lines, mappings = _reference(binary, backing, pattern, size, samples + 1)
    return lines[1:], mappings


def fresh_reference_ns(binary: Path, backing: str, pattern: str, size: int,
                       samples: int) -> tuple[list[list[int]], int]:
    """The bare loop as a faultbench mapper runs: once in each of `samples` new processes,
    address-space randomization off."""
    runs = [_reference(binary, backing, pattern, size, 1, setarch=True)
            for _ in range(samples)]
    return [lines[0] for lines, _ in runs], max(mappings for _, mappings in runs)


def _reference(binary: Path, backing: str, pattern: str, size: int, repeat: int,
               setarch: bool = False) -> tuple[list[list[int]], int]:
    out = subprocess.run(
        [*(["setarch", "-R"] if setarch else []), str(binary), backing, str(size),
         reference_arg(pattern, os.sysconf("SC_PAGESIZE")), "read"],
        env={"REFERENCE_REPEAT": str(repeat)}, capture_output=True, text=True, check=True)
    mappings = int(out.stderr.split("mappings ")[1].split()[0])
    return [[int(word) for word in line.split()] for line in out.stdout.splitlines()], mappings


def faultbench_ns(backing: str, pattern: str, size: int,
                  samples: int) -> tuple[list[list[int]], int]:
    """faultbench's samples ([touch_ns, nivcsw] each), and the most mappings one of its
    mappers had."""
    out = subprocess.run(
        [sys.executable, "-m", "faultbench", "measure", "--json", "--size", str(size),
         "--backing", backing, "--pattern", pattern, "--repeat", str(samples),
         "--warmups", "1"],
        capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"faultbench measure failed: {out.stderr.strip()}")
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    return ([[line["touch_ns"], line["nivcsw"]] for line in lines],
            max(line["mappings"] for line in lines))


def build_reference(directory: Path) -> Path:
    binary = directory / "reference_loop"
    subprocess.run(["cc", "-O2", "-std=gnu99", "-o", str(binary),
                    str(HERE / "reference_loop.c")], check=True)
    return binary


def spread(values: list[int]) -> float:
    """(max - min) / min"""
    return (max(values) - min(values)) / min(values)


def median_ns(samples: list[list[int]]) -> float:
    return statistics.median(ns for ns, _ in samples)


def side(samples: list[list[int]]) -> tuple[int, float, str, float]:
    """One side on the instruction clock: its fewest instructions, the spread of its samples
    that nothing preempted, how many were preempted, and the median of all."""
    quiet = [ns for ns, switches in samples if switches == 0] or [ns for ns, _ in samples]
    preempted = sum(1 for _, switches in samples if switches)
    return (min(ns for ns, _ in samples), spread(quiet), f"{preempted}/{len(samples)}",
            median_ns(samples))


def measure_all(binary: Path, backings: tuple[str, ...], patterns: tuple[str, ...], size: int,
                samples: int) -> list[dict[str, object]]:
    """Both sides of every backing and pattern on the instruction clock (the order is moot)."""
    rows = []
    for backing in backings:
        for pattern in patterns:
            reference, reference_maps = fresh_reference_ns(binary, backing, pattern, size,
                                                           samples)
            faultbench, faultbench_maps = faultbench_ns(backing, pattern, size, samples)
            rows.append({"backing": backing, "pattern": pattern, "reference": reference,
                         "faultbench": faultbench, "mappings": [reference_maps,
                                                                faultbench_maps]})
    return rows


def print_rows(rows: list[dict[str, list]], unit: str) -> None:
    print(f"{'backing':8} {'pattern':8} {'reference ' + unit:>16} {'spread':>7} {'preempt':>7} "
          f"{'faultbench ' + unit:>17} {'spread':>7} {'preempt':>7} {'ratio':>6} "
          f"{'median':>7} {'mappings':>9}")
    for row in rows:
        ref_min, ref_spread, ref_preempted, ref_median = side(row["reference"])
        fb_min, fb_spread, fb_preempted, fb_median = side(row["faultbench"])
        print(f"{row['backing']:8} {row['pattern']:8} {ref_min:16,} {ref_spread:7.2%} "
              f"{ref_preempted:>7} {fb_min:17,} {fb_spread:7.2%} {fb_preempted:>7} "
              f"{fb_min / ref_min:6.3f} {fb_median / ref_median:7.3f} "
              f"{'/'.join(str(n) for n in row['mappings']):>9}")


def icount(args: argparse.Namespace, size: int) -> int:
    """Boot one guest on the instruction clock; it runs `--inside`, the host prints."""
    from faultbench.measurement.booted.guest import ICOUNT_QEMU_OPTS, run_in_guest
    from faultbench.measurement.image import boot_images

    kernel = args.kernel or boot_images()[0]
    with tempfile.TemporaryDirectory(prefix="faultbench-overhead-") as tmp:
        build_reference(Path(tmp))
        inside = [sys.executable, "-P", str(Path(__file__).resolve()), "--inside", tmp,
                  "--size", str(size), "--samples", str(args.samples),
                  *(["--short"] if args.short else [])]
        status = run_in_guest(kernel, inside, rwdir=tmp, clock="icount")
        if status:
            raise SystemExit(f"the guest run failed with status {status}")
        result = json.loads((Path(tmp) / RESULT).read_text())
    print(f"plane tcg-icount (QEMU {ICOUNT_QEMU_OPTS}, 1 vCPU): 1 virtual ns = 1 guest "
          f"instruction; kernel {result['release']}; {args.size}, read one byte per page, "
          f"{args.samples} samples a side, all from one boot, each in a new process, "
          f"address-space randomization off. insn: a side's fewest; spread: of its samples "
          f"not preempted; preempt: samples another task preempted; ratio: of the fewest; "
          f"median: ratio of the medians of all samples; mappings: in the bare loop's process "
          f"/ in faultbench's mapper as the loop starts")
    print_rows(result["rows"], "insn")
    return 0


def inside(args: argparse.Namespace, size: int) -> int:
    """In the guest: both sides of every scenario, the result into the shared directory."""
    directory = Path(args.inside)
    backings, patterns = (("anon", "memfd"), ("seq",)) if args.short else (BACKINGS, PATTERNS)
    rows = measure_all(directory / "reference_loop", backings, patterns, size, args.samples)
    (directory / RESULT).write_text(json.dumps({"release": os.uname().release, "rows": rows}))
    return 0


def wall_pair(binary: Path, backing: str, pattern: str, size: int, samples: int,
              reference_first: bool) -> float:
    """faultbench/reference of the median samples of one pair of processes."""
    if reference_first:
        ref = median_ns(reference_ns(binary, backing, pattern, size, samples)[0])
        fb = median_ns(faultbench_ns(backing, pattern, size, samples)[0])
    else:
        fb = median_ns(faultbench_ns(backing, pattern, size, samples)[0])
        ref = median_ns(reference_ns(binary, backing, pattern, size, samples)[0])
    return fb / ref


def wall(args: argparse.Namespace, size: int) -> int:
    backings, patterns = (("anon", "memfd"), ("seq",)) if args.short else (BACKINGS, PATTERNS)
    with tempfile.TemporaryDirectory() as tmp:
        binary = build_reference(Path(tmp))
        print(f"plane native, clock wall (CLOCK_MONOTONIC_RAW); kernel {os.uname().release}; "
              f"{args.size}, read one byte per page; {args.blocks} blocks of {args.pairs} "
              f"pairs, {args.samples} samples a side per pair")
        print(f"{'backing':8} {'pattern':8} median faultbench/reference per block "
              f"(median of pairs), and range across blocks")
        for backing in backings:
            for pattern in patterns:
                medians = []
                for _ in range(args.blocks):
                    ratios = [wall_pair(binary, backing, pattern, size, args.samples,
                                        reference_first=pair % 2 == 0)
                              for pair in range(args.pairs)]
                    medians.append(statistics.median(ratios))
                print(f"{backing:8} {pattern:8} "
                      f"{' '.join(f'{m:.3f}' for m in medians)}   between blocks "
                      f"{min(medians):.3f}-{max(medians):.3f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clock", choices=("wall", "icount"), default="wall")
    parser.add_argument("--kernel", help="--clock icount: the image to boot "
                        "(default: the oldest /boot/vmlinuz-*)")
    parser.add_argument("--size", default=None, help="default 16M (icount), 64M (wall)")
    parser.add_argument("--samples", type=int, default=None,
                        help="default 9 (icount: about half are preempted), 5 (wall)")
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--short", action="store_true",
                        help="anon and memfd, seq only, 1M, 2 samples, 1 block of 1 pair")
    parser.add_argument("--inside", help=argparse.SUPPRESS)
    args = parser.parse_args()
    from faultbench.measurement.spec import parse_size

    if args.short:
        args.size, args.samples, args.blocks, args.pairs = "1M", 2, 1, 1
    args.size = args.size or ("16M" if args.clock == "icount" or args.inside else "64M")
    args.samples = args.samples or (9 if args.clock == "icount" or args.inside else 5)
    size = parse_size(args.size)
    if args.inside:
        return inside(args, size)
    return icount(args, size) if args.clock == "icount" else wall(args, size)


if __name__ == "__main__":
    sys.exit(main())
