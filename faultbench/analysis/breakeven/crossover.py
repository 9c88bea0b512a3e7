"""The crossover: the stride at which time per touched page with fault-around on equals the
time with it off (`break_even`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
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
    quiet_nan_warnings,
    resampled_medians,
    round_matrix,
    unit_of,
)
from faultbench.analysis.frame import FAULT_AROUND_KNOB
from faultbench.analysis.labels import format_value

MIN_STRIDES = 3  # to bracket a crossing with a stride on each side of it and one more

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
    # strides measured (or attempted) with no valid value on one side: never bridged
    missing_strides: list[int] = field(default_factory=list)
    unit: str = "round"
    kernel: str | None = None  # a booted run's kernel label, when the group has one

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))


@dataclass(frozen=True)
class _Contrast:
    group: str
    backing: str
    name: str
    on_name: str
    off_name: str
    on: pd.DataFrame
    off: pd.DataFrame


def curve_columns(rows: pd.DataFrame) -> list[str]:
    """The columns naming a break-even group (BreakEven.group) among rows with a stride."""
    return group_columns(rows[rows["stride"].notna()], ("pattern", "uffd", FAULT_AROUND_KNOB))


def _contrasts(rows: pd.DataFrame) -> Iterator[_Contrast]:
    """Natively uffd none (on) vs wp (off) where no fault_around_bytes was set; with the knob,
    each value above one page (uffd none) vs one page (uffd none)."""
    columns = curve_columns(rows)
    rows = rows[rows["stride"].notna()]
    rows = rows.assign(_group=group_label(rows, columns))
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
    log(stride) on log(on/off); (value, index into the strides with a value on both sides
    of the lower bracketing stride, crossings).

    The value is -inf when on is not cheaper even at the densest stride, +inf when it is
    cheaper at every stride: the crossing lies outside the measured range. It is NaN when
    the bracketing strides are not neighbours among `strides` (a stride between them has
    no value on one side): the curves are not interpolated across a gap.
    """
    keep = np.isfinite(on) & np.isfinite(off) & (on > 0) & (off > 0)
    position = np.flatnonzero(keep)
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
    if position[i + 1] != position[i] + 1:
        return np.nan, i, crossings
    x0, x1 = np.log(strides[i]), np.log(strides[i + 1])
    x = x0 + diff[i] / (diff[i] - diff[i + 1]) * (x1 - x0)
    return float(np.exp(x)), i, crossings


def _one_break_even(contrast: _Contrast, teardown: bool, replicates: int,
                    rng: np.random.Generator) -> BreakEven:
    both = pd.concat([contrast.on, contrast.off])
    # every stride attempted on either side, failed samples included: the ones without a
    # value on both sides are gaps the crossing must not bridge
    measured = np.array(sorted(set(both["stride"])), dtype=float)
    unit = unit_of(both)
    # the units with a timed sample: a profiled or failed round has none to resample
    rounds = np.array(sorted(both.loc[both["metric"].notna(), unit].dropna().unique()))
    window = int(contrast.on["window_bytes"].iloc[0])
    source = str(contrast.on["window_source"].iloc[0])
    window_pages = window / int(both["page_size"].iloc[0])
    common = {
        "group": contrast.group, "backing": contrast.backing, "contrast": contrast.name,
        "on": contrast.on_name, "off": contrast.off_name, "teardown_counted": teardown,
        "headline": not teardown, "window_bytes": window, "window_source": source,
        "rounds": len(rounds), "unit": unit,
        "kernel": (str(both["kernel"].dropna().iloc[0]) if "kernel" in both
                   and both["kernel"].dropna().nunique() == 1 else None),
    }
    on_m = round_matrix(contrast.on, "metric", list(measured), "stride", rounds, unit)
    off_m = round_matrix(contrast.off, "metric", list(measured), "stride", rounds, unit)
    with quiet_nan_warnings():
        on_med, off_med = np.nanmedian(on_m, axis=0), np.nanmedian(off_m, axis=0)
    present = np.isfinite(on_med) & np.isfinite(off_med)
    strides = measured[present]
    common["missing_strides"] = [int(s) for s in measured[~present]]
    bootstrap = len(rounds) >= MIN_ROUNDS_FOR_CI
    if bootstrap:
        picks = rng.integers(0, len(rounds), size=(replicates, len(rounds)))
        on_b, off_b = resampled_medians(on_m, picks), resampled_medians(off_m, picks)
    curve = [
        CurvePoint(
            stride=int(s), pages_per_window=window_pages / s,
            on_ns=float(on_med[i]), off_ns=float(off_med[i]),
            on_ci=interval(on_b[:, i]) if bootstrap else None,
            off_ci=interval(off_b[:, i]) if bootstrap else None,
        )
        for i, s in enumerate(measured) if present[i]
    ]
    if len(strides) < MIN_STRIDES:
        return BreakEven(**common, stride=None, pages_per_window=None, ci=None, bracket=None,
                         crossings=0, curve=curve,
                         reason=f"{len(strides)} stride(s) measured both ways; need "
                                f"{MIN_STRIDES} or more")
    value, low, crossings = _crossing(measured, on_med, off_med)
    if np.isnan(value):
        gap = [s for s in common["missing_strides"] if strides[low] < s < strides[low + 1]]
        return BreakEven(**common, stride=None, pages_per_window=None, ci=None,
                         bracket=[int(strides[low]), int(strides[low + 1])],
                         crossings=crossings, curve=curve,
                         reason=f"the curves cross between strides {int(strides[low])} and "
                                f"{int(strides[low + 1])}, but stride "
                                f"{', '.join(map(str, gap))} between them has no valid "
                                f"value on one side: not interpolated across the gap")
    if not np.isfinite(value):
        side = ("fault-around on is slower even at the densest stride"
                if value < 0 else "fault-around on is faster at every stride measured")
        return BreakEven(**common, stride=None, pages_per_window=None, ci=None, bracket=None,
                         crossings=crossings, curve=curve,
                         reason=f"no crossing between stride {int(strides[0])} and "
                                f"{int(strides[-1])}: {side}")
    ci = None
    reason = None if bootstrap else (
        f"{len(rounds)} {unit}s: too few for a bootstrap interval (need {MIN_ROUNDS_FOR_CI})")
    if bootstrap:
        values = np.array([_crossing(measured, on_b[j], off_b[j])[0]
                           for j in range(replicates)])
        bridged = int(np.count_nonzero(np.isnan(values)))
        values = values[~np.isnan(values)]
        if bridged:
            # a replicate that drew no valid round of a stride next to the crossing
            reason = f"{bridged} of {replicates} bootstrap replicates crossed over a stride " \
                     f"they had no value for and were left out"
        stride_ci = interval(values)
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
    seq (stride 1), stride:N and sparse (stride page_size/8); a stride attempted but without
    a valid value on one side is listed in `missing_strides`, and a crossing next to it is
    not interpolated over it. teardown=False: time per
    touched page is touch_ns / pages_touched (the headline); True: (touch_ns + munmap_ns) /
    pages_touched; None (default): both, headline first for each contrast. The window is the
    sample's fault_around_bytes read back, else the kernel default 64K (`window_source`
    says which). Seeded: the same frame gives the same intervals.
    """
    variants = [False, True] if teardown is None else [teardown]
    out: list[BreakEven] = []
    prepared = {t: prepare_rows(df, t, valid=False) for t in variants}
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

