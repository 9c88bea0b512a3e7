"""Text tables and numbers as they go into commit messages: at most 72 columns."""

from __future__ import annotations

import math
import string
import textwrap
from collections.abc import Sequence
from typing import Any

from faultbench.errors import printable

WIDTH = 72


# Above this a number is written 1.2e+09: a count that wide says more as a magnitude, and
# a 300-digit value (from a corrupt file) must not push a table past 72 columns.
PLAIN_MAX = 1e7


def fmt(value: Any) -> str:
    """A number in as few characters as keep its precision meaningful; '-' when missing or
    not finite (NaN: a null from the kernel or too few samples; inf: a ratio over zero)."""
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float: not a measurement
        return "-"
    except (TypeError, ValueError):
        return "-" if value is None else str(value)
    if not math.isfinite(number):
        return "-"
    magnitude = abs(number)
    if magnitude >= PLAIN_MAX:
        return f"{number:.2g}" if magnitude < 1e100 else f"{number:.1e}"
    if magnitude >= 100 or number == int(number):
        return f"{number:.0f}"
    if magnitude >= 10:
        return f"{number:.1f}"
    if magnitude >= 1:
        return f"{number:.2f}"
    return f"{number:.3g}"


def fmt_pct(value: Any) -> str:
    """A signed percentage: one decimal below 100%, none above (+1251%, not +1251.2%)."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return "-"
    if not math.isfinite(number):
        return "-"
    if abs(number) >= PLAIN_MAX:
        return f"{number:+.1e}%"
    return f"{number:+.1f}%" if abs(number) < 100 else f"{number:+.0f}%"


def fmt_fixed(values: Sequence[Any]) -> list[str]:
    """A column of numbers at one precision: the decimals `fmt` gives its most precise
    value, for all (so 1 and 0.0626 print as 1.0000 and 0.0626)."""
    decimals = 0
    for value in values:
        text = fmt(value)
        if "." in text and "e" not in text:
            decimals = max(decimals, len(text.split(".")[1]))
    return [fmt(v) if fmt(v) == "-" or "e" in fmt(v) else f"{float(v):.{decimals}f}"
            for v in values]


def label_room(headers: Sequence[str], rows: Sequence[Sequence[str]], width: int = WIDTH
               ) -> int:
    """The columns a table's first (label) column has beside its numbers."""
    headers, rows = _printed(headers, rows)
    numeric = [max(len(headers[i]), *(len(r[i]) for r in rows)) if rows else len(headers[i])
               for i in range(1, len(headers))]
    return width - sum(numeric) - len(numeric)


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]], width: int = WIDTH,
               groups: Sequence[str] | None = None) -> str:
    """Left-aligned first column, right-aligned others, at most `width` columns.

    groups: per row, a heading the rows below it share (printed on its own line when it
    changes; the rows' labels are then indented), or None for a row that stands alone. A
    label too long for the room left by the
    numbers goes on its own line, numbers below. Cells are laid out as printed: control
    characters of foreign text (a profiled symbol, a host name) escaped, as
    errors.printable_lines would escape them afterwards, wider than they came.
    """
    headers, rows = _printed(headers, rows)
    if groups is not None:
        groups = [None if group is None else printable(group) for group in groups]
        rows = [[row[0] if group is None else "  " + row[0], *row[1:]]
                for row, group in zip(rows, groups, strict=True)]
    numeric = [
        max(len(headers[i]), *(len(r[i]) for r in rows)) if rows else len(headers[i])
        for i in range(1, len(headers))
    ]
    room = width - sum(numeric) - len(numeric)
    longest = max([len(headers[0]), *(len(r[0]) for r in rows)])
    label_width = max(min(longest, room), 1)

    def line(label: str, cells: Sequence[str]) -> str:
        right = " ".join(c.rjust(w) for c, w in zip(cells, numeric, strict=True))
        return f"{label.ljust(label_width)} {right}".rstrip()

    rule = "-" * min(width, label_width + sum(numeric) + len(numeric))
    out = [line(headers[0][:label_width], headers[1:]), rule]
    for i, row in enumerate(rows):
        if groups is not None and groups[i] is not None and (
                i == 0 or groups[i] != groups[i - 1]):
            out.append(groups[i])
        if len(row[0]) > label_width:
            out.extend(textwrap.wrap(row[0], width))
            out.append(line("", row[1:]))
        else:
            out.append(line(row[0], row[1:]))
    return "\n".join(out) + "\n"


def _printed(headers: Sequence[str], rows: Sequence[Sequence[str]]
             ) -> tuple[list[str], list[list[str]]]:
    return [printable(h) for h in headers], [[printable(c) for c in row] for row in rows]


def wrap(text: str) -> str:
    """`text` filled to WIDTH as printed: its control characters escaped first (whitespace
    aside, which filling turns into spaces)."""
    shown = "".join(c if c in string.whitespace else printable(c) for c in text)
    return textwrap.fill(shown, WIDTH, subsequent_indent="  ") + "\n"
