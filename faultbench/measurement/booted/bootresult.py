"""What the host takes from a finished boot: the guest's report (boots/<index>.d/report.json,
kept as boots/<index>.json) and the samples in boots/<index>.d, added to the run's files only
when they are the boot's whole share. Both come back from the guest, which runs the kernel
under test: untrusted input, read against the host's meta.json, never the guest's copy. The
run's own record of what was skipped is made from the samples, never from the guest's word,
so that no boot can make meta.json contradict samples.jsonl (refused on every load) or grow
it past what faultbench reads. Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import IO, Any

from faultbench.measurement.booted.imagecheck import kernel_mismatch
from faultbench.measurement.rundir.checks import short
from faultbench.measurement.rundir.identity import measured_not_skipped
from faultbench.measurement.rundir.results import (
    BOOTS_DIR,
    PROFILES,
    SAMPLES,
    WORKER_LOG,
    RunDir,
    most_lines,
    parse_samples,
    run_file_lines,
)
from faultbench.measurement.rundir.runfiles import BOOT_REPORT, RUN_FILES, boot_dir_name
from faultbench.measurement.rundir.safefile import ForeignOwnerError, ResultsError
from faultbench.measurement.runner import BootShare, refused_scenarios, unmeasured
from faultbench.measurement.spec import format_size

# a real report is the guest's provenance and a flag, under 4 KB; each boot's `guest` is
# kept in meta.json, whose own cap must hold the records of every boot of a run: what is
# read, and what is kept as written out (indented, which can grow a file of empty lists
# 400 times), are capped both
REPORT_MAX = 64 << 10
REPORT_KEPT_MAX = 16 << 10
REPORT_DEPTH_MAX = 8  # a real one nests 3 deep; json's own limit, about 1,000, is too late
BOOT_LOG_KEPT = 16 << 20  # of a boot's worker.log, which holds its worker's stderr
REASON_KEPT = 500  # of a sample's error, quoted in meta.json's `skipped` once per scenario


def finish(run_dir: RunDir, meta: dict[str, Any], boot: dict[str, Any], kernel: dict[str, Any],
           reason: str | None, measured: set[tuple[str, str]], memory: int) -> str | None:
    """Why the boot that ended (`reason`: why the guest failed, None if it exited 0) is not
    done, or None once its samples are added to the run's files and the kernel's
    scenarios it found unsupported to meta's `skipped`. `measured`: the (scenario, kernel
    label) pairs with ok samples in the run, updated here; `memory`: the bytes the guest
    was booted with."""
    index = boot["index"]
    report, why = _report(run_dir, index)
    guest = report.get("guest") if report else None
    boot["guest"] = guest if isinstance(guest, dict) else None
    if reason is None:
        reason = why
    if reason is None and not (report and report.get("complete") is True):
        reason = "the guest ended without recording the boot as complete"
    if reason is None:
        reason = kernel_mismatch(kernel, guest) or _memory_mismatch(memory, guest)
    if reason is None:
        try:
            records = _collect(run_dir, meta, boot)
        except _Unreadable as exc:
            reason = str(exc)
        except (_NotItsShare, _NotAdded) as exc:
            reason = str(exc)
        else:
            _skip_unsupported(meta, kernel["label"], records, measured)
    return reason


def _memory_mismatch(memory: int, guest: Any) -> str | None:
    """Why the memory the guest reports (its MemTotal) is not that of a guest booted with
    `memory` bytes, or None: the kernel keeps 4-18% of it here (18% at 256M). A guest of
    another size (virtme-ng's own configuration once gave one) measures another machine."""
    found = guest.get("memory") if isinstance(guest, dict) else None
    total_kb = found.get("total_kb") if isinstance(found, dict) else None
    if isinstance(total_kb, int) and not isinstance(total_kb, bool) and \
            memory // 2 < total_kb * 1024 <= memory:
        return None
    return (f"the guest reports {short(total_kb)} kB of memory, not that of the "
            f"{format_size(memory)} it was booted with: its samples were not added")


class _NotItsShare(Exception):
    """The guest recorded its boot complete, and its samples are not its share: part is
    missing, or some are another boot's."""


class _NotAdded(Exception):
    """A boot's samples were read, and one of the run's own files refused them."""


class _Unreadable(Exception):
    """A file of the boot's directory could not be read back."""


def _guests_doing(exc: ResultsError) -> str:
    """`exc`'s text, or for an owner that is not root's what it is: inside boots/, root's
    alone, only root and the guests write, so the guest gave it away (9p passes its chown
    on), and a resume sets the boot's directory aside as it is."""
    if isinstance(exc, ForeignOwnerError):
        return f"the guest gave its directory or files to another owner ({exc.who}): not read"
    return str(exc)


def _report(run_dir: RunDir, index: int) -> tuple[dict[str, Any] | None, str | None]:
    """The guest's report as it left it, if it is well formed, and why not otherwise (None
    when there is none: a guest that never started); a well-formed one is kept as
    boots/<index>.json. Never read through a link (the guest, or whoever owns the directory,
    wrote it)."""
    name = f"{BOOTS_DIR}/{boot_dir_name(index)}/{BOOT_REPORT}"
    try:
        with run_dir.boots() as boots, boots.sub(boot_dir_name(index)) as own:
            data = own.read_bytes(BOOT_REPORT, REPORT_MAX)
    except ResultsError as exc:
        return None, f"its report {name} is refused: {_guests_doing(exc)}"
    try:
        report = json.loads(data or b"")
    except (ValueError, RecursionError):
        return None, None if data is None else f"its report {name} is not valid JSON"
    if not isinstance(report, dict):
        return None, f"its report {name} is not a JSON object"
    if why := _not_plain(report):
        return None, f"its report {name} is refused: {why}"
    run_dir.write_boot_report(index, report)
    return report, None


def _not_plain(report: dict[str, Any]) -> str | None:
    """Why `report` is no JSON faultbench keeps in meta.json and boots/N.json, or None: one
    nested past REPORT_DEPTH_MAX (the next load of meta.json would refuse it, or writing it
    raise RecursionError), with NaN, infinities or lone surrogates (no JSON another tool
    reads), or over REPORT_KEPT_MAX written out."""
    stack: list[tuple[Any, int]] = [(report, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > REPORT_DEPTH_MAX:
                return f"it nests deeper than {REPORT_DEPTH_MAX} levels"
            items = value.values() if isinstance(value, dict) else value
            stack += [(item, depth + 1) for item in items]
    try:
        json.dumps(report, ensure_ascii=False, allow_nan=False).encode()
    except ValueError:  # NaN or an infinity; a lone surrogate (UnicodeEncodeError)
        return "it holds a NaN, an infinity or a lone surrogate, which is no JSON"
    written = json.dumps(report, indent=1)  # as write_boot_report writes it
    if len(written) > REPORT_KEPT_MAX:
        return (f"written out it is {len(written):,} bytes, over the {REPORT_KEPT_MAX:,} "
                "faultbench keeps of a boot's report")
    return None


def _collect(run_dir: RunDir, meta: dict[str, Any], boot: dict[str, Any]
             ) -> list[dict[str, Any]]:
    """A finished boot's profiles, worker log and samples (last: a boot failed by the others
    has none in samples.jsonl, check_samples_match) added to the run's files by this one
    process, once its samples hold its whole share; those samples. A kill in between is
    safe: the boot is not yet `ok`, a resume sets them (its profiles too) aside."""
    index = boot["index"]
    with run_dir.boots() as boots:
        try:
            own = RunDir(run_dir.path / BOOTS_DIR / boot_dir_name(index),
                         boots.sub(boot_dir_name(index)))
        except ResultsError as exc:
            raise _Unreadable(f"its directory cannot be read back: {_guests_doing(exc)}"
                              ) from None
        what = "samples"
        try:
            records = own.read_samples(meta=meta)  # strictly: a bad line fails the boot
            what = "profiles"
            with run_file_lines(own.dir, PROFILES, most_lines(meta)) as lines:
                profiles, _ = parse_samples(lines or (), own.path / PROFILES, strict=True)
            _check_share(meta, boot, records, profiles)
            what = "worker log"
            log = own.dir.open_reading(WORKER_LOG, RUN_FILES[WORKER_LOG])
        except ResultsError as exc:
            raise _Unreadable(f"its {what} cannot be read back: {_guests_doing(exc)}") from None
        finally:
            own.dir.close()
    try:
        with log or contextlib.nullcontext():
            if profiles:
                run_dir.append_lines(PROFILES, profiles)
            if log is not None:
                with run_dir.open_log() as fh:
                    _append_log(log, fh, f"{BOOTS_DIR}/{boot_dir_name(index)}/{WORKER_LOG}")
            run_dir.append_lines(SAMPLES, records)
    except ResultsError as exc:
        raise _NotAdded(f"its samples were read, but cannot be added to the run's files: "
                        f"{exc}") from None
    return records


def _check_share(meta: dict[str, Any], boot: dict[str, Any], records: list[dict[str, Any]],
                 profiles: list[dict[str, Any]]) -> None:
    """_NotItsShare unless `records` and `profiles` are all of this boot, and `records`
    hold every measurement of its share (less the scenarios its samples show the kernel
    refused). A sample of another boot would stand beside that boot's own, or for one not
    measured yet (the run's files refused on every load either way); and recorded done, a
    boot's missing rounds would never be measured, since a resume redoes only the boots
    not done."""
    for what, lines in (("samples", records), ("profiles", profiles)):
        stray = next((r for r in lines if r.get("boot") != boot["index"]), None)
        if stray is not None:
            raise _NotItsShare(
                f"its {what} hold {sum(r.get('boot') != boot['index'] for r in lines)} of "
                f"another boot (the first: boot {short(stray.get('boot'))}, scenario "
                f"{short(stray.get('scenario'))}): its samples were not added")
    share = BootShare(boot["index"], *boot["rounds"], {})
    lacking = unmeasured(meta, records, share)
    if not lacking:
        return
    first = lacking[0]
    warmups = meta["workload"]["warmups"]
    where = (f"warm-up round {first.round + 1}" if first.warmup
             else f"measured round {first.round - warmups + 1}")
    total = len(unmeasured(meta, [], share))
    raise _NotItsShare(
        f"the guest recorded the boot complete, but {len(lacking)} of the {total} "
        f"measurements of its share have no sample (the first: scenario "
        f"{first.scenario.name}, {where}): its samples were not added")


def _skip_unsupported(meta: dict[str, Any], label: str, records: list[dict[str, Any]],
                      measured: set[tuple[str, str]]) -> None:
    """meta's `skipped` for kernel `label` as the boot's samples show it: a scenario whose
    samples of a round were all refused (runner: never measured again in that boot) is
    skipped, unless a boot of this kernel measured it; one this boot measured is skipped
    no longer (another boot found it unsupported: a setting the kernel refused once)."""
    ok = {r["scenario"] for r in records if r["status"] == "ok"}
    measured.update((name, label) for name in ok)
    meta["skipped"] = measured_not_skipped(meta["skipped"], records)
    known = {(s["scenario"], s.get("kernel")) for s in meta["skipped"]}
    for name, reason in sorted(refused_scenarios(records).items()):
        if (name, label) not in known and (name, label) not in measured:
            meta["skipped"].append({"scenario": name, "kernel": label,
                                    "reason": f"kernel {label} refused it: "
                                              f"{reason[:REASON_KEPT]}"})


def _append_log(log: IO[bytes], out: IO[bytes], name: str) -> None:
    """A boot's worker log (its worker's stderr) appended to the run's, its first BOOT_LOG_KEPT
    bytes only: the run directory's owner can plant a sparse GiB, which root would write out."""
    kept = 0
    while kept < BOOT_LOG_KEPT and (chunk := log.read(min(1 << 20, BOOT_LOG_KEPT - kept))):
        out.write(chunk)
        kept += len(chunk)
    rest = os.fstat(log.fileno()).st_size - kept
    if rest > 0:
        out.write(f"\n[faultbench: the last {rest:,} bytes of {name} not kept]\n".encode())
