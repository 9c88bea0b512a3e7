"""Where a kernel profile meets the cost model. The profile measures a and b on its own: a as
the fault entry/exit phase per fault taken, b as the fault-around and rmap+memcg phases per
page mapped (PHASES in analysis/profile.py), each pooled over the model's profiled rows.
`profile_check` sets the regression's constants beside them and says where they disagree."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from faultbench.analysis.profile import PhaseCosts, phase_costs

ENTRY_EXIT = ("entry/exit",)
MAPPING = ("fault-around", "rmap+memcg")
# A row whose faults map at least this many pages each is one where fault-around mapped
# ahead; rows below say nothing of b's phases (the faulting page's own PTE is entry/exit's).
MAPS_AHEAD = 2.0
# Within this factor of the profile, a constant agrees with it, whatever its CI: the
# profile's phases are sampled (skid moves some kernel exit into [user]) and the model's
# constants are fitted, so neither is exact.
AGREES = 1.25


@dataclass(frozen=True)
class PhaseConstant:
    """One constant as the profile measures it, and the regression's beside it.
    `profile`: the phases' cost per fault (a) or per page mapped (b), in the model's unit,
    pooled over `rows` profiled rows (sum of the phases' cost per touched page over sum of
    faults, or pages mapped, per touched page). `model`: the regression's value and 95% CI,
    None when it does not identify the constant. `ratio`: model / profile."""

    constant: str
    phases: list[str]
    profile: float
    rows: int
    model: float | None
    model_ci: list[float] | None
    ratio: float | None
    inside_ci: bool | None  # the profile's value inside the model's CI; None without one
    agrees: bool | None  # inside the CI or within AGREES of the profile; None: no model


@dataclass(frozen=True)
class ProfileCheck:
    """The profile's a and b for one cost model: `rows` profiled rows (scenario x role x
    kernel), `samples` profiler samples in their loops."""

    rows: int
    samples: int
    constants: list[PhaseConstant]


def profile_check(rows: pd.DataFrame, a: tuple[float, list[float] | None] | None,
                  b: tuple[float, list[float] | None] | None) -> ProfileCheck | None:
    """The profile's a and b over `rows` (a model's scenarios, profiled and unprofiled
    samples, with the run's attrs), each beside the model's (value, CI) when it has one.
    None when no row of them was profiled."""
    costs = phase_costs(rows)
    if not costs:
        return None
    constants = []
    faulting = [c for c in costs if c.faults_per_page > 0]
    ahead = [c for c in faulting if c.mapped_per_touched / c.faults_per_page >= MAPS_AHEAD]
    for name, phases, pooled, model in (
        ("a", ENTRY_EXIT, _pooled(faulting, ENTRY_EXIT, "faults_per_page"), a),
        ("b", MAPPING, _pooled(ahead, MAPPING, "mapped_per_touched"), b),
    ):
        if pooled is None:
            continue
        value, count = pooled
        if model is None:
            constants.append(PhaseConstant(name, list(phases), value, count, None, None, None,
                                           None, None))
            continue
        estimate, ci = model
        inside = None if ci is None else ci[0] <= value <= ci[1]
        ratio = estimate / value if value else None
        close = ratio is not None and 1 / AGREES <= ratio <= AGREES
        constants.append(PhaseConstant(name, list(phases), value, count, estimate, ci, ratio,
                                       inside, bool(inside) or close))
    return ProfileCheck(len(costs), sum(c.samples for c in costs), constants)


def _pooled(costs: list[PhaseCosts], phases: tuple[str, ...],
            per: str) -> tuple[float, int] | None:
    """Sum over rows of the phases' cost per touched page, over the sum of `per` (faults or
    pages mapped per touched page): the cost per fault, or per page mapped, of all the rows
    together. None without a row."""
    total = sum(getattr(c, per) for c in costs)
    if not costs or not total:
        return None
    return sum(c.phases[p] for c in costs for p in phases) / total, len(costs)
