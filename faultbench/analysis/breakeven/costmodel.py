"""The cost model: touch_ns = a*faults + b*pages_mapped + c*pages_touched (`cost_models`),
and what of it the rows identify.

Per touched page: y = a*F + b*M + c, with F faults and M pages mapped per touched page.

- c, the cost of touching a page already mapped, is pinned per stride from the populate
  rows' touch-only time (every page present before the loop, no fault in it) when the run
  has them; else it is fitted with a and b, and says so.
- A fault that maps P pages costs a + b*P. Rows with one window size all have the same P,
  so they give the cost of one fault at that P and nothing more: a and b separately need
  at least MIN_WINDOWS distinct P (a fault_around_bytes sweep at fixed touches). Two P
  (natively: fault-around off, P = 1, and on, P = 16) fix a line through two points, which
  no row could contradict: then the report gives the two per-fault costs, not a and b.
- The intervals are percentile bootstraps over the independent unit (rounds, or boots in a
  booted run with several): they cover sampling noise on the assumption that the model is
  right, not the error of a wrong model (the residual says how far off it is).

`check_against(model, phases)` is where a per-phase profile (kernel symbols) checks the
constants: a against the fault entry/exit cost, b against the per-page cost of mapping.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from faultbench.analysis.breakeven.rows import (
    DEFAULT_WINDOW_BYTES,
    MIN_ROUNDS_FOR_CI,
    REPLICATES,
    group_columns,
    group_label,
    interval,
    json_safe,
    prepare_rows,
    resampled_medians,
    round_matrix,
    unit_of,
)
from faultbench.analysis.frame import FAULT_AROUND_KNOB
from faultbench.analysis.labels import labels

MIN_SCENARIOS = 4  # three constants and at least one degree of freedom for the residual
# Distinct pages-per-fault values a and b need to be told apart and the line checked.
MIN_WINDOWS = 3
# Pages-per-fault values within this ratio are one window (a window cut by the end of the
# mapping or a page-table boundary maps a few pages fewer: 15.5 and 15.8 are both 16).
SAME_WINDOW = 1.25
# Residual (RMS of relative errors over scenario medians) above which constants mean nothing.
MAX_RESIDUAL = 0.10
# Condition number of the scaled [F, M] columns above which a and b are not told apart even
# with several windows (Belsley, Kuh & Welsch 1980, Regression Diagnostics: indexes above
# 30 mark strong collinearity).
MAX_CONDITION = 30.0

# Rows whose costs the three constants can describe: arithmetic progressions no sparser than
# one touched page per fault-around window (or per 64K when the window is smaller, as with
# fault-around off), so each window is faulted once whatever the stride. Left out: random
# pays TLB and cache misses a progression does not; strides beyond that skip windows, and
# each fault then misses in caches (page-cache xarray nodes, struct pages) that denser
# faults share: measured here, it raised the per-fault cost with the stride, on and off
# alike, and the residual from 3% to 5-19%; sparse adds a page-table page allocated,
# zeroed and freed per touch.
FIT_PATTERNS = ("seq", "reverse", "stride")
FIT_UFFD = ("none", "wp")
FIT_WHICH = (
    "single-mapper warm reads; patterns seq, reverse and stride:N up to the fault-around "
    "window or 64K, whichever is larger (N <= 16 at 64K); uffd none and wp without uffd "
    "events (a read on a wp-registered VMA that nothing write-protected raises no uffd "
    "event, it only skips fault-around: one page per fault); missing, minor, random, "
    "sparse and wider strides left out"
)
CI_ASSUMES = ("95% CI: percentile bootstrap over {unit}s; it assumes the model is right "
              "(sampling noise only, not the error of a wrong model)")


@dataclass(frozen=True)
class Estimate:
    value: float
    ci: list[float] | None


@dataclass(frozen=True)
class FaultCost:
    """What one fault mapping `pages_per_fault` pages costs (a + b*pages_per_fault): the
    quantity rows of one window size identify."""

    pages_per_fault: float
    ns: float
    ci: list[float] | None
    scenarios: int


@dataclass(frozen=True)
class CostModel:
    """touch_ns = ns_per_fault*faults + ns_per_page_mapped*pages_mapped + ns_per_touch*touched.

    `fits` is True when a, b and c are all identified and the residual is at most
    MAX_RESIDUAL; else `reason` says why, and a and b are None. c (`ns_per_touch`, at the
    densest stride; `touch_ns_by_stride` per stride) is given when pinned by populate rows
    (`touch_source` "populate rows") or fitted in a model that fits ("fitted").
    `per_fault` gives the cost of one fault per distinct pages-per-fault value whenever c
    is known. Identifiability: `design_rows` distinct (F, M) rows, `pages_per_fault`
    distinct values, `condition` of the scaled [F, M] columns (all rows) and
    `condition_within_window` (the largest among the rows of one window). `residual` is the RMS of
    (fitted - measured) / measured over the scenario medians.
    """

    group: str
    backing: str
    fits: bool
    ns_per_fault: Estimate | None
    ns_per_page_mapped: Estimate | None
    ns_per_touch: Estimate | None
    touch_source: str | None
    touch_ns_by_stride: list[list[float]]
    per_fault: list[FaultCost]
    design_rows: int
    pages_per_fault: list[float]
    condition: float | None
    condition_within_window: float | None
    residual: float | None
    scenarios: list[str]
    unit: str
    rounds: int
    reason: str | None
    ci_note: str = ""
    which: str = FIT_WHICH

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))


def _fit_rows(rows: pd.DataFrame) -> pd.DataFrame:
    kind = rows["pattern"].astype(str).str.split(":").str[0]
    # a uffd event would add a round trip to the handler: then the row is no plain fault
    no_events = (rows["uffd"] == "none") | (rows["uffd_events"].fillna(-1) == 0)
    reach = np.maximum(rows["window_bytes"], DEFAULT_WINDOW_BYTES)
    inside = rows["stride"] * rows["page_size"] <= reach
    return rows[kind.isin(FIT_PATTERNS) & inside
                & rows["uffd"].isin(FIT_UFFD) & no_events & (rows["cache"] == "warm")
                & rows["metric"].notna() & rows["faults"].notna() & rows["pages_mapped"].notna()]


def _touch_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Populate rows whose touch loop took no fault: every touched page already mapped."""
    return rows[rows["stride"].notna() & rows["metric"].notna() & (rows["faults"] == 0)
                & (rows["cache"] == "warm")]


