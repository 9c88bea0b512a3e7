"""What `faultbench compare` settles about its two sides before it tests them: the two runs
`--by kernel` implies, a knob only one side's run set, whether the sides are one measurement
and of one plane. Analysis plane."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from faultbench.analysis.frame import AnalysisError, booted_kernels, load
from faultbench.measurement.rundir.identity import MEASURED_TIMES, measurements


def leave_unset(df: pd.DataFrame, other: pd.DataFrame, knob: str) -> None:
    """A knob the other side's run set and this one never did: every scenario of this run
    left it unset (`RUN:unset` selects them all)."""
    if knob not in df.columns and knob in other.attrs.get("knob_columns", ()):
        df[knob] = pd.Series(None, index=df.index, dtype=object)
        df.attrs["knob_columns"] = [*df.attrs.get("knob_columns", ()), knob]


def check_measured_apart(base: pd.DataFrame, new: pd.DataFrame, metas: list[dict[str, Any]],
                          shown: str) -> list[str]:
    """Refuse sides that share a measured sample (identity.measurements): a run against
    itself, a copy of it (cp -r, a second checkout of a shipped one, whatever lines no table
    uses were edited in it), a merged run against one of its parts, two resumes of one
    interrupted run. Tested against themselves, its samples would give confidence intervals
    of nothing. Booted sides whose samples are all alike but for their boots' records (two
    guests can count alike; a copy with its boot records edited does too) get a note."""
    records = [side[list(_MEASUREMENT_COLUMNS)].to_dict("records") for side in (base, new)]
    sides = [measurements(r, meta) for r, meta in zip(records, metas, strict=True)]
    if shared := len(sides[0] & sides[1]):
        what = ("are the same samples" if sides[0] == sides[1] else
                f"share {shared:,} of their {max(map(len, sides)):,} measured samples")
        raise AnalysisError(f"BASE and NEW {what} ({shown}): one measurement on both sides "
                            "tests nothing (a run or its copy, a merged run and a part of it, "
                            "two resumes of one interrupted run); compare runs measured "
                            "apart, or two values of one run with --by")
    alike = [measurements(r, None) for r in records]
    if alike[0] and alike[0] == alike[1]:
        return ["NOTE: every measured sample of BASE has the times of NEW's in its place "
                "(scenario, round, mapper), and only their boots' records tell them apart: "
                "guests can count alike, but so would a copy of one run with its boot "
                "records edited. Check that these runs were measured apart."]
    return []


_MEASUREMENT_COLUMNS = ("scenario", "round", "mapper", "boot", *MEASURED_TIMES, "status",
                        "warmup", "profiled")


def unfinished_sides(metas: list[dict[str, Any]]) -> list[str]:
    """BASE, NEW, both or neither: the sides whose run has not finished (still running, or
    interrupted), whose rows hold the rounds measured so far."""
    return [role for role, meta in zip(("BASE", "NEW"), metas, strict=True)
            if not meta.get("finished_utc")]


def unfinished_notes(sides: list[str], same: bool) -> list[str]:
    """A note for each unfinished side (unfinished_sides); one for both sides of one run."""
    roles = ["BASE and NEW"] if same and sides else sides
    return [f"{role}: the run has not finished (still running, or interrupted: faultbench "
            "run --resume DIR); its rows are of the samples so far." for role in roles]


def relabelled_kernel_notes(base: pd.DataFrame, new: pd.DataFrame,
                            metas: list[dict[str, Any]]) -> list[str]:
    """A note for each kernel label both sides' rows carry that names another kernel (by
    sha256) in each run: rows match on the label, so each such row tests one kernel against
    another (`--kernel A=6.1 --kernel B=6.12` against the same images the other way round)."""
    kernels = [booted_kernels(meta) for meta in metas]
    labels = [set(side.loc[side["ok"], "kernel"].dropna().astype(str)) for side in (base, new)]
    return [f"NOTE: kernel {label} is Linux {kernels[0][label][0]} (sha {kernels[0][label][1]}) "
            f"in BASE and Linux {kernels[1][label][0]} (sha {kernels[1][label][1]}) in NEW: "
            f"its rows compare two kernels under one label."
            for label in sorted(labels[0] & labels[1])
            if label in kernels[0] and label in kernels[1]
            and kernels[0][label][1] != kernels[1][label][1]]


def check_planes(base: pd.DataFrame, new: pd.DataFrame, force: bool) -> None:
    planes_base = set(base["plane"].unique())
    planes_new = set(new["plane"].unique())
    if planes_base != planes_new and not force:
        raise AnalysisError(
            f"BASE was measured on {'/'.join(sorted(planes_base))} and NEW on "
            f"{'/'.join(sorted(planes_new))}: timings from different planes (native, KVM "
            "guest, TCG emulation) are not comparable (--force: the scenarios they share)"
        )


def implied_kernels(run: str) -> tuple[str, str]:
    """`compare RUN --by kernel`: RUN:first and RUN:second of a run of exactly two kernels."""
    df = load(Path(run))
    labels_ = list(booted_kernels(next(iter(df.attrs["meta"].values()))))
    if len(labels_) != 2:
        shown = ", ".join(labels_) or "none"
        raise AnalysisError(f"{run}: compare RUN --by kernel needs a run of two kernels "
                            f"(this one has: {shown}); give BASE and NEW as RUN:LABEL")
    return f"{run}:{labels_[0]}", f"{run}:{labels_[1]}"
