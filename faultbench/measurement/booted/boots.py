"""Kernels booted from the host: one run, one or more kernels, several boots of each.

The host owns the results directory's meta.json: the kernels (image, sha256, the release and
version string read from the bzImage header, the build record `kernels/build` leaves beside
an image), and the boot plan, a balanced interleaved order (A B B A A B) in which every boot
runs the workload's warm-up rounds and an equal share of its measured rounds. Each boot runs
`measurement.booted.boot_guest` inside the guest, which appends its samples (tagged with kernel and
boot) into a directory of its own, `boots/<index>.d`, the only one of the run it can write,
and leaves its report there; the host then adds the samples to the run's files, records the
boot's outcome (bootresult.py) and goes on, whatever it was. Several guests may run at once
(jobs.py): none can change another's files, nor the run's.
`--resume` redoes exactly the boots that did not finish; the samples of an unfinished boot
are set aside in discarded.jsonl, their profiles in discarded-profiles.jsonl (setaside.py: a
boot is the unit, half of one is not mixed with another). Standard library only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from faultbench.errors import not_a_file, printable
from faultbench.measurement.booted import guest, vngproc
from faultbench.measurement.booted.boot_order import (
    BootPlanError,
    boot_order,
    label_refusal,
    shard_positions,
    split_rounds,
)
from faultbench.measurement.booted.bootresult import finish
from faultbench.measurement.booted.clocks import run_clock
from faultbench.measurement.booted.imagecheck import (
    changed,
    image_refusal,
    pinned_copy,
)
from faultbench.measurement.booted.jobs import run_in_order
from faultbench.measurement.booted.memsize import guest_size
from faultbench.measurement.booted.scratch import disks_for
from faultbench.measurement.booted.setaside import set_aside
from faultbench.measurement.image import NOT_A_KERNEL, header_version
from faultbench.measurement.measure import MEMORY_SHARE, backing_dir, meminfo, memory_needed
from faultbench.measurement.rundir.regular import open_regular
from faultbench.measurement.rundir.results import (
    BOOTS_DIR,
    META,
    RunDir,
    resume_command,
)
from faultbench.measurement.rundir.runfiles import boot_dir_name
from faultbench.measurement.rundir.safefile import ResultsError, SafeDir
from faultbench.measurement.runner import RunError, utc_now
from faultbench.measurement.spec import Spec, SpecError, format_size, parse_size

BOOT_OVERHEAD_S = 300.0  # boot, start-up and slack on top of the samples' deadlines, per boot
GUEST_MIN_MEMORY_MIB = 1024
TREE_IMAGE = "arch/x86/boot/bzImage"
BUILD_RECORD = "meta.json"  # what kernels/build writes beside the images it caches
BUILD_RECORD_MAX = 1 << 20  # a real one is under 2 KB


@dataclass(frozen=True)
class Kernel:
    """One kernel of a run, as `--kernel [LABEL=]IMAGE_OR_TREE` named it."""

    label: str
    image: str
    tree: str | None
    sha256: str
    release: str | None
    version: str | None
    build: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sha256(fh: IO[bytes]) -> str:
    return hashlib.file_digest(fh, "sha256").hexdigest()


def _build_record(image: str, sha256: str) -> dict[str, Any] | None:
    """kernels/build's record beside the image (patches and their hashes), if there is one
    and it names this image by its sha256. Read as untrusted input (the image's directory
    may be anyone's): never through a link, never a FIFO or device, never a large file."""
    try:
        with SafeDir.reading(Path(image).parent) as directory:
            record = json.loads(directory.read_bytes(BUILD_RECORD, BUILD_RECORD_MAX) or b"")
    except (ResultsError, ValueError, RecursionError):
        return None
    if not isinstance(record, dict) or record.get("image_sha256") != sha256 or \
            "source_package" not in record:
        return None  # some other meta.json beside the image, or another image's
    return record


def parse_kernel(text: str) -> Kernel:
    """`[LABEL=]IMAGE_OR_TREE`: a bzImage/vmlinuz file, or a kernel build tree whose
    arch/x86/boot/bzImage exists. The label defaults to the image's release."""
    label, sep, target = text.partition("=")
    explicit = bool(sep) and "/" not in label
    if not explicit:
        label, target = "", text
    elif why := label_refusal(text, label):  # refused before the image is looked at, or read
        raise RunError(why)
    if not target:
        raise RunError(f"--kernel {text!r}: give a kernel image or build tree")
    path = Path(target).expanduser()
    tree = None
    if path.is_dir():
        tree = str(path.resolve())
        path = path / TREE_IMAGE
        if not path.is_file():
            raise RunError(f"--kernel {text}: {tree} is a directory but has no {TREE_IMAGE}: "
                           "build it (make bzImage) or name the image file")
    why = not_a_file(path)
    if why == "no such file":
        raise RunError(f"--kernel {text}: no such kernel image or build tree")
    if why is not None:  # a FIFO or a device is there: called what it is, not missing
        raise RunError(f"--kernel {text}: {why}")
    image = str(path.resolve())
    try:  # checked, read and hashed from one open: the name may be another file by now
        with os.fdopen(open_regular(image, follow=False), "rb") as fh:
            if why := image_refusal(image, fh.fileno()):
                raise RunError(printable(f"--kernel {text}: {why}"))
            version = header_version(fh)
            if version is None:
                raise RunError(f"--kernel {text}: {image} {NOT_A_KERNEL}")
            release = version.split()[0]
            label = label or release
            if not explicit and (why := label_refusal(text, label)):
                raise RunError(why)
            fh.seek(0)
            digest = _sha256(fh)  # the one long read, of an image every check passed
    except PermissionError:
        raise RunError(f"--kernel {text}: {image} is not readable (Debian's /boot images are "
                       "root's only)") from None
    except OSError as exc:
        raise RunError(f"--kernel {text}: {image}: {exc.strerror}") from None
    return Kernel(label, image, tree, digest, release, version, _build_record(image, digest))


def plan(kernels: list[Kernel], boots: int, repetitions: int) -> list[dict[str, Any]]:
    """The boots of a run, in the order they run, each with its share of measured rounds."""
    try:
        order = boot_order([k.label for k in kernels], boots)
        shares = split_rounds(repetitions, boots)
    except BootPlanError as exc:
        raise RunError(str(exc)) from None
    return [
        {"index": index, "kernel": label, "kernel_boot": nth,
         "rounds": [shares[nth].start, shares[nth].stop], "status": "pending",
         "attempts": 0, "started_utc": None, "finished_utc": None, "reason": None}
        for index, (label, nth) in enumerate(order)
    ]


def shard(plan_boots: list[dict[str, Any]], index: int,
          count: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """meta.json's `boots` and `shard` for shard `index` of `count` of the plan: its boots
    numbered from 0 as any run's, each with its `plan_index` (which `faultbench merge` puts
    back)."""
    try:
        positions = shard_positions(len(plan_boots), index, count)
    except BootPlanError as exc:
        raise RunError(str(exc)) from None
    return ([{**plan_boots[p], "index": k, "plan_index": p} for k, p in enumerate(positions)],
            {"index": index, "count": count, "plan_boots": len(plan_boots),
             "split": "plan position p goes to shard p mod count + 1"})


def boot_timeout(meta: dict[str, Any], boot: dict[str, Any]) -> float:
    """The samples' deadlines for this boot's rounds plus boot and start-up time, or
    $FAULTBENCH_GUEST_TIMEOUT_S when that is set (a boot that hangs costs no more)."""
    if os.environ.get(vngproc.TIMEOUT_ENV):
        return guest.timeout_from_env()
    rounds = meta["workload"]["warmups"] + boot["rounds"][1] - boot["rounds"][0]
    per_round = sum(s["spec"]["deadline_s"] * s["spec"]["mappers"] for s in meta["scenarios"])
    return BOOT_OVERHEAD_S + per_round * rounds


def guest_memory(meta: dict[str, Any]) -> str:
    """The memory the run's guests boot with: as the run recorded it (`--memory`, or the
    workload's `guest_memory`), else enough for the largest scenario."""
    if meta.get("guest_memory"):  # as virtme-ng takes it: "1G", never "1g" (it adds M)
        return format_size(guest_size(meta["guest_memory"]))
    largest = max(s["spec"]["size"] for s in meta["scenarios"])
    return f"{max(GUEST_MIN_MEMORY_MIB, 3 * largest // 2**20 + 512)}M"


def chosen_memory(option: str | None, workload_memory: str | None) -> tuple[str | None, str]:
    """The guest memory a new run asks for and where it came from; None: sized by
    guest_memory() from the scenarios."""
    text, source = (option, "--memory") if option is not None else (workload_memory, "workload")
    if text is None:
        return None, "default (3x the largest scenario + 512M, at least 1G)"
    return checked_memory(text, source), source


def checked_memory(text: str, source: str) -> str:
    """`text` as a guest of this machine may be given it (memsize.guest_size, and no more
    than the machine has), in format_size's form; RunError naming `source` otherwise."""
    try:
        size = guest_size(text)
    except SpecError as exc:
        raise RunError(f"{source}: {exc}") from None
    host_kb = meminfo().get("MemTotal")
    if host_kb is not None and size > host_kb * 1024:
        raise RunError(f"{source}: {text} is more memory than this machine has "
                       f"({host_kb / 2**20:.1f} GiB)")
    return format_size(size)


def refuse_past_guest_memory(specs: Iterable[Spec], memory: str, source: str) -> None:
    """RunError, before anything boots, for a scenario needing more than MEMORY_SHARE of
    the guests' whole memory: the guest (whose kernel and faultbench hold some of it) would
    refuse it only after booting, each boot again."""
    size = guest_size(memory)
    for spec in specs:
        if not spec.apps and memory_needed(spec) > MEMORY_SHARE * size:
            raise RunError(f"size {format_size(spec.size)} needs {memory_needed(spec) / 2**20:,.0f}"
                           f" MiB of memory, more than {MEMORY_SHARE:.0%} of the guests' "
                           f"{memory} ({source}): give them more")


def check_unchanged(kernel: dict[str, Any]) -> None:
    """A resumed run boots the very images it started with, or its boots are not comparable:
    their sha256 is the run's identity (each boot checks it again, pinned_copy)."""
    image = kernel["image"]
    if os.path.islink(image):  # the run recorded the image it resolved; each boot's copy
        # (pinned_copy) never reads through a link, so every boot would fail
        raise RunError(printable(f"kernel {kernel['label']}: {image} is a symbolic link now, "
                                 "where the run started with the image itself: put the image "
                                 "back at that path to finish it, or start a new run"))
    try:
        with os.fdopen(open_regular(image, follow=False), "rb") as fh:
            why = image_refusal(image, fh.fileno())
            now = "" if why else _sha256(fh)
    except OSError as exc:
        raise RunError(f"kernel {kernel['label']}: {image}: {exc.strerror}") from None
    if why:
        raise RunError(printable(f"kernel {kernel['label']}: {why}"))
    if now != kernel["sha256"]:
        raise RunError(f"kernel {kernel['label']}: {changed(image, kernel['sha256'], now)}: "
                       "put back the image the run started with to finish it, or start a "
                       "new run")


def _prepare(run_dir: RunDir, meta: dict[str, Any], index: int) -> None:
    """boots/<index>.d: the directory the guest writes the boot's samples to (a copy of
    meta.json, read by the guest), so that guests running at once never share a file."""
    with run_dir.boots() as boots, boots.sub(boot_dir_name(index)) as own:
        own.replace(META, json.dumps(meta, indent=1) + "\n")


def _remove_done_dirs(run_dir: RunDir, meta: dict[str, Any]) -> None:
    """Directories of boots recorded as done (a kill after the record, before the removal)."""
    with run_dir.boots() as boots:
        for boot in meta["boots"]:
            if boot["status"] == "ok" and boots.is_dir(boot_dir_name(boot["index"])):
                _remove_done_dir(boots, boot["index"], len(meta["boots"]))


def _remove_done_dir(boots: SafeDir, index: int, total: int) -> None:
    """A done boot's directory removed, or left with a line that says why: the boot is
    recorded done and its samples are the run's, so the run goes on (the guest filled the
    directory, and no tree it leaves there may stop the run)."""
    try:
        boots.remove_tree(boot_dir_name(index))
    except ResultsError as exc:
        print(f"faultbench run: boot {index + 1}/{total} is done, and its directory was left: "
              f"{exc}", file=sys.stderr, flush=True)


def run_boots(run_dir: RunDir, quiet: bool = False, jobs: int = 1) -> dict[str, Any]:
    """Boot every boot of the plan not yet done, in order, `jobs` at once; returns the final
    meta.

    A boot that fails is recorded with its reason and the next one runs. An interruption
    (Ctrl-C, SIGTERM, SIGHUP) stops every running guest, records those boots as interrupted
    and propagates.
    """
    meta = run_dir.read_meta()
    kernels = {k["label"]: k for k in meta["kernels"]}
    for kernel in kernels.values():
        check_unchanged(kernel)
    _remove_done_dirs(run_dir, meta)
    # what bootresult.finish may not record as skipped for a kernel (check_samples_match)
    measured = {(r["scenario"], r["kernel"]) for r in run_dir.read_samples()
                if r["status"] == "ok"}
    total = len(meta["boots"])
    # with several guests at once their progress displays would fight over one terminal
    guest_quiet = quiet or jobs > 1

    def start(boot: dict[str, Any]) -> Callable[[threading.Event], str | None] | None:
        index = boot["index"]
        if boot["attempts"]:
            dropped = set_aside(run_dir, index, f"boot {index} attempt {boot['attempts']} "
                                                f"did not finish: {boot['reason']}")
            if dropped and not quiet:
                print(f"faultbench run: boot {index + 1}/{total}: set aside {dropped} samples "
                      "of its unfinished attempt (discarded.jsonl)", file=sys.stderr)
        kernel = kernels[boot["kernel"]]
        boot.update(status="running", attempts=boot["attempts"] + 1, started_utc=utc_now(),
                    finished_utc=None, reason=None)
        run_dir.write_meta(meta)
        try:
            _prepare(run_dir, meta, index)
        except ResultsError as exc:  # its own directory (a link there): this boot's alone,
            # so the guests running go on (an error in the run's own files stops them all)
            failed(boot, str(exc))
            return None
        first, stop = boot["rounds"]
        if not quiet:
            print(f"faultbench run: boot {index + 1}/{total}: {kernel['label']} "
                  f"(its boot {boot['kernel_boot'] + 1}), measured rounds {first + 1}-{stop} "
                  f"of {meta['workload']['repetitions']}", file=sys.stderr, flush=True)
        argv = [sys.executable, "-P", "-m", "faultbench.measurement.booted.boot_guest",
                str(run_dir.path), str(index)] + (["-q"] if guest_quiet else [])
        image, timeout_s = kernel["image"], boot_timeout(meta, boot)
        memory, clock = guest_memory(meta), run_clock(meta)
        own_dir = run_dir.path / BOOTS_DIR / boot_dir_name(index)
        filesystems = disks_for(backing_dir(Spec.from_dict(s["spec"])) for s in meta["scenarios"])

        def body(cancel: threading.Event) -> str | None:
            # the image as hashed now, never the path: a `make` may rewrite it mid-run
            try:
                with run_dir.boots() as boots, \
                        boots.sub(boot_dir_name(index)) as own:
                    why, copy, boot["entry"] = pinned_copy(image, kernel["sha256"], own,
                                                           resume_command(run_dir.path))
            except ResultsError as exc:  # no copy: not written (a full disk), a damaged image
                return str(exc)
            if why:
                return why
            try:
                # its own directory only: a guest could rewrite the run's samples, or
                # another boot's, and nothing after would notice
                # its stdout on our stderr: the run's stdout is the host's own summary
                status = guest.run_in_guest(copy, argv, rwdir=str(own_dir),
                                             timeout_s=timeout_s, memory=memory, clock=clock,
                                             cancel=cancel, filesystems=filesystems,
                                             stdout=sys.stderr)
            except guest.GuestError as exc:
                return str(exc).replace(copy, f"{image} (a copy)")
            finally:  # QEMU is gone: 10-70 MB less in a failed boot's directory; the guest
                # may have put anything at that path, which goes with the directory later
                with contextlib.suppress(OSError):
                    os.unlink(copy)
            return None if status == 0 else f"the guest's run exited with status {status}"
        return body

    def end(boot: dict[str, Any], outcome: Future[str | None]) -> None:
        try:
            reason = finish(run_dir, meta, boot, kernels[boot["kernel"]], outcome.result(),
                            measured, parse_size(guest_memory(meta)))
        except Exception as exc:  # the run stops; run_in_order no longer counts this boot
            # as running, so it is recorded here, or it would stay `running` with no reason
            failed(boot, printable(str(exc)) or type(exc).__name__)
            raise
        if reason is not None:
            failed(boot, reason)
            return
        boot.update(status="ok", finished_utc=utc_now(), reason=None)
        run_dir.write_meta(meta)
        with run_dir.boots() as boots:
            _remove_done_dir(boots, boot["index"], total)

    def failed(boot: dict[str, Any], reason: str) -> None:
        boot.update(status="failed", finished_utc=utc_now(), reason=reason)
        run_dir.write_meta(meta)
        if not quiet:
            print(f"faultbench run: boot {boot['index'] + 1}/{total} failed: {reason}",
                  file=sys.stderr, flush=True)

    def stopped(boot: dict[str, Any]) -> None:
        boot.update(status="interrupted", finished_utc=utc_now(), reason="interrupted")
        run_dir.write_meta(meta)

    run_in_order([b for b in meta["boots"] if b["status"] != "ok"], jobs, start, end, stopped)
    records = run_dir.read_samples()
    in_plan_order = sorted(records, key=lambda r: r.get("boot", -1))
    if in_plan_order != records:  # boots that ran at once ended in any order
        run_dir.rewrite_samples(in_plan_order)
    return meta

