"""Break-even density and the cost model: a real stride sweep on the running kernel, and the
interpolation and fit on synthetic frames (math only)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from analysis_runs import faultbench, width_ok
from groups import HOST

import faultbench as fb
from faultbench.analysis.breakeven import (
    CostModel,
    break_even,
    cost_models,
    populate_rows,
    report_json,
    report_section,
    stride_of,
)
from faultbench.analysis.breakeven.costmodel import MAX_RESIDUAL
from faultbench.analysis.breakeven.phases import FIXED, MAPPING
from faultbench.analysis.breakeven_figure import breakeven_figure
from faultbench.analysis.frame import RunInfo, run_info
from faultbench.analysis.profile import phase_costs
from faultbench.measurement.profile import unavailable
from faultbench.measurement.rundir.safefile import SafeDir
from faultbench.measurement.workload import load as load_workload

# The shipped break-even workload reduced. 2M instead of 64M keeps every loop under a
# millisecond: on the shared 2-CPU development VMs a loop of 1.4 ms (4M, uffd wp, stride 1)
# lost a whole 4 ms time slice in 10 of 21 rounds, and only that scenario, enough to drag
# its median; more rounds let medians ride out the preemptions that remain. Sparse is left
# out: in 2M it is a single touch.
REDUCED = """
description = "break-even, reduced for the tests"
repetitions = 25
warmups = 1
seed = 1664
# kernel-profiled rounds, kept out of the timings: the cost model checks a and b with them
profile = 3

[knobs]
"thp.shmem_enabled" = "never"

[defaults]
backing = "memfd"
size = "2M"
access = "read"
cache = "warm"

[[matrix]]
pattern = ["stride:1", "stride:2", "stride:4", "stride:8", "stride:16", "stride:32", "stride:64"]
uffd = ["none", "wp"]

