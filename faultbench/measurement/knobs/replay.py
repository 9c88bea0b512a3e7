"""Originals put back: a journal's entry re-checked by the knob rules (the journal is a file
on disk), and the writes that restore them, last set first, each verified. Standard library
only.
"""

from __future__ import annotations

import os

from faultbench.measurement.knobs.catalog import (
    COUPLED,
    Knob,
    KnobError,
    read_value,
    reads_as,
    resolve_path,
    validate,
    write,
)


def _block_read_ahead_paths() -> set[str]:
    """read_ahead_kb of every whole block device: the only ones faultbench changes."""
    try:
        devices = os.listdir("/sys/block")
    except OSError:
        return set()
    return {os.path.realpath(f"/sys/block/{d}/queue/read_ahead_kb") for d in devices}


def journal_entry(entry: object, path: str) -> tuple[Knob, str]:
    """A journal entry's knob and original, re-checked by the knob rules: the journal is a
    file on disk, and it must not make `restore` write anything a run could not have set."""
    if not isinstance(entry, dict) or not all(
        isinstance(entry.get(key), str) for key in ("name", "path", "original")
    ):
        raise KnobError(f"journal {path}: entry {str(entry)[:80]} is malformed (wants name, "
                        "path and original as strings); nothing was restored")
    name, knob_path, original = entry["name"], entry["path"], entry["original"]
    if name == "read_ahead_kb":
        if os.path.realpath(knob_path) not in _block_read_ahead_paths():
            raise KnobError(f"journal {path}: {knob_path} is outside what faultbench may "
                            "change (read_ahead_kb of a whole block device); nothing was "
                            "restored")
        knob = Knob(name, knob_path, "read_ahead")
    else:
        try:
            knob = resolve_path(knob_path, None)
        except KnobError as exc:
            raise KnobError(f"journal {path}: {exc}; nothing was restored") from None
        if knob.name != name:
            raise KnobError(f"journal {path}: entry {name} names {knob_path}, which is "
                            f"{knob.name}; nothing was restored")
    try:
        return knob, validate(knob, original)
    except KnobError as exc:
        raise KnobError(f"journal {path}: original {exc}; nothing was restored") from None


def journal_entries(entries: list[object], path: str) -> list[tuple[Knob, str]]:
    """Every entry of a journal's `knobs`, checked by journal_entry. A run journals each knob
    once, with the value it found: a knob named twice has two originals, and no way to tell
    which one is the machine's."""
    knobs = [journal_entry(entry, path) for entry in entries]
    names = [knob.name for knob, _ in knobs]
    if twice := sorted({name for name in names if names.count(name) > 1}):
        raise KnobError(f"journal {path}: {', '.join(twice)} named twice (a run journals each "
                        "knob once, with the value it found); nothing was restored")
    return knobs


def put_back(knobs: list[tuple[Knob, str]]) -> list[str]:
    """Write every original back (last set first), verify; the problems, one line each.
    One that cannot be written stops no other. A knob already reading its original is not
    written: so a value fixed by hand lets a later `faultbench restore` finish. Of a coupled
    pair (catalog.COUPLED) only the member that was in effect is written, which sets the
    other to its 0 (a *_bytes 0 the kernel would refuse to be written)."""
    originals = {k.name: (k, v) for k, v in knobs}
    problems: list[str] = []
    done: set[str] = set()
    for knob, _ in reversed(knobs):
        if knob.name in done:
            continue
        group = [originals[n] for n in (knob.name, COUPLED.get(knob.name)) if n in originals]
        done.update(k.name for k, _ in group)
        target, value = _in_effect(group)
        try:
            if all(reads_as(k, v) for k, v in group):
                continue
            write(target, value)
        except (KnobError, OSError) as exc:
            hint = (f" (set {COUPLED[target.name]} back by hand, which sets {target.name} to "
                    "0; then run `faultbench restore` again)" if target.name in COUPLED else "")
            problems.append(f"{target.name}: {exc}{hint}")
            continue
        problems += [f"{each.name} reads {_now(each)!r}, not {original!r}"
                     for each, original in group if not reads_back_as(each, original)]
    return problems


def _in_effect(group: list[tuple[Knob, str]]) -> tuple[Knob, str]:
    """What to write for a knob, or for a coupled pair the member in effect: the nonzero
    one (the ratio, whose 0 every kernel accepts, when both are 0)."""
    if len(group) == 1:
        return group[0]
    return next((e for e in group if e[1].strip() != "0"),
                next(e for e in group if e[0].name.endswith("_ratio")))


def reads_back_as(knob: Knob, want: str) -> bool:
    """reads_as, False for a knob that cannot be read: it does not read as `want`."""
    try:
        return reads_as(knob, want)
    except (KnobError, OSError):
        return False


def _now(knob: Knob) -> int | str:
    try:
        return read_value(knob)
    except OSError as exc:
        return f"unreadable: {exc.strerror}"
