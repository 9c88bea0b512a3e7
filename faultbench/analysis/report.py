"""Reports of a run: per-scenario statistics, knob sweeps and figures (`faultbench report`),
and the short summary `faultbench run` prints at its end.

Every text table fits in 72 columns (commit messages wrap there) and says when timings were
emulated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from faultbench.analysis.breakeven import (
    MIN_STRIDES,
    break_even,
    prefault_floor,
    report_json,
    report_section,
)
from faultbench.analysis.frame import (
    FAULT_AROUND_KNOB,
    AnalysisError,
    RunInfo,
    dropped_notes,
    exclude_interfered,
    load,
    run_info,
)
from faultbench.analysis.labels import (
    constants_line,
    format_value,
    label_columns,
    labels,
    spec_order,
)
from faultbench.analysis.memory import memory_section
from faultbench.analysis.stats import CI_METHOD, median_ci, unit_count
from faultbench.analysis.text import fmt, fmt_pct, text_table, wrap
from faultbench.measurement.safefile import SafeDir
from faultbench.measurement.spec import SpecError, parse_size

# Sample fields the report's tables are made of: why any of them is null goes in the footer.
SHOWN_FIELDS = ("ns_per_page", "faults_per_page", "pages_mapped", "munmap_ns", "pages_touched",
                "nivcsw", "steal_ns")


def header(info: RunInfo, title: str) -> str:
    if info.kernels:
        lines = wrap(f"{title}: workload {info.workload}, plane {info.plane_label()}; "
                     f"kernels: {info.kernels}; {info.boots_per_kernel} boot(s) per kernel "
                     f"on {info.host}")
    else:
        lines = wrap(f"{title}: workload {info.workload}, Linux {info.kernel} on {info.host}, "
                     f"plane {info.plane_label()}")
    if info.instruction_clock:
        lines += wrap("NOTE: times are QEMU instruction counts (-icount shift=0: one virtual "
                      "ns per guest instruction, user and kernel). They repeat across boots "
                      "and count work, not cycles: cache and TLB misses cost nothing here. "
                      "Compare them only with other instruction-clock runs. Fault counts are "
                      "the kernel's own.")
    elif info.emulated:
        lines += wrap("NOTE: timings were measured under TCG emulation; compare them only "
                      "with other emulated runs. Fault counts are the kernel's own.")
    return lines


def interfered_counts(df: pd.DataFrame, keys: list[str]) -> pd.Series:
    """Per group of `keys`: how many valid samples were interfered with (excluded or not)."""
    valid = df[df["ok"] | df["interfered"]]
    return valid.groupby(keys, sort=False, dropna=False)["interfered"].sum().astype(int)


def hit_cells(counts: pd.Series) -> pd.Series:
    return counts.map(lambda n: str(n) if n else "")


def interference_note(df: pd.DataFrame) -> str:
    """The footer's word on samples preempted or stolen from; empty when there were none."""
    hit = int(df["interfered"].sum())
    if not hit:
        return ""
    valid = int((df["ok"] | df["interfered"]).sum())
    note = (f"hit: samples whose timed loop was preempted (nivcsw > 0) or saw steal time: "
            f"{hit} of {valid} valid samples. ")
    if "excluded" in df.attrs:
        return note + ("--strict: they are excluded from every number above (a row "
                       "left with no sample is not shown).")
    return note + "They are included; --strict excludes them."


def scenario_table(df: pd.DataFrame, label_cols: list[str]) -> str:
    """Per scenario and mapper role: median ns/page with its CI, and medians per page."""
    keys = [*label_cols, "role"]
    data = df[df["ok"]].assign(label=lambda d: labels(d, keys))
    ns = median_ci(data, [*keys, "label"], "ns_per_page")
    per_page = data.groupby("label", sort=False)[
        ["faults_per_page", "mapped_per_touched", "munmap_ns_per_page"]
    ].median()
    table = ns.merge(per_page, left_on="label", right_index=True, how="left")
    table = table.sort_values(keys, key=spec_order, kind="stable")
    rows = pd.DataFrame({
        "label": table["label"],
        "ns": table["median"].map(fmt),
        "ci": table["ci_lo"].map(fmt) + ".." + table["ci_hi"].map(fmt),
        "flt": table["faults_per_page"].map(fmt),
        "map": table["mapped_per_touched"].map(fmt),
        "unmap": table["munmap_ns_per_page"].map(fmt),
        "n": unit_count(table),
    })
    rows["ci"] = rows["ci"].where(table["ci_lo"].notna(), "-")
    headers = ["scenario", "ns/page", "95% CI", "flt/pg", "map/pg", "unmap", "n"]
    if df["interfered"].any():
        hits = interfered_counts(df.assign(label=labels(df, keys)), ["label"])
        rows["hit"] = hit_cells(table["label"].map(hits).fillna(0).astype(int))
        headers.append("hit")
    return text_table(headers, rows.to_numpy().tolist())


def default_baseline(knob: str, values: pd.Series) -> Any:
    if knob == FAULT_AROUND_KNOB and (values == 4096).any():
        return 4096
    return values.min()


