"""A guest's output as the host shows it. The guest runs the kernel under test and may print
anything: no escape sequence of its reaches the host's terminal (control characters are
shown escaped, bytes that are no UTF-8 as \\xNN), and no more than SHOWN_MAX bytes of a
stream are shown. Standard library only."""

from __future__ import annotations

import codecs
from typing import TextIO

SHOWN_MAX = 4 << 20  # a guest's faultbench prints kilobytes; a lying one, all it likes
KEPT = "\n\t"


class GuestStream:
    """One of the guest's streams, shown on `sink` (whose encoding it may not share)."""

    def __init__(self, sink: TextIO) -> None:
        self._sink = sink
        self._decode = codecs.getincrementaldecoder("utf-8")(errors="backslashreplace").decode
        self._left = SHOWN_MAX
        self._cr = ""  # a carriage return that may turn out to end a console line (\r\n)

    def write(self, chunk: bytes, end: bool = False) -> None:
        """Shows `chunk`; `end`: the stream ended (what waited for more bytes is shown)."""
        if self._left <= 0:
            return
        taken = chunk[:self._left]
        self._left -= len(taken)
        end = end or self._left <= 0
        text = self._cr + self._decode(taken, final=end)
        self._cr = "\r" if text.endswith("\r") and not end else ""
        if not text:
            return
        text = (text[:-1] if self._cr else text).replace("\r\n", "\n")
        shown = "".join(c if c.isprintable() or c in KEPT else repr(c)[1:-1] for c in text)
        if self._left <= 0:
            shown += (f"\n[the guest printed more than {SHOWN_MAX >> 20} MiB here: the rest "
                      "is not shown]\n")
        self._sink.flush()
        buffer = getattr(self._sink, "buffer", None)
        if buffer is None:
            self._sink.write(shown)
        else:
            buffer.write(shown.encode(self._sink.encoding or "utf-8", "backslashreplace"))
            buffer.flush()
