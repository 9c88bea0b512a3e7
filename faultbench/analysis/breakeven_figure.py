"""The break-even figure: ns per touched page against access density, fault-around on vs off.

Analysis plane (matplotlib, via analysis.mpl, which selects the Agg backend).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from faultbench.analysis.breakeven import BreakEven, break_even
from faultbench.analysis.figure_text import drawable, figure_names
from faultbench.analysis.figures import SIZE, STYLE, ns_label, save, title
from faultbench.analysis.mpl import FixedLocator, FuncFormatter, LogLocator, NullFormatter, plt
from faultbench.measurement.spec import format_size

# black, told apart by marker and dash (a knob sweep has one per populate call and value)
FLOOR_STYLES = (("v", "-."), ("^", ":"), ("D", (0, (5, 2, 1, 2))), ("P", (0, (1, 3))))

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from faultbench.analysis.frame import RunInfo
    from faultbench.measurement.rundir.safefile import SafeDir


def _yerr(values: Sequence[float], cis: Sequence[list[float] | None]) -> np.ndarray:
    """Asymmetric error bars from [low, high] intervals; zero where there is none."""
    low = [v - ci[0] if ci and ci[0] is not None else 0.0 for v, ci in zip(values, cis,
                                                                             strict=True)]
    high = [ci[1] - v if ci and ci[1] is not None else 0.0 for v, ci in zip(values, cis,
                                                                              strict=True)]
    return np.clip(np.vstack([low, high]), 0, None)


def _sized(setting: str) -> str:
    """A side's knob setting as the tables write it (fault_around_bytes=2097152 -> fa=2M),
    to be drawn."""
    return drawable(re.sub(r"fault_around_bytes=(\d+)",
                           lambda m: f"fa={format_size(int(m.group(1)))}", setting))


def _mark_crossing(ax: Axes, item: BreakEven, color: str) -> None:
    """A cross where the curves meet, a dotted line down to the axis, its interval shaded."""
    assert item.stride is not None
    strides = [p.stride for p in item.curve]
    on = [p.on_ns for p in item.curve]
    # the curves are interpolated in log-log, so the meeting point is too
    y = float(np.exp(np.interp(np.log(item.stride), np.log(strides), np.log(on))))
    window = format_size(item.window_bytes)
    ax.axvline(item.stride, color=color, linestyle=":", linewidth=1.2)
    ax.plot([item.stride], [y], marker="X", markersize=11, color=color, zorder=5,
            linestyle="none",
            label=f"break-even ({item.contrast}): stride {item.stride:.1f}, "
                  f"{item.pages_per_window:.2f} pages per {window} window")
    if item.ci:
        low, high = item.ci["stride"]
        ax.axvspan(low if low is not None else strides[0], high if high is not None
                   else strides[-1], color=color, alpha=0.12, linewidth=0)


def breakeven_figure(
    df: pd.DataFrame, info: RunInfo, out_dir: SafeDir, floor: pd.DataFrame | None = None,
    results: Sequence[BreakEven] | None = None,
) -> list[Path]:
    """`break-even.png|svg` (one per group, `break-even-<group>` when there are several,
    analysis.figure_text.figure_names):
    ns per touched page (touch loop; log y) against stride (log2 x; pages touched per window
    on the top axis when every contrast has the same window), each fault-around-on series
    (uffd none, or each fault_around_bytes value) and each off series, medians with 95%
    bootstrap intervals, the crossings marked with their intervals shaded.

    `floor`: optional samples of the floor, the touch loop with every page already mapped
    (`populate_rows(df)`): a DataFrame with columns `stride`, `ns_per_page` (one row per
    sample; medians are drawn) and optionally `label` (one line per label, default
    "populated"), `group` (matching a BreakEven.group; rows without it go on every figure)
    and `with_populate_ns_per_page` (populate call + touch, drawn at stride 1 only, where
    the range populated is the range touched).
    `results`: precomputed `break_even(df, teardown=False)`. Returns the files written;
    none when the run has no contrast.
    """
    results = [r for r in (results if results is not None else break_even(df, teardown=False))
               if not r.teardown_counted]
    groups = list(dict.fromkeys(r.group for r in results))
    names = {groups[0]: "break-even"} if len(groups) == 1 else \
        figure_names("break-even-", groups)
    made: list[Path] = []
    with plt.rc_context(STYLE):
        for group in groups:
            items = [r for r in results if r.group == group]
            made += _one_figure(items, info, out_dir, names[group], _floor_of(floor, group))
    return made


def _floor_of(floor: pd.DataFrame | None, group: str) -> pd.DataFrame | None:
    if floor is None or floor.empty:
        return None
    if "group" in floor:
        floor = floor[floor["group"].isna() | (floor["group"] == group)]
    return floor if len(floor) else None


def _one_figure(items: list[BreakEven], info: RunInfo, out_dir: SafeDir, name: str,
                floor: pd.DataFrame | None) -> list[Path]:
    # the legend sits below the axes: give each of its rows room rather than squash them
    calls = 0 if floor is None else (floor["label"].nunique() if "label" in floor else 1)
    rows = (2 * len(items) + len({i.off for i in items}) + 2 * calls + 1) // 2
    fig, ax = plt.subplots(figsize=(SIZE[0], SIZE[1] + 0.22 * max(rows - 3, 0)),
                           layout="constrained")
    colors = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"])
    drawn_off: set[str] = set()
    strides: set[int] = set()
    for item in items:
        x = [p.stride for p in item.curve]
        strides.update(x)
        color = next(colors)
        ax.errorbar(x, [p.on_ns for p in item.curve], marker="o", capsize=3, color=color,
                    yerr=_yerr([p.on_ns for p in item.curve], [p.on_ci for p in item.curve]),
                    label=f"fault-around on ({_sized(item.on)})")
        if item.off not in drawn_off:
            drawn_off.add(item.off)
            ax.errorbar(x, [p.off_ns for p in item.curve], marker="s", capsize=3,
                        color="dimgray", linestyle="--",
                        yerr=_yerr([p.off_ns for p in item.curve],
                                   [p.off_ci for p in item.curve]),
                        label=f"fault-around off ({_sized(item.off)})")
        if item.stride is not None:
            _mark_crossing(ax, item, color)
    if floor is not None:
        _draw_floor(ax, floor)
        strides.update(int(s) for s in floor["stride"])
    ticks = sorted(strides)
    page = _page_of(items)
    sparse = page / 8 if page else None  # native/touch.c: one page per page table
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(
        FuncFormatter(lambda v, _: f"{v:g}" + ("\nsparse" if v == sparse else "")))
    ax.xaxis.set_minor_locator(FixedLocator([]))
    ax.set_xlabel("stride: one page touched every N pages (log2)")
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel(ns_label(info) + " (log)")
    windows = {item.window_bytes for item in items}
    if len(windows) == 1 and page:
        pages = next(iter(windows)) / page
        top = ax.secondary_xaxis("top", functions=(lambda s: pages / np.maximum(s, 1e-9),
                                                   lambda d: pages / np.maximum(d, 1e-9)))
        top.xaxis.set_major_locator(FixedLocator([pages / s for s in ticks]))
        top.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
        top.xaxis.set_minor_locator(FixedLocator([]))
        top.set_xlabel(f"pages touched per {format_size(next(iter(windows)))} "
                       "fault-around window")
    handles, names = ax.get_legend_handles_labels()
    # curves first, then the floor, populate + touch, then the crossings
    first = sorted(range(len(names)), key=lambda i: (
        names[i].startswith("break-even"), "+ touch, stride 1" in names[i],
        names[i].startswith("floor")))
    fig.legend([handles[i] for i in first], [names[i] for i in first],
               loc="outside lower center", ncol=2, fontsize=9)  # off the curves
    title(fig, f"Break-even access density, {_readable(items[0])}", info)
    return save(fig, out_dir, name)


def _readable(item: BreakEven) -> str:
    """The group as a title says it: a booted run's kernel label is written "LABEL:" in
    table rows, which in a title followed by " - Linux ..." read as "base: -"."""
    if item.kernel is None:
        return item.group
    return " ".join(f"kernel {item.kernel}" if word == f"{item.kernel}:" else word
                    for word in item.group.split())


def _draw_floor(ax: Axes, floor: pd.DataFrame) -> None:
    """One line per populate call, medians per stride, of the touch loop alone (every page
    already mapped); populate + touch only at stride 1: at wider strides the call maps
    pages nobody touches, which is no floor."""
    names = floor["label"] if "label" in floor else pd.Series("populated", index=floor.index)
    for (label, part), (marker, style) in zip(floor.groupby(names),
                                              itertools.cycle(FLOOR_STYLES)):
        medians = part.groupby("stride")["ns_per_page"].median().sort_index()
        ax.plot(medians.index, medians.to_numpy(), color="black", marker=marker,
                linestyle=style, label=drawable(f"floor: touch only, every page mapped ({label})"))
        dense = part[part["stride"] == 1]
        if "with_populate_ns_per_page" in part and len(dense):
            ax.plot([1], [float(dense["with_populate_ns_per_page"].median())], color="black",
                    marker=marker, markersize=10, markerfacecolor="none", linestyle="none",
                    label=drawable(f"{label} + touch, stride 1"))


def _page_of(items: list[BreakEven]) -> float | None:
    """Page size from a curve point: window pages / stride = pages_per_window."""
    point = items[0].curve[0] if items and items[0].curve else None
    if point is None or not point.pages_per_window:
        return None
    return items[0].window_bytes / (point.pages_per_window * point.stride)
