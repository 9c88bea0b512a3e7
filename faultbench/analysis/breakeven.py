"""Where fault-around turns from saving to costing, and what a fault and a mapped page cost.

Two analyses of a run's DataFrame (`faultbench.load`), both returning dataclasses whose
`to_dict()` is plain JSON:

- `break_even(df)`: per backing and contrast (fault-around on vs off), the stride, and pages
  touched per fault-around window, at which the time per touched page with fault-around on
  equals the time with it off, interpolated in log(stride) between the two measured strides
  that bracket it, with a bootstrap interval over rounds.
- `cost_models(df)`: touch_ns = a*faults + b*pages_mapped + c*pages_touched, fitted per
  backing (and run, and fault_around_bytes value), with bootstrap intervals over rounds and the
  fit's relative residual; a model whose residual exceeds 10% says so instead of constants.

`report_section(df)` renders both for `faultbench report`, `report_json(df)` gives the
`break_even` and `cost_model` keys of `report --json`, and `compare_cost_models(base, new)`
writes the changelog sentence.

Rounds are the unit of resampling: a round measures every scenario once, interleaved, so
drift within a round hits on and off alike; samples of one round are not independent.
Analysis plane: numpy, pandas; never touches the kernel.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from faultbench.analysis.frame import FAULT_AROUND_KNOB
from faultbench.analysis.labels import LABEL_FIELDS, format_value, labels
from faultbench.analysis.stats import CI_METHOD, median_ci
from faultbench.analysis.text import fmt, text_table, wrap

# The kernel's fault_around_bytes default; natively the knob is often unreadable (lockdown).
DEFAULT_WINDOW_BYTES = 65536
REPLICATES = 2000
MIN_ROUNDS_FOR_CI = 5
MIN_STRIDES = 3  # to bracket a crossing with a stride on each side of it and one more
MIN_SCENARIOS = 4  # three constants and at least one degree of freedom for the residual
# Residual (RMS of relative errors over scenario medians) above which constants mean nothing.
MAX_RESIDUAL = 0.10
# Scaled-column condition number above which faults and pages mapped cannot be told apart.
MAX_CONDITION = 1e4
MINUS = "\u2212"  # the sign a changelog sentence prints, not a hyphen
HEADLINE_WHY = (
    "headline: touch only, the fault path itself and what the issue's anchors measure; "
    "'+munmap' also counts the teardown of every mapped page (munmap_ns), paid at munmap or "
    "exit"
)
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


SPARSE_NOTE = "page_size/8 (512 with 4K pages) is the sparse pattern, one page per page table"


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


@dataclass(frozen=True)
class CurvePoint:
    """Median time per touched page at one stride, with fault-around on and off."""

    stride: int
    pages_per_window: float
    on_ns: float
    on_ci: list[float] | None
    off_ns: float
    off_ci: list[float] | None


@dataclass(frozen=True)
class BreakEven:
    """One crossing of the on and off curves (or why there is none).

    `stride` and `pages_per_window` (window_bytes / page size / stride) are None when the
    curves do not cross between the strides measured: never extrapolated. `ci` holds 95%
    percentile bootstrap intervals over rounds, [low, high]; an end is None when more than
    2.5% of the replicates did not cross on that side of the range.
    """

    group: str
    backing: str
    contrast: str
    on: str
    off: str
    teardown_counted: bool
    headline: bool
    window_bytes: int
    window_source: str
    stride: float | None
    pages_per_window: float | None
    ci: dict[str, list[float | None]] | None
    bracket: list[int] | None
    crossings: int
    rounds: int
    reason: str | None
    curve: list[CurvePoint] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(asdict(self))


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
        return _json_safe(asdict(self))


def _json_safe(value: Any) -> Any:
    """NaN (a stride some setting lacks, a null munmap_ns) as None: json.dumps would write
    NaN, which is not JSON."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and value != value:
        return None
    return value


# ---------------------------------------------------------------------------------------
# Shared data preparation


def _group_columns(rows: pd.DataFrame, drop: Sequence[str]) -> list[str]:
    """Columns that tell the groups apart: run, backing and whatever else varies (size,
    cache, another knob) except the columns a contrast or fit works across."""
    knobs = rows.attrs.get("knob_columns", [])
    varying = [
        c for c in [*LABEL_FIELDS, *knobs]
        if c in rows and c not in drop and c != "backing" and rows[c].astype(str).nunique() > 1
    ]
    return [*(["run"] if "run" in rows else []), "backing", *varying]


