"""Figures of a run, PNG and SVG, sized and lettered to be read in a cover letter."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from faultbench.analysis.figure_text import drawable, figure_names
from faultbench.analysis.frame import FAULT_AROUND_KNOB, RunInfo, time_unit
from faultbench.analysis.labels import knob_order, label_columns, labels, sort_labels
from faultbench.analysis.mpl import FuncFormatter, Line2D, LogLocator, NullFormatter, plt
from faultbench.analysis.stats import median_ci
from faultbench.errors import printable
from faultbench.measurement.rundir.safefile import SafeDir
from faultbench.measurement.spec import format_size

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

STYLE = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 9,
    "figure.dpi": 100,
    "axes.grid": True,
    "grid.alpha": 0.3,
    # side-by-side panels: room between them, or the last x tick label of one runs into
    # the first of the next ("15000" + "0")
    "figure.constrained_layout.wspace": 0.06,
    "svg.fonttype": "none",  # text stays text: searchable, and a tenth of the size
    # the same data gives the same bytes (committed figures stay unchanged when redrawn):
    # clip-path and other SVG ids are hashed with this salt instead of a random one
    "svg.hashsalt": "faultbench",
}
# No creation date (SVG dc:date) or matplotlib version (PNG Software) in the files, for the
# same reason.
METADATA = {"svg": {"Date": None}, "png": {"Software": None}}
SIZE = (9.0, 4.8)  # inches; at 150 dpi 1350 px wide, legible when scaled to a page column
UFFD_ORDER = ["none", "missing", "wp", "minor"]
MARKERS = "osD^v<>Ph"
DASHES = ["-", "--", "-.", ":"]


def title(fig: Figure, what: str, info: RunInfo) -> None:
    line = drawable(f"{what} - Linux {info.kernel}, {info.host}")
    if info.instruction_clock:
        line += "\nINSTRUCTION CLOCK (QEMU icount: 1 virtual ns = 1 guest instruction)"
    elif info.emulated:
        line += "\nTIMINGS TCG-EMULATED (not native; fault counts exact)"
    fig.suptitle(line, fontsize=12, color="darkred" if info.emulated else "black")


def ns_label(info: RunInfo) -> str:
    if info.instruction_clock:
        return "guest instructions per page touched (icount)"
    return "ns per page touched" + (" (emulated)" if info.emulated else "")


def log_scale(ax: Axes, values: pd.Series, axis: str = "x", base: int = 10) -> bool:
    """A log axis, unless no value is positive (every sample 0 faults, or a run's edited
    numbers): a log axis cannot show them, so it stays linear; whether it is log."""
    if not (values > 0).any():
        return False
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log", base=base)
    return True


def log_if_spread(ax: Axes, values: pd.Series, axis: str = "x") -> bool:
    """A log axis when the positive values span more than 20x: on a linear one a few slow
    rows (or their error bars) would squash every other bar into a sliver."""
    positive = values[values > 0]
    if not len(positive) or positive.max() <= 20 * positive.min():
        return False
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    log_ticks(ax, values, axis)
    return True


@contextlib.contextmanager
def warnings_said(where: str) -> Iterator[None]:
    """What is warned of inside (matplotlib giving up on a layout or an axis) said once per
    message, in one escaped line naming `where`: a Python warning would print a source line
    of ours, and quote a run's text raw."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for message in dict.fromkeys(str(w.message) for w in caught):
        print(f"faultbench: warning: {printable(where)}: {printable(message)}", file=sys.stderr)


def save(fig: Figure, out_dir: SafeDir, name: str) -> list[Path]:
    """NAME.png and NAME.svg in the directory opened as out_dir, never through a link;
    what matplotlib warns of while saving (a layout it gave up on) said as warnings_said
    says it."""
    paths = []
    try:
        with warnings_said(f"{out_dir.path / name}.png|svg: matplotlib"):
            for kind, dpi in (("png", 150), ("svg", None)):
                with out_dir.replacing(f"{name}.{kind}", binary=True) as fh:
                    fig.savefig(fh, format=kind, dpi=dpi, bbox_inches="tight",
                                metadata=METADATA[kind])
                paths.append(out_dir.path / f"{name}.{kind}")
    finally:
        plt.close(fig)
    return paths


