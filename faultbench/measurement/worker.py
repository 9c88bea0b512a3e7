"""The runner's worker: measures one spec per request, in its own process.

Protocol: `{"ready": PID}` once the measurement plane is imported, then one request per
line on stdin (`{"spec": {...}, "profile": bool}`), one JSON line per request on the
protocol fd (`{"samples": [...]}` or `{"error": "..."}`); EOF ends the worker. A crash or
hang here costs the runner one sample, not the run. Imports only the measurement plane.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """A runner killed with SIGKILL cannot stop its worker: the kernel signals us instead.

    SIGTERM rather than SIGKILL, so the measurement in progress (bounded by its deadline)
    reaps its mapper processes first; the handler then kills what is left of our process
    group (mappers included) and us.
    """
    if os.getpgid(0) == os.getpid():  # our own group (the runner starts us so): safe to kill
        signal.signal(signal.SIGTERM, lambda signum, frame: os.killpg(0, signal.SIGKILL))
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: EOF on stdin still ends the worker once the sample finishes
    if os.getppid() == 1:
        sys.exit(0)  # the parent died before prctl took effect


def main() -> int:
    _die_with_parent()
    # Native code or a library printing to fd 1 must not corrupt the protocol: keep the
    # protocol on a private copy of fd 1 and point fd 1 at stderr.
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    from faultbench.measurement.measure import measure_mappers
    from faultbench.measurement.spec import Spec

    protocol.write(json.dumps({"ready": os.getpid()}) + "\n")
    for line in sys.stdin:
        try:
            request = json.loads(line)
            samples = measure_mappers(Spec.from_dict(request["spec"]), bool(request["profile"]))
            reply: dict[str, object] = {"samples": [s.to_dict() for s in samples]}
        except Exception as exc:  # one bad spec must not take the worker down
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        protocol.write(json.dumps(reply) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
