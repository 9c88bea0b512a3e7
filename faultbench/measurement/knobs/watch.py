"""KnobWatch: knobs a run reads but does not set, read again after every sample. The knob
lock keeps two writers apart, not a writer from a run that only reads: another faultbench
(a colleague's `measure --set thp.shmem_enabled=always`) may change the machine under it.

Standard library only: this runs inside emulated guests too.
"""

from __future__ import annotations

from collections.abc import Iterable

from faultbench.measurement.knobs.catalog import Knob, KnobError, read_value, resolve


class KnobWatch:
    """The knobs in `names` that can be read here, each expected to stay as it was found."""

    def __init__(self, names: Iterable[str]) -> None:
        self._knobs: list[Knob] = []
        self._expected: dict[str, int | str] = {}
        for name in names:
            try:
                knob = resolve(name)
                self._expected[name] = read_value(knob)
            except (OSError, KnobError):
                continue  # not on this kernel: nothing to watch
            self._knobs.append(knob)

    def drift(self) -> dict[str, list[int | str]]:
        """Those found changed: {name: [found at the start, found now]}."""
        changed: dict[str, list[int | str]] = {}
        for knob in self._knobs:
            try:
                now = read_value(knob)
            except OSError:
                continue
            if now != self._expected[knob.name]:
                changed[knob.name] = [self._expected[knob.name], now]
        return changed
