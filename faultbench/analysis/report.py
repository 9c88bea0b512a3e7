"""Reports of a run: per-scenario statistics, knob sweeps and figures (`faultbench report`),
and the short summary `faultbench run` prints at its end.

Every text table fits in 72 columns (commit messages wrap there) and says when timings were
emulated.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from faultbench.analysis.breakeven import (
    MIN_STRIDES,
    break_even,
    populate_rows,
    report_json,
    report_section,
)
from faultbench.analysis.dropped import (
    dropped_json,
    dropped_notes,
    kernels_unmeasured_note,
    knob_drift_left_out,
    lacking_note,
    unmeasured_notes,
)
from faultbench.analysis.figure_text import record_drawn, remove_drawn
from faultbench.analysis.frame import (
    AnalysisError,
    RunInfo,
    check_run_dir,
    exclude_interfered,
    folio_texts,
    load,
    run_info,
    time_unit,
)
from faultbench.analysis.labels import (
    constants_line,
    grouped_rows,
    knob_order,
    label_columns,
    labels,
    sort_labels,
    varies,
)
from faultbench.analysis.memory import memory_section
from faultbench.analysis.profile import phase_costs, stack_frame
from faultbench.analysis.profile_section import section as profile_section
from faultbench.analysis.report_header import header, machine_line, unlike_the_machine
from faultbench.analysis.stats import CI_METHOD, median_ci, unit_count
from faultbench.analysis.sweep import baselines, sweep_tables
from faultbench.analysis.text import fmt, fmt_fixed, text_table, wrap
from faultbench.errors import error_text, printable_lines
from faultbench.measurement.rundir.dirlock import DirLock
from faultbench.measurement.rundir.results import META
from faultbench.measurement.rundir.safefile import ResultsError, SafeDir

REPORT = "report.txt"
REPORT_TITLE = "faultbench report"
REPORT_HEAD = f"{REPORT_TITLE}: workload".encode()  # how every report.txt begins (header())

NO_VALID_SAMPLES = ("the run has no valid samples (all warm-ups, errors, unsupported or "
                    "measured while someone else had changed a knob)")
# Sample fields the report's tables are made of: why any of them is null goes in the footer.
SHOWN_FIELDS = ("ns_per_page", "faults_per_page", "pages_mapped", "munmap_ns", "pages_touched",
                "nivcsw", "steal_ns")


def interfered_counts(df: pd.DataFrame, keys: list[str]) -> pd.Series:
    """Per group of `keys`: how many valid samples were interfered with (excluded or not)."""
    valid = df[df["ok"] | df["interfered"]]
    return valid.groupby(keys, sort=False, dropna=False)["interfered"].sum().astype(int)


def hit_cells(hits: pd.Series, valid: pd.Series) -> pd.Series:
    """hit% cells: the share of a row's valid samples that were hit (0 when none was),
    blank when the row has no valid sample."""
    share = 100 * hits / valid.where(valid > 0)
    return share.map(lambda v: f"{v:.0f}" if v == v else "")


def interference_note(df: pd.DataFrame) -> str:
    """The footer's word on samples preempted or stolen from; empty when there were none."""
    hit = int(df["interfered"].sum())
    if not hit:
        return ""
    valid = int((df["ok"] | df["interfered"]).sum())
    note = (f"hit: samples whose timed loop was preempted (nivcsw > 0) or saw steal time: "
            f"{hit} of {valid} valid samples. ")
    if "excluded" in df.attrs:
        measured = df[df["ok"] | df["interfered"]]
        label = labels(measured, label_columns(df))
        gone = list(dict.fromkeys(label[~label.isin(label[measured["ok"]])]))
        return note + "--strict: they are excluded from every number above" + (
            f"; it left no sample of {len(gone)} row(s), not shown: {'; '.join(gone)}."
            if gone else ".")
    return note + "They are included; --strict excludes them."


def scenario_data(df: pd.DataFrame, label_cols: list[str]) -> pd.DataFrame:
    """Per scenario and mapper role, in table order: `stats.median_ci` of ns_per_page, the
    medians of the other per-page metrics over valid samples, and `hits`, `valid` (valid
    samples, hit or not)."""
    keys = [*label_cols, "role"]
    data = df[df["ok"]].assign(label=lambda d: labels(d, keys))
    ns = median_ci(data, [*keys, "label"], "ns_per_page")
    per_page = data.groupby("label", sort=False)[
        ["faults_per_page", "mapped_per_touched", "munmap_ns_per_page"]
    ].median()
    table = ns.merge(per_page, left_on="label", right_index=True, how="left")
    everything = df.assign(label=labels(df, keys))
    valid = everything[everything["ok"] | everything["interfered"]]
    table["hits"] = table["label"].map(interfered_counts(everything, ["label"])).fillna(0)
    table["valid"] = table["label"].map(valid.groupby("label").size()).fillna(0)
    table["folios"] = table["label"].map(folio_texts(data, "label")).fillna("")
    return sort_labels(table, keys, knob_order(df))