def _errbars(table: pd.DataFrame) -> np.ndarray:
    """Asymmetric error bars from the CI; NaN (matplotlib draws no bar) where the CI is
    unknown (n < 6 rounds): a zero-length bar would claim a certain median."""
    low = (table["median"] - table["ci_lo"]).clip(lower=0)
    high = (table["ci_hi"] - table["median"]).clip(lower=0)
    return np.vstack([low.to_numpy(), high.to_numpy()])


# Pages mapped per fault from which a row counts as fault-around on (off maps exactly 1).
FAULT_AROUND_SEEN = 1.5
NO_CI = "no error bar: 95% CI unknown (n < 6 rounds)"


def _no_ci_handles(table: pd.DataFrame) -> list[Line2D]:
    """A legend entry saying why some values have no error bar; none when all have one."""
    if table["ci_lo"].notna().all():
        return []
    return [Line2D([], [], linestyle="none", marker="", label=NO_CI)]


def sweep(df: pd.DataFrame, info: RunInfo, out_dir: SafeDir, knob: str) -> list[Path]:
    """ns/page and faults/page against the knob (log2 axis), one line per scenario."""
    data = df[df["ok"] & df[knob].notna()]
    cols = [c for c in label_columns(data) if c != knob]
    data = sort_labels(data, [*cols, "role"], knob_order(df)).assign(
        line=lambda d: labels(d, [*cols, "role"]), x=pd.to_numeric(data[knob], errors="coerce")
    )
    data = data[data["x"].notna()]
    if data["x"].nunique() < 2:
        return []
    ns = median_ci(data, ["line", "x"], "ns_per_page")
    faults = data.groupby(["line", "x"])["faults_per_page"].median().rename("faults")
    table = ns.merge(faults, left_on=["line", "x"], right_index=True).sort_values(["line", "x"])
    fig, (left, right) = plt.subplots(1, 2, figsize=SIZE, layout="constrained")
    lines = list(dict.fromkeys(table["line"]))
    for i, (line, part) in enumerate(table.groupby("line", sort=False)):
        # lines that coincide (fault counts of seq and random) are drawn over each other:
        # each its own marker and dash, later ones smaller, so every one stays visible
        style = {"marker": MARKERS[i % len(MARKERS)], "linestyle": DASHES[i % len(DASHES)],
                 "markersize": 9 - 4 * i / max(len(lines) - 1, 1), "markerfacecolor": "none"}
        left.errorbar(part["x"], part["median"], yerr=_errbars(part), capsize=3,
                      label=drawable(line), **style)
        right.plot(part["x"], part["faults"], label=drawable(line), **style)
    name = "fault_around_bytes" if knob == FAULT_AROUND_KNOB else knob
    log_x = False
    for ax in (left, right):
        log_x = log_scale(ax, table["x"], "x", base=2)
        ax.set_xticks(sorted(table["x"].unique()))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: format_size(int(v))))
        ax.tick_params(axis="x", labelsize=8)  # ten powers of two, flat: read at a glance
        ax.set_xlabel(f"{name} (bytes{', log2' if log_x else ''})")
    left.set_ylabel(ns_label(info))
    # patterns differ by orders of magnitude (sparse touches few pages)
    if log_if_spread(left, table["median"], "y"):
        left.set_ylabel(ns_label(info) + ", log scale")
    else:
        left.set_ylim(bottom=0)
    if log_scale(right, table["faults"], "y", base=2):
        right.set_ylabel("faults per page touched (log2)")
    else:  # no fault in any row: every touched page was mapped before the loop
        right.set_ylabel("faults per page touched")
        right.set_ylim(bottom=0)
    left.set_title("time (median, 95% CI)")
    right.set_title("faults (median)")
    handles, names = right.get_legend_handles_labels()
    note = _no_ci_handles(table)
    fig.legend([*handles, *note], [*names, *(h.get_label() for h in note)],
               loc="outside lower center", ncol=min(len(handles) + len(note), 3), fontsize=9)
    title(fig, f"Read faults vs {name}", info)
    return save(fig, out_dir, figure_names("sweep-", [knob])[knob])


