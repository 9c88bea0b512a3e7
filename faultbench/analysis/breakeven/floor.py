"""The floor: the touch loop's cost with every page already mapped, from the populate rows
(the range made present by one call before the timed loop).

What a fault path could at best reach is touching pages that are already mapped: that is
the floor, touch_ns / pages_touched of a populate row (its loop takes no fault). The
populate call's own time is not part of it. populate + touch is not a floor: the call maps
the whole range whatever the stride, so per touched page it grows with the stride and lies
above fault-around by construction; it is comparable with fault-around only at stride 1,
where the range populated is the range touched (`whole_range_touched`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from faultbench.analysis.breakeven.crossover import curve_columns
from faultbench.analysis.breakeven.rows import group_label, json_safe, prepare_rows
from faultbench.analysis.frame import FAULT_AROUND_KNOB
from faultbench.analysis.labels import format_value
from faultbench.analysis.stats import median_ci

POPULATE_CALLS = {"madvise": "MADV_POPULATE_READ", "map": "MAP_POPULATE"}
FLOOR_WHY = (
    "floor: touch_ns per touched page of the populate rows, every page made present by "
    "one call before the loop (madvise: MADV_POPULATE_READ; map: mmap with MAP_POPULATE), "
    "so the loop takes no fault (flt); on/off: the same touches through faults, fault-"
    "around on and off. +populate: populate_ns + touch_ns per touched page, at stride 1 "
    "only: the call maps the whole range whatever the stride, so at wider strides it "
    "pays for pages never touched and is no floor (report --json has every stride); pop "
    "flt: faults in the populate call"
)


@dataclass(frozen=True)
class FloorPoint:
    """The floor at one stride for one populate call: medians over rounds with their 95% CI
    (order statistics; None below 6 rounds). `ns_per_page`: touch loop only, every page
    mapped; `with_populate_ns_per_page`: populate call + touch loop, per touched page."""

    group: str
    backing: str
    populate: str
    call: str
    fault_around_bytes: int | None
    stride: int
    ns_per_page: float
    ci: list[float] | None
    with_populate_ns_per_page: float
    with_populate_ci: list[float] | None
    whole_range_touched: bool
    n: int
    touch_faults: float
    populate_faults: float | None
    pages_mapped: float | None

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))


def populate_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Samples of the populate rows (single-mapper reads with a populate step and a stride):
    `group` (as BreakEven.group, so each lands on its figure), `label` (the call),
    `populate`, `backing`, `stride`, `ns_per_page` = touch_ns / pages_touched (the floor),
    `with_populate_ns_per_page` = (populate_ns + touch_ns) / pages_touched, `touch_faults`,
    `populate_faults`, `pages_mapped`, `round`, `ok`. What `breakeven_figure(floor=...)`
    draws; empty when the run has none."""
    rows = prepare_rows(df, populated=True)
    if rows.empty or "populate_ns" not in rows:
        return pd.DataFrame(columns=["group", "label", "fault_around_bytes", "populate",
                                     "backing", "stride", "ns_per_page",
                                     "with_populate_ns_per_page"])
    rows = rows[rows["stride"].notna() & rows["populate_ns"].notna()
                & rows["pages_touched"].gt(0)]
    touched = rows["pages_touched"].astype(float)
    label = rows["populate"].map(lambda p: POPULATE_CALLS.get(p, p))
    # the populate call faults through do_read_fault too: fault-around batches it
    knob = (pd.to_numeric(rows[FAULT_AROUND_KNOB], errors="coerce") if FAULT_AROUND_KNOB in rows
            else pd.Series(np.nan, index=rows.index))
    label = label.where(knob.isna(), label + " " + knob.map(
        lambda v: format_value(FAULT_AROUND_KNOB, v)))
    return pd.DataFrame({
        "group": group_label(rows, curve_columns(prepare_rows(df, valid=False))),
        "label": label, "fault_around_bytes": knob,
        "populate": rows["populate"], "backing": rows["backing"],
        "stride": rows["stride"].astype(int),
        "ns_per_page": rows["touch_ns"].astype(float) / touched,
        "with_populate_ns_per_page": (rows["populate_ns"].astype(float)
                                      + rows["touch_ns"].astype(float)) / touched,
        "touch_faults": rows["faults"], "populate_faults": rows["populate_faults"],
        "pages_mapped": rows["pages_mapped"], "round": rows["round"], "ok": True,
        **({"boot": rows["boot"]} if "boot" in rows else {}),
    }, index=rows.index)


def floor_points(floor: pd.DataFrame) -> list[FloorPoint]:
    """`populate_rows(df)` summarised per group, populate call and stride."""
    if floor.empty:
        return []
    keys = ["group", "backing", "populate", "label", "fault_around_bytes", "stride"]
    table = median_ci(floor, keys, "ns_per_page")
    both = median_ci(floor, keys, "with_populate_ns_per_page")
    table = table.join(both.set_index(keys)[["median", "ci_lo", "ci_hi"]].add_prefix("pop_"),
                       on=keys)
    counts = floor.groupby(keys, dropna=False)[
        ["touch_faults", "populate_faults", "pages_mapped"]].median()
    table = table.join(counts, on=keys).sort_values(
        ["group", "stride", "populate", "fault_around_bytes"])
    return [
        FloorPoint(
            group=str(r.group), backing=str(r.backing), populate=str(r.populate),
            call=str(r.label), stride=int(r.stride), ns_per_page=float(r.median),
            fault_around_bytes=None if r.fault_around_bytes != r.fault_around_bytes
            else int(r.fault_around_bytes),
            ci=_ci(r.ci_lo, r.ci_hi), with_populate_ns_per_page=float(r.pop_median),
            with_populate_ci=_ci(r.pop_ci_lo, r.pop_ci_hi),
            whole_range_touched=int(r.stride) == 1, n=int(r.n),
            touch_faults=float(r.touch_faults), populate_faults=float(r.populate_faults),
            pages_mapped=float(r.pages_mapped),
        )
        for r in table.itertuples(index=False)
    ]


def _ci(low: float, high: float) -> list[float] | None:
    return None if low != low else [float(low), float(high)]