def scenario_table(df: pd.DataFrame, label_cols: list[str]) -> str:
    """Per scenario and mapper role: median time per page touched with its CI, and medians
    per page touched."""
    table = scenario_data(df, label_cols)
    unit = time_unit(str(df["plane"].iloc[0]))
    rows = pd.DataFrame({
        "label": table["label"],
        "ns": table["median"].map(fmt),
        "ci": table["ci_lo"].map(fmt) + ".." + table["ci_hi"].map(fmt),
        "flt": fmt_fixed(list(table["faults_per_page"])),
        "map": table["mapped_per_touched"].map(fmt),
        "unmap": table["munmap_ns_per_page"].map(fmt),
        "n": unit_count(table),
    })
    rows["ci"] = rows["ci"].where(table["ci_lo"].notna(), "-")
    headers = ["scenario", f"{unit}/page", "95% CI", "flt/pg", "map/pg", f"unmap {unit}", "n"]
    if df["interfered"].any():
        rows["hit"] = hit_cells(table["hits"], table["valid"]).to_numpy()
        headers.append("hit%")
    if table["folios"].nunique() > 1:
        rows["folios"] = table["folios"].to_numpy()
        headers.append("folios")
    cells, groups = grouped_rows(table, [*label_cols, "role"], headers,
                                 rows.to_numpy().tolist())
    return wrap(f"per page touched: {unit}/page (the touch loop), flt/pg, map/pg, unmap "
                f"{unit}") + text_table(headers, cells, groups=groups)


def several_boots(df: pd.DataFrame) -> bool:
    return bool(df.groupby("kernel", dropna=False)["boot"].nunique().max() > 1)


def unit_legend(df: pd.DataFrame) -> str:
    """What the n column counts (see `stats.unit_count`)."""
    return "boots (b) / rounds (r)" if several_boots(df) else "rounds"


def footer(df: pd.DataFrame, skipped: list[dict[str, Any]]) -> str:
    several = several_boots(df)
    unit = unit_legend(df)
    clock = time_unit(str(df["plane"].iloc[0]))
    # a warm-up that measured nothing (a setting the kernel refused in a warm-up round, a
    # lost worker) is no warm-up excluded: it is said with the other failed samples below
    warmups = int((df["warmup"] & (df["status"] == "ok")).sum())
    notes = [
        f"95% CI: {CI_METHOD}. {clock}/page: median of the per-round medians, rounds of "
        f"all boots pooled (compare's base and new are medians of per-boot medians when "
        f"there are several boots); n: {unit}. {warmups} warm-up samples "
        f"excluded. flt/pg: faults per page touched; map/pg: pages mapped per page "
        f"touched; unmap {clock}: munmap time per page touched (medians of valid samples); "
        f"'-': not measured.",
    ]
    if several:
        notes.append("The CI pools the rounds of every boot: it does not include "
                     "boot-to-boot variation (compare --by kernel tests at the boot level).")
    interference = interference_note(df)
    if interference:
        notes.append("hit%: share of the row's valid samples that were hit. " + interference)
    bad = df[df["status"] != "ok"]
    if len(bad):
        counts = bad.assign(error=bad["error"].map(error_text)).groupby(
            ["status", "error"]).size()
        notes += [f"{n} {status} sample(s): {error}" for (status, error), n in counts.items()]
    reasons = pd.DataFrame(df["null_reasons"].map(lambda d: d or {}).tolist())
    reasons = reasons[[c for c in SHOWN_FIELDS if c in reasons]]
    if not reasons.empty:
        melted = reasons.melt(var_name="field", value_name="reason").dropna().drop_duplicates()
        notes += [f"{f} not measured: {r}" for f, r in melted.itertuples(index=False)]
    notes += [f"skipped {s.get('scenario')}: {s.get('reason')}" for s in skipped]
    notes += dropped_notes(df)
    return "\n" + "".join(wrap(note) for note in notes)


