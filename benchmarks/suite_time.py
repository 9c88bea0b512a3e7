"""Where the test suite's time goes: runs it as scripts/test does (every CPU, --dist
loadgroup) with this file as a pytest plugin that records, per test (setup and teardown
included), its wall time, the CPU time of the test's own process (the analysis commands run
there: tests/inprocess.py) and of the children it waited for (faultbench commands, and
their guests' QEMU), then prints the sums and the costliest modules and tests. What is
neither is waiting: sleeps, timeouts, and QEMU processes nobody in the test waited for.
Run as root from the checkout, after scripts/test has installed everything:
python benchmarks/suite_time.py [PYTEST_ARGS...]
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

OUT_ENV = "SUITE_TIME_DIR"  # where each worker writes its lines (this benchmark's own)
_started: dict[str, tuple[float, float, float]] = {}
_controller = False  # pytest-xdist's controller: its workers run the tests and record them
_out: Path | None = None


def pytest_configure(config: object) -> None:
    # read once: a test running faultbench in its own process has it cut os.environ down
    # to what root trusts (measurement/trust.py) until the test ends
    global _controller, _out
    _controller = (not hasattr(config, "workerinput")
                   and bool(config.getoption("numprocesses", None)))  # type: ignore[attr-defined]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    _out = Path(os.environ[OUT_ENV]) / f"{worker}.jsonl"


def _cpu() -> tuple[float, float]:
    own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                         resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def pytest_runtest_logstart(nodeid: str, location: object) -> None:
    if _controller:
        return
    _started[nodeid] = (time.monotonic(), *_cpu())


def pytest_runtest_logfinish(nodeid: str, location: object) -> None:
    if _controller:
        return
    wall, own, children = _started.pop(nodeid)
    own_now, children_now = _cpu()
    assert _out is not None
    with open(_out, "a") as out:
        out.write(json.dumps({"test": nodeid, "wall": time.monotonic() - wall,
                              "own": own_now - own, "children": children_now - children})
                  + "\n")


def main() -> int:
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as where:
        env = {**os.environ, OUT_ENV: where,
               "PYTHONPATH": os.pathsep.join(filter(None, (str(Path(__file__).parent),
                                                           os.environ.get("PYTHONPATH"))))}
        start = time.monotonic()
        done = subprocess.run(
            [str(root / ".venv/bin/python"), "-m", "pytest", "-q", "-n", "auto", "--dist",
             "loadgroup", "-p", Path(__file__).stem, *sys.argv[1:]],
            cwd=root, env=env, capture_output=True, text=True, check=False)
        elapsed = time.monotonic() - start
        rows = [json.loads(line) for path in Path(where).glob("*.jsonl")
                for line in path.read_text().splitlines()]
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "(no output)"
    print(f"pytest: {last.strip('= ')} (status {done.returncode}; {elapsed:.0f} s wall in all)")
    if not rows:
        print(done.stderr[-2000:], file=sys.stderr)
        return 1
    wall, own, children = (sum(r[k] for r in rows) for k in ("wall", "own", "children"))
    print(f"{len(rows)} tests, summed (worker-seconds): wall {wall:.0f}; CPU of the test's own "
          f"process {own:.0f}, of its children {children:.0f}; neither "
          f"{wall - own - children:.0f}")
    modules: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0])
    for r in rows:
        module = modules[r["test"].split("::")[0]]
        module[0] += r["wall"]
        module[1] += r["own"]
        module[2] += r["children"]
        module[3] += 1
    print(f"\n{'wall':>6} {'own':>6} {'child':>6}  n  module (the 15 longest)")
    for name, (w, o, c, n) in sorted(modules.items(), key=lambda kv: -kv[1][0])[:15]:
        print(f"{w:6.1f} {o:6.1f} {c:6.1f} {n:3d} {name}")
    print(f"\n{'cpu':>6} {'own':>6}  test (the 15 costliest in CPU)")
    for r in sorted(rows, key=lambda r: -(r["own"] + r["children"]))[:15]:
        print(f"{r['own'] + r['children']:6.1f} {r['own']:6.1f}  {r['test'][:100]}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
