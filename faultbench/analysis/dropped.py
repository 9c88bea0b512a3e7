"""What a load left out of a run's frame, and the notes that say so: samples.jsonl lines it
could not use (Dropped), samples measured while someone else had changed a knob, and
meta.json scenarios left with no valid sample, and the measurements of a finished run's plan
its samples.jsonl lacks."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from faultbench.measurement.rundir.merge import lacking_measurements

# meta.json scenarios named in the note on those without a valid sample; the rest are counted
UNMEASURED_SHOWN = 5


@dataclass
class Dropped:
    """Lines of one run's samples.jsonl that are not in its frame, and why."""
    unreadable: int = 0  # not a JSON object (a run killed mid-write leaves one)
    invalid: dict[str, int] = field(default_factory=dict)  # problem -> lines
    duplicates: int = 0  # a (scenario, boot, round, mapper) already read

    def notes(self, run: str | None = None) -> list[str]:
        where = f" of {run}" if run else ""
        notes = []
        if self.unreadable:
            notes.append(f"NOTE: {self.unreadable} unreadable line(s) in samples.jsonl{where} "
                         "were skipped (a run killed mid-write leaves one).")
        if self.invalid:
            total = sum(self.invalid.values())
            problem, count = max(self.invalid.items(), key=lambda item: item[1])
            notes.append(f"NOTE: {total} invalid sample(s) in samples.jsonl{where} were "
                         f"dropped, e.g. {count} with {problem}.")
        if self.duplicates:
            notes.append(f"NOTE: {self.duplicates} duplicate sample line(s){where} (same "
                         "scenario, boot, round and mapper) were ignored; the first counts.")
        return notes


def line_notes(df: pd.DataFrame, where: str | None = None) -> list[str]:
    """One sentence per kind of samples.jsonl line a load left out, naming the run when
    several were loaded (or as `where` says: "the run")."""
    dropped: dict[str, Dropped] = df.attrs.get("dropped", {})
    several = len(dropped) > 1
    return [note for run, lost in dropped.items()
            for note in lost.notes(where or (run if several else None))]


def dropped_notes(df: pd.DataFrame) -> list[str]:
    """line_notes, then drift_notes: what a report's footer says was left out."""
    return line_notes(df) + drift_notes(df)


def dropped_json(df: pd.DataFrame) -> dict[str, Any]:
    """The samples.jsonl lines a load left out, over all its runs, as `report --json` has
    them: `unreadable` and `duplicates` (lines), `invalid` (lines per problem)."""
    total = Dropped()
    for lost in df.attrs.get("dropped", {}).values():
        total.unreadable += lost.unreadable
        total.duplicates += lost.duplicates
        for problem, count in lost.invalid.items():
            total.invalid[problem] = total.invalid.get(problem, 0) + count
    return dataclasses.asdict(total)


def sides_notes(base: pd.DataFrame, new: pd.DataFrame, one_run: bool) -> list[str]:
    """compare's notes on what was left out, each side's marked BASE: or NEW:. base, new:
    each side's samples (with --by, those at its value), in frames of their runs' loads.
    With --by over one run, samples left out for knob drift belong to the side whose value
    they were measured at (or to neither), and the lines not loaded, which have no value,
    are the run's."""
    notes = line_notes(base, "the run") if one_run else []
    for role, side in (("BASE", base), ("NEW", new)):
        notes += [f"{role}: {note}" for note in (drift_notes(side) if one_run
                                                 else dropped_notes(side))]
    return notes


def knob_drift_left_out(df: pd.DataFrame) -> tuple[int, dict[str, int]]:
    """How many samples no statistic uses because someone else had changed a knob while
    they were measured, and per knob how many (warm-ups and failed samples, unused anyway,
    are not counted)."""
    if "knob_drift" not in df:
        return 0, {}
    left_out = df.loc[df["drifted"] & (df["status"] == "ok") & ~df["warmup"], "knob_drift"]
    knobs: dict[str, int] = {}
    for drift in left_out:
        for name in drift:
            knobs[name] = knobs.get(name, 0) + 1
    return len(left_out), dict(sorted(knobs.items()))


