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

When the run has kernel profiles (`--profile`), each model carries `profile`: a and b as
the profile measures them (phases.profile_check), beside the regression's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from faultbench.analysis.breakeven.phases import ProfileCheck, profile_check
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
    """What one fault mapping `pages_per_fault` pages costs, fitted to the rows of that
    window alone: the quantity rows of one window size identify. `line_ns`: a + b*P from
    the model, when a and b are identified (the check that the cost is a line in P)."""

    pages_per_fault: float
    ns: float
    ci: list[float] | None
    line_ns: float | None
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
    profile: ProfileCheck | None = None  # a and b from the run's kernel profiles
    # [stride, a, b] fitted to each stride's rows alone (with MIN_WINDOWS windows there):
    # constants that move with the stride are the model's misfit, which its CIs ignore
    by_stride: list[list[float]] = field(default_factory=list)

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
                & rows["metric"].notna() & rows["faults"].notna() & rows["pages_mapped"].notna()
                # a loop that took no fault has no pages per fault (M/F): a touch row's
                & (rows["faults"] > 0)]


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
    norms = np.linalg.norm(columns, axis=0)
    if not norms.all():  # a column of zeros (no row mapped a page) separates nothing
        return float("inf")
    scaled = columns / norms
    singular = np.linalg.svd(scaled, compute_uv=False)
    return float("inf") if singular[-1] == 0 else float(singular[0] / singular[-1])


def _one_cost_model(part: pd.DataFrame, touch: pd.DataFrame, group: str, backing: str,
                    replicates: int, rng: np.random.Generator) -> CostModel:
    part = part.assign(
        _fpp=part["faults"] / part["pages_touched"],
        _mpp=part["pages_mapped"].astype(float) / part["pages_touched"],
    )
    scenarios = list(dict.fromkeys(part["scenario"]))
    # a group none of whose scenarios sets the knob is named without it (no `fa=unset` each)
    set_knob = FAULT_AROUND_KNOB in part and part[FAULT_AROUND_KNOB].notna().any()
    knob = [FAULT_AROUND_KNOB] if set_knob else []
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
    if not M.any():  # the walk after the loop found every touched page unmapped again
        return CostModel(**common, **none, reason="no page mapped after the loop in any "
                                                  "row (pages_mapped 0): nothing to fit b to")
    fit_strides = sorted(set(strides))
    pinned = set(fit_strides) <= set(touch["stride"])
    separate = len(ppf) >= MIN_WINDOWS and condition is not None and condition <= MAX_CONDITION
    # Two designs: one per-fault cost per window (what every set of rows identifies), and,
    # when the windows separate them, a and b (the line through those costs); each with a
    # column for c when no populate rows pin it.
    extra = [] if pinned else [np.ones(len(y))]
    per_window = np.column_stack([*(F * (window == w) for w in range(len(ppf))), *extra])
    line = np.column_stack([F, M, *extra])
    designs = [per_window, line] if separate else [per_window]
    if any(np.linalg.matrix_rank(d / y[:, None]) < d.shape[1] or len(y) <= d.shape[1]
           for d in designs):
        return CostModel(**common, **none, reason=(
            f"these rows cannot tell c from the per-fault costs (e.g. every row at one "
            f"stride, or a single window without populate rows): add populate rows at "
            f"strides {', '.join(f'{s:g}' for s in fit_strides)} to pin c, or more strides"))
    c_matrix = round_matrix(touch, "metric", fit_strides, "stride", units, unit) \
        if pinned else None
    c_by_stride = (np.nanmedian(c_matrix, axis=0) if c_matrix is not None
                   else np.zeros(len(fit_strides)))
    index = np.searchsorted(fit_strides, strides)
    resampled: np.ndarray | None = None
    c_boot: np.ndarray | None = None
    reason = None
    if len(units) >= MIN_ROUNDS_FOR_CI:
        picks = rng.integers(0, len(units), size=(replicates, len(units)))
        resampled = resampled_medians(
            round_matrix(part, "metric", scenarios, "scenario", units, unit), picks)
        c_boot = (resampled_medians(c_matrix, picks) if c_matrix is not None
                  else np.zeros((replicates, len(fit_strides))))
        usable = np.isfinite(resampled).all(axis=1) & np.isfinite(c_boot).all(axis=1)
        resampled, c_boot = resampled[usable], c_boot[usable]
    else:
        reason = f"{len(units)} {unit}s: too few for bootstrap intervals (need " \
                 f"{MIN_ROUNDS_FOR_CI})"
    fits = [_Fit(d, y, c_by_stride[index], resampled,
                 None if c_boot is None else c_boot[:, index]) for d in designs]
    chosen = fits[-1]  # the line when a and b are identified, else the per-window costs
    residual = chosen.residual
    if pinned:
        touch_ns = Estimate(float(c_by_stride[0]), None if c_boot is None else
                            [float(v) for v in interval(c_boot[:, 0])])
        touch_source: str | None = "populate rows"
    else:
        touch_ns, touch_source = chosen.estimate(chosen.columns - 1), "fitted"
    a = fits[1].estimate(0) if separate else None
    b = fits[1].estimate(1) if separate else None
    per_fault = [FaultCost(p, fits[0].estimate(w).value, fits[0].estimate(w).ci,
                           None if a is None or b is None else a.value + b.value * p,
                           int(np.sum(window == w))) for w, p in enumerate(ppf)]
    shown = {
        "residual": residual, "per_fault": per_fault, "touch_source": touch_source,
        "touch_ns_by_stride": [[float(s), float(c)] for s, c in
                               zip(fit_strides, c_by_stride, strict=True)] if pinned else [],
    }
    if residual > MAX_RESIDUAL:
        return CostModel(**common, **{**none, **shown, "per_fault": []},
                         reason=f"does not fit: residual {100 * residual:.2f}% > "
                                f"{100 * MAX_RESIDUAL:.0f}%")
    if not separate:
        return CostModel(**common, **{**none, **shown, "ns_per_touch": touch_ns},
                         reason=_unidentified(ppf, condition, pinned))
    return CostModel(**common, **shown, fits=True, ns_per_fault=a, ns_per_page_mapped=b,
                     ns_per_touch=touch_ns, reason=reason,
                     by_stride=_by_stride(line, y, c_by_stride[index], strides, M / F))