[[matrix]]
pattern = ["stride:1", "stride:2", "stride:4", "stride:8", "stride:16"]
populate = ["madvise", "map"]
"""


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0:
        pytest.skip("userfaultfd wp registration needs root here")
    base = tmp_path_factory.mktemp("breakeven")
    (base / "reduced.toml").write_text(REDUCED)
    faultbench("run", base / "reduced.toml", "--out", base / "run", "-q")
    return base / "run"


@dataclass(frozen=True)
class Analysed:
    """What several tests read of the sweep, computed once: each bootstraps for seconds."""

    models: list[CostModel]
    json: dict[str, Any]
    section: str


@pytest.fixture(scope="module")
def analysed(sweep: Path) -> Analysed:
    df = fb.load(sweep)
    return Analysed(cost_models(df), report_json(df), report_section(df))


@HOST
def test_the_sweep_switches_fault_around_as_intended(sweep: Path) -> None:
    df = fb.load(sweep)
    ok = df[df["ok"] & (df["populate"] == "none")]
    assert len(ok) == 14 * 25
    faults = ok["faults_minor"] + ok["faults_major"]
    wp, none = ok["uffd"] == "wp", ok["uffd"] == "none"
    # off: exactly one fault per touched page; on: each fault maps a 16-page window
    assert (faults[wp] == ok.loc[wp, "pages_touched"]).all()
    assert (ok.loc[wp, "pages_mapped"] == ok.loc[wp, "pages_touched"]).all()
    dense = none & ok["pattern"].isin(["stride:1", "stride:2", "stride:4", "stride:8"])
    assert (abs(faults[dense] - 512 / 16) <= 2).all()
    # windows are aligned on virtual addresses: with the mapping not 64K-aligned, a stride
    # can skip the tail of the last window, never more
    assert (ok.loc[dense, "pages_mapped"] >= 512 - 15).all()


@HOST
def test_crossover_lies_inside_the_window(sweep: Path) -> None:
    df = fb.load(sweep)
    results = break_even(df)
    assert [(r.contrast, r.teardown_counted, r.headline) for r in results] == [
        ("uffd none vs wp", False, True), ("uffd none vs wp", True, False)]
    head = results[0]
    assert head.window_bytes == 65536 and head.window_source == "default"
    assert head.stride is not None, head.reason
    assert 1 < head.pages_per_window < 16
    assert head.stride * head.pages_per_window == pytest.approx(16)
    assert head.bracket is not None and head.bracket[0] < head.stride < head.bracket[1]
    assert head.ci is not None and head.ci["stride"][0] <= head.stride <= head.ci["stride"][1]
    # dense: on wins by far; one page per window or fewer: off wins
    first, beyond = head.curve[0], [p for p in head.curve if p.stride >= 16]
    assert first.on_ns < first.off_ns / 2
    assert all(p.on_ns > p.off_ns for p in beyond)


def _fitted(model: CostModel | dict[str, Any]) -> bool:
    """Whether the sweep's model came out within MAX_RESIDUAL. The residual is a property of
    this run's wall-clock medians: under the suite's load it came out at 0.1003 to 0.1035 in
    three suites of twenty-odd. So the live sweep's tests check that the analysis took the
    branch its residual calls for, and what that branch gives; the synthetic frames below
    take each branch on purpose."""
    residual = model.residual if isinstance(model, CostModel) else model["residual"]
    reason = model.reason if isinstance(model, CostModel) else model["reason"]
    assert residual is not None and 0 < residual < 1
    if residual <= MAX_RESIDUAL:
        return True
    assert reason == f"does not fit: residual {100 * residual:.2f}% > {100 * MAX_RESIDUAL:.0f}%"
    return False


@HOST
def test_cost_model_gives_what_on_and_off_identify(analysed: Analysed) -> None:
    """Natively only two pages-per-fault values exist (off: 1, on: 16): a and b are not
    separately identified and are not printed; the cost of one fault at each value is, and
    c comes from the populate rows' touch-only time."""
    [model] = analysed.models
    fitted = _fitted(model)
    # only strides inside the 16-page window enter: 5 strides, on and off
    assert len(model.scenarios) == 10 and "stride:32 uffd=none" not in model.scenarios
    assert not model.fits and model.ns_per_fault is None and model.ns_per_page_mapped is None
    assert model.design_rows == 6 and model.pages_per_fault[0] == 1
    assert 14 <= model.pages_per_fault[1] <= 16
    # within the on rows faults and pages mapped move together
    assert model.condition_within_window is not None and model.condition_within_window > 30
    assert [s for s, _ in model.touch_ns_by_stride] == [1, 2, 4, 8, 16]
    if not fitted:
        assert model.per_fault == [] and model.ns_per_touch is None
        return
    assert "not identified separately: 2 distinct pages per fault" in str(model.reason)
    off, on = model.per_fault
    assert on.ns > off.ns > 0
    c = model.ns_per_touch
    assert model.touch_source == "populate rows" and c is not None and 0 < c.value < off.ns
    for value, ci in ((c.value, c.ci), (off.ns, off.ci), (on.ns, on.ci)):
        assert ci is not None and ci[0] <= value <= ci[1]


@HOST
def test_report_section_json_and_figure(sweep: Path, analysed: Analysed,
                                        tmp_path: Path) -> None:
    df = fb.load(sweep)
    text = analysed.section
    assert not width_ok(text)
    text = " ".join(text.split())  # unwrapped
    assert "crossing (touch, headline): stride" in text and "a, ns per fault" not in text
    model = analysed.models[0]
    if _fitted(model):
        assert "no a and b: a and b not identified" in text
        assert "c pinned from the populate rows' touch-only time" in text
        assert "residual " in text
    else:
        assert f"no constants: {model.reason}" in text
        # the refusal's residual is the only one printed, and nothing fitted follows it
        assert "c pinned" not in text
        assert re.findall(r"residual \d[\d.]*%", text) == [f"residual {100 * model.residual:.2f}%"]
    assert "it assumes the model is right" in text
    data = json.loads(json.dumps(analysed.json))
    assert set(data) == {"break_even", "cost_model", "floor"}
    entry = data["break_even"][0]
    assert {"stride", "pages_per_window", "ci", "teardown_counted", "missing_strides"} <= set(
        entry)
    assert {"ns_per_fault", "ns_per_page_mapped", "ns_per_touch", "residual", "per_fault",
            "design_rows", "condition", "ci_note"} <= set(data["cost_model"][0])
    meta = next(iter(df.attrs["meta"].values()))
    floor = pd.DataFrame({"stride": [1, 2, 4], "ns_per_page": [20.0, 21.0, 23.0]})
    with SafeDir.open(tmp_path) as out:
        paths = breakeven_figure(df, run_info(meta, df), out, floor=floor)
    assert [p.name for p in paths] == ["break-even.png", "break-even.svg"]
    assert all(p.stat().st_size > 10_000 for p in paths)
    svg = paths[1].read_text()
    assert "pages touched per 64K fault-around window" in svg
    assert "floor: touch only, every page mapped (populated)" in svg
    assert os.uname().release in svg


