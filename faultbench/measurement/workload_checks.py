"""Checks of a workload file's values, each failure reported through `fail(where, message)`
so that parse() can collect them all and name the file and key of the first.

Standard library only.
"""

from __future__ import annotations

import difflib
import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from faultbench.measurement.rundir.regular import open_regular
from faultbench.measurement.spec import (
    ACCESSES,
    BACKINGS,
    CACHES,
    INT_FIELDS,
    MAPPER_KINDS,
    MAPPER_MODES,
    MAPS,
    MAX_DEADLINE_S,
    PATTERN_HELP,
    POPULATES,
    SIZE_FIELDS,
    TMPFS_HUGE,
    UFFD_MAPPERS,
    UFFD_MODES,
    SpecError,
    canonical_pattern,
    parse_fill,
    parse_float,
    parse_int,
    parse_pattern,
    parse_size,
    shown,
)
from faultbench.measurement.specdir import absolute_dir

# The axes whose values are one of a fixed list.
_CHOICES: dict[str, tuple[str, ...]] = {
    "backing": BACKINGS,
    "map": MAPS,
    "access": ACCESSES,
    "cache": CACHES,
    "uffd": UFFD_MODES,
    "mapper_mode": MAPPER_MODES,
    "mapper_kind": MAPPER_KINDS,
    "uffd_mappers": UFFD_MAPPERS,
    "tmpfs_huge": TMPFS_HUGE,
    "populate": POPULATES,
}


# where a workload lists every value of a knob it names twice (knobs.requested.given_twice)
UNDER_ONE_NAME = "under one name"

# A thousand times the largest shipped workload: a file is read whole and parsed in memory,
# and a 2 GB one costs gigabytes and seconds before it is found not to be TOML.
MAX_WORKLOAD_BYTES = 1 << 20


def workload_text(path: Path) -> str:
    """The workload file's text; OSError (EFBIG) when it is over MAX_WORKLOAD_BYTES, read no
    further, or when it is no longer a regular file (find() checked the name, which another
    user may have changed since); UnicodeDecodeError when it is not UTF-8."""
    too_large = OSError(errno.EFBIG, f"over {MAX_WORKLOAD_BYTES:,} bytes, too large to be a "
                        "workload")
    try:
        fd = open_regular(path, MAX_WORKLOAD_BYTES)
    except OSError as exc:
        raise too_large if exc.errno == errno.EFBIG else exc from None
    with os.fdopen(fd, "rb") as stream:  # it may have grown since fstat
        data = stream.read(MAX_WORKLOAD_BYTES + 1)
    if len(data) > MAX_WORKLOAD_BYTES:
        raise too_large
    return data.decode("utf-8")


def unknown_keys(
    table: dict[str, Any], allowed: tuple[str, ...], where: str,
    fail: Callable[[str, str], None],
) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            fail(where, f"unknown key {key!r}{hint}; allowed: {', '.join(allowed)}")


def _describe(value: Any) -> str:
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)
    return f"{kind} ({value!r})"


def typed(
    data: dict[str, Any], key: str, kind: type, kind_text: str, default: Any,
    fail: Callable[[str, str], None],
) -> Any:
    value = data.get(key, default)
    # bool is an int subclass; `repetitions = true` is a mistake, not 1
    if not isinstance(value, kind) or isinstance(value, bool):
        fail(key, f"expected {kind_text}, got {_describe(value)}")
        return default
    return value


def bounded(
    data: dict[str, Any], key: str, low: int, high: int, default: int,
    fail: Callable[[str, str], None],
) -> int:
    """An integer field from low to high; the default (after a failure) when it is not."""
    value = typed(data, key, int, "an integer", default, fail)
    if not low <= value <= high:
        fail(key, f"must be an integer from {low} to {high}, got {value}")
        return default
    return value


def subtable(
    data: dict[str, Any], key: str, where: str, fail: Callable[[str, str], None]
) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        fail(where, f"expected a table, got {_describe(value)}")
        return {}
    return value


def knob_table(
    data: dict[str, Any], key: str, where: str, fail: Callable[[str, str], None]
) -> dict[str, list[Any]]:
    """Knob name -> values. Dotted names written unquoted (thp.enabled = ...) arrive as
    nested tables; they are joined back, so the same name written quoted too is refused."""
    out: dict[str, list[Any]] = {}

    def walk(table: dict[str, Any], prefix: str) -> None:
        for name, value in table.items():
            full = f"{prefix}{name}"
            if isinstance(value, dict):
                walk(value, f"{full}.")
                continue
            if full in out:  # TOML keeps `vm.swappiness = ..` and `"vm.swappiness" = ..` apart
                from faultbench.measurement.knobs.requested import given_twice

                fail(f"{where}.{full}", given_twice(full, UNDER_ONE_NAME))
                continue
            values = value if isinstance(value, list) else [value]
            bad = [v for v in values if isinstance(v, bool) or not isinstance(v, int | str)]
            if bad or not values:
                fail(f"{where}.{full}", "expected a value or a non-empty list of values "
                     f"(integers or strings), got {_describe(value)}")
                continue
            out[full] = values

    walk(subtable(data, key, where, fail), "")
    return out


