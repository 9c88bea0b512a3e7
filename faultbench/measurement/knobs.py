"""Kernel knobs faultbench may change, and the journal that guarantees they are put back.

Knob names (the `--set NAME=V1,V2` and workload `knobs` vocabulary):

- `fault_around_bytes`: /sys/kernel/debug/fault_around_bytes (debugfs is mounted if needed).
- `vm.<name>`: /proc/sys/vm/<name>, e.g. `vm.swappiness`.
- `thp.enabled`, `thp.shmem_enabled`, `thp.defrag`, `thp.hugepages-<N>kB.enabled`,
  `thp.hugepages-<N>kB.shmem_enabled`: /sys/kernel/mm/transparent_hugepage/...
- `read_ahead_kb`: the block device holding the `file` backing's directory.

An absolute path to one of those files is accepted too; any other path is refused.

Originals are journaled (JSON, atomically) before the first write and restored on every exit
path; after a SIGKILL, `faultbench restore` replays the journal. Standard library only: this
runs inside emulated guests too.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType

from faultbench.measurement.spec import SpecError, parse_size

DEBUGFS = "/sys/kernel/debug"
SECURITYFS = "/sys/kernel/security"
FAULT_AROUND_PATH = f"{DEBUGFS}/fault_around_bytes"
SYSCTL_VM = "/proc/sys/vm"
THP_DIR = "/sys/kernel/mm/transparent_hugepage"
DEFAULT_JOURNAL = "/run/faultbench/journal.json"
JOURNAL_FORMAT = "faultbench-journal/1"
PTE_BYTES = 8  # sizeof(pte_t) on every 64-bit architecture Linux supports
KNOB_HELP = "fault_around_bytes, vm.<sysctl>, thp.<setting> or read_ahead_kb"

_THP_TOP = ("enabled", "shmem_enabled", "defrag")
_THP_SIZED = ("enabled", "shmem_enabled")
_THP_SIZED_RE = re.compile(r"^hugepages-\d+kB$")
_SYSCTL_RE = re.compile(r"^[a-z0-9_-]+$")
_ZERO_RE = re.compile(r"^0+\s*[kKmMgG]?(i?[bB])?$")
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class KnobError(Exception):
    """A knob that cannot be set as asked; the message is one line: why, and what to do."""


def page_size() -> int:
    return os.sysconf("SC_PAGE_SIZE")


def ptrs_per_pte() -> int:
    return page_size() // PTE_BYTES


def fault_around_max() -> int:
    """The kernel refuses fault_around_bytes above one page table's reach."""
    return ptrs_per_pte() * page_size()


def rounded_fault_around(value: int) -> int:
    """What fault_around_bytes_set() keeps of `value`: a power of two, at least one page."""
    if value <= page_size():
        return page_size()
    return 1 << (value.bit_length() - 1)


def thp_choices(text: str) -> tuple[list[str], str | None]:
    """('always madvise [never]') -> (['always', 'madvise', 'never'], 'never')."""
    choices, selected = [], None
    for token in text.split():
        if token.startswith("[") and token.endswith("]"):
            token = token[1:-1]
            selected = token
        choices.append(token)
    return choices, selected


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def is_mounted(target: str, fstype: str) -> bool:
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return False
    return any(line.split()[1:3] == [target, fstype] for line in lines if len(line.split()) > 2)


def kernel_has_fs(fstype: str) -> bool:
    try:
        return any(line.split()[-1] == fstype
                   for line in Path("/proc/filesystems").read_text().splitlines() if line)
    except OSError:
        return False


