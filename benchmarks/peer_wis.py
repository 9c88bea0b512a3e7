"""Agreement with an outside harness: will-it-scale's page_fault1-3 beside `faultbench measure`.

The user fetches will-it-scale (https://github.com/antonblanchard/will-it-scale); nothing
of it is copied here. This script builds its tests/page_fault1.c, page_fault2.c and
page_fault3.c, plus a read twin it writes itself (a shared file mapping, one read per page,
munmap; the file ftruncated as page_fault3's is, or filled with write() and fsync'd as
faultbench's warm file is), each linked with a small driver of its own instead of
will-it-scale's main.c (which needs hwloc): one task, and what it measures is the steady
state of testcase()'s endless map-touch-munmap loop. Each test runs interleaved with the
matching `faultbench measure` (a new process per sample, munmap straight after the loop),
and the table gives, side by side, the cost per page with mmap and munmap included, faults
per page, and folio sizes where the sample records them.

With `--kernel IMAGE` the whole comparison runs inside a booted guest on the instruction
clock (docs/icount.md), where neither side's count depends on how busy the host is: then
ns are guest instructions, the CPU and wall clocks are one, and /tmp is the guest's tmpfs.

Usage: python benchmarks/peer_wis.py WIS_CHECKOUT [--rounds 3] [--seconds 2] [--samples 5]
           [--kernel IMAGE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SIZE = 128 << 20  # will-it-scale's MEMSIZE
# will-it-scale's tests make their files in /tmp; faultbench's file backing is told the same
FILE_DIR = "/tmp"

DRIVER = r"""
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void testcase(unsigned long long *iterations, unsigned long nr);

/* the task's CPU time beside the wall clock: on a busy host the task is not always running */
static double cpu_time(clockid_t clock)
{
	struct timespec ts;

	if (clock_gettime(clock, &ts) != 0)
		exit(1);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned long long minflt(pid_t pid)
{
	char path[64], buf[4096], *p;
	unsigned long long value = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f || !fgets(buf, sizeof(buf), f))
		exit(1);
	fclose(f);
	p = strrchr(buf, ')');
	/* after the command: state ppid pgrp session tty tpgid flags minflt */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %llu", &value) != 1)
		exit(1);
	return value;
}

int main(int argc, char **argv)
{
	volatile unsigned long long *it;
	double seconds = argc > 2 ? atof(argv[1]) : 2, t0, t1, w0, w1;
	unsigned long long pages_per_pass = argc > 2 ? strtoull(argv[2], NULL, 10) : 0;
	unsigned long long i0, i1, f0, f1;
	pid_t pid;
	clockid_t clock;

	it = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid = fork();

	if (pid == 0) {
		testcase((unsigned long long *)it, 0);
		_exit(0);
	}
	if (clock_getcpuclockid(pid, &clock) != 0)
		exit(1);
	/* the steady state starts after the first pass, which fills the page cache */
	for (int waited = 0; *it < pages_per_pass + 1; waited++)
		if (waited > 6000 || usleep(10000) != 0)
			exit(1);
	f0 = minflt(pid), i0 = *it, t0 = cpu_time(clock), w0 = cpu_time(CLOCK_MONOTONIC);
	usleep((useconds_t)(seconds * 1e6));
	f1 = minflt(pid), i1 = *it, t1 = cpu_time(clock), w1 = cpu_time(CLOCK_MONOTONIC);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	printf("%llu %llu %.0f %.0f\n", i1 - i0, f1 - f0, (t1 - t0) * 1e9, (w1 - w0) * 1e9);
	return 0;
}
"""

READ_TWIN = r"""
#define _GNU_SOURCE
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MEMSIZE (128 * 1024 * 1024)

char *testcase_description = "Separate file shared mapping read fault (faultbench's twin)";