def _bars_side_by_side(
    table: pd.DataFrame, series: str, order: list[str], info: RunInfo, what: str,
    out_dir: SafeDir, name: str,
) -> list[Path]:
    """Time (median, CI) and faults per page, one bar per series within each group.

    Horizontal, so that scenario labels of any length stay readable and many groups just
    make a taller figure. A `panel` column (the kernels of a booted A/B run) puts each
    panel's time, then each one's faults, side by side on shared axes.
    """
    groups = list(dict.fromkeys(table["group"]))
    shown = [drawable(g) for g in groups]
    panels = list(dict.fromkeys(table["panel"])) if "panel" in table else [""]
    present = [s for s in order if (table[series] == s).any()]
    height = 0.8 / max(len(present), 1)
    y = np.arange(len(groups))
    tall = max(SIZE[1], 0.16 * len(groups) * max(len(present), 1) + 1.6)
    labels_in = 0.09 * max(len(g) for g in shown)  # room for the labels
    wide = max(SIZE[0], 6 + labels_in) + 3.6 * (len(panels) - 1)
    fig, axes = plt.subplots(1, 2 * len(panels), figsize=(wide, tall), layout="constrained",
                             sharey=True, squeeze=False)
    times, counts = list(axes[0][:len(panels)]), list(axes[0][len(panels):])
    for panel, left, right in zip(panels, times, counts, strict=True):
        mine = table[table["panel"] == panel] if panel else table
        for i, label in enumerate(present):
            part = mine[mine[series] == label].set_index("group").reindex(groups)
            offset = y + (i - (len(present) - 1) / 2) * height
            left.barh(offset, part["median"], height, xerr=_errbars(part), capsize=2,
                      label=drawable(label), color=f"C{i}")
            right.barh(offset, part["faults"], height, label=drawable(label), color=f"C{i}")
        suffix = f"\n{drawable(panel)}" if panel else ""
        left.set_title("time (median, 95% CI)" + suffix)
        right.set_title("faults (median)" + suffix)
    for ax in [*times[1:], *counts[1:]]:
        ax.sharex(times[0] if ax in times else counts[0])
    left = times[0]
    left.set_yticks(y, shown, fontsize=9 if len(groups) * len(present) > 20 else None)
    left.set_ylim(len(groups) - 0.5, -0.5)  # first group on top, no empty margins
    log = log_if_spread(left, pd.concat([table["median"], table["ci_hi"].dropna()]))
    log_faults = log_if_spread(counts[0], table["faults"])
    if len(panels) > 1:  # narrow panels: short axis labels, ticks at powers of ten
        for ax in (times[0], counts[0]):
            if ax.get_xscale() == "log":
                ax.xaxis.set_major_locator(LogLocator(subs=(1.0,)))
        unit = f"{time_unit(info.plane)}/page touched"
        for ax in times:
            ax.set_xlabel(unit + (", log" if log else ""), fontsize=9)
        for ax in counts:
            ax.set_xlabel("faults/page touched" + (", log" if log_faults else ""), fontsize=9)
    else:
        left.set_xlabel(ns_label(info) + (", log scale" if log else ""))
        counts[0].set_xlabel("faults per page touched" + (", log scale" if log_faults else ""))
    handles, names = counts[0].get_legend_handles_labels()
    note = _no_ci_handles(table)
    fig.legend([*handles, *note], [*names, *(h.get_label() for h in note)],
               loc="outside lower center", ncol=len(present) + len(note), fontsize=10)
    title(fig, what, info)
    return save(fig, out_dir, name)


def _table(data: pd.DataFrame, series: str) -> pd.DataFrame:
    """Per group (and panel) and series: median ns/page with its CI, median faults/page."""
    keys = ["group", *(["panel"] if "panel" in data else []), series]
    ns = median_ci(data, keys, "ns_per_page")
    faults = data.groupby(keys)["faults_per_page"].median().rename("faults")
    return ns.merge(faults, left_on=keys, right_index=True)


def uffd_modes(df: pd.DataFrame, info: RunInfo, out_dir: SafeDir) -> list[Path]:
    """Each uffd registration mode side by side, per backing and pattern (single mappers)."""
    data = df[df["ok"] & (df["mappers"] == 1)]
    cols = [c for c in label_columns(data) if c != "uffd"]
    data = sort_labels(data, [*cols, "uffd"], knob_order(df))
    data = data.assign(group=labels(data, cols), mode="uffd " + data["uffd"])
    # only scenarios measured in several modes say anything about the modes
    data = data[data.groupby("group")["uffd"].transform("nunique") > 1]
    if data.empty:
        return []
    # name only the modes measured: a title is read as a finding
    off = [m.upper() for m in ("wp", "minor") if (data["uffd"] == m).any()]
    what = (f"userfaultfd modes: {'/'.join(off)} switch{'es' if len(off) == 1 else ''} "
            "fault-around off" if off else "userfaultfd modes")
    return _bars_side_by_side(
        _table(data, "mode"), "mode", [f"uffd {m}" for m in UFFD_ORDER], info, what,
        out_dir, "uffd-modes",
    )


