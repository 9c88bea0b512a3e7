"""Row labels: which spec and knob columns tell rows apart, one short word per value, and
the order tables list values in. Shared by reports, comparisons and figures.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from faultbench.analysis.frame import FAULT_AROUND_KNOB
from faultbench.analysis.text import label_room, wrap
from faultbench.measurement.rundir.checks import UNSET
from faultbench.measurement.spec import (
    ACCESSES,
    BACKINGS,
    CACHES,
    MAPPER_KINDS,
    MAPPER_MODES,
    MAPS,
    UFFD_MAPPERS,
    UFFD_MODES,
    format_size,
    parse_float,
)

# The shape of an app-launch session (apps > 0); they say nothing of other scenarios.
APP_FIELDS = ("apps", "app_files", "launches", "touch_one_in", "app_anon")
# Spec fields in the order labels name them; the rest of the spec (deadline_s, uffd_serve,
# perf) only tunes the harness. `kernel` (booted runs: the --kernel label) comes first: rows
# of one kernel read together; then `machine` (runs of several machines merged by
# `faultbench merge`), never pooled.
LABEL_FIELDS = (
    "kernel", "machine", "backing", "tmpfs_huge", "size", "map", "access", "cache", "fill",
    "pattern", "uffd",
    "mappers", "mapper_mode", "mapper_kind", "uffd_mappers", "populate", "pagemap",
    "map_offset", "vmas", "dir", *APP_FIELDS,
)
# The label fields whose values are numbers (pagemap: a bool); the others are names (a
# kernel label 6.10 is not the number 6.1), which comparisons match as the exact text.
NUMERIC_FIELDS = ("size", "mappers", "pagemap", "map_offset", "vmas", *APP_FIELDS)
# Values that read on their own in a label; the others need their field's name.
_BARE_FIELDS = {"backing", "map", "access", "cache", "pattern", "mapper_mode", "mapper_kind"}
# Per-page metrics that statistics and tables offer, with their units.
# Tables list values in the order the argument goes (fault-around on before off, one mapper
# before several), not alphabetically.
_ORDER: dict[str, tuple[str, ...]] = {
    "backing": BACKINGS, "map": MAPS, "access": ACCESSES, "cache": CACHES,
    "pattern": ("seq", "reverse", "stride", "random", "sparse"), "uffd": UFFD_MODES,
    "mapper_mode": MAPPER_MODES, "mapper_kind": MAPPER_KINDS, "uffd_mappers": UFFD_MAPPERS,
    "role": ("only", "first", "later"),
}
# Fields only some backings have (the spec refuses them for the others): those others' rows
# say nothing of them, and a backing none of whose rows sets one needs no `=unset`.
_BACKINGS_OF = {"tmpfs_huge": ("tmpfs",), "dir": ("tmpfs", "file")}


def is_unset(value: Any) -> bool:
    """Whether a value read back is null (None, or NaN where pandas filled a gap)."""
    return value is None or (isinstance(value, float) and np.isnan(value))


def varies(column: pd.Series) -> bool:
    """Whether a column holds more than one value, unset (null) counting as one of them
    (`nunique` alone drops it: "always" and null would be one value)."""
    return column.astype(str).where(column.notna()).nunique(dropna=False) > 1


def label_columns(df: pd.DataFrame, extra: Sequence[str] = (),
                  kernels: bool | None = None) -> list[str]:
    """The spec and knob columns that vary among valid rows (with those --strict left out,
    so that rows keep their labels): what tells rows apart; and `kernel` when `kernels`
    (None: several_kernels(df)) whether it varies or not."""
    candidates = [*LABEL_FIELDS, *df.attrs.get("knob_columns", []), *extra]
    valid = df[df["ok"] | df.get("interfered", False)] if "ok" in df else df
    kept = several_kernels(df) if kernels is None else kernels
    return [c for c in candidates if c in valid and (tells_apart(valid, c) or (
        c == "kernel" and kept))]


def several_kernels(df: pd.DataFrame) -> bool:
    """Whether a run of `df` booted several kernels. Its rows keep their kernel even when
    one kernel alone has valid samples (every boot of another failed): the header names
    every kernel, so rows with no kernel would be no kernel's in particular."""
    return any(len(meta.get("kernels") or []) > 1
               for meta in df.attrs.get("meta", {}).values())


def tells_apart(df: pd.DataFrame, column: str) -> bool:
    """Whether `column` varies among the rows of `df` that have it (`tmpfs_huge` only among
    tmpfs rows: memfd rows have none), unset being a value of its own."""
    return varies(df.loc[_has_field(df, column), column])


def _has_field(df: pd.DataFrame, column: str) -> pd.Series:
    """The rows of a backing that has `column` (all rows for the fields every backing has)."""
    if column not in _BACKINGS_OF or "backing" not in df:
        return pd.Series(True, index=df.index)
    return df["backing"].isin(_BACKINGS_OF[column])


