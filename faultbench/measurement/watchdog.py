"""Cleans up after a guest whose host process died.

`python -P -m faultbench.measurement.watchdog PGID DIR`:

The host keeps the write end of our stdin. If it closes without the host saying `done` —
the host was killed, even with SIGKILL, which no handler sees — we kill the guest's process
group (vng, virtme-run and QEMU, which would otherwise run on and keep writing into the
results directory) and remove the guest's scratch directory (its 2 GiB disk image).
Runs in its own session, so a Ctrl-C at the terminal does not end it first. Standard library.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time

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
    group, scratch = int(argv[1]), argv[2]
    said = sys.stdin.buffer.read()  # until the host closes its end, or dies
    if said != DONE:  # the host cleans up after itself when it can
        kill_group(group)
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