@HOST
def test_populate_maps_every_page_and_faults_no_more_than_fault_around(sweep: Path) -> None:
    df = fb.load(sweep)
    ok = df[df["ok"]]
    plain = ok[(ok["populate"] == "none") & (ok["uffd"] == "none")]
    faults = (ok["faults_minor"] + ok["faults_major"]).groupby(
        [ok["pattern"], ok["populate"]]).max()
    for populate in ("madvise", "map"):
        rows = ok[ok["populate"] == populate]
        assert len(rows) == 5 * 25
        # 2M of 4K pages, every one present after the populate step, before any touch
        assert (rows["pages_mapped"] == 512).all()
        assert (rows["populate_ns"] > 0).all() and (rows["populate_faults"] > 0).all()
        for pattern in ("stride:1", "stride:4", "stride:16"):
            fewest_on = (plain["faults_minor"] + plain["faults_major"])[
                plain["pattern"] == pattern].min()
            assert faults[pattern, populate] <= fewest_on
    floor = populate_rows(df)
    assert set(floor["label"]) == {"MADV_POPULATE_READ", "MAP_POPULATE"}
    assert set(floor["group"]) == {r.group for r in break_even(df)}
    # the floor is the touch loop alone; populate + touch is kept apart
    touched = ok["pages_touched"]
    assert np.allclose(floor["ns_per_page"], (ok["touch_ns"] / touched)[floor.index])
    assert np.allclose(floor["with_populate_ns_per_page"],
                       ((ok["populate_ns"] + ok["touch_ns"]) / touched)[floor.index])


@HOST
def test_report_prints_the_section_and_the_figure(sweep: Path) -> None:
    out = faultbench("report", sweep).stdout
    assert "Break-even access density" in out and "Ideal-prefault" not in out
    assert "Floor: the touch loop alone with every page already mapped" in out
    assert (sweep / "figures" / "break-even.png").stat().st_size > 10_000
    svg = (sweep / "figures" / "break-even.svg").read_text()
    assert "floor: touch only, every page mapped (MAP_POPULATE)" in svg
    assert "MAP_POPULATE + touch, stride 1" in svg and "of the whole range" not in svg


def _strict_json(text: str) -> dict:
    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


@HOST
def test_report_json_is_one_valid_object_with_the_keys(sweep: Path) -> None:
    data = _strict_json(faultbench("report", sweep, "--json").stdout)
    assert data["plane"] == "native" and data["workload"] == "reduced"
    assert len(data["scenarios"]) == 14 + 10
    row = data["scenarios"][0]
    assert {"label", "role", "n", "median", "ci", "faults_per_page", "mapped_per_touched",
            "munmap_ns_per_page"} <= set(row) and row["n"] == 25
    [head, total] = data["break_even"]
    for entry in (head, total):
        assert {"backing", "contrast", "stride", "pages_per_window", "ci",
                "teardown_counted"} <= set(entry)
    assert head["teardown_counted"] is False and total["teardown_counted"] is True
    assert 1 < head["pages_per_window"] < 16
    assert set(head["ci"]) == {"stride", "pages_per_window"}
    [model] = data["cost_model"]
    assert not model["fits"]
    assert model["ns_per_fault"] is None and model["ns_per_page_mapped"] is None
    if _fitted(model):
        assert set(model["ns_per_touch"]) == {"value", "ci"}
        assert len(model["ns_per_touch"]["ci"]) == 2
        assert [len(f["ci"]) for f in model["per_fault"]] == [2, 2]
    else:
        assert model["ns_per_touch"] is None and model["per_fault"] == []
    floor = data["floor"]
    assert {(p["populate"], p["stride"]) for p in floor} == {
        (m, s) for m in ("madvise", "map") for s in (1, 2, 4, 8, 16)}
    assert all(p["touch_faults"] == 0 and p["pages_mapped"] == 512 for p in floor)
    assert [p["whole_range_touched"] for p in floor] == [p["stride"] == 1 for p in floor]
    assert all(p["ns_per_page"] < p["with_populate_ns_per_page"] for p in floor)
    # --json writes nothing: report.txt is the text report's
    assert not (sweep / "report.json").exists()


