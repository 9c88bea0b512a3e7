"""The analysis plane: run directories -> DataFrame -> statistics, reports, comparisons,
figures.

pandas, matplotlib and pyperf are imported at module top, scipy by the functions that use it
(a run's summary needs none, and it is the slowest import; compare's default tests need only
scipy.special, estimators.py); nothing here touches the kernel, and nothing in the
measurement plane imports this package.
"""

import contextlib

# matplotlib reads its settings at import, from a `matplotlibrc` in the working directory
# first: root running faultbench in /tmp would take another user's (whose backend or style
# can make every figure fail). Imported here, before any module of the plane, from /.
with contextlib.chdir("/"):
    import matplotlib  # noqa: F401