def mappers(df: pd.DataFrame, info: RunInfo, out_dir: SafeDir) -> list[Path]:
    """First vs later mappers of one file: who pays the faults the page cache already saved."""
    data = df[df["ok"] & (df["mappers"] > 1)]
    if data.empty:
        return []
    cols = label_columns(data)
    cols = [c for c in dict.fromkeys([*cols, "uffd", "uffd_mappers"]) if c != "role"]
    data = sort_labels(data, [*cols, "role"], knob_order(df))
    data = data.assign(who=data["role"] + " mapper")
    if "kernel" in cols:  # kernels side by side, not one above the other
        cols.remove("kernel")
        data = data.assign(panel=data["kernel"].astype(str))
    data = data.assign(group=labels(data, cols))
    return _bars_side_by_side(
        _table(data, "who"), "who", ["first mapper", "later mapper"], info,
        "Several mappers of one file: first vs later", out_dir, "mappers",
    )


def sparse(df: pd.DataFrame, info: RunInfo, out_dir: SafeDir) -> list[Path]:
    """The worst case: one page touched per fault-around window, the rest mapped for nothing."""
    data = df[df["ok"] & (df["pattern"] == "sparse")]
    if data.empty:
        return []
    cols = [c for c in label_columns(data) if c != "pattern"]
    data = sort_labels(data, [*cols, "role"], knob_order(df))
    data = data.assign(line=labels(data, [*cols, "role"]),
                       per_fault=data["mapped_per_touched"] / data["faults_per_page"])
    ns = median_ci(data, ["line"], "ns_per_page")
    measured = data.groupby("line")[["mapped_per_touched", "per_fault"]].median()
    table = ns.merge(measured, left_on="line", right_index=True)
    # what the kernel did, not what the settings say it should: more than one page mapped
    # per fault is fault-around at work (a patched kernel may differ from the rule)
    around = table["per_fault"].map(
        lambda v: "" if v != v else "fa on" if v >= FAULT_AROUND_SEEN else "fa off")
    shown = table["line"].map(drawable)
    wide = max(SIZE[0], 6 + 0.09 * max(len(t) for t in shown) + 2.4)  # the labels
    fig, (left, right) = plt.subplots(1, 2, figsize=(wide, SIZE[1]), layout="constrained")
    colors = around.map({"fa on": "tab:red", "fa off": "tab:blue"}).fillna("tab:gray")
    y = np.arange(len(table))
    left.barh(y, table["median"], xerr=_errbars(table), capsize=3, color=colors)
    right.barh(y, table["mapped_per_touched"], color=colors)
    per_fault = table["per_fault"].map(lambda v: "" if v != v else f"{v:.3g} mapped/fault")
    left.set_yticks(y, shown + " (" + (around + ": " + per_fault).where(
        around != "", "pages mapped not walked") + ")")
    right.set_yticks(y, [""] * len(y))
    log = log_if_spread(left, pd.concat([table["median"], table["ci_hi"].dropna()]))
    left.set_xlabel(ns_label(info) + (", log scale" if log else ""))
    left.set_title("time (median, 95% CI)")
    right.set_xlabel("pages mapped per page touched")
    right.set_title("pages mapped (memory)")
    if _no_ci_handles(table):
        left.legend(handles=_no_ci_handles(table), loc="best", fontsize=8)
    for ax in (left, right):
        ax.invert_yaxis()
    title(fig, "Sparse access: the fault-around worst case", info)
    return save(fig, out_dir, "sparse")


def _short(value: float) -> str:
    """A tick label of a log axis: 500, 2000, 20k, 1M (1e+06 and 1,000,000 read slowly and
    run into their neighbours)."""
    if value >= 1e6:
        return f"{value / 1e6:g}M"
    return f"{value / 1e3:g}k" if value >= 1e4 else f"{value:g}"


