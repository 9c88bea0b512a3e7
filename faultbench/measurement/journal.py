"""The restore journal: every knob's original, written before the first knob is changed and
replayed by `faultbench restore` after a run was killed (SIGKILL, a crash, power to the
guest). Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from faultbench.measurement.knobs import (
    Knob,
    KnobError,
    read_value,
    reads_as,
    resolve_path,
    write,
)
from faultbench.measurement.sysfs import DEBUGFS, mounted, umount

DEFAULT_JOURNAL = "/run/faultbench/journal.json"
JOURNAL_FORMAT = "faultbench-journal/1"


def journal_path() -> str:
    return os.environ.get("FAULTBENCH_JOURNAL") or DEFAULT_JOURNAL


def process_start(pid: int) -> str | None:
    """The start time of `pid` (clock ticks since boot), which tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _load_journal(path: str) -> dict | None:
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise KnobError(f"journal {path} is unreadable ({exc}); inspect it, then delete it") \
            from None
    if not isinstance(data, dict) or data.get("format") != JOURNAL_FORMAT:
        raise KnobError(f"{path} is not a faultbench journal; inspect it, then delete it")
    return data


def _owner_alive(data: dict) -> bool:
    pid = data.get("pid")
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return False
    start = process_start(pid)
    return start is not None and start == data.get("pid_start")


def refuse_if_journal(path: str) -> None:
    data = _load_journal(path)
    if data is None:
        return
    if _owner_alive(data):
        raise KnobError(
            f"another faultbench run (pid {data['pid']}) is changing kernel knobs (journal "
            f"{path}); wait for it to finish"
        )
    names = ", ".join(k.get("name", "?") for k in data.get("knobs", []))
    raise KnobError(
        f"a previous run (pid {data.get('pid')}) did not restore {names or 'its knobs'} "
        f"(journal {path}); run `faultbench restore` first"
    )


def write_journal(path: str, data: dict) -> None:
    """Atomically, durably and exclusively: the journal must exist before the first knob is
    written, and two runs starting together must not both think they own the knobs."""
    directory = os.path.dirname(path) or "."
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # fails if another run created its journal meanwhile
        except FileExistsError:
            refuse_if_journal(path)
            raise
        finally:
            os.unlink(tmp)
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise KnobError(
            f"cannot write the restore journal {path}: {exc.strerror}; set FAULTBENCH_JOURNAL "
            "to a writable path"
        ) from exc


def drop_journal(path: str) -> None:
    """The journal, and the default journal's directory once empty, are gone."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    if path == DEFAULT_JOURNAL:
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(path))


def _journal_knob(entry: dict) -> Knob:
    """The knob of a journal entry, re-checked: a journal must not write outside our roots."""
    path = entry.get("path")
    if not isinstance(path, str) or not isinstance(entry.get("original"), str):
        raise KnobError(f"journal entry {entry!r} is malformed")
    name = entry.get("name")
    if name == "read_ahead_kb":
        if os.path.basename(path) != "read_ahead_kb" or not os.path.realpath(path).startswith(
            "/sys/devices/"
        ):
            raise KnobError(f"journal entry {path} is outside what faultbench may change")
        return Knob(name, path, "read_ahead")
    return resolve_path(path, None)


def put_back(knobs: list[tuple[Knob, str]]) -> list[str]:
    """Write every original back (last set first), verify; the problems, one line each."""
    problems = []
    for knob, original in reversed(knobs):
        try:
            write(knob, original)
            if not reads_as(knob, original):
                problems.append(f"{knob.name} reads {read_value(knob)!r}, not {original!r}")
        except (KnobError, OSError) as exc:
            problems.append(f"{knob.name}: {exc}")
    return problems


def restore_journal(path: str | None = None) -> list[str]:
    """Replay a stale journal: the restored knobs as 'name: now -> original' lines.

    Raises KnobError if the run that wrote it is alive or something could not be restored
    (the journal is kept then, so the restore can be retried).
    """
    path = path or journal_path()
    data = _load_journal(path)
    if data is None:
        return []
    if _owner_alive(data):
        raise KnobError(
            f"faultbench run pid {data['pid']} is still running and restores its knobs itself "
            f"when it ends; stop it (kill {data['pid']}) instead"
        )
    entries = [(_journal_knob(e), e["original"]) for e in data.get("knobs", [])]
    done = []
    with contextlib.ExitStack() as stack:
        if any(k.kind == "fault_around" for k, _ in entries):
            stack.enter_context(mounted("debugfs", DEBUGFS))
        for knob, original in entries:
            with contextlib.suppress(OSError):
                done.append(f"{knob.name}: {read_value(knob)} -> {original}")
        problems = put_back(entries)
    for target in data.get("unmount", []):
        if target == DEBUGFS:
            umount(target)
    if problems:
        raise KnobError(f"could not restore from {path}: {'; '.join(problems)}")
    drop_journal(path)
    return done