def check_knobs(
    matrices: list[dict[str, list[Any]]], fail: Callable[[str, str], None]
) -> list[dict[str, list[str]]]:
    """Each matrix's knob axes as the knob module, the one authority on knobs, spells them
    (canonical name, values as written to the kernel: `64K` becomes `65536`), so the same
    setting always gets the same scenario name."""
    if not any(matrices):
        return [{} for _ in matrices]
    from faultbench.measurement.knobs.catalog import MAX_KNOBS, KnobError
    from faultbench.measurement.knobs.requested import given_twice, parse_set_options

    checked = []
    for knobs in matrices:
        axes: dict[str, list[str]] = {}
        for name, values in knobs.items():
            try:
                [(canonical, parsed)] = parse_set_options(
                    [f"{name}={','.join(map(str, values))}"]
                )
            except KnobError as exc:
                fail(f"knobs.{name}", str(exc))
                continue
            if canonical in axes:  # vm.swappiness and /proc/sys/vm/swappiness
                fail(f"knobs.{name}", given_twice(canonical, UNDER_ONE_NAME))
            axes[canonical] = parsed
        checked.append(axes)
    names = {name for axes in checked for name in axes}
    if len(names) > MAX_KNOBS:
        fail("knobs", f"{len(names)} knobs, more than the {MAX_KNOBS} a run may set")
    return checked


def axis_values(
    value: Any, where: str, key: str, fail: Callable[[str, str], None]
) -> list[Any]:
    values = value if isinstance(value, list) else [value]
    if not values:
        fail(where, "an axis needs at least one value")
    good = []
    for item in values:
        problem = axis_value_problem(key, item)
        if problem:
            fail(where, problem)
        else:
            good.append(absolute_dir(item) if key == "dir" else item)
    return good


def _name_text_problem(key: str, text: str) -> str | None:
    """Why free text cannot be part of a scenario name, or None if it can. A name joins
    fields with "," and writes them "field=value", so text holding either would let two
    scenarios share a name (one then never runs); control characters would reach pyperf
    metadata and terminals. Refused rather than escaped: a name shows the text as written."""
    if any(c in ",=" or not c.isprintable() for c in text):
        return (f"{key} {shown(text, 100)} has a ',', '=' or control character, which a "
                "scenario name cannot hold; rename it")
    return None


def axis_value_problem(key: str, value: Any) -> str | None:
    """Why `value` cannot be a value of axis `key`, or None if it can."""
    if key in _CHOICES:
        allowed = _CHOICES[key]
        if isinstance(value, str) and value in allowed:
            return None
        close = difflib.get_close_matches(str(value), allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{value!r} is not one of: {', '.join(allowed)}{hint}"
    if key == "pagemap":
        return None if isinstance(value, bool) else \
            f"expected true or false, got {_describe(value)}"
    if isinstance(value, bool):
        return (f"expected {'a size' if key in ('size', 'map_offset') else 'a value'}, got "
                f"{_describe(value)}")
    try:
        if key in ("size", "map_offset"):
            if not isinstance(value, int | str):
                return f"expected a size such as \"64M\" or a byte count, got {_describe(value)}"
            parse_size(value, key, 1 if key == "size" else 0)
        elif key == "fill":
            parse_fill(value)
        elif key == "pattern":
            if not isinstance(value, str):
                return f"expected a string ({PATTERN_HELP}), got {_describe(value)}"
            parse_pattern(value)
        elif key == "app_anon":
            if not isinstance(value, int | str):
                return f"expected a size such as \"64M\" or 0, got {_describe(value)}"
            if value != 0:
                parse_size(value)
        elif key in INT_FIELDS:
            low, high = INT_FIELDS[key]
            if not isinstance(value, int) or not low <= value <= high:
                return f"expected an integer from {low} to {high}, got {_describe(value)}"
        elif key == "deadline_s":
            if not isinstance(value, int | float) or not 0 < value <= MAX_DEADLINE_S:
                return (f"expected a number of seconds above 0 and at most "
                        f"{MAX_DEADLINE_S:.0f}, got {_describe(value)}")
        elif key == "dir":
            if not isinstance(value, str) or not value or "\0" in value:
                return f"expected a directory path (without NUL bytes), got {_describe(value)}"
            # the name holds the directory as resolved (axis_values), the working
            # directory's part included
            return _name_text_problem(key, absolute_dir(value))
    except SpecError as exc:
        return str(exc)
    return None


def filter_value(name: str, text: str) -> Any:
    """A `--only FIELD=VALUE` filter's value as the normalized spec holds it, checked as a
    workload file's value is."""
    if not text:
        raise SpecError("give a value after = (FIELD=V1[,V2...])")
    value: Any = text
    if name in INT_FIELDS:
        value = parse_int(text, name)
    elif name == "deadline_s":
        value = parse_float(text, name)
    elif name in SIZE_FIELDS:
        value = parse_size(text, name, 0)
    elif name == "pagemap":
        value = {"true": True, "false": False}.get(text, text)
    problem = axis_value_problem(name, value)
    if problem:
        raise SpecError(problem)
    if name == "dir":
        return absolute_dir(text)
    return canonical_pattern(text) if name == "pattern" else value