def mount(fstype: str, target: str) -> None:
    done = subprocess.run(["mount", "-t", fstype, fstype, target],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise KnobError(f"cannot mount {fstype} on {target}: {done.stderr.strip()}")


def umount(target: str) -> None:
    subprocess.run(["umount", target], capture_output=True, check=False)


@contextlib.contextmanager
def mounted(fstype: str, target: str) -> Iterator[bool]:
    """`fstype` mounted at `target` for the block; unmounted again if we mounted it.

    Yields whether it is mounted. Without root or kernel support it yields False.
    """
    if is_mounted(target, fstype):
        yield True
        return
    if os.geteuid() != 0 or not kernel_has_fs(fstype) or not os.path.isdir(target):
        yield False
        return
    mount(fstype, target)
    try:
        yield True
    finally:
        umount(target)


def lockdown() -> str | None:
    """'none', 'integrity' or 'confidentiality'; None when securityfs cannot tell."""
    path = f"{SECURITYFS}/lockdown"
    with mounted("securityfs", SECURITYFS):
        try:
            _, selected = thp_choices(_read(path))
        except OSError:
            return None
    return selected


def boot_images() -> list[str]:
    """Kernel images a user could pass to --kernel."""
    return sorted(str(p) for p in Path("/boot").glob("vmlinuz-*"))


def kernel_hint() -> str:
    images = boot_images()
    return f"--kernel {images[-1] if images else '/boot/vmlinuz-<version>'}"


@dataclass(frozen=True)
class Knob:
    name: str
    path: str
    kind: str  # fault_around, sysctl, thp, read_ahead


def read_ahead_path(file_dir: str) -> str:
    """read_ahead_kb of the whole block device under file_dir (a partition has none)."""
    try:
        st = os.stat(file_dir)
    except OSError as exc:
        raise KnobError(f"read_ahead_kb: cannot stat {file_dir}: {exc.strerror}") from exc
    dev = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    sysdev = f"/sys/dev/block/{dev}"
    if not os.path.exists(sysdev):
        raise KnobError(
            f"read_ahead_kb: {file_dir} is not on a block device (device {dev}); read-ahead "
            "applies to the `file` backing on a disk: pick --dir on one"
        )
    real = os.path.realpath(sysdev)
    if os.path.exists(os.path.join(real, "partition")):
        real = os.path.dirname(real)
    return os.path.join(real, "queue", "read_ahead_kb")


def resolve(name: str, file_dir: str | None = None) -> Knob:
    """The knob called `name` (or at path `name`); KnobError if it is not one we may write."""
    if name.startswith("/"):
        return _resolve_path(name, file_dir)
    if name == "fault_around_bytes":
        return Knob(name, FAULT_AROUND_PATH, "fault_around")
    if name == "read_ahead_kb":
        from faultbench.measurement.measure import DEFAULT_DIRS

        return Knob(name, read_ahead_path(file_dir or DEFAULT_DIRS["file"]), "read_ahead")
    if name.startswith("vm."):
        sysctl = name[3:]
        path = f"{SYSCTL_VM}/{sysctl}"
        if not _SYSCTL_RE.match(sysctl) or not os.path.isfile(path):
            raise KnobError(f"unknown sysctl {name}: there is no {path} on this kernel")
        if not os.stat(path).st_mode & 0o444:
            raise KnobError(f"{name} is write-only: its original cannot be read, so faultbench "
                            "could not restore it")
        return Knob(name, path, "sysctl")
    if name.startswith("thp."):
        parts = name[4:].split(".")
        if (len(parts) == 1 and parts[0] in _THP_TOP) or (
            len(parts) == 2 and _THP_SIZED_RE.match(parts[0]) and parts[1] in _THP_SIZED
        ):
            path = "/".join([THP_DIR, *parts])
            if not os.path.isfile(path):
                raise KnobError(f"{name}: this kernel has no {path}")
            return Knob(name, path, "thp")
        raise KnobError(
            f"unknown THP knob {name}: use thp.enabled, thp.shmem_enabled, thp.defrag or "
            "thp.hugepages-<N>kB.enabled / .shmem_enabled"
        )
    raise KnobError(f"unknown knob {name!r}: use {KNOB_HELP}")


def _resolve_path(path: str, file_dir: str | None) -> Knob:
    real = os.path.realpath(path)
    if real == FAULT_AROUND_PATH:
        return resolve("fault_around_bytes")
    head, base = os.path.split(real)
    if head == SYSCTL_VM:
        return resolve(f"vm.{base}")
    if head == THP_DIR:
        return resolve(f"thp.{base}")
    if os.path.dirname(head) == THP_DIR:
        return resolve(f"thp.{os.path.basename(head)}.{base}")
    if base == "read_ahead_kb" and real == resolve("read_ahead_kb", file_dir).path:
        return resolve("read_ahead_kb", file_dir)
    raise KnobError(
        f"{path} is outside what faultbench may change ({FAULT_AROUND_PATH}, {SYSCTL_VM}/*, "
        f"{THP_DIR} settings, read_ahead_kb of the file backing's disk)"
    )


def _integers(knob: Knob, text: str) -> list[int]:
    tokens = text.split()
    if not tokens or not all(re.fullmatch(r"-?\d+", t) for t in tokens):
        raise KnobError(f"{knob.name}={text!r} is not a number")
    numbers = [int(t) for t in tokens]
    if any(n < 0 for n in numbers):
        raise KnobError(f"{knob.name}={text}: negative values are not allowed")
    return numbers


def validate(knob: Knob, text: str) -> str:
    """The value to write for `text`, checked as far as possible without writing."""
    try:
        return _validate(knob, text.strip())
    except OSError as exc:
        raise KnobError(f"{knob.name}: cannot read {knob.path}: {exc.strerror}") from exc


def _validate(knob: Knob, text: str) -> str:
    if knob.kind == "fault_around":
        return str(_fault_around_value(text))
    if knob.kind == "thp":
        choices, _ = thp_choices(_read(knob.path))
        if text not in choices:
            raise KnobError(f"{knob.name}={text!r} is not one of: {', '.join(choices)}")
        return text
    if knob.kind == "read_ahead":
        numbers = _integers(knob, text)
        if len(numbers) != 1:
            raise KnobError(f"{knob.name} takes one number, got {text!r}")
        return str(numbers[0])
    current = _read(knob.path).split()
    if current and all(re.fullmatch(r"-?\d+", t) for t in current):
        numbers = _integers(knob, text)
        if len(numbers) != len(current):
            raise KnobError(
                f"{knob.name} takes {len(current)} number(s) (now {' '.join(current)}), "
                f"got {text!r}"
            )
        return " ".join(map(str, numbers))
    if not text or "\n" in text:
        raise KnobError(f"{knob.name}={text!r}: empty or multi-line values are not allowed")
    return text


def _fault_around_value(text: str) -> int:
    low, high = page_size(), fault_around_max()
    what = f"use a power of two from {low} (fault-around off) to {high}"
    if text.startswith("-"):
        raise KnobError(f"fault_around_bytes={text} is negative; {what}")
    if _ZERO_RE.match(text):
        raise KnobError(
            f"fault_around_bytes={text} is not allowed: write {low} (one page) to turn "
            "fault-around off"
        )
    try:
        value = parse_size(text)
    except SpecError:
        raise KnobError(
            f"fault_around_bytes={text!r} is not a number (bytes, K/M suffix allowed); {what}"
        ) from None
    if value > high:
        raise KnobError(
            f"fault_around_bytes={text} is above the maximum {high} (PTRS_PER_PTE "
            f"{ptrs_per_pte()} x PAGE_SIZE {low}); the kernel refuses it"
        )
    if value != rounded_fault_around(value):
        raise KnobError(
            f"fault_around_bytes={text} is not a power of two of at least {low}: the kernel "
            f"would use {rounded_fault_around(value)}; ask for that"
        )
    return value


def parse_set_options(
    values: list[str], file_dir: str | None = None
) -> list[tuple[str, list[str]]]:
    """['NAME=V1,V2', ...] -> [(name, [value, ...]), ...], everything validated, nothing written.

    `file_dir` is the `file` backing's directory, for read_ahead_kb.
    """
    axes: list[tuple[str, list[str]]] = []
    seen: set[str] = set()
    for option in values:
        name, sep, rest = option.partition("=")
        name = name.strip()
        items = [v.strip() for v in rest.split(",")] if sep else []
        if not name or not items or any(not v for v in items):
            raise KnobError(f"--set wants NAME=V1[,V2...], got {option!r}")
        knob = resolve(name, file_dir)
        if knob.name in seen:
            raise KnobError(f"{knob.name} is given twice; list all its values in one --set")
        seen.add(knob.name)
        axes.append((knob.name, [validate(knob, v) for v in items]))
    return axes


def cross_product(axes: list[tuple[str, list[str]]]) -> list[dict[str, str]]:
    names = [name for name, _ in axes]
    return [dict(zip(names, combo, strict=True))
            for combo in itertools.product(*(values for _, values in axes))]


def read_value(knob: Knob) -> int | str:
    """The value the kernel uses now: a number, or the selected THP choice, or the text."""
    text = _read(knob.path)
    if knob.kind == "thp":
        _, selected = thp_choices(text)
        return selected or text
    return int(text) if re.fullmatch(r"-?\d+", text) else text


def _restorable_text(knob: Knob) -> str:
    value = read_value(knob)
    return value if isinstance(value, str) else str(value)


def _same(knob: Knob, want: str) -> bool:
    now = read_value(knob)
    return (now.split() if isinstance(now, str) else [str(now)]) == want.split()


def _write(knob: Knob, value: str) -> None:
    try:
        with open(knob.path, "w") as f:
            f.write(value)
    except OSError as exc:
        raise KnobError(f"cannot write {value!r} to {knob.path}: {exc.strerror}") from exc


def check_settable(knob: Knob) -> None:
    """Why this knob cannot be changed here (KnobError), checked before anything is written."""
    if os.geteuid() != 0:
        raise KnobError(f"{knob.name} needs root to change (running as uid {os.geteuid()})")
    if knob.kind == "fault_around":
        if not os.path.exists(knob.path):
            raise KnobError(
                f"this kernel has no {knob.path} (needs CONFIG_DEBUG_FS); boot one that has: "
                f"{kernel_hint()}"
            )
        try:
            _read(knob.path)
        except PermissionError:
            mode = lockdown() or "unknown mode"
            raise KnobError(
                f"fault_around_bytes cannot be changed here: the kernel is locked down "
                f"(lockdown={mode}), which forbids debugfs even for root; boot a kernel image "
                f"where it is not: {kernel_hint()}"
            ) from None
    mode = os.stat(knob.path).st_mode
    if not mode & 0o222:
        raise KnobError(f"{knob.path} is read-only in this kernel")
    if os.statvfs(knob.path).f_flag & os.ST_RDONLY:
        raise KnobError(f"{knob.path} is on a read-only mount (a container?); run on the host")


def journal_path() -> str:
    return os.environ.get("FAULTBENCH_JOURNAL") or DEFAULT_JOURNAL


def _process_start(pid: int) -> str | None:
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
    start = _process_start(pid)
    return start is not None and start == data.get("pid_start")


def _refuse_if_journal(path: str) -> None:
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


def _write_journal(path: str, data: dict) -> None:
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
            _refuse_if_journal(path)
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


def _drop_journal(path: str) -> None:
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
    return _resolve_path(path, None)


def _put_back(knobs: list[tuple[Knob, str]]) -> list[str]:
    """Write every original back (last set first), verify; the problems, one line each."""
    problems = []
    for knob, original in reversed(knobs):
        try:
            _write(knob, original)
            if not _same(knob, original):
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
        problems = _put_back(entries)
    for target in data.get("unmount", []):
        if target == DEBUGFS:
            umount(target)
    if problems:
        raise KnobError(f"could not restore from {path}: {'; '.join(problems)}")
    _drop_journal(path)
    return done


class KnobSession:
    """Change knobs for a while; originals come back on every exit path.

    with KnobSession(["fault_around_bytes"]) as session:
        session.apply({"fault_around_bytes": "4096"})  # -> {"fault_around_bytes": 4096}

    Signals SIGINT/SIGTERM/SIGHUP restore first, then go to the handler that was installed
    before the session if it is a Python one (KeyboardInterrupt for SIGINT by default), else
    raise SystemExit(128 + signal), so callers unwind normally.
    """

    def __init__(self, names: list[str], file_dir: str | None = None) -> None:
        self.knobs = [resolve(name, file_dir) for name in names]
        self.path = journal_path()
        self._originals: list[tuple[Knob, str]] = []
        self._unmount: list[str] = []
        self._previous: dict[int, object] = {}
        self._owner = os.getpid()
        self._active = False

    def __enter__(self) -> KnobSession:
        _refuse_if_journal(self.path)
        try:
            if any(k.kind == "fault_around" for k in self.knobs) and not is_mounted(
                DEBUGFS, "debugfs"
            ) and os.geteuid() == 0 and kernel_has_fs("debugfs"):
                mount("debugfs", DEBUGFS)
                self._unmount.append(DEBUGFS)
            for knob in self.knobs:
                check_settable(knob)
            self._originals = [(k, _restorable_text(k)) for k in self.knobs]
            _write_journal(self.path, {
                "format": JOURNAL_FORMAT,
                "pid": os.getpid(),
                "pid_start": _process_start(os.getpid()),
                "argv": sys.argv,
                "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "unmount": self._unmount,
                "knobs": [{"name": k.name, "path": k.path, "original": v}
                          for k, v in self._originals],
            })
        except BaseException:
            self._unmount_ours()
            raise
        self._active = True
        self._install_handlers()
        return self

    def apply(self, setting: dict[str, str]) -> dict[str, int | str]:
        """Write each value; return what the kernel reads back (not what was asked)."""
        if not self._active:
            raise KnobError("KnobSession.apply() outside its `with` block")
        by_name = {k.name: k for k in self.knobs}
        unknown = [name for name in setting if name not in by_name]
        if unknown:
            raise KnobError(f"knob(s) {', '.join(unknown)} not part of this session")
        with _signals_blocked():
            for name, value in setting.items():
                _write(by_name[name], validate(by_name[name], str(value)))
            return {name: read_value(by_name[name]) for name in setting}

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        problems = self.restore()
        self._uninstall_handlers()
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
        with _signals_blocked():
            self._active = False
            problems = _put_back(self._originals)
            self._unmount_ours()
            if not problems:
                _drop_journal(self.path)
        return problems

    def _unmount_ours(self) -> None:
        for target in self._unmount:
            umount(target)
        self._unmount = []

    def _install_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may handle signals; __exit__ still restores
        for signum in _SIGNALS:
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def _uninstall_handlers(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous = {}

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._owner:
            # A forked child inherited this handler: it owns no knobs, so die as by default.
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        problems = self.restore()
        name = signal.Signals(signum).name
        if problems:
            print(f"faultbench: {name}: could not restore {'; '.join(problems)}; run "
                  "`faultbench restore`", file=sys.stderr)
        else:
            print(f"faultbench: {name}: kernel knobs restored", file=sys.stderr)
        previous = self._previous.get(signum)
        self._uninstall_handlers()
        if callable(previous):
            # The handler we displaced (Python's for SIGINT, a runner's for SIGTERM) decides
            # how the program unwinds, as if we had never been there.
            previous(signum, frame)
            return
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)


@contextlib.contextmanager
def _signals_blocked() -> Iterator[None]:
    """Writes and restores are not torn by a signal arriving half-way."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
