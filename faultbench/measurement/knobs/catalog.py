"""Kernel knobs faultbench may change: their names, where they live, and validation.

Knob names (the `--set NAME=V1,V2` and workload `knobs` vocabulary):

- `fault_around_bytes`: /sys/kernel/debug/fault_around_bytes (debugfs is mounted if needed).
- `vm.<name>`: /proc/sys/vm/<name>, e.g. `vm.swappiness`.
- `thp.enabled`, `thp.shmem_enabled`, `thp.defrag`, `thp.hugepages-<N>kB.enabled`,
  `thp.hugepages-<N>kB.shmem_enabled`: /sys/kernel/mm/transparent_hugepage/...
- `read_ahead_kb`: the block device holding the `file` backing's directory.

An absolute path to one of those files is accepted too; any other path is refused. Changing
them goes through measurement.session (journaled first, restored on every exit path).
Standard library only: this runs inside emulated guests too.
"""

from __future__ import annotations

import errno
import itertools
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from faultbench.errors import FaultbenchError
from faultbench.measurement.image import kernel_hint
from faultbench.measurement.knobs.sysctl_ranges import SYSCTL_GAPS, SYSCTL_RANGES, ULONG_MAX
from faultbench.measurement.knobs.sysfs import DEBUGFS, bracket_choices, lockdown, read_text
from faultbench.measurement.spec import SpecError, parse_size, shown

FAULT_AROUND_PATH = f"{DEBUGFS}/fault_around_bytes"
SYSCTL_VM = "/proc/sys/vm"
THP_DIR = "/sys/kernel/mm/transparent_hugepage"
PTE_BYTES = 8  # sizeof(pte_t) on every 64-bit architecture Linux supports
KNOB_HELP = "fault_around_bytes, vm.<sysctl>, thp.<setting> or read_ahead_kb"
# The most knobs one run sets; an x86 kernel has about 75 (52 vm sysctls, two per THP size).
# Each becomes a column of the analysis' frame for every sample, so the samples read back
# may not name more than this either (rundir.checks).
MAX_KNOBS = 64

_THP_TOP = ("enabled", "shmem_enabled", "defrag")
_THP_SIZED = ("enabled", "shmem_enabled")
_THP_SIZED_RE = re.compile(r"^hugepages-[0-9]+kB$")
_SYSCTL_RE = re.compile(r"^[a-z0-9_-]+$")
_ZERO_RE = re.compile(r"^0+\s*[kKmMgG]?(i?[bB])?$", re.ASCII)

# Pairs of which the kernel keeps one in effect: writing either member sets the other to 0
# (mm/util.c overcommit_{ratio,kbytes}_handler, mm/page-writeback.c dirty_*_handler). A
# session journals both, and restore writes back only the one that was in effect.
_PAIRS = (("vm.overcommit_ratio", "vm.overcommit_kbytes"), ("vm.dirty_ratio", "vm.dirty_bytes"),
          ("vm.dirty_background_ratio", "vm.dirty_background_bytes"))
COUPLED = {**dict(_PAIRS), **{b: a for a, b in _PAIRS}}
class KnobError(FaultbenchError):
    """A knob that cannot be set as asked; the message is one line: why, and what to do."""


class ValueRefused(KnobError):
    """The kernel refused the value itself (EINVAL, ERANGE): that setting cannot be measured
    on this kernel, while other values of the knob can."""


def page_size() -> int:
    return os.sysconf("SC_PAGE_SIZE")


def ptrs_per_pte() -> int:
    return page_size() // PTE_BYTES


def fault_around_max() -> int:
    """The kernel refuses fault_around_bytes above one page table's reach."""
    return ptrs_per_pte() * page_size()


def rounded_fault_around(value: int) -> int:
    """What fault_around_bytes_set() keeps of `value`: a power of two, at least one page."""
    if value <= page_size():
        return page_size()
    return 1 << (value.bit_length() - 1)


@dataclass(frozen=True)
class Knob:
    name: str
    path: str
    kind: str  # fault_around, sysctl, thp, read_ahead


def read_ahead_path(file_dir: str) -> str:
    """read_ahead_kb of the whole block device under file_dir (a partition has none)."""
    try:
        st = os.stat(file_dir)
    except OSError as exc:
        raise KnobError(f"read_ahead_kb: cannot stat {file_dir}: {exc.strerror}") from exc
    dev = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    sysdev = f"/sys/dev/block/{dev}"
    if not os.path.exists(sysdev):
        raise KnobError(
            f"read_ahead_kb: {file_dir} is not on a block device (device {dev}); read-ahead "
            "applies to the `file` backing on a disk: pick --dir on one"
        )
    real = os.path.realpath(sysdev)
    if os.path.exists(os.path.join(real, "partition")):
        real = os.path.dirname(real)
    return os.path.join(real, "queue", "read_ahead_kb")