def _prepared(df: pd.DataFrame, teardown: bool = False, prefaulted: bool = False
              ) -> pd.DataFrame:
    """Valid single-mapper reads with their stride, window, fault count and chosen metric;
    without a populate step, or (prefaulted) only those with one."""
    rows = df[df["ok"] & (df["access"] == "read") & (df["mappers"] == 1)]
    # prefaulted rows are the floor, neither on nor off
    populated = (rows["populate"].fillna("none") != "none" if "populate" in rows
                 else pd.Series(False, index=rows.index))
    rows = rows[populated if prefaulted else ~populated].copy()
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
    rows["metric"] = spent / touched
    if FAULT_AROUND_KNOB in rows:
        knob = pd.to_numeric(rows[FAULT_AROUND_KNOB], errors="coerce")
        rows["window_bytes"] = knob.fillna(DEFAULT_WINDOW_BYTES)
        rows["window_source"] = np.where(knob.notna(), "knob", "default")
    else:
        rows["window_bytes"] = float(DEFAULT_WINDOW_BYTES)
        rows["window_source"] = "default"
    return rows


def _group_label(rows: pd.DataFrame, columns: list[str]) -> pd.Series:
    return labels(rows, columns) if len(rows) else pd.Series(dtype=str)


def _round_matrix(rows: pd.DataFrame, column: str, keys: list[Any], key: str,
                  rounds: np.ndarray) -> np.ndarray:
    """rounds x keys matrix of the per-(round, key) median of `column`; NaN where missing."""
    table = rows.groupby(["round", key])[column].median().unstack(key)
    return table.reindex(index=rounds, columns=keys).to_numpy(dtype=float)


