"""What every doc's claims share: the Claim, the shipped runs as faultbench's own analysis
reads them (so a doc quotes what `report` and `compare` print), and number formats."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results"


@dataclass(frozen=True)
class Claim:
    doc: str
    text: str  # with {field}s
    values: Callable[[], dict[str, str]]

    def filled(self) -> str:
        return self.text.format(**self.values())


@cache
def load(run: str) -> Any:
    import faultbench

    return faultbench.load(RESULTS / run)


def meta(run: str) -> dict[str, Any]:
    return next(iter(load(run).attrs["meta"].values()))


@cache
def report_rows(run: str) -> dict[str, dict[str, Any]]:
    """The rows of `faultbench report RUN`'s table by label ("seq uffd=none x3 [later]";
    "a: ..." when the run has several kernels): median, ci_lo, ci_hi, faults_per_page,
    hits, valid, ..."""
    from faultbench.analysis.labels import label_columns
    from faultbench.analysis.report import scenario_data

    df = load(run)
    return {row["label"]: row for row in
            scenario_data(df, label_columns(df)).to_dict("records")}


@cache
def kernel_rows(run: str, metric: str = "ns_per_page",
                sides: tuple[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """`faultbench compare RUN --by kernel --format json`'s rows by label; `sides`, two
    kernel labels, for a run of more than two (`compare RUN:BASE RUN:NEW --by kernel`)."""
    from faultbench.analysis.compare import compare_runs

    base, new = ((str(RESULTS / run), None) if sides is None
                 else (f"{RESULTS / run}:{sides[0]}", f"{RESULTS / run}:{sides[1]}"))
    text = compare_runs(base, new, by="kernel", metric=metric, fmt_name="json")
    return {row["label"]: row for row in json.loads(text)["rows"]}


@cache
def cost_model(run: str) -> Any:
    from faultbench.analysis.breakeven import cost_models

    [model] = cost_models(load(run))
    return model


@cache
def phases(run: str) -> dict[tuple[str, str | None], Any]:
    """phase_costs per (row label, kernel)."""
    from faultbench.analysis.profile import phase_costs

    return {(c.label, c.kernel): c for c in phase_costs(load(run))}


@cache
def boot_spreads(run: str) -> Any:
    """`python benchmarks/boot_spread.py RUN`'s table (within- and between-boot CV per
    kernel, scenario and role), from that script's own function: the docs name the
    command."""
    return benchmark("boot_spread").spreads(load(run), "ns_per_page")


@cache
def benchmark(name: str) -> Any:
    """benchmarks/NAME.py as a module, so that a claim computes what that script prints."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def n(value: float, digits: int = 0) -> str:
    """1,602 / 13.5: thousands separated."""
    return f"{value:,.{digits}f}"


def about(value: float, step: int) -> str:
    """Rounded to a multiple of `step` for "about 1,400", "~230"."""
    return n(round(value / step) * step)


def pct(value: float, digits: int = 0, sign: bool = False) -> str:
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def ci(pair: list[float] | None, digits: int = 0, fmt: Callable[..., str] = n) -> str:
    assert pair is not None
    return f"{fmt(pair[0], digits)}..{fmt(pair[1], digits)}"