def report_text(df: pd.DataFrame, meta: dict[str, Any],
                baseline: str | Sequence[str] | None = None) -> str:
    """A run's report.txt; `baseline`: --baseline's VALUE or KNOB=VALUE, one or several
    (sweep.baselines)."""
    if not df["ok"].any():
        raise AnalysisError(NO_VALID_SAMPLES)
    info = run_info(meta, df)
    label_cols = label_columns(df)
    parts = [header(info, REPORT_TITLE), machine_line(meta)]
    if meta and not meta.get("finished_utc"):
        parts.append(wrap("NOTE: the run has not finished (still running, or interrupted: "
                          "faultbench run --resume DIR); these are the samples so far."))
    if meta.get("finished_utc"):  # an unfinished run lacks samples anyway (its note says)
        parts += [wrap(note) for note in unmeasured_notes(df, meta)]
    parts += [wrap(note) for note in [*kernels_unmeasured_note(df, meta),
                                      *lacking_note(df, meta)]]
    parts += [constants_line(df, label_cols), unlike_the_machine(df, meta, label_cols), "\n",
              scenario_table(df, label_cols)]
    # a knob one value of which is set and the rest left unset is no sweep (its rows say)
    swept = [knob for knob in df.attrs.get("knob_columns", []) if knob in label_cols
             and varies(df.loc[df["ok"], knob].dropna())]
    chosen = baselines(df, swept, baseline)
    for knob in swept:
        parts += ["\n", sweep_tables(df, knob, label_cols, chosen.get(knob))]
    breakeven = report_section(df)  # empty for a run without a stride sweep
    if breakeven:
        parts += ["\n", breakeven]
    profiles = profile_section(df)  # empty for a run without --profile
    if profiles:
        parts += ["\n", profiles]
    memory = memory_section(df)  # empty for a run without app-launch sessions
    if memory:
        parts += ["\n", memory]
    parts.append(footer(df, meta.get("skipped") or []))
    # report.txt is read in a terminal too; the command's output is escaped in cli.py
    return printable_lines("".join(parts))


def write_report(
    run_dir: Path, baseline: str | Sequence[str] | None = None, figures: bool = True,
    strict: bool = False,
    out: Path | None = None,
) -> tuple[str, list[Path]]:
    """OUT/report.txt (returned too) and, unless figures is False, OUT/figures/*.png|svg;
    OUT is the run directory unless `out` names another (made if missing), when the run
    is only read, as compare reads it: anyone's; its figures/ then holds this report's
    figures only.

    The directory is opened once and everything is read and written through that
    descriptor: renaming it away (or swapping it for a link) meanwhile redirects nothing.
    strict: interfered samples (preempted or stolen from) are left out of everything."""
    check_run_dir(run_dir)
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(SafeDir.reading(run_dir) if out else SafeDir.open(
            run_dir, advice="give --out DIR to write the report elsewhere"))
        if out is None:  # not into a run still measured: its report.txt would stay, stale
            lock = DirLock(source)
            try:
                lock.acquire("being written")
            except ResultsError as exc:
                raise AnalysisError(f"{exc}, or give --out DIR to report it as it is now") \
                    from None
            stack.callback(lock.release)
        df = load(source)
        if strict:
            df = exclude_interfered(df)
        meta = next(iter(df.attrs["meta"].values()))
        text = report_text(df, meta, baseline)
        directory = source if out is None else stack.enter_context(
            SafeDir.open(out, create=True))
        elsewhere = not os.path.samestat(os.fstat(directory.fd), os.fstat(source.fd))
        if elsewhere:
            _check_out(directory, out)
            if meta.get("kernels"):  # what its guests returned is in the text: as private
                # as the run's own directory (docs/kernels.md)
                _make_private(directory, out, "a booted run's report holds what its guests "
                              "returned (docs/kernels.md)")
            elif not os.fstat(source.fd).st_mode & 0o077:  # its numbers, its host's facts
                _make_private(directory, out, f"{run_dir} is private, and so is its report")
        directory.replace(REPORT, text)
        if elsewhere and directory.is_dir("figures"):
            # DIR takes reports of any run, again and again: figures of an earlier report (of
            # another run, or ones this one does not draw) would stand beside this one's
            with directory.sub("figures") as earlier:
                remove_drawn(earlier)
        if not figures:
            return text, []
        # matplotlib only when figures are drawn: `faultbench run` prints summary() too
        from faultbench.analysis.figures import make_figures, warnings_said
        from faultbench.analysis.kernel_figure import kernels_figure
        from faultbench.analysis.memory_figure import memory_figure

        with directory.sub("figures") as figures_dir, \
                warnings_said(f"{figures_dir.path}: drawing"):
            figures_dir.remove_temp_files()  # of a report killed while saving a figure
            info = run_info(meta, df)
            made = make_figures(df, info, figures_dir)
            made += _breakeven_figures(df, info, figures_dir)
            made += kernels_figure(df, info, figures_dir)
            made += memory_figure(df, info, figures_dir)
            if elsewhere:
                record_drawn(figures_dir, (path.name for path in made))
    return text, made


