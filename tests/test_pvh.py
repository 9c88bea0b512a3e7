"""Booting a bzImage's kernel through PVH (measurement/booted/pvh.py): Debian's image unpacks
to the ELF QEMU starts directly; anything else (a foreign payload, an unpacked size past the
cap) falls back to the image itself. A damaged one is refused (test_hardening_round29_b.py).
The boot itself is tested by every booted run (tests/test_analysis.py checks its recorded
entry)."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import subprocess
from pathlib import Path

import pytest
from images import image_version, require_boot_image

from faultbench.measurement.booted import pvh, vngproc
from faultbench.measurement.booted.imagecheck import IMAGE_COPY, pinned_copy
from faultbench.measurement.rundir.safefile import SafeDir


def _payload_at(image: bytes) -> int:
    return ((image[0x1F1] or 4) + 1) * 512 + struct.unpack_from("<I", image, 0x248)[0]


def test_the_image_unpacks_to_an_elf_of_its_own_release(tmp_path: Path) -> None:
    image = Path(require_boot_image())
    out = tmp_path / "vmlinux"
    with out.open("wb") as fh:
        assert pvh.unpack(image.read_bytes(), fh)
    with out.open("rb") as unpacked, image.open("rb") as bzimage:
        assert pvh.is_unpacked(unpacked)
        assert not pvh.is_unpacked(bzimage)  # a bzImage is not an ELF
    release = (image_version(str(image)) or "").split()[0]
    assert f"Linux version {release} ".encode() in out.read_bytes()


def test_an_unpacked_kernel_past_the_cap_is_not_written_past_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pvh, "UNPACKED_MAX", 4 << 20)
    out = io.BytesIO()
    assert not pvh.unpack(Path(require_boot_image()).read_bytes(), out)
    assert len(out.getvalue()) <= 4 << 20


@pytest.mark.parametrize("damage", ["format", "cut"])
def test_a_payload_it_cannot_unpack_boots_as_the_image_itself(tmp_path: Path,
                                                              damage: str) -> None:
    data = bytearray(Path(require_boot_image()).read_bytes())
    at = _payload_at(data)
    if damage == "format":  # a magic no standard-library decompressor reads (zstd's)
        data[at:at + 4] = b"\x28\xb5\x2f\xfd"
    else:  # the payload's length beyond the file: no payload to unpack
        struct.pack_into("<I", data, 0x24C, len(data))
    image = tmp_path / "bzImage"
    image.write_bytes(data)
    assert not pvh.unpack(bytes(data), io.BytesIO())
    own = tmp_path / "own"
    own.mkdir()
    with SafeDir.reading(own) as into:
        why, copy, entry = pinned_copy(str(image), hashlib.sha256(data).hexdigest(), into,
                                       "RESUME")
    assert (why, entry) == (None, pvh.BZIMAGE)
    assert Path(copy) == own / IMAGE_COPY
    assert Path(copy).read_bytes() == data


def test_virtme_ng_reads_an_unpacked_kernels_release_through_the_stand_in(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """virtme-ng's own version probe (`file`, then `strings`) gives the same release with
    the stand-in first on PATH as without it, and the stand-in leaves any other file to the
    real `strings`; a bzImage, whose release `file` names, gets no stand-in."""
    from virtme.commands.run import get_kernel_version

    image = Path(require_boot_image())
    vmlinux = tmp_path / "vmlinux"
    with vmlinux.open("wb") as fh:
        assert pvh.unpack(image.read_bytes(), fh)
    release = (image_version(str(image)) or "").split()[0]
    assert get_kernel_version(str(vmlinux)) == release  # the real strings
    bin_dir = vngproc.version_stand_in(str(tmp_path), str(vmlinux))
    assert bin_dir is not None
    stand_in = Path(bin_dir, "strings")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    assert get_kernel_version(str(vmlinux)) == release
    other = tmp_path / "other"
    other.write_bytes(b"\0Linux version 9.9.9-other\0")
    assert get_kernel_version(str(other)) == "9.9.9-other"
    said = subprocess.run([stand_in, str(vmlinux)], capture_output=True, text=True, check=True)
    assert said.stdout == f"Linux version {release}\n"
    # named through a link, it answers the resolved name too: virtme-ng resolves links
    (tmp_path / "link").symlink_to(tmp_path)
    (tmp_path / "linked").mkdir()
    linked = vngproc.version_stand_in(str(tmp_path / "linked"), str(tmp_path / "link/vmlinux"))
    assert linked is not None
    said = subprocess.run([Path(linked, "strings"), str(vmlinux)], capture_output=True,
                          text=True, check=True)
    assert said.stdout == f"Linux version {release}\n"
    assert vngproc.version_stand_in(str(tmp_path / "none"), str(image)) is None
