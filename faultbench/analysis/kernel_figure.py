"""The A/B figure of a run that booted several kernels (`kernels.png|svg`): per scenario, the
first kernel (the base) against each other one, paired on one row, time and faults side by
side on log axes, rows sorted by the time ratio. Lettered small enough to attach to a mail.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from faultbench.analysis.figure_text import drawable
from faultbench.analysis.figures import (
    SIZE,
    STYLE,
    log_scale,
    log_ticks,
    ns_label,
    save,
    title,
)
from faultbench.analysis.frame import RunInfo
from faultbench.analysis.labels import label_columns, labels
from faultbench.analysis.mpl import plt
from faultbench.analysis.stats import median_ci
from faultbench.measurement.rundir.safefile import SafeDir

ROW_IN = 0.17  # inches per scenario row at 8 pt: 60 rows fit a 12-inch page


UNCHANGED = "time 95% CIs overlap and the same faults per page"


def _unchanged(table: pd.DataFrame, base: str, new: str) -> pd.Series:
    """Per group: the two kernels' time CIs overlap and their fault medians are equal
    (within 0.1%); a group without a CI on either side counts as changed (drawn)."""
    sides = [table[table["kernel"] == k].set_index("group") for k in (base, new)]
    a, b = (side.reindex(sides[0].index.union(sides[1].index)) for side in sides)
    overlap = (a["ci_lo"] <= b["ci_hi"]) & (b["ci_lo"] <= a["ci_hi"])
    faults = (a["faults"] - b["faults"]).abs() <= 1e-3 * a["faults"].abs()
    return overlap & faults


def kernels_figure(df: pd.DataFrame, info: RunInfo, out_dir: SafeDir) -> list[Path]:
    """kernels.png|svg for a run with two or more kernels; nothing otherwise."""
    data = df[df["ok"] & df["ns_per_page"].notna()]
    if "kernel" not in data or data["kernel"].nunique() < 2:
        return []
    kernels = [str(k) for k in dict.fromkeys(data["kernel"])]  # as booted: base first
    cols = [c for c in label_columns(data) if c != "kernel"]
    data = data.assign(group=labels(data, [*cols, "role"]), kernel=data["kernel"].astype(str))
    ns = median_ci(data, ["group", "kernel"], "ns_per_page")
    faults = data.groupby(["group", "kernel"])["faults_per_page"].median().rename("faults")
    table = ns.merge(faults, left_on=["group", "kernel"], right_index=True)
    medians = table.pivot(index="group", columns="kernel", values="median")
    # rows where the last kernel gained most on top; rows one kernel lacks go last
    ratio = (medians[kernels[-1]] / medians[kernels[0]]).sort_values(na_position="last")
    same = _unchanged(table, kernels[0], kernels[-1]).reindex(ratio.index, fill_value=False)
    if same.all():  # nothing changed: draw every row rather than none
        same[:] = False
    ratio = ratio[~same]
    groups = list(ratio.index)
    y = np.arange(len(groups))
    with plt.rc_context({**STYLE, "font.size": 8, "axes.titlesize": 9, "axes.labelsize": 8}):
        fig, (left, right) = plt.subplots(
            1, 2, figsize=(SIZE[0], max(3.0, ROW_IN * len(groups) + 1.4)),
            layout="constrained", sharey=True)
        log: dict[str, bool] = {}
        for metric, ax in (("median", left), ("faults", right)):
            wide = table.pivot(index="group", columns="kernel", values=metric).reindex(groups)
            ax.hlines(y, wide.min(axis=1), wide.max(axis=1), color="0.75", lw=1, zorder=1)
            for kernel, marker in zip(kernels, "osD^v<>", strict=False):
                part = table[table["kernel"] == kernel].set_index("group").reindex(groups)
                errors = None
                if metric == "median":
                    errors = np.vstack([(part["median"] - part["ci_lo"]).clip(lower=0),
                                        (part["ci_hi"] - part["median"]).clip(lower=0)])
                ax.errorbar(part[metric], y, xerr=errors, fmt=marker, ms=4, capsize=1.5,
                            elinewidth=0.8, label=drawable(kernel), zorder=2)
            log[metric] = log_scale(ax, wide.stack())
            if log[metric]:
                log_ticks(ax, wide.stack())
        shown = [drawable(g) + (f"  {r - 1:+.0%}" if r == r else "") for g, r in ratio.items()]
        left.set_yticks(y, shown)
        left.set_ylim(len(groups) - 0.5, -0.5)
        left.set_xlabel(ns_label(info) + (", log scale" if log["median"] else ""))
        left.set_title(drawable(f"time (median, 95% CI); %: {kernels[-1]} against {kernels[0]}"))
        right.set_xlabel("faults per page touched" + (", log scale" if log["faults"] else ""))
        right.set_title("faults (median)")
        # the rows left out are said where the reader looks for what is drawn
        hidden = (f"; {int(same.sum())} of {len(same)} rows not shown, unchanged: "
                  f"{UNCHANGED}" if same.any() else "")
        fig.legend(*right.get_legend_handles_labels(), loc="outside lower center",
                   ncol=len(kernels), title="kernel" + hidden)
        title(fig, f"Kernels compared: {' vs '.join(kernels)}", info)
        return save(fig, out_dir, "kernels")
