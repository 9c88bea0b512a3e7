"""Round twenty-nine (b): a bzImage whose compressed kernel is damaged was booted anyway, and
halted in its decompressor: each boot and each resume waited out the guest start timeout,
10 minutes (R29-3); the PVH unpacker wrote up to 512 MiB for a 118 KB image whose ELF
header claims a note a terabyte in (R29-4). No guest is booted."""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import random
import struct
from pathlib import Path

import pytest
from images import require_boot_image
from test_hardening_round3_input import SMALL, fb, refused
from test_hardening_round28_d import PVH_NOTE, _bzimage, _vmlinux
from test_pvh import _payload_at

from faultbench.measurement.booted import pvh
from faultbench.measurement.booted.imagecheck import pinned_copy
from faultbench.measurement.booted.vngproc import START_TIMEOUT_ENV
from faultbench.measurement.rundir.safefile import ResultsError, SafeDir


def _refusal(image: Path, detail: str) -> str:
    return f"{image}: its compressed kernel is damaged ({detail}), so it was not booted"


def _damaged(kind: str) -> bytes:
    """The test image (Debian's, XZ) damaged as `kind` says, or a gzip'd kernel's."""
    if kind == "gzip CRC":  # read to its end (it has the PVH note), then its CRC is wrong
        elf = _vmlinux(PVH_NOTE, tail=random.Random(0).randbytes(1 << 20))
        data = bytearray(_bzimage(elf))
        data[-8] ^= 0xFF
        return bytes(data)
    data = bytearray(Path(require_boot_image()).read_bytes())
    at = _payload_at(data)
    if kind == "the REPRO's":  # zeros over 4096 bytes in the middle of the image
        middle = len(data) // 2
        data[middle:middle + 4096] = bytes(4096)
    elif kind == "ends early":  # the header gives half the payload's length
        struct.pack_into("<I", data, 0x24C, struct.unpack_from("<I", data, 0x24C)[0] // 2)
    else:  # a bzip2 payload cut short (R24-1: an OSError, once not caught)
        data[at:at + 68] = b"BZh9" + bytes(64)
    return bytes(data)


DETAILS = {"the REPRO's": "xz: Corrupt input data",
           "ends early": "xz: the payload ends inside its stream",
           "bzip2": "bzip2: Invalid data stream",
           "gzip CRC": "gzip: Error -3 while decompressing data: incorrect data check"}


@pytest.mark.parametrize("kind", list(DETAILS))
def test_a_damaged_payload_is_refused_before_its_boot(tmp_path: Path, kind: str) -> None:
    """R29-3: pvh.unpack saw the decompressor fail and answered False, as for a format it
    cannot read, so the boot copied the bzImage and booted it. The image is hashed as it
    is: its sha256 matches, and what refuses it is its payload."""
    data = _damaged(kind)
    image = tmp_path / "vmlinuz"
    image.write_bytes(data)
    own = tmp_path / "own"
    own.mkdir()
    with SafeDir.reading(own) as into, pytest.raises(ResultsError) as refusal:
        pinned_copy(str(image), hashlib.sha256(data).hexdigest(), into, "RESUME")
    assert str(refusal.value) == _refusal(image, DETAILS[kind])
    assert list(own.iterdir()) == []  # no copy, not even half of one


def _the_repros_image(tmp_path: Path) -> Path:
    image = tmp_path / "dmg"
    image.write_bytes(_damaged("the REPRO's"))
    return image


def test_a_run_of_a_damaged_image_fails_its_boot_at_once(tmp_path: Path) -> None:
    """R29-3, end to end: the boot waited out the start timeout (60 s here, 600 by default)
    and then asked whether the image was a kernel that boots here."""
    image, workload = _the_repros_image(tmp_path), tmp_path / "w.toml"
    workload.write_text(SMALL)
    done = fb("run", workload, "--kernel", f"A={image}", "--jobs", "1", "--memory", "1G",
              "--out", tmp_path / "r", "-q", env={START_TIMEOUT_ENV: "60"})
    why = _refusal(image, "xz: Corrupt input data")
    assert done.returncode == 1
    assert done.stderr.splitlines()[0] == f"faultbench run: boot 1/1 (A) failed: {why}"
    (boot,) = json.loads((tmp_path / "r" / "meta.json").read_text())["boots"]
    assert (boot["status"], boot["reason"], boot.get("entry")) == ("failed", why, None)


def test_measure_refuses_a_damaged_image_before_it_boots(tmp_path: Path) -> None:
    """R29-3 for `measure --kernel`, which boots one image once the same way."""
    image = _the_repros_image(tmp_path)
    done = fb("measure", "--kernel", image, "--size", "4M", env={START_TIMEOUT_ENV: "60"})
    assert refused(done, "measure", "") == \
        f"faultbench measure: --kernel {image}: {_refusal(image, 'xz: Corrupt input data')}"
    assert "booting" not in done.stderr


def _far_note(note_at: int, load: int) -> bytes:
    """The REPRO's pvhbomb.py, with 64 MiB of zeros rather than 640: the test image's setup,
    then an XZ payload of an x86-64 ELF header with a PT_NOTE of 64 bytes at `note_at` and
    a PT_LOAD of `load` bytes from the start, then the zeros."""
    real = Path(require_boot_image()).read_bytes()
    header = bytearray(64)
    header[:7] = b"\x7fELF\x02\x01\x01"
    struct.pack_into("<H", header, 18, 62)
    struct.pack_into("<QQ", header, 32, 64, 0)  # program headers just after, no sections
    struct.pack_into("<HHHH", header, 54, 56, 2, 64, 0)
    note = struct.pack("<IIQQQQQQ", 4, 4, note_at, 0, 0, 64, 64, 4)
    segment = struct.pack("<IIQQQQQQ", 1, 5, 0, 0, 0, load, load, 4096)
    packer = lzma.LZMACompressor(lzma.FORMAT_XZ, preset=0)
    payload = packer.compress(bytes(header) + note + segment + bytes(64 << 20)) + packer.flush()
    image = bytearray(real[:((real[0x1F1] or 4) + 1) * 512]) + payload
    struct.pack_into("<II", image, 0x248, 0, len(payload))
    return bytes(image)


@pytest.mark.parametrize(("note_at", "load"), [(1 << 40, 0), (32 << 20, 1 << 40)],
                         ids=["the REPRO's: a note a terabyte in",
                              "a note 32 MiB in, in a segment of a terabyte"])
def test_headers_that_claim_a_huge_kernel_do_not_unpack_it(note_at: int, load: int) -> None:
    """R29-4: unpack wrote up to twice what the headers claim (at most 512 MiB), or up to the
    note, before it found there was no PVH note: all of the 64 MiB, or 32 MiB of it, here.
    What it unpacks is now bounded by the payload's own length (pvh.RATIO_MAX)."""
    image = _far_note(note_at, load)
    assert len(image) < 1 << 20
    out = io.BytesIO()
    assert pvh.unpack(image, out) is False
    written = len(out.getvalue())
    assert written < 2 << 20
