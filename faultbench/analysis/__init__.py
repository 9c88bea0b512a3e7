"""The analysis plane: run directories -> DataFrame -> statistics, reports, comparisons,
figures.

pandas, scipy, matplotlib and pyperf are imported at module top; nothing here touches the
kernel, and nothing in the measurement plane imports this package.
"""
