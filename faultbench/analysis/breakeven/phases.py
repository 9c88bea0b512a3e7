"""Where a kernel profile meets the cost model. The profile measures a and b on its own,
each from the phases that do that work: a, what a fault costs whatever it maps, as the
fault's entry/exit, VMA lookup and page-cache lookup phases per fault taken; b as the
fault-around and rmap+memcg phases per page mapped (PHASES in analysis/profile.py). The
faulting page's own rmap is b's: the model counts that page among the pages mapped. Each is
pooled over the model's profiled rows, with a percentile bootstrap interval over the
profiled rounds (or boots) and the rows. `profile_check` sets the regression's constants
beside them: their intervals overlap or they do not, with no tolerance added to either."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from faultbench.analysis.breakeven.rows import REPLICATES, interval
from faultbench.analysis.profile import PhaseCosts, loop_shares, phase_costs, stack_frame

FIXED = ("entry/exit", "VMA lookup", "lookup")
MAPPING = ("fault-around", "rmap+memcg")
# A row whose faults map at least this many pages each is one where fault-around mapped
# ahead; rows below say nothing of b's phases (the faulting page's own PTE is entry/exit's).
MAPS_AHEAD = 2.0


@dataclass(frozen=True)
class PhaseConstant:
    """One constant as the profile measures it, and the regression's beside it.
    `profile`: the phases' cost per fault (a) or per page mapped (b), in the model's unit,
    pooled over `rows` profiled rows (sum of the phases' cost per touched page over sum of
    faults, or pages mapped, per touched page); `profile_ci` its 95% percentile bootstrap
    interval over the profiled rounds and the rows (None with one of each). `model`: the
    regression's value and 95% CI, None when it does not identify the constant. `ratio`:
    model / profile. `overlap`: whether the two intervals overlap (None without both)."""

    constant: str
    phases: list[str]
    profile: float
    profile_ci: list[float | None] | None
    rows: int
    model: float | None
    model_ci: list[float] | None
    ratio: float | None
    overlap: bool | None


@dataclass(frozen=True)
class ProfileCheck:
    """The profile's a and b for one cost model: `rows` profiled rows (scenario x role x
    kernel), `samples` profiler samples in their loops, `units` profiled rounds (or boots)."""

    rows: int
    samples: int
    units: int
    constants: list[PhaseConstant]


def profile_check(rows: pd.DataFrame, a: tuple[float, list[float] | None] | None,
                  b: tuple[float, list[float] | None] | None, replicates: int = REPLICATES,
                  seed: int = 0) -> ProfileCheck | None:
    """The profile's a and b over `rows` (a model's scenarios, profiled and unprofiled
    samples, with the run's attrs), each beside the model's (value, CI) when it has one.
    None when no row of them was profiled."""
    stacks = stack_frame(rows)  # read once: each unit's costs are of a part of it
    costs = phase_costs(rows, stacks)
    if not costs:
        return None
    table = _RoundTable(rows, costs, stacks)
    rng = np.random.default_rng(seed)
    draws = (rng.multinomial(table.units, np.full(table.units, 1 / table.units), replicates),
             rng.multinomial(len(costs), np.full(len(costs), 1 / len(costs)), replicates))
    constants = []
    faulting = np.array([c.faults_per_page > 0 for c in costs])
    ahead = faulting & np.array([c.mapped_per_touched >= MAPS_AHEAD * c.faults_per_page
                                 for c in costs])
    for name, phases, use, per, model in (
        ("a", FIXED, faulting, "faults_per_page", a),
        ("b", MAPPING, ahead, "mapped_per_touched", b),
    ):
        if not use.any():
            continue
        value = table.pooled(phases, use, per)
        spread = table.replicated(phases, use, per, *draws)
        ci = interval(spread) if len(spread) and (table.units > 1 or use.sum() > 1) else None
        estimate, model_ci = model if model is not None else (None, None)
        overlap = (None if ci is None or model_ci is None or None in ci else
                   bool(model_ci[0] <= ci[1] and ci[0] <= model_ci[1]))
        constants.append(PhaseConstant(
            name, list(phases), value, ci, int(use.sum()), estimate, model_ci,
            estimate / value if estimate is not None and value else None, overlap))
    return ProfileCheck(len(costs), sum(c.samples for c in costs), table.units, constants)


class _RoundTable:
    """Per profiled row and profiled unit (round, or boot with several): the loop samples in
    each phase, so that rounds and rows can be drawn again. A row's cost of some phases per
    touched page is their share of its drawn rounds' samples x its unprofiled median."""

    def __init__(self, rows: pd.DataFrame, costs: list[PhaseCosts],
                 stacks: pd.DataFrame) -> None:
        profiled = (rows["profiled"].astype(bool) & ~rows["warmup"] & (rows["status"] == "ok")
                    & ~rows["drifted"])
        unit = rows["boot"].fillna(-1).astype(str) + "/" + rows["round"].astype(str)
        kept = sorted(unit[profiled].unique())
        self.units = len(kept)
        self.costs = costs
        self.median = np.array([c.ns_per_page for c in costs])
        self.per = {k: np.array([getattr(c, k) for c in costs])
                    for k in ("faults_per_page", "mapped_per_touched")}
        index = {c.label: i for i, c in enumerate(costs)}
        self.samples = np.zeros((len(costs), self.units))
        self.phase: dict[str, np.ndarray] = {}
        for j, name in enumerate(kept):
            only = rows[~profiled | (unit == name)]
            only.attrs = rows.attrs
            shared = loop_shares(only, stacks[stacks["_sample"].isin(only.index)])
            for label, (samples, shares) in shared.items():
                i = index.get(label)
                if i is None:
                    continue
                self.samples[i, j] = samples
                for phase, share in shares.items():
                    self.phase.setdefault(phase, np.zeros_like(self.samples))[i, j] = \
                        share * samples

    def _counts(self, phases: tuple[str, ...]) -> np.ndarray:
        zero = np.zeros_like(self.samples)
        return sum((self.phase.get(p, zero) for p in phases), zero)

    def pooled(self, phases: tuple[str, ...], use: np.ndarray, per: str) -> float:
        """Every row and round once: the phases' shares of each row's samples."""
        share = self._counts(phases).sum(axis=1) / self.samples.sum(axis=1)
        return float(np.sum((share * self.median)[use]) / np.sum(self.per[per][use]))

    def replicated(self, phases: tuple[str, ...], use: np.ndarray, per: str,
                   units: np.ndarray, picks: np.ndarray) -> np.ndarray:
        """The pooled value per replicate: `units` (replicates x units) and `picks`
        (replicates x rows) are how often each round and row was drawn."""
        with np.errstate(invalid="ignore", divide="ignore"):
            share = (units @ self._counts(phases).T) / (units @ self.samples.T)
        cost = np.where(np.isfinite(share), share * self.median, 0.0)
        seen = np.isfinite(share) & use
        weight = picks * seen
        with np.errstate(invalid="ignore", divide="ignore"):
            values = (weight * cost).sum(axis=1) / (weight * self.per[per]).sum(axis=1)
        return values[np.isfinite(values)]
