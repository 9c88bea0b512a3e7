"""The pytest-xdist groups: scripts/test runs the suite on every CPU with `--dist loadgroup`,
which runs the tests of one group one after another on one worker. Every other test may run
beside any other.

HOST: tests that change what the whole machine shares, or read it expecting no one else
changed it. faultbench's knob lock (/run/faultbench/lock) refuses a second knob writer at
once rather than waiting (measurement/knobs/knoblock.py), so two knob-writing tests side by
side fail; a test's own mount of debugfs or securityfs outside faultbench's private mount
namespace shows in another's /proc/mounts (the special_mounts fixture). faultbench's own
mounts are private: a test that runs faultbench without knobs, and without a tmpfs of its own
beside the default journal, needs no group.

ALONE (with HOST): a test that sets a knob other tests' counts depend on (a THP knob to
`always`: every memfd's faults change) runs with no other test beside it (tests/conftest.py).
So does one that sets any THP knob to another value: a native run watches every THP knob it
does not set, and leaves out what it measured while one changed (`knob_drift`), so a test
beside it would lose samples (thp.defrag changes no count, but is watched). The knobs the
shipped workloads pin (thp.shmem_enabled = never, this machine's default) and vm.swappiness
change nothing another test sees.

The others keep the tests that share one guest run (a session- or module-scoped run that
boots) on one worker, so that the guests boot once, not once per worker. What most of them
read was counted in a guest, or (the notebook, the docs' quoted numbers) comes from shipped
results: no host knob changes it, so they run beside an ALONE test too, rather than make it
wait minutes for them (UNTOUCHED_BY_HOST_KNOBS).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HOST = pytest.mark.xdist_group("host")
ALONE = pytest.mark.alone
# analysis_runs.killed_kernels_run: five boots
KERNELS_RUN = pytest.mark.xdist_group("kernels-run")
# analysis_runs.tcg_run: one boot
SWEEP_RUN = pytest.mark.xdist_group("sweep-run")
# test_guest's scenarios: one boot running every knob scenario
GUEST_SCENARIOS = pytest.mark.xdist_group("guest-scenarios")
# test_scale's parallel_run and the shards merged_shards runs after it, in its directory
SCALE_RUN = pytest.mark.xdist_group("scale-run")
# test_memory_guest's run
MEMORY_RUN = pytest.mark.xdist_group("memory-run")


def shared_dir(basetemp: Path) -> Path:
    """A directory every worker of this session shares: under xdist, the parent of each
    worker's own base directory (xdist puts them in the session's); without it, the base
    itself (its parent, pytest-of-USER, is shared by every session of this user)."""
    return basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp
# test_notebook's one execution of the notebook
NOTEBOOK_RUN = pytest.mark.xdist_group("notebook-run")

# test_docs' quoted numbers: each shipped run they quote is loaded once (scripts/quoted's
# caches), not once on each worker
DOC_CLAIMS = pytest.mark.xdist_group("doc-claims")

# the groups whose tests an ALONE test need not wait for (see above); not SWEEP_RUN, some of
# whose tests may make analysis_runs.native_runs, memfd counted on the host
UNTOUCHED_BY_HOST_KNOBS = frozenset(
    mark.args[0] for mark in (KERNELS_RUN, GUEST_SCENARIOS, SCALE_RUN, MEMORY_RUN,
                              NOTEBOOK_RUN, DOC_CLAIMS))