def _resampled_medians(matrix: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """Per replicate (row of picks: round indices drawn with replacement), column medians."""
    with np.errstate(all="ignore"), _quiet_nan_warnings():
        return np.nanmedian(matrix[picks], axis=1)


@contextmanager
def _quiet_nan_warnings() -> Iterator[None]:
    """An all-NaN column (a stride no drawn round measured) is an expected NaN, not news."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _interval(values: np.ndarray) -> list[float | None]:
    """95% percentile interval; +-inf replicates (no crossing) make that end None."""
    # no interpolation: between a finite value and inf it would give nan
    low, high = np.quantile(values, [0.025, 0.975], method="inverted_cdf")
    return [float(low) if np.isfinite(low) else None, float(high) if np.isfinite(high) else None]


# ---------------------------------------------------------------------------------------
# Break-even


@dataclass(frozen=True)
class _Contrast:
    group: str
    backing: str
    name: str
    on_name: str
    off_name: str
    on: pd.DataFrame
    off: pd.DataFrame


def _curve_columns(rows: pd.DataFrame) -> list[str]:
    """The columns naming a break-even group (BreakEven.group) among rows with a stride."""
    return _group_columns(rows[rows["stride"].notna()], ("pattern", "uffd", FAULT_AROUND_KNOB))


def _contrasts(rows: pd.DataFrame) -> Iterator[_Contrast]:
    """Natively uffd none (on) vs wp (off) where no fault_around_bytes was set; with the knob,
    each value above one page (uffd none) vs one page (uffd none)."""
    columns = _curve_columns(rows)
    rows = rows[rows["stride"].notna()]
    rows = rows.assign(_group=_group_label(rows, columns))
    has_knob = FAULT_AROUND_KNOB in rows
    for (group, backing), part in rows.groupby(["_group", "backing"], sort=False):
        knob = (pd.to_numeric(part[FAULT_AROUND_KNOB], errors="coerce") if has_knob
                else pd.Series(np.nan, index=part.index))
        unset = part[knob.isna()]
        on, off = unset[unset["uffd"] == "none"], unset[unset["uffd"] == "wp"]
        if len(on) and len(off):
            yield _Contrast(str(group), str(backing), "uffd none vs wp", "uffd none", "uffd wp",
                            on, off)
        none = part[(part["uffd"] == "none") & knob.notna()]
        page = int(part["page_size"].iloc[0])
        base = none[knob[none.index] <= page]
        for value in sorted(knob[none.index].unique()):
            if value <= page or base.empty:
                continue
            shown = format_value(FAULT_AROUND_KNOB, value).split("=")[-1]
            off_shown = format_value(FAULT_AROUND_KNOB, page).split("=")[-1]
            yield _Contrast(
                str(group), str(backing), f"fa={shown} vs {off_shown}",
                f"{FAULT_AROUND_KNOB}={int(value)}", f"{FAULT_AROUND_KNOB}={page}",
                none[knob[none.index] == value], base,
            )


def _crossing(strides: np.ndarray, on: np.ndarray, off: np.ndarray) -> tuple[float, int, int]:
    """The first stride where on stops being cheaper than off, interpolated linearly in
    log(stride) on log(on/off); (value, index of the lower bracketing stride, crossings).

    The value is -inf when on is not cheaper even at the densest stride, +inf when it is
    cheaper at every stride: the crossing lies outside the measured range.
    """
    keep = np.isfinite(on) & np.isfinite(off) & (on > 0) & (off > 0)
    strides, diff = strides[keep], np.log(on[keep]) - np.log(off[keep])
    if len(diff) == 0:
        return np.nan, -1, 0
    cheaper = diff < 0
    ups = np.flatnonzero(cheaper[:-1] & ~cheaper[1:])
    crossings = int(np.count_nonzero(cheaper[:-1] != cheaper[1:]))
    if not cheaper[0]:
        return -np.inf, -1, crossings
    if len(ups) == 0:
        return np.inf, -1, crossings
    i = int(ups[0])
    x0, x1 = np.log(strides[i]), np.log(strides[i + 1])
    x = x0 + diff[i] / (diff[i] - diff[i + 1]) * (x1 - x0)
    return float(np.exp(x)), i, crossings


def _one_break_even(contrast: _Contrast, teardown: bool, replicates: int,
                    rng: np.random.Generator) -> BreakEven:
    both = pd.concat([contrast.on, contrast.off])
    strides = np.array(sorted(set(contrast.on["stride"]) & set(contrast.off["stride"])),
                       dtype=float)
    rounds = np.array(sorted(both["round"].unique()))
    window = int(contrast.on["window_bytes"].iloc[0])
    source = str(contrast.on["window_source"].iloc[0])
    window_pages = window / int(both["page_size"].iloc[0])
    common = {
        "group": contrast.group, "backing": contrast.backing, "contrast": contrast.name,
        "on": contrast.on_name, "off": contrast.off_name, "teardown_counted": teardown,
        "headline": not teardown, "window_bytes": window, "window_source": source,
        "rounds": len(rounds),
    }
    on_m = _round_matrix(contrast.on, "metric", list(strides), "stride", rounds)
    off_m = _round_matrix(contrast.off, "metric", list(strides), "stride", rounds)
    with _quiet_nan_warnings():
        on_med, off_med = np.nanmedian(on_m, axis=0), np.nanmedian(off_m, axis=0)
    bootstrap = len(rounds) >= MIN_ROUNDS_FOR_CI
    if bootstrap:
        picks = rng.integers(0, len(rounds), size=(replicates, len(rounds)))
        on_b, off_b = _resampled_medians(on_m, picks), _resampled_medians(off_m, picks)
    curve = [
        CurvePoint(
            stride=int(s), pages_per_window=window_pages / s,
            on_ns=float(on_med[i]), off_ns=float(off_med[i]),
            on_ci=_interval(on_b[:, i]) if bootstrap else None,
            off_ci=_interval(off_b[:, i]) if bootstrap else None,
        )
        for i, s in enumerate(strides)
    ]
    if len(strides) < MIN_STRIDES:
        return BreakEven(**common, stride=None, pages_per_window=None, ci=None, bracket=None,
                         crossings=0, curve=curve,
                         reason=f"{len(strides)} stride(s) measured both ways; need "
                                f"{MIN_STRIDES} or more")
    value, low, crossings = _crossing(strides, on_med, off_med)
    if not np.isfinite(value):
        side = ("fault-around on is slower even at the densest stride"
                if value < 0 else "fault-around on is faster at every stride measured")
        return BreakEven(**common, stride=None, pages_per_window=None, ci=None, bracket=None,
                         crossings=crossings, curve=curve,
                         reason=f"no crossing between stride {int(strides[0])} and "
                                f"{int(strides[-1])}: {side}")
    ci = None
    reason = None if bootstrap else (
        f"{len(rounds)} rounds: too few for a bootstrap interval (need {MIN_ROUNDS_FOR_CI})")
    if bootstrap:
        values = np.array([_crossing(strides, on_b[j], off_b[j])[0] for j in range(replicates)])
        values = values[~np.isnan(values)]
        stride_ci = _interval(values)
        ci = {
            "stride": stride_ci,
            "pages_per_window": [None if s is None else window_pages / s
                                 for s in reversed(stride_ci)],
        }
    return BreakEven(
        **common, stride=value, pages_per_window=window_pages / value, ci=ci,
        bracket=[int(strides[low]), int(strides[low + 1])], crossings=crossings, curve=curve,
        reason=reason,
    )


def break_even(
    df: pd.DataFrame, teardown: bool | None = None, replicates: int = REPLICATES, seed: int = 0
) -> list[BreakEven]:
    """Break-even access density per group (run, backing, ...) and contrast.

    `df` is `faultbench.load(...)` output; rows used: valid single-mapper reads with patterns
    seq (stride 1), stride:N and sparse (stride page_size/8). teardown=False: time per
    touched page is touch_ns / pages_touched (the headline); True: (touch_ns + munmap_ns) /
    pages_touched; None (default): both, headline first for each contrast. The window is the
    sample's fault_around_bytes read back, else the kernel default 64K (`window_source`
    says which). Seeded: the same frame gives the same intervals.
    """
    variants = [False, True] if teardown is None else [teardown]
    out: list[BreakEven] = []
    prepared = {t: _prepared(df, t) for t in variants}
    for index, contrast in enumerate(_contrasts(prepared[variants[0]])):
        for variant in variants:
            rows = prepared[variant]
            chosen = _Contrast(
                contrast.group, contrast.backing, contrast.name, contrast.on_name,
                contrast.off_name, rows.loc[contrast.on.index], rows.loc[contrast.off.index],
            )
            rng = np.random.default_rng([seed, index])  # both variants draw the same rounds
            out.append(_one_break_even(chosen, variant, replicates, rng))
    return out


# ---------------------------------------------------------------------------------------
# The ideal-prefault floor

POPULATE_CALLS = {"madvise": "MADV_POPULATE_READ", "map": "MAP_POPULATE"}
FLOOR_WHY = (
    "floor: populate_ns + touch_ns per touched page, the whole range made present by one "
    "call before the loop (MADV_POPULATE_READ, or mmap with MAP_POPULATE), then the same "
    "touches; flt: faults in the touch loop, pop flt: faults in the populate call"
)


@dataclass(frozen=True)
class FloorPoint:
    """The ideal-prefault cost at one stride: medians over samples, 95% CI of the median
    (order statistics; None below 6 samples)."""

    group: str
    backing: str
    populate: str
    call: str
    fault_around_bytes: int | None
    stride: int
    ns_per_page: float
    ci: list[float] | None
    n: int
    touch_faults: float
    populate_faults: float | None
    pages_mapped: float | None

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(asdict(self))


def prefault_floor(df: pd.DataFrame) -> pd.DataFrame:
    """Samples of the ideal-prefault rows (single-mapper reads with a populate step and a
    stride): `group` (as BreakEven.group, so each lands on its figure), `label` (the call),
    `populate`, `backing`, `stride`, `ns_per_page` = (populate_ns + touch_ns) /
    pages_touched, `touch_faults`, `populate_faults`, `pages_mapped`, `round`, `ok`. What
    `breakeven_figure(floor=...)` draws; empty when the run has none."""
    rows = _prepared(df, prefaulted=True)
    if rows.empty or "populate_ns" not in rows:
        return pd.DataFrame(columns=["group", "label", "fault_around_bytes", "populate",
                                     "backing", "stride", "ns_per_page"])
    rows = rows[rows["stride"].notna() & rows["populate_ns"].notna()
                & rows["pages_touched"].gt(0)]
    spent = rows["populate_ns"].astype(float) + rows["touch_ns"].astype(float)
    label = rows["populate"].map(lambda p: POPULATE_CALLS.get(p, p))
    # the populate call faults through do_read_fault too: fault-around batches it
    knob = (pd.to_numeric(rows[FAULT_AROUND_KNOB], errors="coerce") if FAULT_AROUND_KNOB in rows
            else pd.Series(np.nan, index=rows.index))
    label = label.where(knob.isna(), label + " " + knob.map(
        lambda v: format_value(FAULT_AROUND_KNOB, v)))
    return pd.DataFrame({
        "group": _group_label(rows, _curve_columns(_prepared(df))),
        "label": label, "fault_around_bytes": knob,
        "populate": rows["populate"], "backing": rows["backing"],
        "stride": rows["stride"].astype(int),
        "ns_per_page": spent / rows["pages_touched"].astype(float),
        "touch_faults": rows["faults"], "populate_faults": rows["populate_faults"],
        "pages_mapped": rows["pages_mapped"], "round": rows["round"], "ok": True,
    }, index=rows.index)


def floor_points(floor: pd.DataFrame) -> list[FloorPoint]:
    """`prefault_floor(df)` summarised per group, populate call and stride."""
    if floor.empty:
        return []
    keys = ["group", "backing", "populate", "label", "fault_around_bytes", "stride"]
    table = median_ci(floor, keys, "ns_per_page")
    counts = floor.groupby(keys, dropna=False)[
        ["touch_faults", "populate_faults", "pages_mapped"]].median()
    table = table.join(counts, on=keys).sort_values(
        ["group", "populate", "fault_around_bytes", "stride"])
    return [
        FloorPoint(
            group=str(r.group), backing=str(r.backing), populate=str(r.populate),
            call=str(r.label), stride=int(r.stride), ns_per_page=float(r.median),
            fault_around_bytes=None if r.fault_around_bytes != r.fault_around_bytes
            else int(r.fault_around_bytes),
            ci=None if r.ci_lo != r.ci_lo else [float(r.ci_lo), float(r.ci_hi)], n=int(r.n),
            touch_faults=float(r.touch_faults), populate_faults=float(r.populate_faults),
            pages_mapped=float(r.pages_mapped),
        )
        for r in table.itertuples(index=False)
    ]


# ---------------------------------------------------------------------------------------
# Cost model


def _fit_rows(df: pd.DataFrame) -> pd.DataFrame:
    rows = _prepared(df)
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
        matrix = _round_matrix(part, "metric", scenarios, "scenario", rounds)
        picks = rng.integers(0, len(rounds), size=(replicates, len(rounds)))
        resampled = _resampled_medians(matrix, picks)
        usable = np.isfinite(resampled).all(axis=1)
        boot = (solve @ (resampled[usable] / y).T).T
        cis = [[float(v) for v in _interval(boot[:, k])] for k in range(3)]
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
    columns = _group_columns(rows, ("pattern", "uffd", FAULT_AROUND_KNOB))
    keys = ["_group", "backing"]
    rows = rows.assign(_group=_group_label(rows, columns))
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


def compare_cost_models(base: CostModel | dict[str, Any], new: CostModel | dict[str, Any]) -> str:
    """The changelog sentence: "per-fault cost \u221240 ns (\u22125%), per-page map cost
    unchanged, per-touch cost unchanged" (a minus sign, U+2212). A constant is unchanged
    when the two 95% intervals overlap (or either has none); a model that does not fit gives
    the reason instead."""
    sides = [m.to_dict() if isinstance(m, CostModel) else m for m in (base, new)]
    for name, side in zip(("base", "new"), sides, strict=True):
        if not side.get("fits"):
            return f"no cost comparison: the {name} model {side.get('reason')}"
    words = []
    for key, what in (("ns_per_fault", "per-fault cost"), ("ns_per_page_mapped",
                      "per-page map cost"), ("ns_per_touch", "per-touch cost")):
        old, now = sides[0][key], sides[1][key]
        overlap = (old["ci"] is None or now["ci"] is None
                   or (old["ci"][0] <= now["ci"][1] and now["ci"][0] <= old["ci"][1]))
        if overlap:
            words.append(f"{what} unchanged")
            continue
        delta = now["value"] - old["value"]
        words.append(f"{what} {_signed(delta, ' ns')} ({_signed(100 * delta / old['value'], '%')})")
    return ", ".join(words)


def _signed(value: float, unit: str) -> str:
    text = f"{abs(value):.0f}" if abs(value) >= 10 or value == int(value) else f"{abs(value):.1f}"
    return f"{'+' if value >= 0 else MINUS}{text}{unit}"


# ---------------------------------------------------------------------------------------
# Report


def report_json(df: pd.DataFrame) -> dict[str, Any]:
    """`break_even`, `cost_model` and `prefault_floor` for `faultbench report --json`: lists
    of plain dicts."""
    return {
        "break_even": [b.to_dict() for b in break_even(df)],
        "cost_model": [m.to_dict() for m in cost_models(df)],
        "prefault_floor": [p.to_dict() for p in floor_points(prefault_floor(df))],
    }


def _ci_text(ci: list[float | None] | None, below: str = "<", above: str = ">",
             ends: tuple[float, float] | None = None) -> str:

    if ci is None:
        return "-"
    low = fmt(ci[0]) if ci[0] is not None else (f"{below}{fmt(ends[0])}" if ends else "?")
    high = fmt(ci[1]) if ci[1] is not None else (f"{above}{fmt(ends[1])}" if ends else "?")
    return f"{low}..{high}"


def report_section(
    df: pd.DataFrame, results: Sequence[BreakEven] | None = None,
    models: Sequence[CostModel] | None = None,
) -> str:
    """The break-even, prefault-floor and cost-model tables, 72 columns. Contrasts measured
    at fewer than MIN_STRIDES strides and fits over fewer than MIN_SCENARIOS scenarios (a
    run without a stride sweep) are left to --json, so the section is empty for such runs;
    the floor is shown for the groups whose break-even is. Pass precomputed `results` and
    `models` to avoid computing them twice when `report_json` is also made."""

    results = break_even(df) if results is None else results
    models = cost_models(df) if models is None else models
    results = [r for r in results if len(r.curve) >= MIN_STRIDES]
    models = [m for m in models if len(m.scenarios) >= MIN_SCENARIOS]
    shown = {r.group for r in results}
    floor = [p for p in floor_points(prefault_floor(df)) if p.group in shown]
    parts: list[str] = []
    if results:
        parts.append(wrap("Break-even access density: where time per touched page with "
                          "fault-around on equals the time with it off."))
        for (group, contrast), items in _grouped(results):
            first = items[0]
            window = format_value(FAULT_AROUND_KNOB, first.window_bytes).split("=")[-1]
            source = "the kernel's default" if first.window_source == "default" else "knob"
            parts.append(f"\n{group}, {contrast} (window {window}, {source}):\n")
            rows = [[str(p.stride), fmt(p.pages_per_window), fmt(p.on_ns), fmt(p.off_ns),
                     fmt(p.on_ns / p.off_ns)] for p in first.curve]
            parts.append(text_table(["stride", "pg/win", "on ns/pg", "off ns/pg", "on/off"],
                                    rows))
            for item in items:
                what = "touch" if not item.teardown_counted else "touch+munmap"
                head = f"crossing ({what}{', headline' if item.headline else ''}): "
                if item.stride is None:
                    parts.append(wrap(head + str(item.reason)))
                    continue
                ends = (first.curve[0].stride, first.curve[-1].stride)
                win_ends = (first.curve[-1].pages_per_window, first.curve[0].pages_per_window)
                ci = item.ci or {}
                bracket = item.bracket or []
                text = (f"stride {fmt(item.stride)} [{_ci_text(ci.get('stride'), ends=ends)}]"
                        f", {fmt(item.pages_per_window)} pages per window "
                        f"[{_ci_text(ci.get('pages_per_window'), ends=win_ends)}]; between "
                        f"strides {' and '.join(map(str, bracket))}")
                if item.crossings > 1:
                    text += f"; the curves cross {item.crossings} times, the first is shown"
                if item.reason:
                    text += f" ({item.reason})"
                parts.append(wrap(head + text))
        rounds = max(r.rounds for r in results)
        parts.append("\n" + wrap(
            f"on/off: ns per touched page, medians over rounds ({rounds}); pg/win: pages "
            f"touched per fault-around window. Crossing: interpolated in log(stride) between "
            f"the bracketing strides; [95% CI]: percentile bootstrap over rounds "
            f"({REPLICATES} replicates); an end beyond the strides measured is shown as "
            f"<first or >last. Stride {SPARSE_NOTE}. {HEADLINE_WHY}."))
    if floor:
        parts.append(_floor_section(floor))
    if models:
        parts.append("\n" + wrap("Cost model: touch_ns = a*faults + b*pages_mapped + "
                                 "c*pages_touched."))
        for model in models:
            knob = "" if model.fault_around_bytes is None else \
                " " + format_value(FAULT_AROUND_KNOB, model.fault_around_bytes)
            parts.append(f"\n{model.group}{knob} ({len(model.scenarios)} scenarios, "
                         f"{model.rounds} rounds):\n")
            if not model.fits:
                parts.append(wrap(f"no constants: {model.reason}"))
                continue
            rows = [[name, fmt(est.value), _ci_text(est.ci)] for name, est in (
                ("a, ns per fault", model.ns_per_fault),
                ("b, ns per page mapped", model.ns_per_page_mapped),
                ("c, ns per page touched", model.ns_per_touch),
            ) if est is not None]
            parts.append(text_table(["constant", "value", "95% CI"], rows))
            parts.append(wrap(f"residual {100 * (model.residual or 0):.1f}% (RMS of relative "
                              f"errors over scenario medians)"
                              + (f"; {model.reason}" if model.reason else "")))
        parts.append("\n" + wrap(f"Fitted to scenario medians of ns per touched page, least "
                                 f"squares on relative errors; rows: {FIT_WHICH}. 95% CI: "
                                 f"percentile bootstrap over rounds. A residual above "
                                 f"{100 * MAX_RESIDUAL:.0f}% prints no constants."))
    return "".join(parts)


def _grouped(results: Sequence[BreakEven]) -> list[tuple[tuple[str, str], list[BreakEven]]]:
    grouped: dict[tuple[str, str], list[BreakEven]] = {}
    for item in results:
        grouped.setdefault((item.group, item.contrast), []).append(item)
    return list(grouped.items())


def _floor_section(points: Sequence[FloorPoint]) -> str:
    parts = ["\n" + wrap("Ideal-prefault floor: what a fault path that made the range "
                         "present at once could reach.")]
    for group in dict.fromkeys(p.group for p in points):
        rows = [[str(p.stride), p.call, fmt(p.ns_per_page), _ci_text(p.ci),
                 fmt(p.touch_faults), fmt(p.populate_faults), str(p.n)]
                for p in points if p.group == group]
        parts.append(f"\n{group}:\n")
        parts.append(text_table(["stride", "call", "ns/pg", "95% CI", "flt", "pop flt", "n"],
                                rows))
    parts.append("\n" + wrap(f"{FLOOR_WHY}. 95% CI: {CI_METHOD}."))
    return "".join(parts)


def compare_section(base: pd.DataFrame, new: pd.DataFrame, by: str | None = None) -> str:
    """For `faultbench compare`: per group with a cost model on both sides, the constants
    and the changelog sentence (`compare_cost_models`). Models that cannot be identified
    from a side's rows (too few scenarios, fault-around only on or only off) are left out,
    so the section is empty unless both sides ran a stride sweep on and off. With --by
    fault_around_bytes the knob value is what differs, so it does not pair models."""

    def keyed(df: pd.DataFrame) -> dict[tuple[str, str, int | None], CostModel]:
        return {
            (m.group, m.backing, None if by == FAULT_AROUND_KNOB else m.fault_around_bytes): m
            for m in cost_models(df)
            if len(m.scenarios) >= MIN_SCENARIOS and m.residual is not None
        }

    bases, news = keyed(base), keyed(new)
    parts = []
    for key in (k for k in bases if k in news):
        old, now = bases[key], news[key]
        knob = "" if key[2] is None else " " + format_value(FAULT_AROUND_KNOB, key[2])
        parts.append(f"\n{key[0]}{knob}:\n")
        if old.fits and now.fits:
            parts.append(text_table(["constant", "base", "95% CI", "new", "95% CI"], [
                [name, fmt(a.value), _ci_text(a.ci), fmt(b.value), _ci_text(b.ci)]
                for name, a, b in (
                    ("a, ns/fault", old.ns_per_fault, now.ns_per_fault),
                    ("b, ns/page mapped", old.ns_per_page_mapped, now.ns_per_page_mapped),
                    ("c, ns/page touched", old.ns_per_touch, now.ns_per_touch),
                ) if a is not None and b is not None
            ]))
        parts.append(wrap(compare_cost_models(old, now) + "."))
    if not parts:
        return ""
    return "\n" + wrap(
        "Cost model, touch_ns = a*faults + b*pages_mapped + c*pages_touched, new against "
        "base; a constant is unchanged when the two 95% bootstrap intervals overlap.") + \
        "".join(parts)