def test_runs_without_a_stride_sweep_report_no_break_even() -> None:
    run = Path(__file__).resolve().parent.parent / "results" / "native-quick"
    out = faultbench("report", run, "--no-figures").stdout
    assert "Break-even" not in out and "Cost model" not in out
    data = _strict_json(faultbench("report", run, "--json").stdout)
    assert data["scenarios"] and all(e["stride"] is None for e in data["break_even"])


def test_shipped_workload_has_distinct_populate_scenarios() -> None:
    workload = load_workload("break-even")
    names = [s.name for s in workload.scenarios]
    assert len(names) == len(set(names)) == 28
    populated = [s for s in workload.scenarios if s.spec.populate != "none"]
    assert {s.spec.populate for s in populated} == {"madvise", "map"}
    assert all(s.spec.uffd == "none" for s in populated)


# ---- synthetic frames: the arithmetic only -----------------------------------------------

PAGES = 4096  # pages in the synthetic mapping
WINDOW = 16


def _frame(curves: dict[tuple[str, int], float], rounds: int = 6, knob: str | None = None,
           noise: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Samples with the given ns per touched page per (setting, stride); setting is a uffd
    mode, or with `knob` a fault_around_bytes value (uffd none). Counts follow the kernel:
    on, each fault maps its whole window; off, one page per fault."""
    rng = np.random.default_rng(seed)
    rows = []
    for (setting, stride), ns in curves.items():
        window = int(setting) // 4096 if knob else (WINDOW if setting == "none" else 1)
        touched = PAGES // stride
        faults = PAGES // window if stride <= window else touched
        mapped = faults * window
        for r in range(rounds):
            row = {
                "ok": True, "warmup": False, "status": "ok", "access": "read", "mappers": 1,
                "backing": "memfd", "cache": "warm", "pattern": f"stride:{stride}",
                "uffd": "none" if knob else setting, "page_size": 4096, "round": r,
                "scenario": f"{setting}-{stride}", "pages_touched": touched,
                "touch_ns": ns * touched * (1 + noise * rng.standard_normal()),
                "munmap_ns": 10.0 * mapped, "faults_minor": faults, "faults_major": 0,
                "pages_mapped": mapped, "uffd_events": 0 if setting == "wp" else np.nan,
            }
            if knob:
                row["fault_around_bytes"] = int(setting)
            rows.append(row)
    df = pd.DataFrame(rows)
    df.attrs["knob_columns"] = ["fault_around_bytes"] if knob else []
    return df


STRIDES = (1, 2, 4, 8, 16, 32)


def test_crossing_is_interpolated_in_log_stride() -> None:
    # on doubles with the stride from 100 ns, off is flat at 500: equal at stride 5 exactly
    curves = {("none", s): 100.0 * s for s in STRIDES} | {("wp", s): 500.0 for s in STRIDES}
    [head] = break_even(_frame(curves), teardown=False)
    assert head.stride == pytest.approx(5)
    assert head.pages_per_window == pytest.approx(16 / 5)
    assert head.bracket == [4, 8] and head.crossings == 1
    assert head.ci is not None and head.ci["stride"] == [pytest.approx(5), pytest.approx(5)]
    assert head.ci["pages_per_window"] == [pytest.approx(3.2), pytest.approx(3.2)]


def test_no_crossing_in_range_is_said_not_extrapolated() -> None:
    cheaper = {("none", s): 100.0 for s in STRIDES} | {("wp", s): 500.0 for s in STRIDES}
    [result] = break_even(_frame(cheaper), teardown=False)
    assert result.stride is None and result.pages_per_window is None and result.ci is None
    assert result.reason is not None and "faster at every stride" in result.reason
    dearer = {("none", s): 900.0 for s in STRIDES} | {("wp", s): 500.0 for s in STRIDES}
    [result] = break_even(_frame(dearer), teardown=False)
    assert result.stride is None and "slower even at the densest" in str(result.reason)


def test_teardown_variant_counts_munmap() -> None:
    curves = {("none", s): 100.0 * s for s in STRIDES} | {("wp", s): 500.0 for s in STRIDES}
    head, total = break_even(_frame(curves))
    assert not head.teardown_counted and total.teardown_counted and not total.headline
    # munmap is 10 ns per mapped page: 160/stride more per touched page with on, 10 off
    assert total.stride is not None and head.stride is not None
    assert total.stride < head.stride


def test_bootstrap_interval_brackets_a_noisy_crossing() -> None:
    curves = {("none", s): 100.0 * s for s in STRIDES} | {("wp", s): 500.0 for s in STRIDES}
    [head] = break_even(_frame(curves, rounds=10, noise=0.05), teardown=False)
    assert head.ci is not None
    low, high = head.ci["stride"]
    assert low is not None and high is not None and low < head.stride < high
    assert low > 4 and high < 8


def test_knob_values_are_contrasted_with_one_page() -> None:
    curves = {("16384", s): 200.0 * s for s in STRIDES} | {
        ("4096", s): 600.0 for s in STRIDES}
    [head] = break_even(_frame(curves, knob="fault_around_bytes"), teardown=False)
    assert head.contrast == "fa=16K vs 4K"
    assert head.window_bytes == 16384 and head.window_source == "knob"
    assert head.stride == pytest.approx(3)
    assert head.pages_per_window == pytest.approx(4 / 3)


def _per_touch(a: float, b: float, c: float, window: int, stride: int) -> float:
    faults_per_touch = stride / window if stride <= window else 1.0
    return a * faults_per_touch + b * faults_per_touch * window + c


def _model_curves(a: float, b: float, c: float) -> dict[tuple[str, int], float]:
    """On (uffd none, 16-page window) and off (uffd wp, one page): two pages-per-fault."""
    return {("none", s): _per_touch(a, b, c, WINDOW, s) for s in STRIDES} | {
        ("wp", s): _per_touch(a, b, c, 1, s) for s in STRIDES}


KNOB_STRIDES = (1, 2, 4, 8, 16)


def _knob_curves(a: float, b: float, c: float, windows: tuple[int, ...] = (1, 4, 16, 64)
                 ) -> dict[tuple[str, int], float]:
    """A fault_around_bytes sweep: one pages-per-fault value per window, same touches."""
    return {(str(w * 4096), s): _per_touch(a, b, c, w, s) for w in windows
            for s in KNOB_STRIDES}


def _with_populate(df: pd.DataFrame, touch_ns: dict[int, float]) -> pd.DataFrame:
    """Populate rows at the given strides: every page mapped before the loop, no fault in
    it, touch_ns per touched page as given."""
    rows = []
    for stride, ns in touch_ns.items():
        touched = PAGES // stride
        for r in sorted(df["round"].unique()):
            rows.append({
                **df.iloc[0].to_dict(), "pattern": f"stride:{stride}", "uffd": "none",
                "populate": "madvise", "round": r, "scenario": f"populate-{stride}",
                "pages_touched": touched, "touch_ns": ns * touched, "faults_minor": 0,
                "pages_mapped": PAGES, "populate_ns": 100.0 * PAGES, "populate_faults": 1,
                "uffd_events": np.nan,
            })
    out = pd.concat([df.assign(populate="none"), pd.DataFrame(rows)], ignore_index=True)
    out.attrs = df.attrs
    return out


def test_two_pages_per_fault_values_do_not_identify_a_and_b() -> None:
    """The old model printed a, b and c from on and off rows as if identified: two values
    of pages per fault only fix a line through two points. Now a and b are withheld and
    the two per-fault costs (a + b*P) are what is given."""
    [model] = cost_models(_frame(_model_curves(1200.0, 120.0, 30.0)))
    assert not model.fits
    assert model.ns_per_fault is None and model.ns_per_page_mapped is None
    assert "not identified separately: 2 distinct pages per fault (1, 16)" in str(model.reason)
    assert "c fitted (no populate rows" in str(model.reason)
    assert model.design_rows == 6 and model.pages_per_fault == [1, 16]
    assert [f.pages_per_fault for f in model.per_fault] == [1, 16]
    assert [f.ns for f in model.per_fault] == [pytest.approx(1320), pytest.approx(3120)]
    assert model.touch_source == "fitted" and model.ns_per_touch is not None
    assert model.ns_per_touch.value == pytest.approx(30)
    text = " ".join(report_section(_frame(_model_curves(1200.0, 120.0, 30.0))).split())
    assert "no a and b:" in text and "a, ns per fault" not in text
    # strides beyond the 16-page window do not enter
    assert "stride:32 uffd=none" not in model.scenarios and len(model.scenarios) == 10


def test_a_knob_sweep_identifies_a_and_b() -> None:
    df = _frame(_knob_curves(1200.0, 120.0, 30.0), knob="fault_around_bytes")
    [model] = cost_models(df)
    assert model.fits and model.residual == pytest.approx(0, abs=1e-9), model.reason
    assert model.pages_per_fault == [1, 4, 16, 64]
    assert model.condition is not None and model.condition <= 30
    assert model.ns_per_fault is not None and model.ns_per_page_mapped is not None
    assert model.ns_per_touch is not None and model.touch_source == "fitted"
    assert model.ns_per_fault.value == pytest.approx(1200)
    assert model.ns_per_page_mapped.value == pytest.approx(120)
    assert model.ns_per_touch.value == pytest.approx(30)
    # each window's own per-fault cost, and the line a + b*P through them
    assert [(f.ns, f.line_ns) for f in model.per_fault] == [
        (pytest.approx(1200 + 120 * p), pytest.approx(1200 + 120 * p)) for p in (1, 4, 16, 64)]
    text = " ".join(report_section(df).split())  # unwrapped
    assert "a, ns per fault" in text and "it assumes the model is right" in text


def test_populate_rows_pin_c_per_stride() -> None:
    """c measured per stride from the populate rows' touch loop: a touch cost that grows
    with the stride (TLB and page-table cache misses) is subtracted, not fitted away."""
    touch = {1: 20.0, 2: 22.0, 4: 25.0, 8: 30.0, 16: 40.0}
    curves = {key: ns - 30.0 + touch[key[1]]
              for key, ns in _knob_curves(1200.0, 120.0, 30.0).items()}
    df = _with_populate(_frame(curves, knob="fault_around_bytes"), touch)
    [model] = cost_models(df)
    assert model.fits and model.touch_source == "populate rows", model.reason
    assert model.touch_ns_by_stride == [[s, pytest.approx(ns)] for s, ns in touch.items()]
    assert model.ns_per_touch is not None and model.ns_per_touch.value == pytest.approx(20)
    assert model.ns_per_fault is not None and model.ns_per_fault.value == pytest.approx(1200)
    assert model.ns_per_page_mapped is not None
    assert model.ns_per_page_mapped.value == pytest.approx(120)
    assert model.residual == pytest.approx(0, abs=1e-9)
    # populate rows are neither on nor off, and not fitted
    assert not any("populate" in name for name in model.scenarios)


def test_cost_model_refuses_collinear_rows_and_bad_fits() -> None:
    only_on = {k: v for k, v in _model_curves(1200.0, 120.0, 30.0).items() if k[0] == "none"}
    [model] = cost_models(_frame(only_on))
    assert not model.fits and "1 distinct pages per fault (16)" in str(model.reason)
    assert model.ns_per_fault is None
    bent = _knob_curves(1200.0, 120.0, 30.0)
    bent[("4096", 1)] *= 3  # a cost the three constants cannot make
    [model] = cost_models(_frame(bent, knob="fault_around_bytes"))
    assert not model.fits and model.residual is not None and model.residual > 0.10
    assert "does not fit" in str(model.reason) and model.ns_per_touch is None
    assert model.per_fault == []


def test_bootstrap_intervals_cover_the_constants_and_say_what_they_assume() -> None:
    df = _frame(_knob_curves(1200.0, 120.0, 30.0), knob="fault_around_bytes", rounds=10,
                noise=0.03)
    [model] = cost_models(df)
    assert model.fits and model.unit == "round" and model.rounds == 10
    for estimate in (model.ns_per_fault, model.ns_per_page_mapped):
        assert estimate is not None and estimate.ci is not None
        assert estimate.ci[0] <= estimate.value <= estimate.ci[1]
    assert "assumes the model is right" in model.ci_note


@HOST
@pytest.mark.skipif(unavailable() is not None, reason=f"no kernel profiles: {unavailable()}")
def test_the_cost_model_measures_a_and_b_from_the_profile(sweep: Path,
                                                          analysed: Analysed) -> None:
    """a from the fixed phases per fault over every profiled fit row, b from the
    fault-around and rmap phases per page mapped over the rows that map ahead; in the JSON
    and the break-even section, where the regression has no a and b natively."""
    df = fb.load(sweep)
    [model] = analysed.models
    check = model.profile
    assert check is not None and not model.fits
    # the fit rows: no populate step, strides within the 64K window
    fit = {f"stride:{n} uffd={u}" for n in (1, 2, 4, 8, 16) for u in ("none", "wp")}
    costs = [c for c in phase_costs(df) if c.label in fit]
    assert check.rows == len(costs) == 10 and check.samples == sum(c.samples for c in costs)
    ahead = [c for c in costs if c.mapped_per_touched / c.faults_per_page >= 2]
    assert {c.label for c in ahead} == {f for f in fit if f.endswith("none")}
    a, b = check.constants
    assert (a.constant, a.rows, b.constant, b.rows) == ("a", 10, "b", 5)
    assert a.profile == pytest.approx(
        sum(c.phases[p] for c in costs for p in FIXED)
        / sum(c.faults_per_page for c in costs))
    assert b.profile == pytest.approx(
        sum(c.phases[p] for c in ahead for p in MAPPING)
        / sum(c.mapped_per_touched for c in ahead))
    # the kernel's fault entry and a page's PTE cost something, less than a whole fault: as
    # far as the intervals tell, for the profiled and the unprofiled samples are timed apart
    # on the wall clock (a fresh 2-CPU machine put a point estimate of a above the fault's)
    for constant in (a, b):
        assert constant.profile > 0 and constant.profile_ci[0] < constant.profile_ci[1]
    if _fitted(model):
        [one_page] = [f for f in model.per_fault if f.pages_per_fault == 1]
        assert one_page.ci is not None
        assert a.profile_ci[0] < one_page.ci[1] and b.profile_ci[0] < one_page.ci[1]
    assert (a.model, b.model, a.overlap) == (None, None, None)
    [cost] = analysed.json["cost_model"]
    assert cost["profile"]["constants"][0]["profile"] == pytest.approx(a.profile)
    text = analysed.section
    assert "kernel profile (10 rows" in text and "not identified" in text
    assert not width_ok(text)


def test_crossing_is_not_interpolated_across_a_missing_stride() -> None:
    """Stride 8 measured only with fault-around off (its on samples failed): the curves
    cross between 4 and 16, and the old code interpolated across the gap."""
    curves = {("none", s): 100.0 * s for s in STRIDES} | {("wp", s): 500.0 for s in STRIDES}
    df = _frame(curves)
    failed = (df["uffd"] == "none") & (df["pattern"] == "stride:8")
    df.loc[failed, ["ok", "status", "touch_ns", "pages_touched"]] = [False, "error", np.nan,
                                                                       np.nan]
    [head] = break_even(df, teardown=False)
    assert head.stride is None and head.ci is None and head.bracket == [4, 16]
    assert head.missing_strides == [8]
    assert "not interpolated across the gap" in str(head.reason)
    assert [p.stride for p in head.curve] == [1, 2, 4, 16, 32]
    assert "no valid value on one side at stride 8" in " ".join(report_section(df).split())
    # a gap away from the crossing changes nothing
    df = _frame(curves)
    far = (df["uffd"] == "wp") & (df["pattern"] == "stride:32")
    [head] = break_even(df[~far], teardown=False)
    assert head.stride == pytest.approx(5) and head.missing_strides == [32]


def test_booted_break_even_figure_titles_name_the_kernel(tmp_path: Path) -> None:
    curves = {("none", s): 100.0 * s for s in STRIDES} | {("wp", s): 500.0 for s in STRIDES}
    df = pd.concat([_frame(curves).assign(kernel=k) for k in ("base", "patched")],
                   ignore_index=True)
    results = break_even(df, teardown=False)
    assert [(r.group, r.kernel) for r in results] == [
        ("memfd base:", "base"), ("memfd patched:", "patched")]
    info = RunInfo(kernel="6.1.0", host="vm", plane="tcg-icount", workload="w")
    with SafeDir.open(tmp_path) as out:
        paths = breakeven_figure(df, info, out, results=results)
    svg = next(p for p in paths if p.name == "break-even-memfd_base_.svg").read_text()
    assert "Break-even access density, memfd kernel base - Linux 6.1.0" in svg
    assert "base: -" not in svg


def test_stride_of_patterns() -> None:
    assert [stride_of(p, 4096) for p in ("seq", "stride:8", "sparse", "random")] == [
        1, 8, 512, None]


def test_stand_alone_loop_builds_clean_and_switches_fault_around(tmp_path: Path) -> None:
    """benchmarks/breakeven_loop.c, the independent check: -Werror clean, and its wp
    registration really turns fault-around off (faults from getrusage in the loop)."""
    if os.geteuid() != 0:
        pytest.skip("userfaultfd wp registration needs root here")
    source = Path(__file__).resolve().parent.parent / "benchmarks" / "breakeven_loop.c"
    binary = tmp_path / "breakeven_loop"
    subprocess.run(["cc", "-std=gnu99", "-O2", "-Wall", "-Wextra", "-Werror", "-o",
                    str(binary), str(source)], check=True)

    def faults(stride: int, mode: str) -> list[int]:
        out = subprocess.run([str(binary), str(4 << 20), str(stride), mode, "2"],
                             capture_output=True, text=True, check=True).stdout
        return [int(line.split()[2]) for line in out.splitlines()]

    assert all(abs(n - 1024 // 16) <= 2 for n in faults(1, "none"))
    assert faults(1, "wp") == [1024, 1024]
    assert faults(32, "wp") == [32, 32]
    bad = subprocess.run([str(binary), "4096", "0", "none"], capture_output=True, text=True)
    assert bad.returncode == 2 and "STRIDE >= 1" in bad.stderr


def test_runs_without_a_stride_sweep_report_nothing_but_say_why_in_json() -> None:
    curves = {("none", s): 100.0 * s for s in (1, 512)} | {("wp", s): 500.0 for s in (1, 512)}
    df = _frame(curves)
    assert report_section(df) == ""
    data = report_json(df)
    assert [e["reason"] for e in data["break_even"]] == [
        "2 stride(s) measured both ways; need 3 or more"] * 2
    assert "need 4 or more" in data["cost_model"][0]["reason"]


def test_prefaulted_rows_stay_out_of_the_curves() -> None:
    curves = {("none", s): 100.0 * s for s in STRIDES} | {("wp", s): 500.0 for s in STRIDES}
    plain = _frame(curves).assign(populate="none")
    prefaulted = _frame({("none", s): 50.0 for s in STRIDES}).assign(populate="madvise")
    df = pd.concat([plain, prefaulted], ignore_index=True)
    df.attrs["knob_columns"] = []
    [head] = break_even(df, teardown=False)
    assert head.stride == pytest.approx(5)


@HOST
def test_compare_prints_no_cost_sentence(sweep: Path) -> None:
    """compare tested the cost constants by overlapping bootstrap intervals over rounds
    pooled across boots, not with the boot as the unit: the section is gone (issue 18)."""
    out = faultbench("compare", f"{sweep}:none", f"{sweep}:wp", "--by", "uffd").stdout
    assert "Cost model" not in out and "unchanged" not in out
    same = faultbench("compare", sweep, sweep, check=False)
    assert same.returncode == 2 and "same samples" in same.stderr


def test_boots_not_rounds_are_resampled_when_a_group_spans_several() -> None:
    """Rounds of one boot share its machine state: with three boots there are three units,
    too few for an interval, rather than six rounds that look independent."""
    curves = {("none", s): 100.0 * s for s in STRIDES} | {("wp", s): 500.0 for s in STRIDES}
    df = _frame(curves)
    df["boot"] = df["round"] // 2
    [head] = break_even(df, teardown=False)
    assert head.unit == "boot" and head.rounds == 3 and head.ci is None
    assert head.stride == pytest.approx(5) and "3 boots: too few" in str(head.reason)
    [model] = cost_models(_frame(_knob_curves(1200.0, 120.0, 30.0), knob="fault_around_bytes")
                          .assign(boot=lambda d: d["round"] // 2))
    assert model.unit == "boot" and model.rounds == 3 and model.ns_per_fault is not None
    assert model.ns_per_fault.ci is None and "3 boots: too few" in str(model.reason)
    assert "bootstrap over boots" in model.ci_note
