"""The cost model: touch_ns = a*faults + b*pages_mapped + c*pages_touched (`cost_models`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from faultbench.analysis.breakeven.rows import (
    MIN_ROUNDS_FOR_CI,
    REPLICATES,
    group_columns,
    group_label,
    interval,
    json_safe,
    prepare_rows,
    resampled_medians,
    round_matrix,
)
from faultbench.analysis.frame import FAULT_AROUND_KNOB
from faultbench.analysis.labels import labels

MIN_SCENARIOS = 4  # three constants and at least one degree of freedom for the residual
# Residual (RMS of relative errors over scenario medians) above which constants mean nothing.
MAX_RESIDUAL = 0.10
# Scaled-column condition number above which faults and pages mapped cannot be told apart.
MAX_CONDITION = 1e4

# Rows whose costs the three constants can describe: arithmetic progressions that touch at
# least one page per fault-around window (stride <= window), so each window is faulted once
# whatever the stride. Left out: random pays TLB and cache misses a progression does not;
# strides beyond the window skip windows, and each fault then misses in caches (page-cache
# xarray nodes, struct pages) that denser faults share: measured here, it raised the
# per-fault cost with the stride, on and off alike, and the residual from 3% to 5-19%;
# sparse adds a page-table page allocated, zeroed and freed per touch.
FIT_PATTERNS = ("seq", "reverse", "stride")
FIT_UFFD = ("none", "wp")
FIT_WHICH = (
    "single-mapper warm reads; patterns seq, reverse and stride:N up to the fault-around "
    "window (N <= 16 at 64K); uffd none (fault-around on) and wp without uffd events (off: "
    "a read on a wp-registered VMA that nothing write-protected raises no uffd event, it "
    "only skips fault-around; these rows are what tell a per-fault cost from a per-page "
    "one); missing, minor, random, sparse and wider strides left out"
)


@dataclass(frozen=True)
class Estimate:
    value: float
    ci: list[float] | None


@dataclass(frozen=True)
class CostModel:
    """touch_ns = ns_per_fault*faults + ns_per_page_mapped*pages_mapped + ns_per_touch*touched.

    `fits` is False (and the three estimates None) when the model cannot be identified from
    these rows or its residual exceeds MAX_RESIDUAL; `reason` says which. `residual` is the
    RMS of (fitted - measured) / measured over the scenario medians.
    """

    group: str
    backing: str
    fault_around_bytes: int | None
    fits: bool
    ns_per_fault: Estimate | None
    ns_per_page_mapped: Estimate | None
    ns_per_touch: Estimate | None
    residual: float | None
    scenarios: list[str]
    rounds: int
    reason: str | None
    which: str = FIT_WHICH

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))


def _fit_rows(df: pd.DataFrame) -> pd.DataFrame:
    rows = prepare_rows(df)
    kind = rows["pattern"].astype(str).str.split(":").str[0]
    # a uffd event would add a round trip to the handler: then the row is no plain fault
    no_events = (rows["uffd"] == "none") | (rows["uffd_events"].fillna(-1) == 0)
    inside = rows["stride"] * rows["page_size"] <= rows["window_bytes"]
    return rows[kind.isin(FIT_PATTERNS) & inside
                & rows["uffd"].isin(FIT_UFFD) & no_events & (rows["cache"] == "warm")
                & rows["metric"].notna() & rows["faults"].notna() & rows["pages_mapped"].notna()]


def _one_cost_model(part: pd.DataFrame, group: str, backing: str, knob: int | None,
                    replicates: int, rng: np.random.Generator) -> CostModel:
    part = part.assign(
        _fpp=part["faults"] / part["pages_touched"],
        _mpp=part["pages_mapped"].astype(float) / part["pages_touched"],
    )
    scenarios = list(dict.fromkeys(part["scenario"]))
    names = list(labels(part.drop_duplicates("scenario"), ["pattern", "uffd"]))
    rounds = np.array(sorted(part["round"].unique()))
    common = {"group": group, "backing": backing, "fault_around_bytes": knob,
              "scenarios": names, "rounds": len(rounds)}
    medians = part.groupby("scenario")[["metric", "_fpp", "_mpp"]].median().loc[scenarios]
    y = medians["metric"].to_numpy()
    design = np.column_stack([medians["_fpp"], medians["_mpp"], np.ones(len(y))])
    # per touched page, relative: every scenario counts alike whether it costs 100 ns or 10 us
    weighted = design / y[:, None]
    if len(y) < MIN_SCENARIOS:
        return CostModel(**common, fits=False, ns_per_fault=None, ns_per_page_mapped=None,
                         ns_per_touch=None, residual=None,
                         reason=f"{len(y)} scenario(s); 3 constants need {MIN_SCENARIOS} or "
                                "more")
    scaled = weighted / np.linalg.norm(weighted, axis=0)
    singular = np.linalg.svd(scaled, compute_uv=False)
    if singular[-1] == 0 or singular[0] / singular[-1] > MAX_CONDITION:
        return CostModel(**common, fits=False, ns_per_fault=None, ns_per_page_mapped=None,
                         ns_per_touch=None, residual=None,
                         reason="faults and pages mapped move together in these rows (each "
                                "fault maps the same number of pages): add fault-around off "
                                "rows (uffd wp, or fault_around_bytes=4096)")
    solve = np.linalg.pinv(weighted)
    coef = solve @ np.ones(len(y))
    residual = float(np.sqrt(np.mean((design @ coef / y - 1) ** 2)))
    if residual > MAX_RESIDUAL:
        return CostModel(**common, fits=False, ns_per_fault=None, ns_per_page_mapped=None,
                         ns_per_touch=None, residual=residual,
                         reason=f"does not fit: residual {100 * residual:.0f}% > "
                                f"{100 * MAX_RESIDUAL:.0f}%")
    cis: list[list[float] | None] = [None, None, None]
    reason = None
    if len(rounds) >= MIN_ROUNDS_FOR_CI:
        matrix = round_matrix(part, "metric", scenarios, "scenario", rounds)
        picks = rng.integers(0, len(rounds), size=(replicates, len(rounds)))
        resampled = resampled_medians(matrix, picks)
        usable = np.isfinite(resampled).all(axis=1)
        boot = (solve @ (resampled[usable] / y).T).T
        cis = [[float(v) for v in interval(boot[:, k])] for k in range(3)]
    else:
        reason = f"{len(rounds)} rounds: too few for bootstrap intervals (need " \
                 f"{MIN_ROUNDS_FOR_CI})"
    a, b, c = (Estimate(float(coef[k]), cis[k]) for k in range(3))
    return CostModel(**common, fits=True, ns_per_fault=a, ns_per_page_mapped=b, ns_per_touch=c,
                     residual=residual, reason=reason)


def cost_models(df: pd.DataFrame, replicates: int = REPLICATES, seed: int = 0) -> list[CostModel]:
    """The cost model per group: run (several runs), backing, other varying fields, and
    fault_around_bytes value when the knob was set. Rows: see FIT_WHICH. Fitted to the
    scenario medians of time per touched page (touch_ns / pages_touched = a*faults/touched +
    b*mapped/touched + c), least squares on relative errors; intervals: percentile bootstrap
    over rounds (2000 replicates, seeded)."""
    rows = _fit_rows(df)
    columns = group_columns(rows, ("pattern", "uffd", FAULT_AROUND_KNOB))
    keys = ["_group", "backing"]
    rows = rows.assign(_group=group_label(rows, columns))
    if FAULT_AROUND_KNOB in rows:
        rows = rows.assign(_knob=pd.to_numeric(rows[FAULT_AROUND_KNOB], errors="coerce"))
        keys.append("_knob")
    out = []
    for index, (key, part) in enumerate(rows.groupby(keys, dropna=False)):
        knob = key[2] if len(key) > 2 and key[2] == key[2] else None
        rng = np.random.default_rng([seed, index])
        out.append(_one_cost_model(part, str(key[0]), str(key[1]),
                                   None if knob is None else int(knob), replicates, rng))
    return out