def _by_stride(line: np.ndarray, y: np.ndarray, c_rows: np.ndarray, strides: np.ndarray,
               pages_per_fault: np.ndarray) -> list[list[float]]:
    """a and b fitted to the rows of each stride alone, where that stride has MIN_WINDOWS
    windows or more (the line's other columns, c when fitted, refitted with them)."""
    out = []
    for stride in sorted(set(strides)):
        mine = strides == stride
        if len(set(_windows(pages_per_fault[mine]))) < MIN_WINDOWS or mine.sum() <= \
                line.shape[1]:
            continue
        fit = _Fit(line[mine], y[mine], c_rows[mine], None, None)
        out.append([float(stride), float(fit.coef[0]), float(fit.coef[1])])
    return out


class _Fit:
    """Least squares on relative errors of (y - c) on `design`, on the medians and on each
    bootstrap replicate (`resampled` medians, `c_boot` the replicate's c per row)."""

    def __init__(self, design: np.ndarray, y: np.ndarray, c_rows: np.ndarray,
                 resampled: np.ndarray | None, c_boot: np.ndarray | None) -> None:
        # relative: a 100 ns row counts as much as a 10 us one
        solve = np.linalg.pinv(design / y[:, None])
        self.columns = design.shape[1]
        self.coef = solve @ ((y - c_rows) / y)
        self.residual = float(np.sqrt(np.mean(((design @ self.coef + c_rows) / y - 1) ** 2)))
        self.boot = (None if resampled is None or c_boot is None
                     else ((resampled - c_boot) / y) @ solve.T)

    def estimate(self, k: int) -> Estimate:
        return Estimate(float(self.coef[k]), None if self.boot is None else
                        [float(v) for v in interval(self.boot[:, k])])


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
    profiled = "profiled" in df and bool(df["profiled"].fillna(False).any())
    out = []
    for index, ((group, backing), part) in enumerate(fit.groupby(["_group", "backing"])):
        rng = np.random.default_rng([seed, index])
        mine = touch[(touch["_group"] == group) & (touch["backing"] == backing)]
        model = _one_cost_model(part, mine, str(group), str(backing), replicates, rng)
        if profiled:
            model = replace(model, profile=_profile(df, part, columns, str(group), model))
        out.append(model)
    return out


def _profile(df: pd.DataFrame, part: pd.DataFrame, columns: list[str], group: str,
             model: CostModel) -> ProfileCheck | None:
    """The profile's a and b over the model's scenarios: every sample of them (profiled
    rounds and the unprofiled ones their costs are scaled by) in the model's group."""
    rows = df[df["scenario"].isin(part["scenario"].unique())]
    rows = rows[group_label(rows, columns) == group]
    rows.attrs = df.attrs
    a, b = model.ns_per_fault, model.ns_per_page_mapped
    return profile_check(rows, None if a is None else (a.value, a.ci),
                         None if b is None else (b.value, b.ci))