def drift_notes(df: pd.DataFrame) -> list[str]:
    """The sentence saying how many samples were left out for knob drift and which knobs,
    one per run (named when several were loaded); none when there were none."""
    runs = df.groupby("run", sort=False) if "run" in df else [(None, df)]
    notes = []
    for run, rows in runs:
        count, knobs = knob_drift_left_out(rows)
        if count:
            where = f" of {run}" if run is not None else ""
            notes.append(f"NOTE: {count} sample(s){where} were left out: measured while "
                         f"someone else had changed {', '.join(knobs)} (knob_drift in "
                         "samples.jsonl).")
    return notes


def unmeasured_notes(df: pd.DataFrame, meta: dict[str, Any]) -> list[str]:
    """The note naming meta.json's scenarios (not skipped) without a valid sample, which the
    table leaves out: samples lost or edited away, or a run cut short that wrote its end."""
    skipped = {s.get("scenario") for s in meta.get("skipped") or []}
    planned = [s.get("name") for s in meta.get("scenarios") or [] if s.get("name") not in skipped]
    valid = set(df.loc[df["ok"] | df.get("interfered", False), "scenario"])
    missing = [name for name in planned if name not in valid]
    if not missing:
        return []
    shown = ", ".join(missing[:UNMEASURED_SHOWN]) + (
        f" and {len(missing) - UNMEASURED_SHOWN} more" if len(missing) > UNMEASURED_SHOWN else "")
    return [f"NOTE: {len(missing)} of meta.json's {len(planned)} scenarios "
            f"{'has' if len(missing) == 1 else 'have'} no valid sample and no row ({shown}); "
            "faultbench run --resume DIR measures the samples missing."]


def kernels_unmeasured_note(df: pd.DataFrame, meta: dict[str, Any]) -> list[str]:
    """The note naming a booted run's kernels without one valid sample, which no row
    shows though the header names them (every boot of the kernel failed, or its samples
    were lost). A shard's kernels that none of its boots boot are another shard's."""
    valid = set(df.loc[df["ok"] | df.get("interfered", False), "kernel"])
    booted = {boot["kernel"] for boot in meta.get("boots") or []}
    missing = [k["label"] for k in meta.get("kernels") or []
               if k["label"] in booted and k["label"] not in valid]
    if not missing:
        return []
    unfinished = {b["kernel"] for b in meta.get("boots") or [] if b["status"] != "ok"}
    resume = "; faultbench run --resume DIR redoes the boots that did not finish" if \
        unfinished & set(missing) else ""
    return [f"NOTE: kernel {', '.join(missing)} {'has' if len(missing) == 1 else 'have'} no "
            f"valid sample and no row{resume}."]


def lacking_note(df: pd.DataFrame, meta: dict[str, Any]) -> list[str]:
    """The note on a run that says it is done (finished, or boots recorded as done) but whose
    samples lack measurements of its plan, as merge refuses it for (lacking_measurements):
    its rows hold fewer rounds than the run has. Of the frame's samples, read once."""
    records = df[["scenario", "boot", "round", "mapper", "status", "error"]].to_dict("records")
    found = list(lacking_measurements(meta, records))
    if not found:
        return []
    count = sum(len(units) for _, units in found)
    native = found[0][0] is None
    # a resume measures a finished native run's missing units again, not a done boot's,
    # nor a merge of machines' (no one host measured it)
    resume = "; faultbench run --resume DIR measures them again" if native and not \
        meta.get("merged") else ""
    return [f"NOTE: the run lacks the samples of {count} measurement(s) of "
            f"{'its plan' if native else 'the boots it records as done'} (its samples.jsonl "
            f"was cut short or edited){resume}."]


def sides_lacking_notes(frames: tuple[pd.DataFrame, pd.DataFrame],
                        metas: list[dict[str, Any]], same: bool) -> list[str]:
    """compare's lacking_note of each side's run, marked BASE: or NEW: (once, unmarked, when
    both sides are one run)."""
    if same:
        return lacking_note(frames[0], metas[0])
    return [f"{role}: {note}" for role, df, meta in zip(("BASE", "NEW"), frames, metas, strict=True)
            for note in lacking_note(df, meta)]