def parse_baseline(knob: str, text: str, values: pd.Series) -> Any:
    """The --baseline value as the knob's values are stored: sizes may be written 64K."""
    try:
        value: Any = parse_size(text)
    except SpecError:
        value = text
    if not (values == value).any():
        shown = ", ".join(format_value(knob, v).split("=")[-1] for v in sorted(values.unique()))
        raise AnalysisError(f"--baseline {text} is not a value of {knob} in this run: {shown}")
    return value


def sweep_tables(df: pd.DataFrame, knob: str, label_cols: list[str], baseline: Any) -> str:
    """One table per scenario (all but `knob` fixed): each knob value against the baseline."""
    data = df[df["ok"] & df[knob].notna()]
    data = data.assign(
        group=labels(data, [c for c in label_cols if c != knob] + ["role"]),
        value=pd.to_numeric(data[knob], errors="coerce").fillna(data[knob]),
    )
    if baseline is None:
        baseline = default_baseline(knob, data["value"])
    else:
        baseline = parse_baseline(knob, baseline, data["value"])
    ns = median_ci(data, ["group", "value"], "ns_per_page")
    faults = data.groupby(["group", "value"], sort=False)["faults_per_page"].median()
    table = ns.merge(faults.rename("faults"), left_on=["group", "value"], right_index=True)
    base = table[table["value"] == baseline].set_index("group")[["median", "faults"]]
    table = table.join(base, on="group", rsuffix="_base").sort_values(["group", "value"])
    table["d_ns"] = 100 * (table["median"] / table["median_base"] - 1)
    table["d_flt"] = 100 * (table["faults"] / table["faults_base"] - 1)
    table["shown"] = table["value"].map(lambda v: format_value(knob, v).split("=")[-1])
    table["ci"] = (table["ci_lo"].map(fmt) + ".." + table["ci_hi"].map(fmt)).where(
        table["ci_lo"].notna(), "-"
    )
    headers = [knob, "ns/page", "95% CI", "vs base", "flt/pg", "vs base", "n"]
    out = [wrap(f"Sweep of {knob}; 'vs base' is the change of the median against "
                f"{knob}={format_value(knob, baseline).split('=')[-1]}.")]
    for group, part in table.groupby("group", sort=True):
        rows = pd.DataFrame({
            "v": part["shown"], "ns": part["median"].map(fmt), "ci": part["ci"],
            "dns": part["d_ns"].map(fmt_pct), "flt": part["faults"].map(fmt),
            "dflt": part["d_flt"].map(fmt_pct), "n": unit_count(part),
        })
        out.append(f"\n{group}\n" + text_table(headers, rows.to_numpy().tolist()))
    return "".join(out)


def several_boots(df: pd.DataFrame) -> bool:
    return bool(df.groupby("kernel", dropna=False)["boot"].nunique().max() > 1)


def unit_legend(df: pd.DataFrame) -> str:
    """What the n column counts (see `stats.unit_count`)."""
    return "boots (b) / rounds (r)" if several_boots(df) else "rounds"


def footer(df: pd.DataFrame, skipped: list[dict[str, Any]]) -> str:
    several = several_boots(df)
    unit = unit_legend(df)
    notes = [
        f"95% CI: {CI_METHOD}. ns/page: median of the per-round medians; n: {unit}. "
        f"{int(df['warmup'].sum())} warm-up samples excluded. flt/pg: faults per page "
        f"touched; map/pg: pages mapped per page touched; unmap: munmap ns per page "
        f"touched (medians of valid samples); '-': not measured.",
    ]
    if several:
        notes.append("The CI pools the rounds of every boot: it does not include "
                     "boot-to-boot variation (compare --by kernel tests at the boot level).")
    interference = interference_note(df)
    if interference:
        notes.append(interference)
    bad = df[(df["status"] != "ok") & ~df["warmup"]]
    if len(bad):
        counts = bad.groupby(["status", "error"], dropna=False).size()
        notes += [f"{n} {status} sample(s): {error}" for (status, error), n in counts.items()]
    reasons = pd.DataFrame(df["null_reasons"].map(lambda d: d or {}).tolist())
    reasons = reasons[[c for c in SHOWN_FIELDS if c in reasons]]
    if not reasons.empty:
        melted = reasons.melt(var_name="field", value_name="reason").dropna().drop_duplicates()
        notes += [f"{f} not measured: {r}" for f, r in melted.itertuples(index=False)]
    notes += [f"skipped {s.get('scenario')}: {s.get('reason')}" for s in skipped]
    notes += dropped_notes(df)
    return "\n" + "".join(wrap(note) for note in notes)


