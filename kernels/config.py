"""What a kernels/build build starts from and needs: Debian's source packages and their
patches, the config options the guest needs (each checked to be built in) or has no use for,
and the tools and headers of this machine. Standard library only."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# Debian's kernel sources a build may start from (bookworm has both); patches live per source
# in kernels/patches/<source>/, since a patch is written against one tree.
SOURCES = ("6.1", "6.12")
DEFAULT_SOURCE = "6.1"
PATCHES = Path(__file__).resolve().parent / "patches"


def source_package(source: str) -> str:
    return f"linux-source-{source}"


def source_tarball(source: str) -> Path:
    return Path(f"/usr/src/linux-source-{source}.tar.xz")


def patch_dir(source: str) -> Path:
    return PATCHES / source


# Enabled on top of virtme-ng's minimal config; each must read `=y` after olddefconfig.
# The minimal config leaves USERFAULTFD, EXT4_FS and TRANSPARENT_HUGEPAGE off. DEBUG_FS holds
# the fault_around_bytes knob; VIRTIO_BLK + EXT4_FS carry the guest's ext4 scratch disk, XFS_FS
# its XFS one (large page-cache folios);
# NET_9P_VIRTIO + 9P_FS its host root; TMPFS/SHMEM the memfd and tmpfs backings;
# PERF_EVENTS the software fault counters.
CONFIG_FRAGMENT = (
    "USERFAULTFD",
    "EXT4_FS",
    "XFS_FS",
    "TRANSPARENT_HUGEPAGE",
    "HUGETLBFS",
    "DEBUG_FS",
    "VIRTIO_PCI",
    "VIRTIO_BLK",
    "NET_9P",
    "NET_9P_VIRTIO",
    "9P_FS",
    "SHMEM",
    "TMPFS",
    "PERF_EVENTS",
    "DEBUG_INFO_NONE",  # DWARF for every object slows compiling and linking; kallsyms is enough
)
# Turned off on top of it: virtme-ng's config starts from x86_64_defconfig, which builds
# graphics (DRM/i915), sound, USB, wireless and other drivers no virtme guest has a device
# for. Each must be off after olddefconfig; they were most of a 55-minute base build here.
CONFIG_OFF = (
    "DRM", "FB", "AGP", "SOUND", "USB_SUPPORT", "WLAN", "WIRELESS", "CFG80211", "RFKILL",
    "BT", "MEDIA_SUPPORT", "INPUT_JOYSTICK", "INPUT_TABLET", "INPUT_TOUCHSCREEN",
    "INPUT_MISC", "NETFILTER", "ETHERNET", "ATA", "MACINTOSH_DRIVERS", "PCCARD", "HAMRADIO",
    "CAN", "NFC", "SECURITY_SELINUX", "AUDIT", "DEBUG_INFO",
    "DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT",  # the choice's default, off so that NONE holds
)

APT_PACKAGES = "build-essential flex bison bc libelf-dev libssl-dev xz-utils patch"
# (what is looked for, how it is found, the Debian package that provides it)
TOOLS = (
    ("make", "make"), ("gcc", "gcc"), ("ld", "binutils"), ("flex", "flex"),
    ("bison", "bison"), ("bc", "bc"), ("perl", "perl"), ("tar", "tar"), ("xz", "xz-utils"),
)
HEADERS = (("gelf.h", "libelf-dev"), ("openssl/opensslv.h", "libssl-dev"))
INCLUDE_DIRS = (Path("/usr/include"), Path("/usr/local/include"))


def find_vng(search_path: str | None = None) -> str | None:
    """vng on PATH, else in the checkout's venv (where `pip install -e .[test]` puts it)."""
    found = shutil.which("vng", path=search_path)
    if found:
        return found
    venv_vng = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "vng"
    return str(venv_vng) if search_path is None and os.access(venv_vng, os.X_OK) else None


def missing_dependencies(
    search_path: str | None = None,
    include_dirs: tuple[Path, ...] = INCLUDE_DIRS,
    tarball: Path | None = None,
    source: str = DEFAULT_SOURCE,
    need_patch: bool = False,
) -> list[str]:
    """What a build needs and this machine lacks, one line each (empty: nothing missing)."""
    missing = []
    tarball = tarball or source_tarball(source)
    if not tarball.is_file():
        missing.append(f"source tarball {tarball} (package {source_package(source)})")
    tools = TOOLS + ((("patch", "patch"),) if need_patch else ())
    for tool, package in tools:
        if shutil.which(tool, path=search_path) is None:
            missing.append(f"{tool} (package {package})")
    for header, package in HEADERS:
        if not any((directory / header).is_file() for directory in include_dirs):
            missing.append(f"header {header} (package {package})")
    if find_vng(search_path) is None:
        missing.append("vng (pip install virtme-ng)")
    return missing


def check_config(config_text: str, required: tuple[str, ...] = CONFIG_FRAGMENT,
                 off: tuple[str, ...] = CONFIG_OFF) -> list[str]:
    """Each required option not built in, and each unwanted one still on, said as what
    .config has for it instead."""
    values: dict[str, str] = {}
    for raw in config_text.splitlines():
        line = raw.strip()
        if line.startswith("CONFIG_") and "=" in line:
            name, _, value = line.partition("=")
            values[name] = value
        elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
            values[line[2:-len(" is not set")]] = "is not set"
    problems = []
    for option in required:
        name = f"CONFIG_{option}"
        value = values.get(name)
        if value == "y":
            continue
        if value is None:
            problems.append(f"{name} is absent (its dependencies are off, or it does not exist)")
        elif value == "is not set":
            problems.append(f"{name} is not set")
        else:
            problems.append(f"{name}={value} (needs =y: the guest loads no modules)")
    for option in off:
        value = values.get(f"CONFIG_{option}")
        if value in ("y", "m"):
            problems.append(f"CONFIG_{option}={value} (should be off: no guest device uses it)")
    return problems