def _windows(pages_per_fault: np.ndarray) -> np.ndarray:
    """Window index per row: pages-per-fault values within SAME_WINDOW of each other are one."""
    order = np.argsort(pages_per_fault)
    index = np.empty(len(order), dtype=int)
    current, start = -1, 0.0
    for i in order:
        if current < 0 or pages_per_fault[i] > start * SAME_WINDOW:
            current, start = current + 1, pages_per_fault[i]
        index[i] = current
    return index


def _condition(columns: np.ndarray) -> float:
    scaled = columns / np.linalg.norm(columns, axis=0)
    singular = np.linalg.svd(scaled, compute_uv=False)
    return float("inf") if singular[-1] == 0 else float(singular[0] / singular[-1])


def _one_cost_model(part: pd.DataFrame, touch: pd.DataFrame, group: str, backing: str,
                    replicates: int, rng: np.random.Generator) -> CostModel:
    part = part.assign(
        _fpp=part["faults"] / part["pages_touched"],
        _mpp=part["pages_mapped"].astype(float) / part["pages_touched"],
    )
    scenarios = list(dict.fromkeys(part["scenario"]))
    knob = [FAULT_AROUND_KNOB] if FAULT_AROUND_KNOB in part else []
    names = list(labels(part.drop_duplicates("scenario"), ["pattern", "uffd", *knob]))
    unit = unit_of(pd.concat([part, touch]))
    units = np.array(sorted(pd.concat([part, touch])[unit].dropna().unique()))
    medians = part.groupby("scenario")[["metric", "_fpp", "_mpp", "stride"]].median()
    medians = medians.loc[scenarios]
    y = medians["metric"].to_numpy()
    F, M = medians["_fpp"].to_numpy(), medians["_mpp"].to_numpy()
    strides = medians["stride"].to_numpy()
    window = _windows(M / F)
    ppf = [float(np.median((M / F)[window == w])) for w in range(window.max() + 1)] \
        if len(y) else []
    condition = _condition(np.column_stack([F, M])) if len(y) >= 2 else None
    # within one window F and M move together: what the rows of one window cannot split
    within = [_condition(np.column_stack([F, M])[window == w]) for w in range(len(ppf))
              if len({round(f, 3) for f in F[window == w]}) > 1]
    common: dict[str, Any] = {
        "group": group, "backing": backing, "scenarios": names, "unit": unit,
        "rounds": len(units), "design_rows": len({(round(f, 3), round(m, 2))
                                                   for f, m in zip(F, M, strict=True)}),
        "pages_per_fault": ppf, "condition": condition,
        "condition_within_window": max(within) if within else None,
        "ci_note": CI_ASSUMES.format(unit=unit),
    }
    none: dict[str, Any] = {"fits": False, "ns_per_fault": None, "ns_per_page_mapped": None,
                            "ns_per_touch": None, "touch_source": None,
                            "touch_ns_by_stride": [], "per_fault": [], "residual": None}
    if len(y) < MIN_SCENARIOS:
        return CostModel(**common, **none, reason=f"{len(y)} scenario(s); 3 constants need "
                                                   f"{MIN_SCENARIOS} or more")
    fit_strides = sorted(set(strides))
    pinned = set(fit_strides) <= set(touch["stride"])
    separate = len(ppf) >= MIN_WINDOWS and condition is not None and condition <= MAX_CONDITION
    # Columns: a and b when the windows separate them, else one per-fault cost per window;
    # plus c when no populate rows pin it.
    if separate:
        design = np.column_stack([F, M])
    else:
        design = np.column_stack([F * (window == w) for w in range(len(ppf))])
    if not pinned:
        design = np.column_stack([design, np.ones(len(y))])
    weighted = design / y[:, None]  # relative: a 100 ns row counts as much as a 10 us one
    if np.linalg.matrix_rank(weighted) < design.shape[1] or len(y) <= design.shape[1]:
        return CostModel(**common, **none, reason=_unidentified(ppf, condition, pinned)
                         + "; and these rows cannot fix c either: add populate rows")
    solve = np.linalg.pinv(weighted)

    def fit(y_now: np.ndarray, c_now: np.ndarray) -> np.ndarray:
        return solve @ ((y_now - c_now) / y)

    c_matrix = round_matrix(touch, "metric", fit_strides, "stride", units, unit) \
        if pinned else None
    c_by_stride = (np.nanmedian(c_matrix, axis=0) if c_matrix is not None
                   else np.zeros(len(fit_strides)))
    c_rows = c_by_stride[np.searchsorted(fit_strides, strides)]
    coef = fit(y, c_rows)
    fitted = design @ coef + c_rows
    residual = float(np.sqrt(np.mean((fitted / y - 1) ** 2)))

    boot: np.ndarray | None = None
    c_boot: np.ndarray | None = None
    reason = None
    if len(units) >= MIN_ROUNDS_FOR_CI:
        matrix = round_matrix(part, "metric", scenarios, "scenario", units, unit)
        picks = rng.integers(0, len(units), size=(replicates, len(units)))
        resampled = resampled_medians(matrix, picks)
        c_boot = (resampled_medians(c_matrix, picks) if c_matrix is not None
                  else np.zeros((replicates, len(fit_strides))))
        usable = np.isfinite(resampled).all(axis=1) & np.isfinite(c_boot).all(axis=1)
        index = np.searchsorted(fit_strides, strides)
        boot = np.array([fit(resampled[j], c_boot[j][index]) for j in np.flatnonzero(usable)])
        c_boot = c_boot[usable]
    else:
        reason = f"{len(units)} {unit}s: too few for bootstrap intervals (need " \
                 f"{MIN_ROUNDS_FOR_CI})"

    def estimate(k: int) -> Estimate:
        return Estimate(float(coef[k]), None if boot is None else
                        [float(v) for v in interval(boot[:, k])])

    if pinned:
        touch_ns = Estimate(float(c_by_stride[0]), None if c_boot is None else
                            [float(v) for v in interval(c_boot[:, 0])])
        touch_source: str | None = "populate rows"
    else:
        touch_ns, touch_source = estimate(design.shape[1] - 1), "fitted"
    if separate:
        a, b = estimate(0), estimate(1)
        per_fault = [FaultCost(p, a.value + b.value * p, _line_ci(boot, p), int(np.sum(
            window == w))) for w, p in enumerate(ppf)]
    else:
        a = b = None
        per_fault = [FaultCost(p, estimate(w).value, estimate(w).ci, int(np.sum(window == w)))
                     for w, p in enumerate(ppf)]
    shown = {
        "residual": residual, "per_fault": per_fault, "touch_source": touch_source,
        "touch_ns_by_stride": [[float(s), float(c)] for s, c in
                               zip(fit_strides, c_by_stride, strict=True)] if pinned else [],
    }
    if residual > MAX_RESIDUAL:
        return CostModel(**common, **{**none, **shown, "per_fault": []},
                         reason=f"does not fit: residual {100 * residual:.0f}% > "
                                f"{100 * MAX_RESIDUAL:.0f}%")
    if not separate:
        return CostModel(**common, **{**none, **shown, "ns_per_touch": touch_ns},
                         reason=_unidentified(ppf, condition, pinned))
    return CostModel(**common, **shown, fits=True, ns_per_fault=a, ns_per_page_mapped=b,
                     ns_per_touch=touch_ns, reason=reason)


