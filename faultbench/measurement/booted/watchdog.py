"""Cleans up after a guest whose host process died.

`python -P -m faultbench.measurement.booted.watchdog`:

The host keeps the write end of our stdin and tells us, one line each, `scratch DIR` (the
guest's scratch directory, as soon as it exists, and any other directory of the boot's) and
`group PGID` (vng's process group, as soon as it starts). If the pipe closes without the
host saying `done` — the host was killed, even with SIGKILL, which no handler sees — we kill
the guest's process group (vng, virtme-run and QEMU, which would otherwise run on and keep
writing into the results directory) and remove the scratch directories (a 2 GiB disk image,
`measure --kernel`'s copy of its image). Started before vng and the guest's scratch exist,
so no moment of the host's life leaves them behind.
Runs in its own session, so a Ctrl-C at the terminal does not end it first. Standard library.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

from faultbench.measurement.booted.held import remove_held

DONE = b"done"
GRACE_S = 5.0


def kill_group(group: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_S
        while time.monotonic() < deadline:
            os.killpg(group, 0)
            time.sleep(0.1)
        os.killpg(group, signal.SIGKILL)


def main(argv: list[str]) -> int:
    scratch: list[str] = []
    group: int | None = None
    done = False
    for line in sys.stdin.buffer:  # until the host closes its end, or dies
        word, _, value = line.strip().partition(b" ")
        if word == b"scratch":
            scratch.append(value.decode())
        elif word == b"group":
            group = int(value)
        elif word == DONE:
            done = True
    if not done:  # the host cleans up after itself when it can
        if group is not None:
            kill_group(group)
        for directory in scratch:  # the guest filled them: no recursion however deep
            with contextlib.suppress(OSError):
                remove_held(directory)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
