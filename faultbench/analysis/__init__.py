"""The analysis plane: run directories -> DataFrame -> statistics, reports, comparisons,
figures.

pandas and pyperf are imported at module top; matplotlib only by the modules that draw, all
through analysis/mpl.py (which keeps a working directory's matplotlibrc out), so that
`faultbench run`'s summary and `report --no-figures` never import it; scipy by the functions
that use it (a run's summary needs none, and it is the slowest import; compare's default
tests need only scipy.special, estimators.py). Nothing here touches the kernel, and nothing
in the measurement plane imports this package.
"""