def check_knob_backing(knob_names: Iterable[str], backing: str, mapping: str) -> None:
    """KnobError for a knob that cannot act on the sample's backing, an axis that would
    measure nothing: read_ahead_kb for a backing other than `file` (only a file on a disk is
    read through a block device's read-ahead; for memfd, anon, tmpfs or hugetlb it would
    change the root disk's, system-wide); a per-size shmem knob for anything but anonymous
    shared memory (a memfd follows thp.shmem_enabled, a tmpfs its mount's huge=)."""
    names = list(knob_names)
    if "read_ahead_kb" in names and backing != "file":
        raise KnobError(f"read_ahead_kb: backing {backing} reads from no block device, so "
                        "read-ahead does not apply to it; it applies to the `file` backing "
                        "with --dir on a disk")
    sized = [n for n in names if n.startswith("thp.hugepages-") and n.endswith(".shmem_enabled")]
    if sized and (backing, mapping) != ("anon", "shared"):
        what = f"anon with map {mapping}" if backing == "anon" else backing
        raise KnobError(f"{sized[0]}: per-size shmem THP governs anonymous shared memory "
                        f"only (backing anon, map shared), not backing {what}; a memfd "
                        "follows thp.shmem_enabled, a tmpfs file its mount's huge=")


def check_coupled(knob_names: Iterable[str]) -> None:
    """KnobError for both members of a coupled pair (COUPLED) in one run: whichever is
    written second sets the first to 0, so the setting a sample is labelled with is never
    the one in effect; one of them is the limit to sweep."""
    names = set(knob_names)
    for first, second in _PAIRS:
        if first in names and second in names:
            raise KnobError(f"{first} and {second} set the same limit: give one")


def is_knob_name(name: str) -> bool:
    """Whether `name` is a knob's name as runs record it (the canonical one, not a path), by
    its form alone: a name read back from a run names no other (nor a column of its own)."""
    if name in ("fault_around_bytes", "read_ahead_kb"):
        return True
    if name.startswith("vm."):
        return _SYSCTL_RE.fullmatch(name[3:]) is not None
    parts = name.split(".")
    return parts[0] == "thp" and (
        (len(parts) == 2 and parts[1] in _THP_TOP)
        or (len(parts) == 3 and _THP_SIZED_RE.fullmatch(parts[1]) is not None
            and parts[2] in _THP_SIZED))


def resolve(name: str, file_dir: str | None = None) -> Knob:
    """The knob called `name` (or at path `name`); KnobError if it is not one we may write."""
    if name.startswith("/"):
        return resolve_path(name, file_dir)
    if name == "fault_around_bytes":
        return Knob(name, FAULT_AROUND_PATH, "fault_around")
    if name == "read_ahead_kb":
        from faultbench.measurement.measure import DEFAULT_DIRS

        return Knob(name, read_ahead_path(file_dir or DEFAULT_DIRS["file"]), "read_ahead")
    if name.startswith("vm."):
        sysctl = name[3:]
        path = f"{SYSCTL_VM}/{sysctl}"
        if not _SYSCTL_RE.match(sysctl) or not os.path.isfile(path):
            raise KnobError(f"unknown sysctl {name}: there is no {path} on this kernel")
        if not os.stat(path).st_mode & 0o444 or not _reads_something(path):
            # vm.stat_refresh is readable but reads empty: a trigger, with no value to keep
            raise KnobError(f"{name} is write-only: its original cannot be read, so faultbench "
                            "could not restore it")
        return Knob(name, path, "sysctl")
    if name.startswith("thp."):
        parts = name[4:].split(".")
        if (len(parts) == 1 and parts[0] in _THP_TOP) or (
            len(parts) == 2 and _THP_SIZED_RE.match(parts[0]) and parts[1] in _THP_SIZED
        ):
            path = "/".join([THP_DIR, *parts])
            if not os.path.isfile(path):
                raise KnobError(f"{name}: this kernel has no {path}{_sized_hint(parts)}")
            return Knob(name, path, "thp")
        raise KnobError(
            f"unknown THP knob {name}: use thp.enabled, thp.shmem_enabled, thp.defrag or "
            "thp.hugepages-<N>kB.enabled / .shmem_enabled"
        )
    raise KnobError(f"unknown knob {name!r}: use {KNOB_HELP}")


def _reads_something(path: str) -> bool:
    try:
        return bool(read_text(path).strip())
    except OSError:
        return True  # unreadable (not root): check_settable says so


