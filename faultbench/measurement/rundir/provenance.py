"""Where a sample set was measured: kernel, CPU, virtualization, knobs, memory, faultbench.

Standard library only (it is collected inside booted guests too). A value that cannot be read
is None, with the reason under `null_reasons` (dotted key), never a made-up default.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from faultbench.measurement.knobs import catalog as knobs
from faultbench.measurement.knobs.sysfs import (
    DEBUGFS,
    MountError,
    cpu_flags,
    cpuinfo_fields,
    lockdown,
    mount_of,
    mounted,
)
from faultbench.measurement.spec import Spec

CPU_DIR = "/sys/devices/system/cpu"
DMI_DIR = "/sys/devices/virtual/dmi/id"


class _Facts:
    """A dict under construction plus the reasons for its None values."""
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.null_reasons: dict[str, str] = {}

    def put(self, key: str, value: Any, reason: str = "") -> None:
        """Set dotted `key`; a None value needs its reason."""
        *parents, leaf = key.split(".")
        node = self.data
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
        if value is None:
            self.null_reasons[key] = reason or "not readable"

    def read(self, key: str, path: str, reason: str = "") -> None:
        try:
            self.put(key, Path(path).read_text().strip())
        except OSError as exc:
            self.put(key, None, reason or f"{path}: {exc.strerror}")


def thp_settings() -> dict[str, Any]:
    """Selected value of every THP setting faultbench may change, by knob name."""
    out: dict[str, Any] = {}
    for name in knobs.thp_names():
        try:
            out[name] = knobs.read_value(knobs.resolve(name))
        except (OSError, knobs.KnobError):
            continue
    return out


def fault_around_bytes() -> tuple[int | None, str]:
    """The knob's value, or None and why it cannot be read here."""
    try:
        with mounted("debugfs", DEBUGFS) as ok:
            if not ok:
                why = ("debugfs needs root to mount" if os.geteuid() != 0
                       else "this kernel has no debugfs")
                return None, why
            try:
                return int(Path(knobs.FAULT_AROUND_PATH).read_text()), ""
            except PermissionError:
                return None, f"debugfs is locked down (lockdown={lockdown() or 'unknown'})"
            except (OSError, ValueError) as exc:
                return None, f"{knobs.FAULT_AROUND_PATH}: {exc}"
    except MountError as exc:
        return None, f"debugfs: {exc}"


def detect_virt(vm_only: bool = False) -> str | None:
    """systemd-detect-virt's answer. `vm_only` in a booted guest: its root is the host's
    (9p), whose container markers (/.dockerenv, /run/.containerenv) are not the guest's."""
    tool = shutil.which("systemd-detect-virt")
    if not tool:
        return None
    try:
        done = subprocess.run([tool, *(["--vm"] if vm_only else [])], capture_output=True,
                              text=True, check=False, timeout=10)
    except (OSError, subprocess.TimeoutExpired):  # not executable; a guest on a busy host
        return None
    return done.stdout.strip() or None


GIT_TIMEOUT_S = 30


def git_revision(checkout: Path | None = None) -> tuple[str | None, str]:
    """The commit of the checkout faultbench runs from (or `checkout`), `-dirty` after it
    when a tracked file outside results/ differs from it. Results are what runs write: one
    reference run regenerated after another (scripts/reference-results) ran the same code."""
    here = checkout or Path(__file__).resolve().parents[3]
    if not (here / ".git").exists():
        return None, "not running from a git checkout"
    if not shutil.which("git"):
        return None, "git is not installed"
    git = ["git", "-C", str(here), "-c", f"safe.directory={here}", "-c", "core.fsmonitor=false"]
    # the checkout's own state, whoever runs it: no GIT_DIR or GIT_WORK_TREE naming another
    # repository, no user's or system's configuration (`git status` runs a core.fsmonitor
    # program; under `sudo -E` a user's ~/.gitconfig ran theirs as root)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    try:
        done = subprocess.run([*git, "describe", "--always", "--abbrev=40"],
                              capture_output=True, text=True, check=False, env=env,
                              timeout=GIT_TIMEOUT_S)
        changed = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no", "--",
                                  ".", ":(exclude)results"], capture_output=True, text=True,
                                 check=False, env=env, timeout=GIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        # status stats every tracked file: over 9p in a guest on a busy host, minutes
        return None, f"git took over {GIT_TIMEOUT_S} s"
    except OSError as exc:
        return None, f"cannot run git: {exc.strerror}"
    for step in (done, changed):
        if step.returncode != 0:
            return None, step.stderr.strip() or "git failed"
    return done.stdout.strip() + ("-dirty" if changed.stdout.strip() else ""), ""


def file_dir(specs: Iterable[Spec]) -> str | None:
    """Where the first `file` backing among specs creates its file (its --dir, else the
    default), or None when no spec uses that backing."""
    from faultbench.measurement.measure import backing_dir

    return next((backing_dir(s) for s in specs if s.backing == "file"), None)


