"""What a figure takes from a run's text: the file names figures get from it (a group, a
knob), and the text drawn (a host, a directory, a kernel's label). Both come from files
anyone may have written (`report --out DIR` reads anyone's run), so neither is used as is.

Matplotlib only for the font's glyphs, imported when text is drawn.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import stat
from collections import Counter
from collections.abc import Iterable

from faultbench.errors import printable
from faultbench.measurement.rundir.safefile import ResultsError, SafeDir
from faultbench.measurement.rundir.tempfiles import TEMP_NAME_EXTRA

# The characters a figure's file name keeps of a group's text; runs of others become "_".
_UNSAFE = re.compile(r"[^A-Za-z0-9_.=-]+")
# Joins a name to the hash that tells it apart: never kept by _UNSAFE, so a name with a hash
# cannot be another's without one.
HASHED = "+"
_HASH_HEX = 16
# NAME_MAX (255 bytes) less ".png" or ".svg" and what the temp file a figure is written to
# adds; names are ASCII, a byte per character
MAX_STEM = 255 - TEMP_NAME_EXTRA - len(".png")


# A file a report may have drawn: a name figure_names (or a fixed one) gives, as save() saves
# it. Temp files start with "." and are not one.
_FIGURE_FILE = re.compile(r"[A-Za-z0-9_=+-][A-Za-z0-9_.=+-]*\.(?:png|svg)")
# In `report --out DIR`'s figures/: what the last report drew there, one name a line. DIR
# may hold anything else of its owner's, a plot of their own named as a figure among it.
DRAWN = ".drawn-by-faultbench-report"
_DRAWN_MAX = 1 << 20  # a report draws tens of figures; their names are under 256 bytes each


def remove_drawn(figures: SafeDir) -> None:
    """The figures the last report listed in DRAWN, and the list: files of a figure's name
    only, never a link (nor through one: unlinking does not follow), nothing it did not
    draw. A figures/ without the list (a report before it, or the owner's) loses nothing."""
    try:
        listed = (figures.read_bytes(DRAWN, _DRAWN_MAX) or b"").decode("ascii").split("\n")
    except (ResultsError, UnicodeDecodeError):
        listed = []  # not a list a report wrote: what it names is not taken for figures
    for entry in [*filter(_FIGURE_FILE.fullmatch, listed), DRAWN]:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISREG(os.stat(entry, dir_fd=figures.fd, follow_symlinks=False).st_mode):
                os.unlink(entry, dir_fd=figures.fd)


def record_drawn(figures: SafeDir, drawn: Iterable[str]) -> None:
    """DRAWN: the figures this report wrote into `figures`, for the next one to remove."""
    figures.replace(DRAWN, "".join(f"{name}\n" for name in drawn))


def figure_names(prefix: str, texts: Iterable[str]) -> dict[str, str]:
    """A file name (without extension) per text, distinct and at most MAX_STEM bytes: PREFIX
    + the text with what a file name should not hold replaced by "_". Where that is longer
    than MAX_STEM, or another text of `texts` comes out the same ("dir=a b" and "dir=a_b"),
    it is cut short and ends with "+" and a hash of the text. A text that needs neither
    keeps the name reports always gave it (shipped figures keep their names)."""
    texts = list(dict.fromkeys(texts))
    plain = {text: prefix + _UNSAFE.sub("_", text) for text in texts}
    given = Counter(plain.values())
    names = {}
    for text, name in plain.items():
        if len(name) > MAX_STEM or (given[name] > 1 and name != prefix + text):
            # surrogatepass: a run's JSON may hold a lone surrogate, still a distinct text
            digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
            name = name[:MAX_STEM - 1 - _HASH_HEX] + HASHED + digest[:_HASH_HEX]
        names[text] = name
    return names


def drawable(text: str) -> str:
    """A run's `text` as a figure draws it: control characters escaped (printable), and so
    is any character the font has no glyph for (matplotlib would draw a box and warn,
    quoting the character raw on the terminal); a "$" is drawn as itself, never starts
    mathtext (a host named "a$\\frac{$" ended the report in a parse error)."""
    glyphs = _glyphs()
    return "".join(c if ord(c) in glyphs else _escaped(c)
                   for c in printable(text)).replace("$", r"\$")


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _glyphs() -> frozenset[int]:
    from faultbench.analysis.mpl import font_manager

    return _charmap(font_manager.findfont(font_manager.FontProperties()))


@functools.cache
def _charmap(font_file: str) -> frozenset[int]:
    from faultbench.analysis.mpl import ft2font

    return frozenset(ft2font.FT2Font(font_file).get_charmap())
