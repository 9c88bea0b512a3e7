"""matplotlib, for the modules that draw figures: they take it from here, and nothing else in
faultbench imports it (`faultbench run`'s summary and `report --no-figures` draw nothing and
skip its import, a quarter of a second).

matplotlib reads its settings at import, from a `matplotlibrc` in the working directory
first: root running faultbench in /tmp would take another user's (whose backend or style can
make every figure fail). Imported here from /. Then every setting is put back to
matplotlib's own defaults: a `matplotlibrc` of the user's (~/.config/matplotlib,
$MPLCONFIGDIR) drew figures blank, and a report's figures are the same whoever draws them.
The Agg backend is selected before pyplot is imported: reports are made on headless machines.
"""

import contextlib
import os

os.environ.pop("MPLBACKEND", None)  # read at import, and Agg is what reports are drawn with
with contextlib.chdir("/"):
    import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # after use("Agg"): pyplot picks its backend on import
from matplotlib import font_manager, ft2font
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

matplotlib.rcdefaults()  # the backend stays: rcdefaults leaves it

__all__ = ["FixedLocator", "FuncFormatter", "Line2D", "LogLocator", "NullFormatter",
           "font_manager", "ft2font", "plt"]
