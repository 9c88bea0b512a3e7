"""The memory a booted guest is given, checked alike wherever it comes from: `--memory`, a
workload's guest_memory, or the guest_memory a run's meta.json records (which a resume boots
with). Standard library only: meta.json's check on load uses it."""

from __future__ import annotations

from typing import Any

from faultbench.measurement.spec import SpecError, parse_size, shown

GUEST_FLOOR_MIB = 128  # below it the guest's Python does not start


def guest_size(text: Any) -> int:
    """The bytes `text` gives a guest; SpecError when no guest could boot with it, on any
    machine (how much this one has is boots.checked_memory's to say)."""
    size = parse_size(text)
    if size < GUEST_FLOOR_MIB << 20:
        raise SpecError(f"a guest needs at least {GUEST_FLOOR_MIB}M, got {shown(text)}")
    if size % 1024:  # format_size would write a bare byte count, which virtme-ng reads as MiB
        raise SpecError(f"give a guest's memory in whole KiB (QEMU's unit), got {shown(text)}")
    return size
