"""`faultbench measure`: one scenario, N samples, JSON lines or a short line each."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from faultbench.commands import (
    ArgumentError,
    check_count,
    check_text,
    integer,
    number,
)
from faultbench.errors import error_text, printable
from faultbench.measurement.spec import (
    ACCESSES,
    BACKINGS,
    CACHES,
    FILL_HELP,
    MAPPER_KINDS,
    MAPPER_MODES,
    MAPS,
    PATTERN_HELP,
    POPULATES,
    TMPFS_HUGE,
    UFFD_MAPPERS,
    UFFD_MODES,
    Sample,
    Spec,
    format_size,
)
from faultbench.measurement.specdir import absolute_dir

# Samples stream out one by one, so this bound is no memory limit: it catches a typo (10^9
# samples take weeks) while "until interrupted" stays possible.
MAX_REPEAT = 10**9


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backing", choices=BACKINGS, default="memfd")
    parser.add_argument("--size", default="64M", help="bytes, with K/M/G suffix (default 64M)")
    parser.add_argument("--map", choices=MAPS, help="default: shared (private for anon)")
    parser.add_argument("--access", choices=ACCESSES, default="read")
    parser.add_argument("--cache", choices=CACHES, help="default: warm (hole for anon)")
    parser.add_argument("--pattern", default="seq", help=PATTERN_HELP)
    parser.add_argument("--seed", type=integer, default=1, help="seed of the random pattern")
    parser.add_argument("--uffd", choices=UFFD_MODES, default="none")
    parser.add_argument("--dir", help="directory of the tmpfs/file backing's file")
    parser.add_argument("--mappers", type=integer, default=1, help="processes/threads mapping it")
    parser.add_argument("--mapper-mode", choices=MAPPER_MODES, default="sequential")
    parser.add_argument("--mapper-kind", choices=MAPPER_KINDS, default="process")
    parser.add_argument(
        "--uffd-mappers", choices=UFFD_MAPPERS, default="all",
        help="which mappers register with userfaultfd (default all)",
    )
    parser.add_argument(
        "--populate", choices=POPULATES, default="none",
        help="make the range present before the timed loop, timed apart: madvise "
        "(MADV_POPULATE_READ/WRITE, Linux >= 5.14) or map (MAP_POPULATE); the loop then "
        "measures the floor, touching pages already mapped",
    )
    parser.add_argument(
        "--fill", default="write", metavar="HOW",
        help=f"how a warm/hot/cold backing is populated: {FILL_HELP} (default write: 1M "
        "write(2)s); it decides the page cache's folio sizes",
    )
    parser.add_argument(
        "--tmpfs-huge", choices=TMPFS_HUGE,
        help="backing tmpfs: mount a tmpfs of faultbench's own with this huge= option for "
        "each sample (root; unmounted on every exit path)",
    )
    parser.add_argument(
        "--no-pagemap", dest="pagemap", action="store_false",
        help="skip the pagemap walk that counts pages_mapped (null then), so munmap_ns is "
        "timed straight after the loop rather than with page tables the walk made hot",
    )
    parser.add_argument(
        "--map-offset", default="0", metavar="BYTES",
        help="start the mapping this far (e.g. 4K) past a page-table boundary, a multiple of "
        "the page below 2M (default 0: aligned, so fault-around windows fall the same way "
        "in every sample)",
    )
    parser.add_argument(
        "--vmas", type=integer, default=0, metavar="N",
        help="pad each mapper process's address space to N mappings before its loop (default "
        "0: as it comes, about 25); recorded per sample as `mappings`",
    )
    parser.add_argument("--deadline", type=number, default=10.0,
                        help="seconds per sample (at most 3600)")
    parser.add_argument(
        "--no-serve", action="store_true",
        help="leave userfaultfd faults unserved (shows the deadline at work)",
    )
    parser.add_argument(
        "--perf", action="store_true",
        help="also count with perf events (page faults, cycles, instructions); they slow "
        "each fault by a few percent",
    )
    parser.add_argument(
        "--profile", action="store_true",
        help="sample the kernel stacks of each mapper's loop and munmap (cpu-clock, root); "
        "the samples are marked profiled (the profiler slows them) and list their top "
        "kernel symbols (--json: the whole profile)",
    )
    parser.add_argument("--repeat", type=integer, default=1, help="samples per setting")
    parser.add_argument(
        "--warmups", type=integer, default=1,
        help="samples taken and discarded before each setting's first (default 1): the "
        "first sample in a process is slower, its page tables and caches cold",
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KNOB=V1[,V2...]",
        help="measure with each value of a kernel knob in turn (several --set: cross "
        "product); originals are restored afterwards",
    )
    parser.add_argument(
        "--kernel", metavar="IMAGE",
        help="boot IMAGE under QEMU (virtme-ng) and measure there",
    )
    parser.add_argument(
        "--clock", choices=("icount", "wall"),
        help="with --kernel under TCG: the guest's clock, QEMU's instruction counter "
        "(icount, the default: 1 virtual ns = 1 guest instruction, repeatable) or the host's "
        "real time (wall); a KVM guest always uses the wall clock",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per sample")


CONCURRENT_ON_ICOUNT = (
    "concurrent mappers need two CPUs, and an instruction-clock guest has one (Debian 6.1 hangs "
    "bringing up a second vCPU under -icount; docs/icount.md): use --mapper-mode sequential, "
    "or --clock wall")


def spec_from_args(args: argparse.Namespace) -> Spec:
    return Spec(
        backing=args.backing, size=args.size, map=args.map, access=args.access,
        cache=args.cache, pattern=args.pattern, seed=args.seed, uffd=args.uffd,
        # absolute, as a workload's: the sample's spec (--json) says which directory
        dir=None if args.dir is None else absolute_dir(args.dir),
        mappers=args.mappers, mapper_mode=args.mapper_mode, mapper_kind=args.mapper_kind,
        uffd_mappers=args.uffd_mappers, deadline_s=args.deadline, uffd_serve=not args.no_serve,
        perf=args.perf, populate=args.populate, pagemap=args.pagemap,
        map_offset=args.map_offset, fill=args.fill, tmpfs_huge=args.tmpfs_huge,
        vmas=args.vmas,
    ).normalized()


def describe(sample: Sample) -> str:
    spec = sample.spec
    head = (
        f"{spec['backing']} {format_size(spec['size'])} {spec['map']} {spec['access']} "
        f"{spec['cache']} {spec['pattern']} uffd={spec['uffd']}"
    )
    if spec.get("map_offset"):
        head += f" offset={format_size(spec['map_offset'])}"
    if spec.get("tmpfs_huge"):
        head += f" huge={spec['tmpfs_huge']}"
    if spec.get("fill", "write") != "write":
        head += f" fill={spec['fill']}"
    if spec.get("vmas"):
        head += f" vmas={spec['vmas']}"
    if spec["mappers"] > 1:
        head += f" mapper {sample.mapper + 1}/{spec['mappers']}"
    head += "".join(f" {name}={value}" for name, value in sample.knobs.items())
    if sample.status != "ok":
        return f"{head}: {sample.status}: {printable(error_text(sample.error))}"
    # on the instruction clock a virtual ns is one guest instruction: say so in the unit
    unit = "insn" if sample.clock == "icount" else "ns"
    return (
        f"{head}: {sample.pages_touched} pages, {sample.faults_minor} minor + "
        f"{sample.faults_major} major faults ({sample.faults_per_page:.3f}/page), "
        f"{sample.ns_per_page:.0f} {unit}/page touched, "
        f"{'pages mapped not walked' if sample.pages_mapped is None else sample.pages_mapped}"
        f"{'' if sample.pages_mapped is None else ' pages mapped'}, "
        f"munmap {sample.munmap_ns / max(sample.pages_touched, 1):.0f} {unit}/page"
        f" [{sample.plane}]" + _perf_text(sample) + _profile_text(sample)
    )


def _perf_text(sample: Sample) -> str:
    """The perf counts `--perf` asked for, or why each could not be counted."""
    if not sample.spec.get("perf"):
        return ""
    counts = [f"{name.removeprefix('perf_')} {value}" if (value := getattr(sample, name))
              is not None else f"{name.removeprefix('perf_')} null: "
              f"{printable(sample.null_reasons.get(name, 'no reason recorded'))}"
              for name in ("perf_page_faults", "cycles", "instructions")]
    return f" [perf {'; '.join(counts)}]"


def _profile_text(sample: Sample) -> str:
    if not sample.profiled:
        return ""
    if sample.profile is None or "loop" not in sample.profile:
        return f" [profiled: no profile: {sample.null_reasons.get('profile', '?')}]"
    from faultbench.measurement.profile import top_symbols

    loop = sample.profile["loop"]
    top = ", ".join(f"{name} {share:.0%}" for name, share in top_symbols(loop, 4))
    return f" [profiled, {loop['samples']} loop samples: {top}]"


def _emit(samples: list[Sample], as_json: bool, drift: dict[str, Any] | None = None) -> int:
    """Print the samples; returns how many failed (status other than ok)."""
    for sample in samples:
        if as_json:
            record = sample.to_dict()
            if drift:
                record["knob_drift"] = drift
            print(json.dumps(record), flush=True)
        else:
            print(describe(sample) + (f" [knob changed by someone else: {drift}]"
                                      if drift else ""), flush=True)
    return sum(sample.status != "ok" for sample in samples)


def _check_dir(path: str) -> None:
    try:
        found, exists = Path(path).is_dir(), Path(path).exists()
    except OSError as exc:  # a name too long, ...
        raise ArgumentError(f"--dir {path}: {exc.strerror}") from None
    if not found:
        raise ArgumentError(f"--dir {path}: " + ("not a directory" if exists
                                                  else "no such directory"))


def run(args: argparse.Namespace) -> int:
    from faultbench.measurement.booted.scratch import XFS_SCRATCH_MOUNT, disks_for
    from faultbench.measurement.knobs import catalog as knobs
    from faultbench.measurement.knobs.requested import parse_set_options
    from faultbench.measurement.knobs.session import KnobSession
    from faultbench.measurement.knobs.watch import KnobWatch
    from faultbench.measurement.machine import knob_writer, knob_writer_warning
    from faultbench.measurement.measure import backing_dir, check_resources, measure_mappers

    # a guest's XFS scratch disk exists only in the guest
    if check_text(args.dir, "--dir") is not None and not (
            args.kernel and args.dir.rstrip("/") == XFS_SCRATCH_MOUNT):
        _check_dir(args.dir)
    check_text(args.kernel, "--kernel")
    for option in args.set:
        check_text(option, "--set", empty=True)
    check_count(args.repeat, "--repeat", 1, MAX_REPEAT)
    check_count(args.warmups, "--warmups", 0, MAX_REPEAT)
    spec = spec_from_args(args)
    # checked here too with --kernel, so that a typo costs no boot
    axes = parse_set_options(args.set, file_dir=spec.dir)
    knobs.check_coupled(name for name, _ in axes)
    knobs.check_knob_backing([name for name, _ in axes], spec.backing, spec.map)
    if args.clock and not args.kernel:
        raise ArgumentError("--clock chooses a booted guest's clock; give --kernel too (the "
                            "running kernel is timed on the wall clock)")
    if args.kernel:
        from faultbench.measurement.booted import guest
        from faultbench.measurement.booted.imagecheck import private_copy
        from faultbench.measurement.rundir.safefile import ResultsError

        # a boot takes a minute or more: a closed standard output, or one that fails even
        # an empty write (/dev/full), is said (OutputError) before it, not after
        sys.stdout.write("")
        kvm, clock = guest.resolve_clock(args.clock)
        if clock == "icount" and spec.mappers > 1 and spec.mapper_mode == "concurrent":
            raise ArgumentError(CONCURRENT_ON_ICOUNT)
        missing = guest.requirements(os.path.abspath(args.kernel))
        if missing:  # before saying it boots
            raise guest.GuestError(f"--kernel {args.kernel}: {'; '.join(missing)}")
        # QEMU opens what it boots by name, seconds later: it boots a private copy of the
        # bytes checked (refused as a run's image is: its owner, its size), as a run does
        with contextlib.ExitStack() as stack:
            try:
                copy, _ = stack.enter_context(private_copy(os.path.realpath(args.kernel)))
            except ResultsError as exc:
                raise guest.GuestError(printable(f"--kernel {args.kernel}: {exc}")) from None
            # a boot prints nothing for a minute or more (under TCG): say what is going on
            print(f"faultbench measure: booting {printable(args.kernel)} "
                  f"({guest.plane_for(kvm, clock)})", file=sys.stderr, flush=True)
            return guest.run_cli_in_guest(copy, _argv_without_kernel(args._argv), clock=clock,
                                          private=os.path.dirname(copy), shown=args.kernel,
                                          filesystems=disks_for([backing_dir(spec)]))
    check_resources(spec)  # before any knob is touched
    profile = args.profile and _can_profile()
    failed = drifted = 0
    # a live knob writer's values (as `run` warns of them), or a killed one's left changed
    if not axes and (warning := knob_writer_warning(knob_writer({}))) is not None:
        print(f"faultbench measure: {warning}", file=sys.stderr)
    # the THP settings it does not set, which another faultbench may change meanwhile
    watch = KnobWatch(n for n in knobs.thp_names() if n not in dict(axes))
    try:
        with contextlib.ExitStack() as stack:
            session = stack.enter_context(KnobSession(
                [name for name, _ in axes], file_dir=spec.dir)) if axes else None
            if session:
                session.tell_apart(list(knobs.cross_product(axes)))
            for setting in knobs.cross_product(axes):  # [{}] without axes
                applied = session.apply(setting) if session else {}
                for _ in range(args.warmups):
                    measure_mappers(spec)
                for _ in range(args.repeat):
                    samples = measure_mappers(spec, profile)
                    for sample in samples:
                        sample.knobs = dict(applied)
                    drift = {**(session.drift() if session else {}), **watch.drift()}
                    if drift:
                        drifted += 1
                        if session:  # the next sample as asked again
                            applied = session.apply(setting)
                    failed += _emit(samples, args.json, drift)
    finally:
        if drifted:  # said on every way out, Ctrl-C included
            print(f"faultbench measure: {drifted} sample(s) were measured with a knob "
                  "someone else had changed (marked knob_drift)", file=sys.stderr)
    return _status(failed)


def _can_profile() -> bool:
    """Whether to profile; if not, one line says why and the samples go on unprofiled."""
    from faultbench.measurement.profile import unavailable

    why = unavailable()
    if why:
        print(f"faultbench measure: no kernel profiles: {why}", file=sys.stderr)
    return why is None


def _status(failed: int) -> int:
    """1 when a sample failed: scripts must not take an error line for a measurement."""
    if failed:
        print(f"faultbench measure: {failed} sample(s) failed (status shown above)",
              file=sys.stderr)
    return 1 if failed else 0


def _argv_without_kernel(argv: list[str]) -> list[str]:
    """The options the guest's `measure` gets: the host's own (--kernel, --clock) removed."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--kernel", "--clock"):
            skip = True
        elif not arg.startswith(("--kernel=", "--clock=")):
            out.append(arg)
    return out
