"""What the break-even analyses share: the rows they read, their groups, and resampling
rounds.

Rounds are the unit of resampling: a round measures every scenario once, interleaved, so
drift within a round hits on and off alike; samples of one round are not independent.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from faultbench.analysis.frame import FAULT_AROUND_KNOB
from faultbench.analysis.labels import LABEL_FIELDS, labels, tells_apart

# The kernel's fault_around_bytes default; natively the knob is often unreadable (lockdown).
DEFAULT_WINDOW_BYTES = 65536
REPLICATES = 2000
MIN_ROUNDS_FOR_CI = 5

def stride_of(pattern: str, page_size: int) -> int | None:
    """Pages between touched pages: seq is 1, stride:N is N, sparse one per page table
    (page_size / 8 pages, as native/touch.c walks it); None for reverse and random."""
    if pattern == "seq":
        return 1
    if pattern.startswith("stride:"):
        return int(pattern.split(":", 1)[1])
    if pattern == "sparse":
        return page_size // 8
    return None


def json_safe(value: Any) -> Any:
    """NaN (a stride some setting lacks, a null munmap_ns) and infinities (a singular
    design's condition number) as None: json.dumps would write NaN or Infinity, which are
    not JSON."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def group_columns(rows: pd.DataFrame, drop: Sequence[str]) -> list[str]:
    """Columns that tell the groups apart: run, backing and whatever else varies (size,
    cache, another knob) except the columns a contrast or fit works across."""
    knobs = rows.attrs.get("knob_columns", [])
    varying = [
        c for c in [*LABEL_FIELDS, *knobs]
        if c in rows and c not in drop and c != "backing" and tells_apart(rows, c)
    ]
    return [*(["run"] if "run" in rows else []), "backing", *varying]


def prepare_rows(df: pd.DataFrame, teardown: bool = False, populated: bool | None = False,
                 valid: bool = True) -> pd.DataFrame:
    """Single-mapper reads with their stride, window, fault count and chosen metric: without
    a populate step (populated False), only those with one (True) or both (None); only
    valid samples, or (valid False) every measured one, failed and profiled ones included
    to show what was attempted, with their metric NaN: only a valid sample is timed."""
    rows = df[~df["warmup"] if not valid else df["ok"]]
    rows = rows[(rows["access"] == "read") & (rows["mappers"] == 1)]
    # populated rows are neither fault-around on nor off
    has_populate = (rows["populate"].fillna("none") != "none" if "populate" in rows
                    else pd.Series(False, index=rows.index))
    if populated is not None:
        rows = rows[has_populate if populated else ~has_populate]
    rows = rows.copy()
    rows.attrs = df.attrs
    rows["stride"] = pd.Series(  # NaN for reverse and random
        [stride_of(str(p), int(s)) for p, s in zip(rows["pattern"], rows["page_size"],
                                                    strict=True)],
        index=rows.index, dtype=float)
    rows["faults"] = rows["faults_minor"].astype(float) + rows["faults_major"].astype(float)
    touched = rows["pages_touched"].astype(float).where(rows["pages_touched"] > 0)
    spent = rows["touch_ns"].astype(float)
    if teardown:
        spent = spent + rows["munmap_ns"].astype(float)
    # a profiled sample ran slower under the profiler, a failed one is no measurement
    rows["metric"] = (spent / touched).where(rows["ok"].astype(bool))
    if FAULT_AROUND_KNOB in rows:
        knob = pd.to_numeric(rows[FAULT_AROUND_KNOB], errors="coerce")
        rows["window_bytes"] = knob.fillna(DEFAULT_WINDOW_BYTES)
        rows["window_source"] = np.where(knob.notna(), "knob", "default")
    else:
        rows["window_bytes"] = float(DEFAULT_WINDOW_BYTES)
        rows["window_source"] = "default"
    return rows


def group_label(rows: pd.DataFrame, columns: list[str]) -> pd.Series:
    return labels(rows, columns) if len(rows) else pd.Series(dtype=str)


def unit_of(rows: pd.DataFrame) -> str:
    """The independent unit to resample: the boot when the rows come from several boots of
    a kernel (rounds of one boot share its machine state), else the round."""
    if "boot" in rows and rows["boot"].dropna().nunique() > 1:
        return "boot"
    return "round"


def round_matrix(rows: pd.DataFrame, column: str, keys: list[Any], key: str,
                 units: np.ndarray, unit: str = "round") -> np.ndarray:
    """units x keys matrix of the per-(unit, key) median of `column`; NaN where missing."""
    table = rows.groupby([unit, key])[column].median().unstack(key)
    return table.reindex(index=units, columns=keys).to_numpy(dtype=float)


def resampled_medians(matrix: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """Per replicate (row of picks: unit indices drawn with replacement), column medians."""
    with np.errstate(all="ignore"), quiet_nan_warnings():
        return np.nanmedian(matrix[picks], axis=1)


@contextmanager
def quiet_nan_warnings() -> Iterator[None]:
    """An all-NaN column (a stride no drawn round measured) is an expected NaN, not news."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def interval(values: np.ndarray) -> list[float | None]:
    """95% percentile interval; +-inf replicates (no crossing) make that end None."""
    # no interpolation: between a finite value and inf it would give nan
    low, high = np.quantile(values, [0.025, 0.975], method="inverted_cdf")
    return [float(low) if np.isfinite(low) else None, float(high) if np.isfinite(high) else None]

