"""Where a per-phase kernel profile meets the cost model: `check_against(model, phases)`
compares a with the profile's fault entry/exit cost per fault and b with its cost of
installing one fault-around PTE. The profile module provides `PhaseCosts`; this module
only compares, so the model and the profile change independently."""

from __future__ import annotations

from dataclasses import dataclass

from faultbench.analysis.breakeven.costmodel import CostModel, Estimate


@dataclass(frozen=True)
class PhaseCosts:
    """Per-phase costs from a kernel-symbol profile, in the model's units: ns per fault for
    the fault entry and exit (exception entry, VMA lookup, return), ns per page mapped for
    installing fault-around PTEs. A profile that gives costs per touched page converts with
    `per_touched_page`."""

    source: str
    entry_exit_ns_per_fault: float | None
    map_ns_per_page: float | None

    @classmethod
    def per_touched_page(cls, source: str, entry_exit_ns: float | None, map_ns: float | None,
                         faults_per_touch: float, mapped_per_touch: float) -> PhaseCosts:
        return cls(source,
                   None if entry_exit_ns is None else entry_exit_ns / faults_per_touch,
                   None if map_ns is None else map_ns / mapped_per_touch)


@dataclass(frozen=True)
class PhaseCheck:
    constant: str
    model: Estimate
    phase_ns: float
    inside_ci: bool | None  # None: the constant has no interval


def check_against(model: CostModel, phases: PhaseCosts) -> list[PhaseCheck]:
    """a against the profile's fault entry/exit cost, b against its per-page mapping cost;
    empty when a and b are not identified (nothing to check) or the profile lacks the phase.
    A profile attributes only sampled kernel time to symbols, so a constant above its phase
    is expected (the model's a also holds the VMA walk); the check says where each lies."""
    checks = []
    for name, estimate, phase in (("a", model.ns_per_fault, phases.entry_exit_ns_per_fault),
                                  ("b", model.ns_per_page_mapped, phases.map_ns_per_page)):
        if estimate is None or phase is None:
            continue
        inside = None if estimate.ci is None else estimate.ci[0] <= phase <= estimate.ci[1]
        checks.append(PhaseCheck(name, estimate, phase, inside))
    return checks