void testcase(unsigned long long *iterations, unsigned long nr)
{
	char tmpfile[] = "/tmp/willitscale.XXXXXX";
	int fd = mkstemp(tmpfile);
	unsigned long pgsize = getpagesize();
	volatile char sink;

	(void)nr;
	assert(fd >= 0);
#ifdef FILL_WRITE
	{	/* as faultbench's warm file: 1 MiB write()s, then fsync (clean pages) */
		static char chunk[1 << 20];

		memset(chunk, 0x5a, sizeof(chunk));
		for (long done = 0; done < MEMSIZE; done += sizeof(chunk))
			assert(pwrite(fd, chunk, sizeof(chunk), done) == sizeof(chunk));
		assert(fsync(fd) == 0);
	}
#else
	assert(ftruncate(fd, MEMSIZE) == 0);
#endif
	unlink(tmpfile);
	while (1) {
		char *c = mmap(NULL, MEMSIZE, PROT_READ, MAP_SHARED, fd, 0);

		assert(c != MAP_FAILED);
		for (unsigned long i = 0; i < MEMSIZE; i += pgsize) {
			sink = c[i];
			(*iterations)++;
		}
		munmap(c, MEMSIZE);
	}
	(void)sink;
}
"""

# name -> (source: a will-it-scale test or the twin, extra cc flags, faultbench measure args)
TESTS = {
    "page_fault1 (anon write)": ("tests/page_fault1.c", [],
                                 ["--backing", "anon", "--access", "write"]),
    "page_fault2 (file private write)": (
        "tests/page_fault2.c", [],
        ["--backing", "file", "--map", "private", "--access", "write", "--cache", "warm"]),
    "page_fault3 (file shared write)": (
        "tests/page_fault3.c", [],
        ["--backing", "file", "--map", "shared", "--access", "write", "--cache", "warm"]),
    "read twin, ftruncated file": (
        None, [], ["--backing", "file", "--map", "shared", "--access", "read", "--cache", "warm"]),
    "read twin, written file": (
        None, ["-DFILL_WRITE"],
        ["--backing", "file", "--map", "shared", "--access", "read", "--cache", "warm"]),
    # faultbench's hot cache: the file mapped, read and unmapped once just before the
    # sample, as the twin's previous pass did
    "read twin, written file, fb hot": (
        None, ["-DFILL_WRITE"],
        ["--backing", "file", "--map", "shared", "--access", "read", "--cache", "hot"]),
}


def build(checkout: Path, work: Path) -> dict[str, Path]:
    cc = shutil.which("cc") or "gcc"
    driver, twin = work / "driver.c", work / "read_twin.c"
    driver.write_text(DRIVER)
    twin.write_text(READ_TWIN)
    programs = {}
    for index, (name, (source, flags, _)) in enumerate(TESTS.items()):
        test = checkout / source if source else twin
        if not test.is_file():
            sys.exit(f"peer_wis: {test} not found: give a will-it-scale checkout")
        out = work / f"test{index}"
        subprocess.run([cc, "-O2", "-w", *flags, str(driver), str(test), "-o", str(out)],
                       check=True)
        programs[name] = out
    return programs


def run_wis(program: Path, seconds: float) -> tuple[float, float, float]:
    """(ns per page on the task's CPU clock and on the wall clock, mmap and munmap
    included; faults per page) of the steady-state loop."""
    pages, faults, cpu_ns, wall_ns = map(float, subprocess.run(
        [str(program), str(seconds), str(SIZE // os.sysconf("SC_PAGESIZE"))],
        capture_output=True, text=True, check=True).stdout.split())
    return cpu_ns / pages, wall_ns / pages, faults / pages


def run_faultbench(args: list[str], samples: int) -> list[dict]:
    where = ["--dir", FILE_DIR] if "file" in args else []
    done = subprocess.run(
        [sys.executable, "-m", "faultbench", "measure", *args, *where, "--size",
         f"{SIZE >> 20}M", "--no-pagemap", "--repeat", str(samples), "--json"],
        capture_output=True, text=True, check=False)
    if done.returncode and not done.stdout:
        sys.exit(f"peer_wis: faultbench measure {' '.join(args)}: {done.stderr.strip()}")
    return [json.loads(line) for line in done.stdout.splitlines()]


def folios(sample: dict) -> str:
    # the hook for the per-sample folio sizes (branch folios adds a `folios` field)
    value = sample.get("folios")
    return "n/a" if value is None else json.dumps(value, separators=(",", ":"))


def row(name: str, program: Path, fb_args: list[str], args: argparse.Namespace) -> str:
    wis, fb = [], []
    for _ in range(args.rounds):  # interleaved: the host's drift hits both alike
        wis.append(run_wis(program, args.seconds))
        fb += run_faultbench(fb_args, args.samples)
    ok = [s for s in fb if s["status"] == "ok"]
    if not ok:
        return f"{name:<34} faultbench: {fb[0]['error'] if fb else 'no sample'}"
    # on a busy host a preempted loop's wall clock counts the other task's time too
    calm = [s for s in ok if s["nivcsw"] == 0]
    shown = f"{len(calm)}/{len(ok)}"
    ok = calm or ok
    per_page = statistics.median(
        (s["touch_ns"] + s["mmap_ns"] + s["munmap_ns"]) / s["pages_touched"] for s in ok)
    cpu, wall, faults = (statistics.median(w[i] for w in wis) for i in range(3))
    return (f"{name:<34} {cpu:>7.0f} {wall:>8.0f} {per_page:>6.0f} {per_page / cpu:>6.2f} "
            f"{faults:>8.4f} {statistics.median(s['faults_per_page'] for s in ok):>8.4f} "
            f"{statistics.median(s['ns_per_page'] for s in ok):>7.0f} "
            f"{statistics.median(s['munmap_ns'] / s['pages_touched'] for s in ok):>5.0f} "
            f"{shown:>5}  {folios(ok[0])}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="a will-it-scale checkout")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--samples", type=int, default=5, help="faultbench samples a round")
    parser.add_argument("--kernel", help="run it all in this image, on the instruction clock")
    args = parser.parse_args()
    if args.kernel:
        from faultbench.measurement.booted.guest import run_in_guest

        argv = [sys.executable, str(Path(__file__).resolve()), str(args.checkout.resolve()),
                "--rounds", str(args.rounds), "--seconds", str(args.seconds),
                "--samples", str(args.samples)]
        return run_in_guest(args.kernel, argv, clock="icount", memory="2G")
    with tempfile.TemporaryDirectory(prefix="peer-wis-") as work:
        programs = build(args.checkout, Path(work))
        print(f"{'test':<34} {'wis cpu':>7} {'wis wall':>8} {'fb':>6} {'fb/wis':>6} "
              f"{'wis f/pg':>8} {'fb f/pg':>8} {'fb loop':>7} {'unmap':>5} {'calm':>5}  folios")
        for name, (_, _, fb_args) in TESTS.items():
            print(row(name, programs[name], fb_args, args), flush=True)
    print(f"({SIZE >> 20} MiB, one task, ns per page with mmap and munmap; wis: its task's "
          "CPU clock and the wall clock over the steady-state loop; fb: the wall clock around "
          "each step of a sample, median of the calm samples (loop not preempted) when any, "
          "else of all; fb/wis: against wis cpu; fb loop, unmap: faultbench's loop and munmap "
          f"alone; {args.rounds} rounds of {args.seconds:g} s against {args.samples} "
          "faultbench samples each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