def _line_ci(boot: np.ndarray | None, pages: float) -> list[float] | None:
    if boot is None:
        return None
    return [float(v) for v in interval(boot[:, 0] + boot[:, 1] * pages)]


def _unidentified(ppf: list[float], condition: float | None, pinned: bool) -> str:
    values = ", ".join(f"{p:.3g}" for p in ppf)
    if len(ppf) < MIN_WINDOWS:
        why = (f"a and b not identified separately: {len(ppf)} distinct pages per fault "
               f"({values}); a fault mapping P pages costs a + b*P, and {len(ppf)} value(s) "
               f"of P fix that line without testing it (need {MIN_WINDOWS}: sweep "
               f"fault_around_bytes at fixed touches, workload cost-model)")
    else:
        why = (f"a and b not identified separately: faults and pages mapped move together "
               f"(condition number {condition:.0f} > {MAX_CONDITION:.0f})")
    return why if pinned else why + "; c fitted (no populate rows at these strides)"


def cost_models(df: pd.DataFrame, replicates: int = REPLICATES, seed: int = 0) -> list[CostModel]:
    """The cost model per group: run (several runs), backing, other varying fields; every
    fault_around_bytes value of a group in one model (the values are what tell a from b).
    Rows: see FIT_WHICH, and the populate rows whose touch loop took no fault (c). Fitted
    to the scenario medians of time per touched page, least squares on relative errors;
    intervals: percentile bootstrap over rounds or boots (2000 replicates, seeded)."""
    rows = prepare_rows(df, populated=None)
    populated = (rows["populate"].fillna("none") != "none" if "populate" in rows
                 else pd.Series(False, index=rows.index))
    fit, touch = _fit_rows(rows[~populated]), _touch_rows(rows[populated])
    both = pd.concat([fit, touch])
    columns = group_columns(both, ("pattern", "uffd", "populate", FAULT_AROUND_KNOB))
    named = group_label(both, columns)
    fit, touch = fit.assign(_group=named[fit.index]), touch.assign(_group=named[touch.index])
    out = []
    for index, ((group, backing), part) in enumerate(fit.groupby(["_group", "backing"])):
        rng = np.random.default_rng([seed, index])
        mine = touch[(touch["_group"] == group) & (touch["backing"] == backing)]
        out.append(_one_cost_model(part, mine, str(group), str(backing), replicates, rng))
    return out