def _sized_hint(parts: list[str]) -> str:
    """Why a per-size (mTHP) knob is missing: the kernel's age, or the sizes it has."""
    if len(parts) != 2:
        return ""
    try:
        sizes = sorted((d for d in os.listdir(THP_DIR) if _THP_SIZED_RE.match(d)),
                       key=lambda d: int(d[10:-2]))
    except OSError:
        sizes = []
    if not sizes:
        return " (per-size THP knobs need Linux >= 6.8, their shmem_enabled >= 6.11)"
    if parts[0] in sizes:
        return " (per-size shmem_enabled needs Linux >= 6.11)"
    return f" (sizes here: {', '.join(d[10:] for d in sizes)})"


def resolve_path(path: str, file_dir: str | None) -> Knob:
    real = os.path.realpath(path)
    if real == FAULT_AROUND_PATH:
        return resolve("fault_around_bytes")
    head, base = os.path.split(real)
    if head == SYSCTL_VM:
        return resolve(f"vm.{base}")
    if head == THP_DIR:
        return resolve(f"thp.{base}")
    if os.path.dirname(head) == THP_DIR:
        return resolve(f"thp.{os.path.basename(head)}.{base}")
    if base == "read_ahead_kb" and real == resolve("read_ahead_kb", file_dir).path:
        return resolve("read_ahead_kb", file_dir)
    raise KnobError(
        f"{path} is outside what faultbench may change ({FAULT_AROUND_PATH}, {SYSCTL_VM}/*, "
        f"{THP_DIR} settings, read_ahead_kb of the file backing's disk)"
    )


def _integers(knob: Knob, text: str) -> list[int]:
    tokens = text.split()
    if not tokens or not all(re.fullmatch(r"-?[0-9]+", t) for t in tokens):
        raise KnobError(f"{knob.name}={text[:40]!r} is not a number")
    # a digit string too long for int() is larger than any knob anyway
    numbers = [int(t[:25]) * 10 ** max(0, len(t) - 25) for t in tokens]
    if any(n < 0 for n in numbers):
        raise KnobError(f"{knob.name}={text[:40]}: negative values are not allowed")
    if any(n > ULONG_MAX for n in numbers):
        raise KnobError(f"{knob.name}={text[:40]}: above {ULONG_MAX}, the largest number a "
                        "kernel knob holds")
    bounds = SYSCTL_RANGES.get(knob.name[3:]) if knob.kind == "sysctl" else None
    if bounds and len(numbers) == 1 and not bounds[0] <= numbers[0] <= bounds[1]:
        raise KnobError(f"{knob.name}={text[:40]}: the kernel accepts {bounds[0]}..{bounds[1]}")
    gap = SYSCTL_GAPS.get(knob.name[3:]) if knob.kind == "sysctl" else None
    if gap and len(numbers) == 1 and gap[0] <= numbers[0] <= gap[1]:
        raise KnobError(f"{knob.name}={text[:40]}: the kernel refuses {gap[0]}..{gap[1]}; "
                        f"it accepts {bounds[0] if bounds else gap[0] - 1} or at least "
                        f"{gap[1] + 1}")
    return numbers


def validate(knob: Knob, text: str) -> str:
    """The value to write for `text`, checked as far as possible without writing."""
    try:
        return _validate(knob, text.strip())
    except OSError as exc:
        raise KnobError(f"{knob.name}: cannot read {knob.path}: {exc.strerror}") from exc


def _validate(knob: Knob, text: str) -> str:
    if knob.kind == "fault_around":
        return str(_fault_around_value(text))
    if knob.kind == "thp":
        choices, _ = bracket_choices(read_text(knob.path))
        if text not in choices:
            raise KnobError(f"{knob.name}={shown(text)} is not one of: {', '.join(choices)}")
        return text
    if knob.kind == "read_ahead":
        numbers = _integers(knob, text)
        if len(numbers) != 1:
            raise KnobError(f"{knob.name} takes one number, got {shown(text)}")
        page_kb = page_size() // 1024
        if numbers[0] % page_kb:  # kept in pages: the rest would be dropped without a word
            raise KnobError(f"{knob.name}={numbers[0]} is not a multiple of the page size "
                            f"({page_kb} KB): the kernel would use "
                            f"{numbers[0] - numbers[0] % page_kb}; ask for that")
        return str(numbers[0])
    current = read_text(knob.path).split()
    if current and all(re.fullmatch(r"-?[0-9]+", t) for t in current):
        numbers = _integers(knob, text)
        if len(numbers) != len(current):
            raise KnobError(
                f"{knob.name} takes {len(current)} number(s) (now {' '.join(current)}), "
                f"got {shown(text)}"
            )
        return " ".join(map(str, numbers))
    if not text or not text.isprintable():  # a value goes into scenario names and terminals
        raise KnobError(f"{knob.name}={shown(text)}: empty values or control characters are "
                        "not allowed")
    return text