def dir_names(values: Iterable[Any]) -> dict[str, str]:
    """Each directory of `values` by the shortest trailing part of its path that no other
    ends in: its last component when that alone tells them apart (full paths would swamp a
    72-column row), `d1/x` and `d2/x` for two `x`, the full path when only that differs.
    A directory named `unset` keeps a parent, so that it never reads as no directory."""
    paths = {str(v): PurePosixPath(str(v)).parts for v in values
             if isinstance(v, str) and v}
    names = {}
    for text, parts in paths.items():
        others = [(UNSET,), *(p for t, p in paths.items() if t != text)]
        length = next((k for k in range(1, len(parts))
                       if not any(p[-k:] == parts[-k:] for p in others)), len(parts))
        names[text] = str(PurePosixPath(*parts[-length:])) if parts else text
    return names


def format_value(column: str, value: Any, dirs: Mapping[str, str] | None = None) -> str:
    """One label word for a column's value, `UNSET` for none (`vm.swappiness=unset`).
    A directory is named as `dirs` (`dir_names` of the directories it is told apart from)
    names it, else by its last component."""
    if is_unset(value):
        text = UNSET
    elif column in ("size", "map_offset", "app_anon", FAULT_AROUND_KNOB) \
            and isinstance(value, int | float | np.number) and value > 0:
        text = format_size(int(value))
    elif column == "dir":
        text = (dirs if dirs is not None else dir_names([value])).get(str(value), str(value))
    else:
        text = str(value)
    if column in _BARE_FIELDS:
        return text
    if column == "kernel":
        return f"{text}:"
    if column == "role":
        return f"[{text}]" if text in ("first", "later") else ""
    if column == "mappers":
        return f"x{text}" if text != "1" else ""
    short = {FAULT_AROUND_KNOB: "fa", "uffd_mappers": "reg", "map_offset": "offset",
             "app_files": "files", "touch_one_in": "one-in", "app_anon": "anon"}.get(
        column, column)
    return f"{short}={text}"


def _several_mappers(df: pd.DataFrame) -> pd.Series:
    """Rows of a scenario with several mappers: by `mappers`, else by `role` (tables keyed
    on the label columns keep `role` but not a `mappers` that does not vary)."""
    if "mappers" in df:
        return df["mappers"] > 1
    if "role" in df:
        return df["role"] != "only"
    return pd.Series(False, index=df.index)