def machine_paths_out(cmdline: str) -> str:
    """A booted guest's command line without the paths that name this machine, not the
    kernel: its init lives in this venv, virtme-ng passes the host's working directory and
    the directories it shares (virtme_initmountN=, host paths without their leading /), and
    faultbench's stand-ins for init (PATH=, in the boot's scratch directory: scratch.py)."""
    cmdline = cmdline.replace(sys.prefix, "<venv>")
    cmdline = re.sub(r"(?<!\S)PATH=\S*/init-bin:", "PATH=<scratch>/init-bin:", cmdline)
    cmdline = re.sub(r"\bvirtme_initmount(\d+)=\S*", r"virtme_initmount\1=<mount \1>", cmdline)
    return re.sub(r"\bvirtme_chdir=\S*", "virtme_chdir=<cwd>", cmdline)


def kernel_cmdline() -> str | None:
    """The running kernel's command line as provenance records it: machine_paths_out."""
    try:
        return machine_paths_out(Path("/proc/cmdline").read_text().strip())
    except OSError:
        return None


GUEST_GIT = ("not described in a guest: its checkout is the host's, whose revision the "
             "run's provenance records (git describe over 9p took 20-40 s a boot)")


def collect(file_dir: str | None = None, git: bool = True) -> dict[str, Any]:
    """Everything that tells this machine and its settings apart (see module doc); `git`
    False leaves out the checkout's revision (a booted guest: GUEST_GIT)."""
    from faultbench._version import __version__
    from faultbench.measurement.measure import current_plane, meminfo

    facts = _Facts()
    uname = os.uname()
    facts.put("collected_utc", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    facts.put("plane", current_plane())
    facts.put("host.name", uname.nodename)
    facts.put("kernel.release", uname.release)
    facts.put("kernel.version", uname.version)
    facts.put("kernel.machine", uname.machine)
    facts.put("kernel.cmdline", kernel_cmdline(), "/proc/cmdline not readable")
    facts.put("kernel.lockdown", lockdown(), "securityfs not readable (needs root)")
    facts.put("page_size", knobs.page_size())
    facts.put("ptrs_per_pte", knobs.ptrs_per_pte())
    facts.put("fault_around_max_bytes", knobs.fault_around_max())

    cpu = cpuinfo_fields()
    facts.put("cpu.model", cpu.get("model name"), "no 'model name' in /proc/cpuinfo")
    facts.put("cpu.count", os.cpu_count())
    facts.put("cpu.usable", len(os.sched_getaffinity(0)))
    facts.read("cpu.governor", f"{CPU_DIR}/cpu0/cpufreq/scaling_governor",
               "no cpufreq for cpu0 (a virtual machine, or no driver)")
    boost = next((p for p in (f"{CPU_DIR}/cpufreq/boost", f"{CPU_DIR}/intel_pstate/no_turbo")
                  if os.path.exists(p)), None)
    if boost:
        facts.read(f"cpu.{Path(boost).name}", boost)
    else:
        facts.put("cpu.boost", None, "no cpufreq boost or intel_pstate no_turbo file")

    flags = cpu_flags()
    facts.put("virtualization.hypervisor_flag", "hypervisor" in flags)
    facts.put("virtualization.systemd_detect_virt", detect_virt(facts.data["plane"] != "native"),
              "systemd-detect-virt not installed or silent")
    for field in ("sys_vendor", "product_name"):
        facts.read(f"virtualization.dmi_{field}", f"{DMI_DIR}/{field}", "no DMI tables")
    facts.put("python", sys.version.split()[0])  # what platform.python_version() parses

    facts.put("thp", thp_settings())
    value, why = fault_around_bytes()
    facts.put("knobs.fault_around_bytes", value, why)

    if file_dir is not None:
        facts.put("file.dir", file_dir)
        where = mount_of(file_dir)
        facts.put("file.fs_type", where and where.fs_type, f"{file_dir} not found in mountinfo")
        facts.put("file.source", where and where.source, f"{file_dir} not found in mountinfo")
        try:
            knob = knobs.resolve("read_ahead_kb", file_dir)
            facts.put("knobs.read_ahead_kb", knobs.read_value(knob))
        except (OSError, knobs.KnobError) as exc:
            facts.put("knobs.read_ahead_kb", None, str(exc))

    info = meminfo()
    for key, field in (("total_kb", "MemTotal"), ("available_kb", "MemAvailable"),
                       ("swap_total_kb", "SwapTotal"),
                       ("hugepagesize_kb", "Hugepagesize"), ("hugepages_total", "HugePages_Total"),
                       ("hugepages_free", "HugePages_Free")):
        facts.put(f"memory.{key}", info.get(field), f"no {field} in /proc/meminfo")
    facts.put("load_average", list(os.getloadavg()))
    facts.put("faultbench.version", __version__)
    revision, why = git_revision() if git else (None, GUEST_GIT)
    facts.put("faultbench.git_revision", revision, why)
    facts.data["null_reasons"] = facts.null_reasons
    return facts.data
