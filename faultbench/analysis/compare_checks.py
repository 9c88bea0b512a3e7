"""What `faultbench compare` settles about its two sides before it tests them: a knob only
one side's run set, and whether the sides are one measurement. Analysis plane."""

from __future__ import annotations

from typing import Any

import pandas as pd

from faultbench.analysis.frame import AnalysisError
from faultbench.measurement.rundir.identity import MEASURED_TIMES, measurements


def leave_unset(df: pd.DataFrame, other: pd.DataFrame, knob: str) -> None:
    """A knob the other side's run set and this one never did: every scenario of this run
    left it unset (`RUN:unset` selects them all)."""
    if knob not in df.columns and knob in other.attrs.get("knob_columns", ()):
        df[knob] = pd.Series(None, index=df.index, dtype=object)
        df.attrs["knob_columns"] = [*df.attrs.get("knob_columns", ()), knob]


def check_measured_apart(base: pd.DataFrame, new: pd.DataFrame, metas: list[dict[str, Any]],
                          shown: str) -> None:
    """Refuse sides that share a measured sample (identity.measurements): a run against
    itself, a copy of it (cp -r, a second checkout of a shipped one, whatever lines no table
    uses were edited in it), a merged run against one of its parts, two resumes of one
    interrupted run. Tested against themselves, its samples would give confidence intervals
    of nothing."""
    sides = [measurements(side[list(_MEASUREMENT_COLUMNS)].to_dict("records"), meta)
             for side, meta in zip((base, new), metas, strict=True)]
    if shared := len(sides[0] & sides[1]):
        what = ("are the same samples" if sides[0] == sides[1] else
                f"share {shared:,} of their {max(map(len, sides)):,} measured samples")
        raise AnalysisError(f"BASE and NEW {what} ({shown}): one measurement on both sides "
                            "tests nothing (a run or its copy, a merged run and a part of it, "
                            "two resumes of one interrupted run); compare runs measured "
                            "apart, or two values of one run with --by")


_MEASUREMENT_COLUMNS = ("scenario", "round", "mapper", "boot", *MEASURED_TIMES, "status",
                        "warmup", "profiled")