def report_text(df: pd.DataFrame, meta: dict[str, Any], baseline: Any = None) -> str:
    if not df["ok"].any():
        raise AnalysisError("the run has no valid samples (all warm-ups, errors or unsupported)")
    info = run_info(meta, df)
    label_cols = label_columns(df)
    parts = [header(info, "faultbench report")]
    if meta and not meta.get("finished_utc"):
        parts.append(wrap("NOTE: the run has not finished (still running, or interrupted: "
                          "faultbench run --resume DIR); these are the samples so far."))
    parts += [constants_line(df, label_cols), "\n", scenario_table(df, label_cols)]
    swept = [knob for knob in df.attrs.get("knob_columns", []) if knob in label_cols]
    if baseline is not None and not swept:
        raise AnalysisError("--baseline applies to knob sweeps; this run sweeps no knob")
    for knob in swept:
        parts += ["\n", sweep_tables(df, knob, label_cols, baseline)]
    breakeven = report_section(df)  # empty for a run without a stride sweep
    if breakeven:
        parts += ["\n", breakeven]
    memory = memory_section(df)  # empty for a run without app-launch sessions
    if memory:
        parts += ["\n", memory]
    parts.append(footer(df, meta.get("skipped") or []))
    return "".join(parts)


def write_report(
    run_dir: Path, baseline: Any = None, figures: bool = True, strict: bool = False
) -> tuple[str, list[Path]]:
    """report.txt (returned too) and, unless figures is False, RUN_DIR/figures/*.png|svg.

    strict: interfered samples (preempted or stolen from) are left out of everything."""
    df = load(run_dir)
    if strict:
        df = exclude_interfered(df)
    meta = next(iter(df.attrs["meta"].values()))
    text = report_text(df, meta, baseline)
    with SafeDir.open(run_dir) as directory:
        directory.replace("report.txt", text)
    made: list[Path] = []
    if figures:
        # matplotlib only when figures are drawn: `faultbench run` prints summary() too
        from faultbench.analysis.figures import make_figures
        from faultbench.analysis.memory_figure import memory_figure

        made = make_figures(df, run_info(meta, df), run_dir / "figures")
        made += _breakeven_figures(df, run_info(meta, df), run_dir / "figures")
        made += memory_figure(df, run_info(meta, df), run_dir / "figures")
    return text, made


def _breakeven_figures(df: pd.DataFrame, info: RunInfo, out_dir: Path) -> list[Path]:
    """The break-even figure with the prefault floor, for runs with a stride sweep."""
    results = [r for r in break_even(df, teardown=False) if len(r.curve) >= MIN_STRIDES]
    if not results:
        return []
    from faultbench.analysis.breakeven_figure import breakeven_figure

    return breakeven_figure(df, info, out_dir, floor=prefault_floor(df), results=results)


def report_data(run_dir: Path) -> dict[str, Any]:
    """What the report computes as plain JSON types (`faultbench report --json`): the run,
    the scenario table's medians of ns_per_page with their CI, and the break-even, cost
    model and prefault floor (analysis.breakeven.report_json). Unknown values are None."""
    df = load(run_dir)
    if not df["ok"].any():
        raise AnalysisError("the run has no valid samples (all warm-ups, errors or unsupported)")
    meta = next(iter(df.attrs["meta"].values()))
    info = run_info(meta, df)
    keys = [*label_columns(df), "role"]
    data = df[df["ok"]].assign(label=lambda d: labels(d, keys))
    table = median_ci(data, [*keys, "label"], "ns_per_page")
    table = table.sort_values(keys, key=spec_order, kind="stable")
    return {
        "run": str(run_dir), "workload": info.workload, "kernel": info.kernel,
        "host": info.host, "plane": info.plane, "emulated": info.emulated,
        "finished": bool(meta.get("finished_utc")), "metric": "ns_per_page",
        "ci_method": CI_METHOD,
        "scenarios": [
            {"label": str(r.label), "n": int(r.n), "median": float(r.median),
             "ci": None if r.ci_lo != r.ci_lo else [float(r.ci_lo), float(r.ci_hi)]}
            for r in table.itertuples(index=False)
        ],
        **report_json(df),
    }


def summary(run_dir: Path) -> str:
    """The argument in one short table: faults/page and ns/page with fault-around on or off.

    Printed by `faultbench run` at its end; `faultbench report` has the full statistics.
    """
    df = load(run_dir)
    ok = df[df["ok"]]
    if ok.empty:
        return "no valid samples to summarise\n"
    label_cols = label_columns(df)
    keys = [*label_cols, "role", "label", "fault_around"]
    data = ok.assign(label=labels(ok, keys[:-2]))
    flt = data.groupby(keys, sort=False, dropna=False)["faults_per_page"].median()
    table = median_ci(data, keys, "ns_per_page").join(flt.rename("flt"), on=keys)
    table = table.sort_values(keys[:-2], key=spec_order, kind="stable")
    rows = pd.DataFrame({
        "label": table["label"], "fa": table["fault_around"], "flt": table["flt"].map(fmt),
        "ns": table["median"].map(fmt), "n": unit_count(table),
    })
    meta = next(iter(df.attrs["meta"].values()))
    run = run_info(meta, df)
    head = (f"Summary ({run.plane_label()}; medians; n: {unit_legend(df)}). fa: "
            f"fault-around, off with a uffd wp/minor registration or fault_around_bytes <= "
            f"page size.")
    text = wrap(head) + text_table(
        ["scenario", "fa", "faults/pg", "ns/page", "n"], rows.to_numpy().tolist()
    )
    interference = interference_note(df)
    return text + wrap(interference) if interference else text
