"""`faultbench doctor` and provenance, checked against what the test reads itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from groups import HOST
from images import boot_image

from faultbench.measurement.rundir.provenance import collect

FAULTBENCH = [sys.executable, "-m", "faultbench"]
# the doctor fixture compares the machine's mounts before and after; _debugfs_knob_errno mounts
# debugfs where every process sees it
pytestmark = HOST


def _debugfs_knob_errno() -> int | None:
    """The errno of reading fault_around_bytes (None: readable), with debugfs mounted here."""
    knob = Path("/sys/kernel/debug/fault_around_bytes")
    mounted_here = False
    if not any(line.split()[1] == "/sys/kernel/debug" for line in
               Path("/proc/mounts").read_text().splitlines()):
        subprocess.run(["mount", "-t", "debugfs", "debugfs", "/sys/kernel/debug"], check=True)
        mounted_here = True
    try:
        knob.read_text()
        return None
    except OSError as exc:
        return exc.errno
    finally:
        if mounted_here:
            subprocess.run(["umount", "/sys/kernel/debug"], check=True)


def _cpu_has_virtualization() -> bool:
    flags = Path("/proc/cpuinfo").read_text().split()
    return "vmx" in flags or "svm" in flags


@pytest.fixture(scope="module")
def doctor(special_mounts: Callable[[], list[str]]) -> tuple[str, dict]:
    mounts = special_mounts()
    text = subprocess.run([*FAULTBENCH, "doctor"], capture_output=True, text=True,
                          check=True, timeout=120).stdout
    report = json.loads(subprocess.run([*FAULTBENCH, "doctor", "--json"], capture_output=True,
                                       text=True, check=True, timeout=120).stdout)
    assert special_mounts() == mounts  # debugfs/securityfs mounted for probing are gone again
    return text, report


@pytest.mark.skipif(os.geteuid() != 0, reason="debugfs needs root")
def test_doctor_says_why_the_knob_is_not_settable(doctor: tuple[str, dict]) -> None:
    text, report = doctor
    knob = next(c for c in report["checks"] if c["name"] == "fault_around_bytes")
    if _debugfs_knob_errno() == 1:  # EPERM as root: lockdown
        assert knob["ok"] is False
        assert "not settable" in knob["detail"] and "locked down (lockdown=" in knob["detail"]
        assert "fault_around_bytes sweeps: not natively" in text
        assert "--kernel /boot/vmlinuz-" in text
    else:
        assert knob["ok"] is True and "settable" in knob["detail"]


def test_doctor_says_whether_an_image_boots_and_how(doctor: tuple[str, dict]) -> None:
    text, report = doctor
    tools = [shutil.which("qemu-system-x86_64"), shutil.which("busybox"),
             shutil.which("vng") or os.path.exists(os.path.join(os.path.dirname(sys.executable),
                                                                "vng"))]
    images = [boot_image()] if boot_image() else []
    kvm = next(c for c in report["checks"] if c["name"] == "kvm")
    if not (all(tools) and images):
        assert "booted kernel images (--kernel IMAGE): not possible" in text
        return
    if _cpu_has_virtualization() and os.path.exists("/dev/kvm"):
        assert kvm["ok"] is True and "possible under KVM" in text
    else:
        assert kvm["ok"] is False and "/dev/kvm" in kvm["detail"]
        assert (f"--kernel {images[-1]}): possible under TCG, timed on QEMU's instruction "
                "clock") in text
        assert "KVM not usable" in text
        if os.path.isdir("/sys/module/kvm_pvm"):
            assert "PVM" in kvm["detail"]


def test_doctor_probes_userfaultfd_for_real(doctor: tuple[str, dict]) -> None:
    _, report = doctor
    checks = {c["name"]: c for c in report["checks"]}
    # shmem/memfd takes all three registrations since 6.1 (WP on shmem came last), as root
    release = tuple(int(part) for part in os.uname().release.split(".")[:2])
    expected = os.geteuid() == 0 and release >= (6, 1)
    for mode in ("missing", "wp", "minor"):
        check = checks[f"uffd {mode} on memfd"]
        # a failed probe gives the kernel's reason, never "works"
        assert (check["ok"] is True) == (check["detail"] == "works") and check["detail"], check
        if expected:
            assert check["ok"] is True, check
    if checks["uffd missing on memfd"]["ok"]:
        assert checks["uffd features"]["detail"].startswith("0x")


def test_provenance_matches_the_machine(doctor: tuple[str, dict]) -> None:
    prov = doctor[1]["provenance"]
    page = os.sysconf("SC_PAGE_SIZE")
    assert prov["kernel"]["release"] == os.uname().release
    assert prov["kernel"]["cmdline"] == Path("/proc/cmdline").read_text().strip()
    assert prov["page_size"] == page
    assert prov["ptrs_per_pte"] == page // 8
    assert prov["cpu"]["count"] == os.cpu_count()
    assert prov["plane"] == "native"
    assert prov["memory"]["total_kb"] > 0
    for key, value in _flatten(prov).items():
        if value is None:
            assert prov["null_reasons"].get(key), f"{key} is null without a reason"
    thp = Path("/sys/kernel/mm/transparent_hugepage/shmem_enabled").read_text()
    assert f"[{prov['thp']['thp.shmem_enabled']}]" in thp


def _flatten(data: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        if key == "null_reasons":
            continue
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.mark.parametrize("directory", ["/dev/shm", "/var/tmp"])
def test_provenance_fs_type_of_the_file_dir(directory: str) -> None:
    if not os.path.isdir(directory) or not shutil.which("findmnt"):
        pytest.skip(f"no {directory} or no findmnt")
    expected = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "-T", directory],
                              capture_output=True, text=True, check=True).stdout.split()[-1]
    # the last line is the mount on top, the one a new file lands on
    assert collect(directory)["file"]["fs_type"] == expected


def test_a_git_that_takes_too_long_is_a_reason_not_a_traceback(monkeypatch):
    import subprocess

    from faultbench.measurement.rundir import provenance

    def slow(argv, **kwargs):
        raise subprocess.TimeoutExpired(argv, kwargs.get("timeout"))

    monkeypatch.setattr(provenance.subprocess, "run", slow)
    revision, why = provenance.git_revision()
    assert revision is None and "took over" in why
