"""What this machine can measure, and why not (`faultbench doctor`).

Every line comes from probing the running kernel (reading knobs, tiny real measurements),
never from guesses; what could not be probed says so. Standard library and the cffi module
only.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass
from typing import Any

from faultbench.measurement.booted import guest
from faultbench.measurement.image import boot_images, default_image
from faultbench.measurement.knobs import catalog as knobs
from faultbench.measurement.knobs.journal import journal_problems
from faultbench.measurement.knobs.sysfs import DEBUGFS, MountError, lockdown, mounted
from faultbench.measurement.knobs.tmpfs import mount_journals_found
from faultbench.measurement.measure import DEFAULT_DIRS, measure, meminfo
from faultbench.measurement.rundir.provenance import collect
from faultbench.measurement.spec import Spec, SpecError

UFFD_PROBES = (("memfd", "missing"), ("memfd", "wp"), ("memfd", "minor"),
               ("hugetlb", "missing"), ("hugetlb", "minor"))


@dataclass
class Check:
    name: str
    ok: bool | None  # None: a fact, neither good nor bad
    detail: str


def _knob_check(name: str) -> Check:
    try:
        knob = knobs.resolve(name)
        knobs.check_settable(knob)
        return Check(name, True, f"{knob.path} = {knobs.read_value(knob)}, settable")
    except knobs.KnobError as exc:
        return Check(name, False, f"not settable: {exc}")
    except OSError as exc:
        return Check(name, False, f"not readable: {exc}")


def knob_checks() -> list[Check]:
    mode = lockdown()
    out = [
        Check("root", os.geteuid() == 0, f"uid {os.geteuid()}"
              + ("" if os.geteuid() == 0 else ": knobs and debugfs need root")),
        Check("lockdown", mode == "none" if mode else None,
              f"lockdown={mode}" if mode else "unknown (securityfs not readable)"),
    ]
    try:
        with mounted("debugfs", DEBUGFS) as have_debugfs:
            if not have_debugfs:
                out.append(Check("debugfs", False, "not mounted and cannot be mounted here"))
            out.append(_knob_check("fault_around_bytes"))
    except MountError as exc:
        out += [Check("debugfs", None, f"cannot tell: {exc}"),
                Check("fault_around_bytes", None, f"cannot tell: debugfs: {exc}")]
    out += [_knob_check("vm.swappiness"), _knob_check("thp.enabled"),
            _knob_check("thp.shmem_enabled")]
    # a killed run's journal: every sweep is refused until `faultbench restore`
    out += [Check("restore journal", False, problem) for problem in journal_problems()]
    # a tmpfs_huge run killed mid-mount: its tmpfs may still be mounted; one a live process
    # holds is a fact (it releases the mount itself), not a problem
    out += [Check("mount journal", None if live else False, what)
            for what, live in mount_journals_found()]
    try:
        knobs.resolve("read_ahead_kb")
        out.append(_knob_check("read_ahead_kb"))
    except knobs.KnobError as exc:
        out.append(Check("read_ahead_kb", False,
                         f"file backing's default dir {DEFAULT_DIRS['file']}: {exc}"))
    return out


def measurement_checks() -> list[Check]:
    """Tiny real measurements: which userfaultfd modes and counters work here."""
    out = []
    try:
        base = measure(Spec(backing="memfd", size=1 << 20, deadline_s=5.0, perf=True))
    except SpecError as exc:
        return [Check("measure", False, f"a 1 MiB memfd read cannot be measured: {exc}")]
    out.append(Check("measure", base.status == "ok",
                     f"1 MiB memfd read: {base.faults_minor} faults ({base.status})"))
    for counter in ("perf_page_faults", "cycles"):
        value = getattr(base, counter)
        reason = base.null_reasons.get(counter, "")
        out.append(Check(f"perf {counter}", value is not None,
                         "works" if value is not None else f"unavailable: {reason}"))
    huge = meminfo().get("Hugepagesize", 2048) * 1024
    features = None
    if not os.path.exists("/dev/userfaultfd"):
        out.append(Check("/dev/userfaultfd", None, "absent: userfaultfd(2) syscall only"))
    for backing, mode in UFFD_PROBES:
        size = huge if backing == "hugetlb" else 1 << 20
        try:
            sample = measure(Spec(backing=backing, size=size, uffd=mode, deadline_s=5.0))
            ok, detail = sample.status == "ok", sample.error or "works"
            features = features or sample.uffd_features
        except SpecError as exc:
            ok, detail = False, str(exc)
        out.append(Check(f"uffd {mode} on {backing}", ok, detail))
    out.append(Check("uffd features", None,
                     f"0x{features:x}" if features is not None else "not probed (no uffd)"))
    return out


def machine_checks() -> list[Check]:
    info = meminfo()
    out = [
        Check("memory", None, f"{info.get('MemAvailable', 0) / 2**20:.1f} GiB available "
                              f"of {info.get('MemTotal', 0) / 2**20:.1f} GiB"),
        Check("hugetlb pages", info.get("HugePages_Free", 0) > 0,
              f"{info.get('HugePages_Free')} free of {info.get('HugePages_Total')} "
              f"({info.get('Hugepagesize')} kB); reserve with sysctl vm.nr_hugepages=N"),
    ]
    images = boot_images()
    out.append(Check("kernel images", bool(images), ", ".join(images) or
                     "none in /boot: apt-get install linux-image-amd64, or pass your bzImage"))
    for tool, found, how in (
        (guest.qemu_binary(), shutil.which(guest.qemu_binary()),
         "apt-get install qemu-system-x86"),
        ("virtme-ng", guest.find_vng(), "pip install virtme-ng"),
        ("busybox", guest.find_busybox(), "apt-get install busybox-static"),
    ):
        out.append(Check(tool, bool(found), found or f"missing: {how}"))
    kvm, why = guest.kvm_state()
    out.append(Check("kvm", kvm, why))
    return out


def summary(checks: list[Check]) -> list[str]:
    """The answers a user came for: can the knob be swept, here or in a booted image."""
    by_name = {c.name: c for c in checks}
    knob = by_name["fault_around_bytes"]
    lines = [f"knob sweeps: refused now: {c.detail}" for c in checks
             if c.name == "restore journal"]
    left = bool(lines)
    if knob.ok:
        lines.append("fault_around_bytes sweeps: possible natively (--set fault_around_bytes=...)")
    else:
        lines.append(f"fault_around_bytes sweeps: not natively; {knob.detail}")
    image = default_image()
    missing = guest.requirements(image) if image else ["no kernel image in /boot"]
    kvm, why = guest.kvm_state()
    if missing:
        lines.append(f"booted kernel images (--kernel IMAGE): not possible: {'; '.join(missing)}")
    elif kvm:
        lines.append(f"booted kernel images (--kernel {image}): possible under KVM "
                     "(near-native timings)")
    else:
        lines.append(
            f"booted kernel images (--kernel {image}): possible under TCG, timed on QEMU's "
            f"instruction clock (plane tcg-icount; --clock wall: emulated wall-clock timings, "
            f"tcg-guest); fault counts exact; KVM not usable: {why}"
        )
    settable = [c.name for c in checks if c.name.startswith(("vm.", "thp.")) and c.ok]
    if settable and not left:
        lines.append("sysctl/THP sweeps natively: possible (e.g. --set thp.shmem_enabled=never,"
                     "always); originals are restored afterwards")
    return lines


def diagnose() -> dict[str, Any]:
    checks = knob_checks() + measurement_checks() + machine_checks()
    return {"checks": [asdict(c) for c in checks], "summary": summary(checks),
            "provenance": collect()}