def log_ticks(ax: Axes, values: pd.Series, axis: str = "x") -> None:
    """Log ticks at 1-2-5 over up to two decades, at powers of ten beyond, and no labels on
    minor ticks: more would overlap ("2x10^3 3x10^3 ..." runs together on a short axis)."""
    positive = values[values > 0]
    wide = len(positive) and positive.max() > 100 * positive.min()
    which = ax.xaxis if axis == "x" else ax.yaxis
    which.set_major_locator(LogLocator(subs=(1.0,) if wide else (1.0, 2.0, 5.0)))
    which.set_major_formatter(FuncFormatter(lambda v, _: _short(v)))
    which.set_minor_formatter(NullFormatter())


ROWS_PER_PANEL = 36  # beyond, rows continue in a panel to the right: a page, not a scroll


def distributions(df: pd.DataFrame, info: RunInfo, out_dir: SafeDir) -> list[Path]:
    """Every valid sample of every scenario: spread, outliers and drift at a glance. Several
    kernels share a row (one colour each), so a booted A/B run has a row per scenario."""
    cols = [*label_columns(df), "role"]
    data = sort_labels(df[df["ok"] & df["ns_per_page"].notna()], cols, knob_order(df))
    kernels = list(dict.fromkeys(data["kernel"].dropna())) if "kernel" in cols else []
    cols = [c for c in cols if c != "kernel"] if kernels else cols
    data = data.assign(line=labels(data, cols),
                       series=data["kernel"].astype(str) if kernels else "")
    groups = list(dict.fromkeys(data["line"]))
    series = list(dict.fromkeys(data["series"]))
    step = 0.8 / len(series)
    offsets = {s: (i - (len(series) - 1) / 2) * step for i, s in enumerate(series)}
    panels = -(-len(groups) // ROWS_PER_PANEL)
    rows = -(-len(groups) // panels)
    height = max(SIZE[1], 0.28 * rows + 1.5)
    fig, axes = plt.subplots(1, panels, figsize=(SIZE[0] * panels, height),
                             layout="constrained", squeeze=False, sharex=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    rng = np.random.default_rng(0)
    for panel, ax in enumerate(axes[0]):
        mine = groups[panel * rows:(panel + 1) * rows]
        position = {name: i for i, name in enumerate(mine)}
        for k, name in enumerate(series):
            part = data[data["line"].isin(mine) & (data["series"] == name)]
            y = part["line"].map(position).to_numpy(dtype=float) + offsets[name]
            ax.boxplot([part.loc[part["line"] == g, "ns_per_page"].to_numpy() for g in mine],
                       positions=np.arange(len(mine)) + offsets[name], widths=0.75 * step,
                       orientation="horizontal", showfliers=False, manage_ticks=False)
            ax.scatter(part["ns_per_page"], y + rng.uniform(-0.3, 0.3, len(y)) * step, s=8,
                       alpha=0.6, color=colors[k % len(colors)], label=drawable(name) or None)
        ax.set_yticks(range(len(mine)), [drawable(g) for g in mine], fontsize=9)
        ax.set_ylim(len(mine) - 0.5, -0.5)
        log = log_scale(ax, data["ns_per_page"])
        if log:
            log_ticks(ax, data["ns_per_page"])
        ax.set_xlabel(ns_label(info) + (", log scale" if log else ""))
    if kernels:
        fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside lower center",
                   ncol=len(series), title="kernel")
    title(fig, "Per-sample distributions", info)
    return save(fig, out_dir, "distributions")


def make_figures(df: pd.DataFrame, info: RunInfo, out_dir: SafeDir | Path) -> list[Path]:
    """Every figure the run's axes allow; a figure whose axis the run lacks is not drawn.
    `out_dir` is a directory already opened, or a path (made if missing; no link followed)."""
    if not isinstance(out_dir, SafeDir):
        with SafeDir.open(Path(out_dir), create=True) as opened:
            return make_figures(df, info, opened)
    made: list[Path] = []
    with plt.rc_context(STYLE):
        for knob in df.attrs.get("knob_columns", []):
            if knob in label_columns(df) or knob == FAULT_AROUND_KNOB:
                made += sweep(df, info, out_dir, knob)
        made += uffd_modes(df, info, out_dir)
        made += mappers(df, info, out_dir)
        made += sparse(df, info, out_dir)
        made += distributions(df, info, out_dir)
    return made