def _fault_around_value(text: str) -> int:
    low, high = page_size(), fault_around_max()
    what = f"use a power of two from {low} (fault-around off) to {high}"
    if text.startswith("-"):
        raise KnobError(f"fault_around_bytes={shown(text)} is negative; {what}")
    if _ZERO_RE.match(text):
        raise KnobError(
            f"fault_around_bytes={shown(text)} is not allowed: write {low} (one page) to turn "
            "fault-around off"
        )
    try:
        value = parse_size(text)
    except SpecError:
        raise KnobError(
            f"fault_around_bytes={shown(text)} is not a number (bytes, K/M suffix allowed); {what}"
        ) from None
    if value > high:
        raise KnobError(
            f"fault_around_bytes={shown(text)} is above the maximum {high} (PTRS_PER_PTE "
            f"{ptrs_per_pte()} x PAGE_SIZE {low}); the kernel refuses it"
        )
    if value != rounded_fault_around(value):
        raise KnobError(
            f"fault_around_bytes={shown(text)} is not a power of two of at least {low}: the kernel "
            f"would use {rounded_fault_around(value)}; ask for that"
        )
    return value


def partner(knob: Knob) -> Knob | None:
    """A knob the kernel changes when this one is written, journaled with it: the other
    member of a coupled pair (COUPLED); for a THP setting vm.min_free_kbytes, which the
    kernel raises to khugepaged's recommended value whenever THP is switched (mm/khugepaged.c
    set_recommended_min_free_kbytes). None for any other knob."""
    other = COUPLED.get(knob.name) or ("vm.min_free_kbytes" if knob.kind == "thp" else None)
    return resolve(other) if other else None


def cross_product(axes: list[tuple[str, list[str]]]) -> list[dict[str, str]]:
    names = [name for name, _ in axes]
    return [dict(zip(names, combo, strict=True))
            for combo in itertools.product(*(values for _, values in axes))]


def thp_names() -> list[str]:
    """Every THP setting of this kernel faultbench may change, by knob name."""
    sized = (f"thp.{p.parent.name}.{p.name}"
             for p in Path(THP_DIR).glob("hugepages-*kB/*enabled"))
    return [f"thp.{n}" for n in _THP_TOP] + sorted(sized)


def read_value(knob: Knob) -> int | str:
    """The value the kernel uses now: a number, or the selected THP choice, or the text."""
    text = read_text(knob.path)
    if knob.kind == "thp":
        _, selected = bracket_choices(text)
        return selected or text
    words = text.split()
    if len(words) > 1 and all(re.fullmatch(r"-?[0-9]+", w) for w in words):
        return " ".join(words)  # read back tab-separated: shown (and labelled) as given
    return int(text) if re.fullmatch(r"-?[0-9]+", text) else text


def restorable_text(knob: Knob) -> str:
    value = read_value(knob)
    return value if isinstance(value, str) else str(value)


def reads_as(knob: Knob, want: str) -> bool:
    now = read_value(knob)
    return (now.split() if isinstance(now, str) else [str(now)]) == want.split()


def write(knob: Knob, value: str) -> None:
    try:
        with open(knob.path, "w") as f:
            f.write(value)
    except OSError as exc:
        refused = ValueRefused if exc.errno in (errno.EINVAL, errno.ERANGE) else KnobError
        raise refused(f"cannot write {value!r} to {knob.path}: {exc.strerror}") from exc


def check_settable(knob: Knob) -> None:
    """Why this knob cannot be changed here (KnobError), checked before anything is written."""
    if os.geteuid() != 0:
        raise KnobError(f"{knob.name} needs root to change (running as uid {os.geteuid()})")
    if knob.kind == "fault_around":
        if not os.path.exists(knob.path):
            raise KnobError(
                f"this kernel has no {knob.path} (needs CONFIG_DEBUG_FS); boot one that has: "
                f"{kernel_hint()}"
            )
        try:
            read_text(knob.path)
        except PermissionError:
            mode = lockdown() or "unknown mode"
            raise KnobError(
                f"fault_around_bytes cannot be changed here: the kernel is locked down "
                f"(lockdown={mode}), which forbids debugfs even for root; boot a kernel image "
                f"where it is not: {kernel_hint()}"
            ) from None
    mode = os.stat(knob.path).st_mode
    if not mode & 0o222:
        raise KnobError(f"{knob.path} is read-only in this kernel")
    if os.statvfs(knob.path).f_flag & os.ST_RDONLY:
        raise KnobError(f"{knob.path} is on a read-only mount (a container?); run on the host")
