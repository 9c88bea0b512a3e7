"""Round twenty-eight (d): a booted meta.json whose kernel record lacks its release is refused
on load in one line, not a KeyError traceback (R28-4); a signal while faultbench/__init__.py
imports its startup module ends the command in one line (R28-6); the PVH unpacker stops as
soon as an image's ELF headers show it cannot boot through PVH, or once it has unpacked more
than they describe (R28-7). No guest is booted."""

from __future__ import annotations

import io
import random
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import pytest
from test_hardening_round5_merge import merge_refused
from test_hardening_round26_f import _copy
from test_hardening_round27_a import _refused_on_load

from faultbench.measurement.booted import pvh

REPO = Path(__file__).resolve().parents[1]


# R28-4


@pytest.mark.parametrize("key", ["release", "tree"])
@pytest.mark.parametrize("kernel", [0, 1])
def test_a_kernel_record_without_its_release_or_tree_is_refused_on_load(
        tmp_path: Path, kernel: int, key: str) -> None:
    """Every run writes both (null when unknown): report, report --json, compare and merge
    ended in `KeyError: 'release'` checking the samples' release tags against it."""
    run = _copy(tmp_path, lambda meta: meta["kernels"][kernel].pop(key))
    why = f"kernels[{kernel}]: release and tree must be strings or null"
    _refused_on_load(run, why)
    assert merge_refused(run, run, out=tmp_path / "merged") == \
        f"faultbench merge: {run / 'meta.json'}: {why}"


# R28-6

_SIGNAL_ON_IMPORT = textwrap.dedent("""
    import os, sys
    class SignalOnImport:  # the signal comes while the import machinery looks for MODULE
        def find_spec(self, name, path, target=None):
            if name == MODULE:
                os.kill(os.getpid(), SIGNUM)
    sys.meta_path.insert(0, SignalOnImport())
    sys.argv = ["faultbench", "--version"]
    from faultbench.cli import main  # as the faultbench script does
    sys.exit(main())
""")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("module", ["faultbench.measurement", "faultbench.measurement.startup"])
def test_a_signal_while_faultbench_imports_its_startup_module_ends_it_in_a_line(
        module: str, signum: signal.Signals) -> None:
    """The handlers were installed by startup, once imported: a Ctrl-C about 0.1 s after the
    start, while it was, gave a KeyboardInterrupt traceback (and SIGTERM no line)."""
    probe = _SIGNAL_ON_IMPORT.replace("MODULE", repr(module)).replace("SIGNUM", str(int(signum)))
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    assert (done.returncode, done.stdout, done.stderr) == (
        128 + signum, "", f"faultbench: {signum.name} while starting; nothing was changed\n")


# R28-7


def _bzimage(elf: bytes) -> bytes:
    """A bzImage (boot protocol 2.15, one setup sector) whose payload is `elf` gzipped."""
    setup = bytearray(1024)
    setup[0x1F1] = 1
    setup[0x202:0x206] = b"HdrS"
    packer = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    payload = packer.compress(elf) + packer.flush()
    struct.pack_into("<HII", setup, 0x206, 0x20F, 0, 0)
    struct.pack_into("<II", setup, 0x248, 0, len(payload))
    return bytes(setup) + payload


def _note(name: bytes, kind: int, desc: bytes) -> bytes:
    padded = name + bytes(-len(name) % 4)
    return struct.pack("<III", len(name), len(desc), kind) + padded + desc + bytes(-len(desc) % 4)


PVH_NOTE = _note(b"Xen\0", 18, struct.pack("<I", 0x1000000))
BUILD_ID = _note(b"GNU\0", 3, bytes(20))
TAIL = 48 << 20  # the zeros after the ELF's own bytes: a gzip of 48 KiB


def _vmlinux(notes: bytes, note_segments: int = 1, claimed: int | None = None,
             tail: bytes | None = None) -> bytes:
    """An x86-64 ELF: its header, a PT_LOAD of `claimed` bytes from the start (all of it by
    default), `note_segments` PT_NOTEs of `notes` (just after the headers), then `tail`
    (TAIL zeros by default)."""
    tail = bytes(TAIL) if tail is None else tail
    at = 64 + 56 * (1 + note_segments)
    size = at + len(notes) + len(tail)
    header = bytearray(64)
    header[:5] = b"\x7fELF\x02"
    struct.pack_into("<H", header, 18, 62)
    struct.pack_into("<Q", header, 32, 64)
    struct.pack_into("<HH", header, 54, 56, 1 + note_segments)
    load = struct.pack("<IIQQQQQQ", 1, 5, 0, 0, 0, claimed or size, claimed or size, 4096)
    note = struct.pack("<IIQQQQQQ", 4, 4, at, 0, 0, len(notes), len(notes), 4)
    return bytes(header) + load + note * note_segments + notes + tail


KERNELS = {
    # the REPRO's, with 18,000 empty notes: every chunk was copied against each
    "18,000 note segments": (_vmlinux(b"", note_segments=18_000), False),
    "notes, none the PVH one": (_vmlinux(BUILD_ID), False),
    # 87,000 notes, each parsed from a copy of the rest: seconds
    "a megabyte of empty notes": (_vmlinux(bytes((1 << 20) - 64)), False),
    "a PVH note, and more bytes than the ELF's": (_vmlinux(PVH_NOTE, claimed=1 << 20), False),
    # a kernel's bytes compress a few times, not as zeros do (pvh.RATIO_MAX: round 29 b)
    "a PVH note, and only the ELF's bytes": (
        _vmlinux(BUILD_ID + PVH_NOTE, tail=random.Random(0).randbytes(4 << 20)), True),
}


@pytest.mark.parametrize("kernel", list(KERNELS))
def test_an_image_that_cannot_boot_through_pvh_is_not_unpacked_to_the_end(kernel: str) -> None:
    """Unpacked to the cap (512 MiB) before it was found to have no PVH note, and its notes
    copied once per note segment for every megabyte: 16 s of CPU and 500 MB written into the
    run's boot directory, for a 534 KB image booted as a bzImage after all."""
    elf, boots = KERNELS[kernel]
    out = io.BytesIO()
    start = time.process_time()
    assert pvh.unpack(_bzimage(elf), out) is boots
    assert time.process_time() - start < 1
    if boots:
        assert out.getvalue() == elf
    else:
        assert len(out.getvalue()) <= 2 << 20  # twice the 1 MiB claimed, relocations included
