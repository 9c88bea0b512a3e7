"""Workloads: TOML files naming axes and their values, expanded into scenarios.

A workload is data, not code. Validation is strict (every error names the file, the key and
what is allowed) and finishes before anything runs. Combinations the spec contract rejects
(Spec.normalized) are dropped with the reason, so a matrix can cross axes freely.

Standard library only: the runner's parent imports this, and so may a guest.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import itertools
import math
import re
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faultbench.errors import FaultbenchError, not_a_file
from faultbench.measurement.naming import scenario_name, unnamed_difference
from faultbench.measurement.spec import (
    MAX_SEED,
    Spec,
    SpecError,
    clipped,
    format_size,
    parse_size,
    shown,
)
from faultbench.measurement.workload_checks import (
    axis_values,
    bounded,
    check_knobs,
    filter_value,
    knob_table,
    subtable,
    typed,
    unknown_keys,
    workload_text,
)

SUFFIX = ".toml"
TOP_KEYS = ("description", "detects", "repetitions", "warmups", "seed", "profile", "guest_memory",
            "defaults", "knobs", "matrix")
# Profiled rounds a workload may ask for: each is a full round of every scenario.
MAX_PROFILE_ROUNDS = 100
# Spec fields a workload may vary. seed is the workload's; uffd_serve only exists to test
# the deadline, so a workload cannot switch serving off.
AXES = (
    "backing", "size", "map", "access", "cache", "pattern", "uffd", "dir",
    "mappers", "mapper_mode", "mapper_kind", "uffd_mappers", "populate", "pagemap",
    "deadline_s", "map_offset", "vmas", "apps", "app_files", "launches", "touch_one_in",
    "app_anon", "fill", "tmpfs_huge",
)
MATRIX_KEYS = (*AXES, "knobs")
KNOB_AXIS = "knob axis "  # prefix of a skipped entry naming a knob axis this machine cannot set
# What one workload may ask for, checked before anything is expanded or scheduled. A run keeps
# its samples in memory to resume and report; 100 000 measurements of the smallest scenario
# take hours. Larger studies are several workloads (or runs) compared with `faultbench compare`.
MAX_SCENARIOS = 10_000
MAX_MEASUREMENTS = 100_000
_FIELD = re.compile(r"[A-Za-z0-9_.-]+")  # an axis or knob name: no glob, no space or /
SPLIT_HINT = "split it into several workload files (e.g. one per [[matrix]] or per backing)"


class WorkloadError(FaultbenchError, ValueError):
    """A workload that cannot run as written; the message names file, key and the fix."""


@dataclass(frozen=True)
class Scenario:

    """One normalized spec under one knob setting (knob values as requested)."""
    name: str
    spec: Spec
    knobs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "spec": self.spec.to_dict(), "knobs": dict(self.knobs)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scenario:
        return cls(data["name"], Spec.from_dict(data["spec"]), dict(data["knobs"]))


@dataclass(frozen=True)
class Unit:
    """One measurement: a scenario in a round (several samples when several mappers). Here,
    beside Scenario, because both the runner and its progress display use it."""
    scenario: Scenario
    round: int
    warmup: bool
    profiled: bool = False


@dataclass
class Workload:
    name: str
    file: str
    description: str
    repetitions: int
    warmups: int
    seed: int
    axes: dict[str, Any]  # the file's content as written, for meta.json
    scenarios: list[Scenario]
    skipped: list[dict[str, str]]  # {scenario, reason}
    # what the command line changed (`faultbench run --set/--only/--repetitions`), as given
    command_line: dict[str, Any] = field(default_factory=dict)
    # rounds after the measured ones whose samples are kernel-profiled (kept out of timings)
    profile: int = 0
    guest_memory: str | None = None  # a booted guest's memory, when the workload needs one
    # the change its main comparison is sized to detect, and with which command
    detects: str = ""


    @property
    def rounds(self) -> int:
        return self.warmups + self.repetitions + self.profile

    def knob_names(self) -> list[str]:
        return sorted({name for s in self.scenarios for name in s.knobs})

    def meta(self) -> dict[str, Any]:
        return {
            "name": self.name, "file": self.file, "description": self.description,
            "repetitions": self.repetitions, "warmups": self.warmups, "seed": self.seed,
            "profile": self.profile, "axes": self.axes, "guest_memory": self.guest_memory,
            **({"command_line": self.command_line} if self.command_line else {}),
        }

    def without_knobs(self, names: set[str], reason: str) -> Workload:
        """This workload with the knob axes `names` dropped (left at the machine's value).

        Scenarios that differed only in those knobs collapse into one; each dropped axis is
        recorded once in `skipped`.
        """
        scenarios: dict[str, Scenario] = {}
        for scenario in self.scenarios:
            knobs = {k: v for k, v in scenario.knobs.items() if k not in names}
            name = scenario_name(scenario.spec, knobs)
            scenarios.setdefault(name, Scenario(name, scenario.spec, knobs))
        skipped = self.skipped + [
            {"scenario": f"{KNOB_AXIS}{name}", "reason": reason} for name in sorted(names)
        ]
        return dataclasses.replace(self, scenarios=list(scenarios.values()), skipped=skipped)

    def select(self, filters: list[str]) -> Workload:
        """Only the scenarios every filter accepts (`faultbench run --only`). A filter is
        `FIELD=V1[,V2...]` on a spec field (an axis) or a knob of the workload, values as a
        workload file writes them (`size=64M`, `fault_around_bytes=64K`), or else a pattern
        on the scenario name: a glob when it has * ? or [, a substring otherwise."""
        if not filters:
            return self
        tests = [self._filter(text) for text in filters]
        kept = [s for s in self.scenarios if all(test(s) for test in tests)]
        if not kept:
            raise WorkloadError(
                f"--only {clipped(' --only '.join(filters), 60)}: none of the "
                f"{len(self.scenarios)} scenarios of {self.name} matches (FIELD=VALUE, or a "
                f"pattern on a name; `faultbench workloads {self.name}` lists them)")
        return dataclasses.replace(
            self, scenarios=kept, command_line={**self.command_line, "only": list(filters)})

    def _filter(self, text: str) -> Any:
        name, sep, rest = text.partition("=")
        if sep and name in self.knob_names():
            from faultbench.measurement.knobs.requested import KnobError, parse_set_options

            try:
                [(_, wanted)] = parse_set_options([text])
            except KnobError as exc:
                raise WorkloadError(f"--only {text}: {exc}") from None
            return lambda s: str(s.knobs.get(name)) in wanted
        if sep and name in AXES:
            try:
                wanted = [filter_value(name, v.strip()) for v in rest.split(",")]
            except SpecError as exc:
                raise WorkloadError(f"--only {shown(text, 100)}: {exc}") from None
            return lambda s: getattr(s.spec, name) in wanted
        # FIELD=VALUE on no field, unless a name holds it (`anon=16M`): it would keep nothing
        if sep and _FIELD.fullmatch(name) and not any(text in s.name for s in self.scenarios):
            raise WorkloadError(
                f"--only {clipped(text, 100)}: {self.name} has no field {clipped(name, 60)}; its "
                f"fields: {', '.join((*AXES, *self.knob_names()))}")
        if any(c in text for c in "*?["):
            return lambda s: any(fnmatch.fnmatchcase(run, text) for run in _name_runs(s.name))
        return lambda s: text in s.name


def _name_runs(name: str) -> Iterator[str]:
    """The name, and each run of its consecutive parts as a table label writes them
    (`seq uffd=none`) or as the name does (`seq,uffd=none`): `--only 'seq*'` matches the
    part `seq` although the whole name starts `memfd,64M,`."""
    yield name
    parts = name.split(",")
    for start in range(len(parts)):
        for stop in range(start + 1, len(parts) + 1):
            yield " ".join(parts[start:stop])
            yield ",".join(parts[start:stop])


def check_size(
    path: Path | str, matrix_axes: list[dict[str, list[Any]]],
    matrix_knobs: list[dict[str, list[Any]]], rounds: int,
) -> None:
    """Refuse, from the axis lengths alone, a workload too large to expand or to run."""
    combinations = sum(
        math.prod(len(v) for v in axes.values()) * math.prod(len(v) for v in knobs.values())
        for axes, knobs in zip(matrix_axes, matrix_knobs, strict=True)
    )
    if combinations > MAX_SCENARIOS:
        raise WorkloadError(
            f"{path}: the matrix crosses into {combinations:,} combinations, more than the "
            f"{MAX_SCENARIOS:,} scenarios a workload may have; {SPLIT_HINT}"
        )
    check_measurements(path, 1, rounds)


def check_measurements(path: Path | str, scenarios: int, rounds: int) -> None:
    if scenarios * rounds > MAX_MEASUREMENTS:
        raise WorkloadError(
            f"{path}: {scenarios:,} scenario(s) x {rounds:,} rounds (warm-ups included) are "
            f"{scenarios * rounds:,} measurements, more than the {MAX_MEASUREMENTS:,} a run "
            f"may make; lower repetitions or {SPLIT_HINT}"
        )


def workload_dirs() -> list[Path]:
    """Where shipped workloads live: the checkout (editable install, or running from the
    repository), then the data files a normal install puts under <prefix>/share."""
    dirs = [Path(__file__).resolve().parents[2] / "workloads"]
    for prefix in (sysconfig.get_path("data"), sys.prefix):
        dirs.append(Path(prefix) / "share" / "faultbench" / "workloads")
    return [d for d in dict.fromkeys(dirs) if d.is_dir()]


def shipped() -> dict[str, Path]:
    """Name -> file of every shipped workload (the first directory wins)."""
    found: dict[str, Path] = {}
    for directory in workload_dirs():
        for path in sorted(directory.glob(f"*{SUFFIX}")):
            found.setdefault(path.stem, path)
    return found


def find(name_or_path: str) -> Path:
    """A shipped workload by name, or a path to a .toml file."""
    if not name_or_path.isprintable():  # NUL, a newline, an escape, bytes not UTF-8
        raise WorkloadError(f"workload {shown(name_or_path, 200)}: a workload's name or "
                            "path has no NUL bytes, control characters or bytes that are not "
                            "UTF-8 (its name goes into results and terminals); rename it")
    path = Path(name_or_path)
    if name_or_path.endswith(SUFFIX) or "/" in name_or_path:
        why = not_a_file(path)
        if why == "no such file":
            raise WorkloadError(f"{clipped(name_or_path)}: no such workload file")
        if why is not None:  # a FIFO, a directory, a name too long, ...
            raise WorkloadError(f"{clipped(name_or_path)}: {why}; a workload is a .toml file")
        return path
    available = shipped()
    if name_or_path not in available:
        names = ", ".join(available) or "none found"
        raise WorkloadError(f"no workload named {shown(name_or_path)}; available: {names}")
    return available[name_or_path]


def _shown(path: Path) -> str:
    """The file as meta.json and `faultbench workloads` name it: a shipped one relative to
    the shipped directory (`workloads/quick.toml`), so that no path of the machine that ran
    it goes into results others read; any other as given."""
    if path.is_absolute() and path.parent in workload_dirs():
        return f"workloads/{path.name}"
    return str(path)


def load(name_or_path: str, knobs: dict[str, list[str]] | None = None,
         repetitions: int | None = None) -> Workload:
    """The workload, with `knobs` (knob name -> values, as knobs.parse_set_options gives
    them: `faultbench run --set`) crossed into every matrix over the file's own values of
    those knobs, and `repetitions` instead of the file's; both recorded in meta.json."""
    path = find(name_or_path)
    import tomllib  # here: a guest reads meta.json, never TOML, and tomllib compiles regexes

    try:
        data = tomllib.loads(workload_text(path))
    except tomllib.TOMLDecodeError as exc:
        raise WorkloadError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:  # [[[[... or {a={a={... nested thousands deep
        raise WorkloadError(f"{path}: nested too deeply to be a workload") from None
    except UnicodeDecodeError as exc:
        raise WorkloadError(f"{path}: not UTF-8 text (byte {exc.start}); TOML files are "
                            "UTF-8") from None
    except OSError as exc:
        raise WorkloadError(f"{path}: {exc.strerror}") from None
    try:
        workload = parse(data, path, knobs, repetitions)
    except RecursionError:  # a dotted knob name thousands of parts long
        raise WorkloadError(f"{path}: nested too deeply to be a workload") from None
    command_line: dict[str, Any] = {}
    if knobs:
        command_line["set"] = knobs
    if repetitions is not None:
        command_line["repetitions"] = repetitions
    return dataclasses.replace(workload, command_line=command_line)


def parse(data: dict[str, Any], path: Path, set_knobs: dict[str, list[str]] | None = None,
          repetitions: int | None = None) -> Workload:
    """Validate all of `data` (errors collected, the first reported) and expand it;
    `set_knobs` and `repetitions` as load()'s `knobs` and `repetitions`."""
    errors: list[str] = []
    written = data
    if repetitions is not None:
        data = {**data, "repetitions": repetitions}

    def fail(where: str, message: str) -> None:
        errors.append(f"{path}: {where}: {message}")

    unknown_keys(data, TOP_KEYS, "workload", fail)
    description = typed(data, "description", str, "a string", "", fail)
    detects = typed(data, "detects", str, "a string", "", fail)
    repetitions = bounded(data, "repetitions", 1, MAX_MEASUREMENTS, 5, fail)
    warmups = bounded(data, "warmups", 0, MAX_MEASUREMENTS, 1, fail)
    seed = bounded(data, "seed", 0, MAX_SEED, 1, fail)
    profile = bounded(data, "profile", 0, MAX_PROFILE_ROUNDS, 0, fail)
    guest_memory = typed(data, "guest_memory", str, "a size such as \"512M\"", None, fail) \
        if "guest_memory" in data else None
    if guest_memory is not None:
        try:
            guest_memory = format_size(parse_size(guest_memory))
        except SpecError as exc:
            fail("guest_memory", str(exc))

    defaults = subtable(data, "defaults", "defaults", fail)
    unknown_keys(defaults, AXES, "defaults", fail)
    default_axes = {
        key: axis_values(defaults[key], f"defaults.{key}", key, fail)
        for key in AXES if key in defaults
    }
    top_knobs = knob_table(data, "knobs", "knobs", fail)
    matrices = data.get("matrix")
    if not isinstance(matrices, list) or not matrices or not all(
        isinstance(m, dict) for m in matrices
    ):
        fail("matrix", "expected one or more [[matrix]] tables (each a cross product of axes)")
        matrices = []

    matrix_axes: list[dict[str, list[Any]]] = []
    matrix_knobs: list[dict[str, list[Any]]] = []
    for index, matrix in enumerate(matrices, 1):
        where = f"matrix[{index}]"
        unknown_keys(matrix, MATRIX_KEYS, where, fail)
        axes = dict(default_axes)
        for key in AXES:
            if key in matrix:
                axes[key] = axis_values(matrix[key], f"{where}.{key}", key, fail)
        matrix_axes.append(axes)
        matrix_knobs.append(
            {**top_knobs, **knob_table(matrix, "knobs", f"{where}.knobs", fail),
             **(set_knobs or {})}
        )
    checked = check_knobs(matrix_knobs, fail)

    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise WorkloadError(errors[0] + more)
    check_size(path, matrix_axes, checked, warmups + repetitions + profile)

    scenarios: dict[str, Scenario] = {}
    skipped: dict[str, str] = {}
    for axes, knobs in zip(matrix_axes, checked, strict=True):
        names = list(axes)
        knob_names = sorted(knobs)
        settings = [dict(zip(knob_names, values, strict=True))
                    for values in itertools.product(*(knobs[k] for k in knob_names))]
        for combo in itertools.product(*(axes[n] for n in names)):
            raw = Spec(seed=seed, **dict(zip(names, combo, strict=True)))
            try:
                spec = raw.normalized()
            except SpecError as exc:
                for setting in settings:
                    skipped.setdefault(scenario_name(raw, setting), str(exc))
                continue
            for setting in settings:
                name = scenario_name(spec, setting)
                known = scenarios.setdefault(name, Scenario(name, spec, setting))
                unnamed = unnamed_difference(known.spec, spec)
                if unnamed:
                    raise WorkloadError(
                        f"{path}: two scenarios are both named {name}: they differ only in "
                        f"{', '.join(unnamed)}, which a name does not show; give "
                        f"{'it' if len(unnamed) == 1 else 'them'} one value per workload")
    if not scenarios:
        raise WorkloadError(
            f"{path}: no valid scenario in the matrix"
            + (f"; e.g. {next(iter(skipped.values()))}" if skipped else "")
        )
    check_measurements(path, len(scenarios), warmups + repetitions + profile)
    return Workload(
        name=path.stem, file=_shown(path), description=description, repetitions=repetitions,
        warmups=warmups, seed=seed, axes=written, scenarios=list(scenarios.values()),
        skipped=[{"scenario": n, "reason": r} for n, r in skipped.items()], profile=profile,
        guest_memory=guest_memory, detects=detects,
    )