@dataclass(frozen=True)
class PhaseCosts:
    """Per-phase costs from a kernel-symbol profile, in the model's units: ns per fault for
    the fault entry and exit (exception entry, VMA lookup, return), ns per page mapped for
    installing fault-around PTEs. A profile that gives costs per touched page converts with
    `per_touched_page`."""

    source: str
    entry_exit_ns_per_fault: float | None
    map_ns_per_page: float | None

    @classmethod
    def per_touched_page(cls, source: str, entry_exit_ns: float | None, map_ns: float | None,
                         faults_per_touch: float, mapped_per_touch: float) -> PhaseCosts:
        return cls(source,
                   None if entry_exit_ns is None else entry_exit_ns / faults_per_touch,
                   None if map_ns is None else map_ns / mapped_per_touch)


@dataclass(frozen=True)
class PhaseCheck:
    constant: str
    model: Estimate
    phase_ns: float
    inside_ci: bool | None  # None: the constant has no interval


def check_against(model: CostModel, phases: PhaseCosts) -> list[PhaseCheck]:
    """a against the profile's fault entry/exit cost, b against its per-page mapping cost;
    empty when a and b are not identified (nothing to check) or the profile lacks the phase.
    A profile attributes only sampled kernel time to symbols, so a constant above its phase
    is expected (the model's a also holds the VMA walk); the check says where each lies."""
    checks = []
    for name, estimate, phase in (("a", model.ns_per_fault, phases.entry_exit_ns_per_fault),
                                  ("b", model.ns_per_page_mapped, phases.map_ns_per_page)):
        if estimate is None or phase is None:
            continue
        inside = None if estimate.ci is None else estimate.ci[0] <= phase <= estimate.ci[1]
        checks.append(PhaseCheck(name, estimate, phase, inside))
    return checks
