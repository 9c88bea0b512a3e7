"""KnobSession: knobs changed for a while, their originals back on every exit path.

Standard library only: this runs inside emulated guests too.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from types import TracebackType

from faultbench.measurement.knobs.catalog import (
    COUPLED,
    Knob,
    KnobError,
    ValueRefused,
    check_settable,
    partner,
    read_value,
    resolve,
    restorable_text,
    validate,
    write,
)
from faultbench.measurement.knobs.journal import (
    JOURNAL_FORMAT,
    drop_journal,
    journal_path,
    process_start,
    refuse_if_journal,
    write_journal,
)
from faultbench.measurement.knobs.knoblock import KnobLock
from faultbench.measurement.knobs.replay import put_back
from faultbench.measurement.knobs.requested import check_requested
from faultbench.measurement.knobs.sysfs import DEBUGFS, mounted
from faultbench.measurement.signals import TERMINATING, blocked, signal_name, signals_raise


class KnobSession:
    """Change knobs for a while; originals come back on every exit path.

    with KnobSession(["fault_around_bytes"]) as session:
        session.apply({"fault_around_bytes": "4096"})  # -> {"fault_around_bytes": 4096}

    Signals (SIGINT, SIGTERM, SIGHUP and the others of signals.TERMINATING) restore first,
    then go to the handler that was installed before the session if it is a Python one
    (KeyboardInterrupt for SIGINT by default), else raise SystemExit(128 + signal), so
    callers unwind normally.
    """

    def __init__(self, names: list[str], file_dir: str | None = None) -> None:
        self.knobs = [resolve(name, file_dir) for name in names]
        self.path = journal_path()
        self._originals: list[tuple[Knob, str]] = []
        # what each knob should read now (its original until set): drift is measured from it
        self._expected: dict[str, int | str] = {}
        self._mounts = contextlib.ExitStack()
        self._made_dirs: list[str] = []  # made for the journal; removed with it
        self._lock = KnobLock(self.path)
        self._signals = contextlib.ExitStack()
        self._active = False

    def __enter__(self) -> KnobSession:
        # Signals wait until the handlers are in place: a SIGTERM half-way through would
        # otherwise leave a journal (or its temp file) that blocks every later run.
        with blocked():
            try:
                self._lock.__enter__()
                refuse_if_journal(self.path)
                if any(k.kind == "fault_around" for k in self.knobs):
                    self._mounts.enter_context(mounted("debugfs", DEBUGFS))
                for knob in self.knobs:
                    check_settable(knob)
                # what the kernel changes with a knob too (catalog.partner), first: restored
                # last first, it is put back after the knob whose write changed it
                partners = [p for k in self.knobs if (p := partner(k)) is not None]
                journaled = list({k.name: k for k in [*partners, *self.knobs]}.values())
                self._originals = [(k, restorable_text(k)) for k in journaled]
                self._expected = {k.name: read_value(k) for k in self.knobs}
                self._made_dirs = write_journal(self.path, {
                    "format": JOURNAL_FORMAT,
                    "pid": os.getpid(),
                    "pid_start": process_start(os.getpid()),
                    "argv": sys.argv,
                    "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "knobs": [{"name": k.name, "path": k.path, "original": v}
                              for k, v in self._originals],
                })
            except BaseException:
                self._mounts.close()
                self._lock.__exit__()
                raise
            self._active = True
            self._signals.enter_context(signals_raise(TERMINATING, first=self._on_signal))
        return self

    def apply(self, setting: dict[str, str]) -> dict[str, int | str]:
        """Write each value, and put every other knob of the session back to its original
        first; return what the kernel reads back of `setting` (not what was asked).
        ValueRefused when the kernel refuses one: those before it stay written."""
        if not self._active:
            raise KnobError("KnobSession.apply() outside its `with` block")
        by_name = {k.name: k for k in self.knobs}
        unknown = [name for name in setting if name not in by_name]
        if unknown:
            raise KnobError(f"knob(s) {', '.join(unknown)} not part of this session")
        values = {name: validate(by_name[name], str(value)) for name, value in setting.items()}
        for name, value in values.items():  # all, before the first write
            check_requested(by_name[name], value)
        # a scenario that sets fewer knobs than the one before it is measured as the
        # machine was, not as that scenario left it (the knob it does not set, and what the
        # kernel changed with it, read their originals)
        kept = {*setting, *(COUPLED.get(name) for name in setting),
                *(p.name for name in setting if (p := partner(by_name[name])) is not None)}
        others = [(knob, original) for knob, original in self._originals
                  if knob.name not in kept]
        with blocked():
            problems = put_back(others)
            self._expected.update({k.name: read_value(k) for k, _ in others
                                   if k.name in self._expected})
            if problems:
                raise KnobError(f"could not put back {'; '.join(problems)}")
            try:
                for name, value in values.items():
                    write(by_name[name], value)
            finally:
                # those written before a refusal are expected as they are now, not as drift
                readback = {name: read_value(by_name[name]) for name in setting}
                self._expected.update(readback)
            return readback

    def tell_apart(self, settings: list[dict[str, str]]) -> None:
        """Apply each setting once and refuse, before anything is measured, two that the
        kernel reads back alike (`node` and `Default` of vm.numa_zonelist_order, or two
        vm.nr_hugepages it cannot allocate): their samples, labelled by what was read back,
        would be pooled into one row. A setting the kernel refuses is left to the caller."""
        seen: dict[tuple[tuple[str, int | str], ...], dict[str, str]] = {}
        for setting in settings:
            try:
                readback = tuple(sorted(self.apply(setting).items()))
            except ValueRefused:
                continue
            other = seen.setdefault(readback, setting)
            if other != setting:
                read = ", ".join(f"{name}={value}" for name, value in readback)
                raise KnobError(f"{_setting_text(other)} and {_setting_text(setting)} both "
                                f"read back as {read}: measured, they would be one row; "
                                "sweep values the kernel tells apart")

    def drift(self) -> dict[str, list[int | str]]:
        """Knobs someone else changed since the session last set them (or since it began,
        for those not set yet): {name: [expected, found]}."""
        found = {k.name: read_value(k) for k in self.knobs}
        return {name: [self._expected[name], now] for name, now in found.items()
                if now != self._expected[name]}

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        problems = self.restore()
        self._signals.close()
        if problems:
            message = (f"could not restore {'; '.join(problems)}; the journal {self.path} "
                       "is kept: run `faultbench restore`")
            if exc is None:
                raise KnobError(message)
            print(f"faultbench: {message}", file=sys.stderr)

    def restore(self) -> list[str]:
        """Put originals back (once), verify, drop the journal; the problems, if any."""
        if not self._active:
            return []
        with blocked():
            self._active = False
            with contextlib.suppress(OSError, KnobError):
                for name, (expected, found) in self.drift().items():
                    # still put back: the original is what the machine had before the run
                    print(f"faultbench: {name} had been changed to {found!r} by someone else "
                          f"(faultbench had set {expected!r}); restoring its original",
                          file=sys.stderr)
            problems = put_back(self._originals)
            self._mounts.close()
            if not problems:
                drop_journal(self.path, self._made_dirs)
            # a kept journal is for `faultbench restore`, which locks, and finds it recorded
            self._lock.keep_record = bool(problems)
            self._lock.__exit__()
        return problems

    def _on_signal(self, signum: int) -> None:
        problems = self.restore()
        name = signal_name(signum)
        if problems:
            print(f"faultbench: {name}: could not restore {'; '.join(problems)}; run "
                  "`faultbench restore`", file=sys.stderr)
        else:
            print(f"faultbench: {name}: kernel knobs restored", file=sys.stderr)


def _setting_text(setting: dict[str, str]) -> str:
    return ",".join(f"{name}={value}" for name, value in setting.items())