def labels(df: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """One short human label per row from the given columns.

    Fields that only matter with several mappers (their mode, which ones register with
    userfaultfd) are left out for single-mapper rows, and their kind unless one thread
    mapper (it faults among the caller's mappings), a session's shape for rows that are
    no app-launch session, `tmpfs_huge` and `dir` for rows of backings without them (and
    their `=unset` for a backing no row of which sets them); `reg=all`, `populate=none`,
    `fill=write`, `vmas=0` and `anon=0` are the defaults, left out.
    """
    if not columns:
        return pd.Series("all", index=df.index)
    multi = _several_mappers(df)
    dirs = dir_names(df["dir"].unique()) if "dir" in columns else None
    parts = []
    for column in columns:
        words = df[column].map(lambda v, c=column: format_value(c, v, dirs))
        if column in ("mapper_mode", "mapper_kind", "uffd_mappers"):
            words = words.where(multi | ((column == "mapper_kind") & (df[column] == "thread")),
                                "")
        if column in _BACKINGS_OF and "backing" in df:
            set_in_backing = df[column].notna().groupby(df["backing"]).transform("any")
            words = words.where(_has_field(df, column) & set_in_backing, "")
        if column == "uffd_mappers":
            registers = df["uffd"] != "none" if "uffd" in df else True
            words = words.where((df[column] != "all") & registers, "")
        if column == "populate":  # no populate step is the default, left out
            words = words.where(df[column] != "none", "")
        if column == "fill":  # 1 MiB write(2)s: the default, and every run's before fill
            words = words.where(df[column] != "write", "")
        if column in ("vmas", "app_anon"):  # no padding, no heap: the defaults
            words = words.where(df[column] != 0, "")
        if column in APP_FIELDS and "apps" in df:
            words = words.where(df["apps"] > 0, "")
        if column == "pagemap":  # walking pagemap is the default, left out
            words = df[column].map(lambda walked: "" if walked else "no-pagemap")
        parts.append(words)
    joined = parts[0].str.cat(parts[1:], sep=" ") if len(parts) > 1 else parts[0]
    return joined.str.split().str.join(" ").replace("", "all")


def spelled_number(text: str) -> bool:
    """A number spelled otherwise than a knob reads back, in integer digits: 1e2, 100.0, 061
    (compare's RUN:VALUE and --baseline refuse it; in the files 60 and 60.0 are one value)."""
    try:
        parse_float(text)
    except ValueError:
        return False
    return re.fullmatch(r"-?(0|[1-9][0-9]*)", text) is None


def spec_order(column: pd.Series, given: Sequence[str] = ()) -> pd.Series:
    """Sort key for `DataFrame.sort_values(key=...)`: the order of _ORDER, else `given` (a
    knob's values as the spec gave them: `--set vm.swappiness=60,10` lists 60 first), else
    as text for the names among the label fields (a machine, a directory), else numeric.

    Parametrised values sort by their kind in _ORDER, then by their number, so strides come
    in natural order (stride:1, stride:2, stride:4 ... stride:64), not as text."""
    if column.empty:  # str.partition of no rows gives no columns to unpack
        return column
    order = _ORDER.get(str(column.name)) or tuple(given) or None
    if column.name == "kernel":  # as the run booted them: its first boot is its first kernel
        order = tuple(str(v) for v in pd.unique(column))
    if order is not None:
        words = column.map(order_word) if given else column.astype(str)
        kind, _, parameter = words.str.partition(":").T.to_numpy()
        rank = pd.Series(kind, index=column.index).map(
            {v: i for i, v in enumerate(order)}).fillna(len(order))
        number = pd.to_numeric(pd.Series(parameter, index=column.index), errors="coerce")
        return rank * 1e9 + number.fillna(0).clip(upper=1e9 - 1)
    if column.name in LABEL_FIELDS and column.name not in NUMERIC_FIELDS:
        return column.astype(str)  # names: machines 6.1 and 6.10 are two, in text order
    numeric = pd.to_numeric(column, errors="coerce")
    return numeric if numeric.notna().any() else column.astype(str)


def sort_labels(table: pd.DataFrame, columns: Sequence[str],
                given: dict[str, list[str]]) -> pd.DataFrame:
    """`table` with its rows in the order tables list them (`spec_order`), each knob's values
    in the order `given` (`knob_order`)."""
    present = [c for c in columns if c in table]
    if not present:
        return table
    return table.sort_values(
        present, key=lambda column: spec_order(column, given.get(str(column.name), ())),
        kind="stable")


def knob_order(*frames: pd.DataFrame) -> dict[str, list[str]]:
    """Each knob's values in the order the scenarios of the frames' runs (their meta.json,
    the `meta` attr `frame.load` sets) first use them: the order the workload or `--set`
    gave them."""
    order: dict[str, list[str]] = {}
    for frame in frames:
        for meta in frame.attrs.get("meta", {}).values():
            for scenario in meta.get("scenarios", []):
                for name, value in scenario["knobs"].items():
                    words = order.setdefault(name, [])
                    if order_word(value) not in words:
                        words.append(order_word(value))
    return order


def order_word(value: Any) -> str:
    """A knob value as `knob_order` spells it, whether it was read as 60, 60.0 or "60"."""
    if isinstance(value, float | np.floating) and value.is_integer():
        return str(int(value))
    return str(value)


def split_labels(df: pd.DataFrame, columns: Sequence[str], room: int
                 ) -> tuple[pd.Series, pd.Series] | None:
    """Labels too long for a table's `room`, split so that each row fits one line: a heading
    from the first label columns (rows sharing it are listed under it) and a row label from
    the rest, for the fewest heading columns that fit; None when no split fits. A row alone
    under its heading whose rest says nothing keeps its full label and stands alone
    (heading None; a table wraps it if it is too long): a heading over an "x1" alone would
    read as a row without numbers. A row whose rest says nothing under a shared heading is
    "x1" (one mapper, beside rows of several) or "-"."""
    columns = list(columns)
    full = labels(df, columns)
    single = _several_mappers(df).eq(False) if "mappers" in columns else False
    for k in range(1, len(columns)):
        heading, rest = labels(df, columns[:k]), labels(df, columns[k:])
        alone = (heading.map(heading.value_counts()) == 1) & (rest == "all")
        rest = rest.mask((rest == "all") & single, "x1").replace("all", "-")
        if rest[~alone].str.len().max() + 2 <= room if (~alone).any() else True:
            return heading.where(~alone, None), rest.where(~alone, full)
    return None


def grouped_rows(table: pd.DataFrame, columns: Sequence[str], headers: Sequence[str],
                 rows: list[list[str]]) -> tuple[list[list[str]], list[str | None] | None]:
    """`rows` (label first) and the `groups` for `text.text_table`: labels split under
    headings (`split_labels`) when the longest does not fit beside the numbers."""
    room = label_room(headers, rows)
    if not rows or max(len(row[0]) for row in rows) <= room:
        return rows, None
    split = split_labels(table, columns, room)
    if split is None:
        return rows, None
    return ([[label, *row[1:]] for label, row in zip(split[1], rows, strict=True)],
            list(split[0]))


def constants_line(df: pd.DataFrame, label_cols: list[str]) -> str:
    """The fields every row shares, so the table labels need only say what differs."""
    ok = df[df["ok"]]
    if ok.empty:
        return ""
    # the header names the kernels; the app-launch section, its sessions
    # and a field every row leaves unset (no `dir`, no `tmpfs_huge`) needs no word
    fixed = [c for c in LABEL_FIELDS if c in ok and c not in label_cols
             and c not in ("mappers", "kernel", *APP_FIELDS) and ok[c].notna().iloc[0]]
    return wrap("All rows: " + labels(ok.head(1), fixed).iloc[0] + ".")
