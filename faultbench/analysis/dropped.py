"""What a load left out of a run's frame, and the notes that say so: samples.jsonl lines it
could not use (Dropped) and samples measured while someone else had changed a knob."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


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


def dropped_notes(df: pd.DataFrame) -> list[str]:
    """One sentence per kind of samples.jsonl line a load left out, naming the run when
    several were loaded, then drift_notes: what report and compare footers say."""
    dropped: dict[str, Dropped] = df.attrs.get("dropped", {})
    several = len(dropped) > 1
    return [note for run, lost in dropped.items()
            for note in lost.notes(run if several else None)] + drift_notes(df)


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