def _make_private(directory: SafeDir, out: Path | None, why: str) -> None:
    """A new --out private; an existing one (that holds other files, or that others share)
    is never changed, and refused unless it is private already. `why`: why it must be."""
    try:
        if directory.made_here:
            os.fchmod(directory.fd, 0o700)
        elif os.fstat(directory.fd).st_mode & 0o077:
            raise AnalysisError(f"--out {out}: other users can reach it, and {why}: give a "
                                "new directory, or one only you can reach")
    except OSError as exc:
        raise AnalysisError(f"--out {out}: cannot make it private ({exc.strerror}), and "
                            f"{why}") from None


def _check_out(directory: SafeDir, out: Path | None) -> None:
    """Refuse a `--out` whose report.txt this would replace with no word: a run's (its
    meta.json), or a file a report did not write."""
    if directory.is_file(META):
        raise AnalysisError(f"--out {out} is another run's directory (it has {META}), "
                            "whose report this would replace; choose one that is not a run")
    fh = directory.open_reading(REPORT) if directory.is_file(REPORT) else None
    if fh is not None:
        with fh:
            head = fh.read(len(REPORT_HEAD))
        if head != REPORT_HEAD:
            raise AnalysisError(f"--out {out}: its {REPORT} is no faultbench report, and this "
                                "would replace it; move it away or choose another directory")


def _breakeven_figures(df: pd.DataFrame, info: RunInfo, out_dir: SafeDir) -> list[Path]:
    """The break-even figure with the floor, for runs with a stride sweep."""
    results = [r for r in break_even(df, teardown=False) if len(r.curve) >= MIN_STRIDES]
    if not results:
        return []
    from faultbench.analysis.breakeven_figure import breakeven_figure

    return breakeven_figure(df, info, out_dir, floor=populate_rows(df), results=results)


def report_data(run_dir: Path, strict: bool = False) -> dict[str, Any]:
    """What the report computes as plain JSON types (`faultbench report --json`,
    docs/results.md): the run, per scenario the columns of the report's table (median time
    per page touched with its CI, faults, pages mapped and munmap time per page touched,
    units, hits), what was left out (knob drift, samples.jsonl lines not loaded), and the
    break-even, cost model and floor (analysis.breakeven.report_json). Unknown values are
    None. strict: as write_report's."""
    df = exclude_interfered(load(run_dir)) if strict else load(run_dir)
    if not df["ok"].any():
        raise AnalysisError(NO_VALID_SAMPLES)
    meta = next(iter(df.attrs["meta"].values()))
    info = run_info(meta, df)
    label_cols = label_columns(df)
    table = scenario_data(df, label_cols)
    stacks = stack_frame(df)

    def number(value: Any) -> float | None:  # JSON has neither NaN nor infinity
        return float(value) if math.isfinite(value) else None

    def _plain(value: Any) -> Any:  # a value unset for this scenario is null, not NaN
        value = value.item() if hasattr(value, "item") else value
        return None if isinstance(value, float) and value != value else value

    return {
        "run": str(run_dir), "workload": info.workload, "kernel": info.kernel,
        "host": info.host, "plane": info.plane, "emulated": info.emulated,
        "time_unit": time_unit(info.plane), "finished": bool(meta.get("finished_utc")),
        "metric": "ns_per_page", "ci_method": CI_METHOD,
        "per": "page touched; time: median of per-round medians, rounds of all boots pooled",
        "scenarios": [
            {"label": str(r["label"]), "role": str(r["role"]),
             "spec": {c: _plain(r[c]) for c in label_cols},
             "n": int(r["n"]), "n_boots": int(r["n_boots"]), "n_samples": int(r["n_samples"]),
             "median": number(r["median"]),
             "ci": None if r["ci_lo"] != r["ci_lo"] else [float(r["ci_lo"]), float(r["ci_hi"])],
             "faults_per_page": number(r["faults_per_page"]),
             "mapped_per_touched": number(r["mapped_per_touched"]),
             "munmap_ns_per_page": number(r["munmap_ns_per_page"]),
             "valid_samples": int(r["valid"]), "hit_samples": int(r["hits"]),
             "folios": r["folios"] or None}
            for _, r in table.iterrows()
        ],
        "knob_drift": dict(zip(("left_out", "knobs"), knob_drift_left_out(df), strict=True)),
        "dropped_lines": dropped_json(df),
        **report_json(df),
        "profiles": [_finite_or_null(dataclasses.asdict(costs))
                     for costs in phase_costs(df, stacks)],
        "profile_coverage": dataclasses.asdict(stacks.attrs["coverage"]),
    }


def _finite_or_null(value: Any) -> Any:
    """`value` with every NaN or infinite float inside it null: a phase with no samples to
    cost it (munmap_ns null on every line) is unknown, and JSON has neither."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite_or_null(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_null(item) for item in value]
    return value
