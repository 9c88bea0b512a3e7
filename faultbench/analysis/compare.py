"""Two runs, two values of a knob, or two kernels of one run, scenario by scenario
(`faultbench compare`).

Significance: `replicates.compare_rows` per row, on the unit that varies independently: the
boot when both sides have several (moderated t on per-boot log medians, Welch's below 5 rows),
the round otherwise (Mann-Whitney U on per-round medians); Holm-adjusted over the rows.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from faultbench.analysis.compare_checks import (
    check_measured_apart,
    check_planes,
    implied_kernels,
    leave_unset,
    relabelled_kernel_notes,
    unfinished_notes,
    unfinished_sides,
)
from faultbench.analysis.compare_text import footer, render
from faultbench.analysis.dropped import sides_lacking_notes, sides_notes
from faultbench.analysis.frame import (
    FAULT_AROUND_KNOB,
    METRICS,
    AnalysisError,
    booted_kernels,
    exclude_interfered,
    folio_texts,
    load,
    metric_unit,
    run_info,
)
from faultbench.analysis.harness_notes import harness_notes
from faultbench.analysis.labels import (
    LABEL_FIELDS,
    NUMERIC_FIELDS,
    UNSET,
    is_unset,
    knob_order,
    label_columns,
    labels,
    several_kernels,
    sort_labels,
    spec_order,
    spelled_number,
)
from faultbench.analysis.memory import compare_section as memory_compare
from faultbench.analysis.profile_compare import compare_section as profile_compare
from faultbench.analysis.replicates import compare_rows
from faultbench.analysis.text import wrap
from faultbench.errors import printable
from faultbench.measurement.rundir.meta_checks import epoch_mismatch
from faultbench.measurement.spec import (
    SpecError,
    format_size,
    parse_float,
    parse_size,
)
from faultbench.measurement.specdir import absolute_dir, folded_dir

# The metrics `--format lkp` puts side by side, as test-robot reports do.
# Knobs and spec fields whose values are byte counts: --by accepts 64K for them.
SIZE_FIELDS = (FAULT_AROUND_KNOB, "size")
# The spec fields rows match on (and --by may name): the labels' and the workload's seed,
# which tables do not label (it is one per run) but which changes a random pattern's pages.
ROW_FIELDS = (*LABEL_FIELDS, "seed")
# `launches` when it is the default, twice each app, as rows of --by apps match it
TWICE_EACH_APP = "twice each app"


@dataclass
class Side:
    """One operand: the run directory and, with --by, the knob value it selects."""
    path: Path
    value: str | None
    name: str


def parse_side(text: str, by: str | None, role: str) -> Side:
    if by is None:
        return Side(Path(text), None, text)
    path, sep, value = text.rpartition(":")
    while ":" in path and not Path(path).is_dir():  # a value with a colon: fill=write:64K
        path, _, head = path.rpartition(":")
        value = f"{head}:{value}"
    if not sep or not path or not value:
        raise AnalysisError(f"{role} {text!r}: with --by {by}, give RUN_DIR:VALUE")
    if by not in (*ROW_FIELDS, *_UNRECORDED) and spelled_number(value):
        # 1e2 matched 100 and titled its table 1e2, where --baseline 1e2 is refused
        raise AnalysisError(f"{role} {text!r}: write {by}'s value as the kernel reads it "
                            "back: a number in integer digits, as --baseline takes it")
    return Side(Path(path), value, f"{by}={value}")


def select(df: pd.DataFrame, side: Side, by: str | None, role: str) -> pd.DataFrame:
    """Valid samples of one operand (with those --strict excluded, for the hit counts);
    with --by, only those at the chosen knob value."""
    # failed samples stay in, so that compare_rows counts what each row lost
    ok = df[df["ok"] | df["interfered"] | ((df["status"] != "ok") & ~df["warmup"])]
    if not df["ok"].any():
        raise AnalysisError(f"{role} {side.path}: no valid samples (all warm-ups, errors or "
                            "measured while someone else had changed a knob)")
    if by is None:
        return ok
    knobs = df.attrs.get("knob_columns", [])
    if by not in knobs and by not in ROW_FIELDS:
        raise AnalysisError(
            f"unknown knob {by!r} for --by: {side.path} has knobs: {', '.join(knobs) or 'none'};"
            f" spec fields: {', '.join(ROW_FIELDS)}"
        )
    if by in _UNRECORDED and ok[by].isna().all():
        raise AnalysisError(f"{role} {side.path} {_UNRECORDED[by]}")
    chosen = ok[at_value(ok, by, side.value)]
    if chosen.empty:
        present = ok.loc[ok[by].notna(), by].drop_duplicates()
        given = knob_order(df).get(by, ())
        words = [_value_word(by, v) for v in present.iloc[spec_order(present, given).argsort()]]
        values = ", ".join([*words, *([UNSET] if ok[by].isna().any() else [])]) or "none"
        raise AnalysisError(
            f"{role} {side.path}: no samples with {by}={side.value} (values: {values})"
        )
    return chosen


def _value_word(by: str, value: Any) -> str:
    if by in SIZE_FIELDS and isinstance(value, int | float | np.number) and value > 0:
        return format_size(int(value))  # as a user writes it after RUN:, not a row label
    return match_text(by, value)


# The factors a run records only when it has several levels of them (frame.load leaves
# them null otherwise): what a run without them is, and what --by of them compares.
_UNRECORDED = {
    "kernel": "has no booted kernels (--by kernel compares the kernels of a run made with "
              "--kernel)",
    "machine": "is one machine's run (--by machine compares the machines of native runs "
               "combined with `faultbench merge`)",
}


def side_value(by: str, value: str | None) -> str | None:
    """A --by value as the samples store it: sizes may be written 64K, a directory as a
    workload takes it (relative to the working directory), `unset` as None (not set)."""
    if value == UNSET:
        return None
    if by in SIZE_FIELDS and value is not None:
        try:
            return str(parse_size(value))
        except SpecError:
            return value
    if by == "dir" and value is not None:
        try:
            return absolute_dir(value)
        except SpecError as exc:
            raise AnalysisError(str(exc)) from None
    return value


def at_value(df: pd.DataFrame, by: str, value: str | None) -> pd.Series:
    """Which rows of `df` have the --by value given on the command line."""
    return df[by].map(lambda v: match_text(by, v)) == match_text(by, side_value(by, value))


def match_text(column: str, value: Any) -> str:
    """A value of a column as compare matches it. Names (kernel labels, machines,
    directories, the spec's words) are their exact text: the kernels 6.1 and 6.10 are two.
    Numbers (knobs, seed, the numeric spec fields) are text with integral numbers written
    without a fraction, so 60, 60.0 and "60" are one value; a knob's words stay as they are.
    Integers match exactly (seeds and sysctls go to 2^64-1, past a float's 2^53).

    An unset value (knob not part of that scenario) is the empty string, so it still matches.
    """
    if is_unset(value):
        return ""
    if column == "dir":  # as absolute_dir normalizes it: a run's older records kept `x/`
        return folded_dir(str(value))
    if column in LABEL_FIELDS and column not in NUMERIC_FIELDS:
        return str(value)
    if isinstance(value, int | np.integer):  # bool too: pagemap true is 1
        return str(int(value))
    try:
        if isinstance(value, str):
            parse_float(value)  # a number in ASCII digits, as everywhere else
            number = Decimal(value)  # as written: float("9007199254740993") is ...992
        else:
            number = Decimal(float(value))
    except (TypeError, ValueError, ArithmeticError):  # SpecError is a ValueError
        return str(value)
    if number.is_nan():
        return ""
    # an integer as its digits, up to 10^24, far past 2^64 (1e999999999's would not end)
    if number.is_finite() and number.adjusted() < 24 and number == number.to_integral_value():
        return str(int(number))
    return str(float(number))


def _matched_values(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """`frame` with its `match_text` keys back as values (`_matched_value`), unset as null."""
    frame = frame.copy()
    for column in keys:
        if column in LABEL_FIELDS and column not in NUMERIC_FIELDS:  # names stay names
            frame[column] = frame[column].replace("", np.nan)
        else:  # objects: map() would make integers beside a None float64
            frame[column] = pd.Series([_matched_value(t) for t in frame[column]],
                                      index=frame.index, dtype=object)
    return frame


def _matched_value(text: str) -> Any:
    """A number's `match_text` as the number (an integer exactly), a word as itself."""
    if text == "":
        return None
    if re.fullmatch(r"-?[0-9]+", text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def differences(base: pd.DataFrame, new: pd.DataFrame, keys: list[str]) -> str:
    """What keeps two sides' rows apart, for the refusal of sides with no row in common:
    ": they differ in seed (1 vs 2)", naming the fields no value of which the sides share
    (else those whose values differ); "" when each field has values of both sides."""
    values = {key: [list(side[key].drop_duplicates().sort_values(key=spec_order))
                    for side in (base, new)] for key in keys}
    apart = [k for k, (b, n) in values.items() if not set(b) & set(n)] or \
        [k for k, (b, n) in values.items() if set(b) != set(n)]
    if not apart:
        return ""

    def shown(words: list[str]) -> str:
        words = [printable(w) if w else "unset" for w in words]
        return ", ".join(words[:4]) + (", ..." if len(words) > 4 else "")

    return ": they differ in " + "; ".join(
        f"{key} ({shown(values[key][0])} vs {shown(values[key][1])})" for key in apart[:3])


def compare(
    base: pd.DataFrame, new: pd.DataFrame, metric: str = "ns_per_page", by: str | None = None
) -> pd.DataFrame:
    """One row per scenario (and mapper role) present in both: `replicates.compare_rows`'
    columns, `change_pct` and its CI (`ci_lo_pct`, `ci_hi_pct`), `interfered` (samples of
    both sides preempted or stolen from), `label`.

    base/new are valid samples (see `select`); those not `ok` (--strict) only count as
    interfered. Rows match on the spec's fields, the kernel and every knob but `by`.
    """
    knobs = [*base.attrs.get("knob_columns", []), *new.attrs.get("knob_columns", [])]
    keys = [c for c in dict.fromkeys([*ROW_FIELDS, *knobs]) if c != by]
    sides = [side.assign(**{key: side[key].map(lambda v, k=key: match_text(k, v))
                            if key in side else "" for key in keys}) for side in (base, new)]
    if by == "apps":  # sessions of other numbers of apps, each launched twice by default
        sides = [side.assign(launches=side["launches"].mask(
            side["launches"] == pd.to_numeric(side["apps"], errors="coerce").mul(2).map(
                lambda v: match_text("launches", v)), TWICE_EACH_APP)) for side in sides]
    keys.append("role")
    table = compare_rows(sides[0], sides[1], keys, metric)
    if table.empty:
        for role, side in (("BASE", base), ("NEW", new)):
            if not side.loc[side["ok"], metric].notna().any():
                # its samples are here only as interfered ones when --strict left them out
                left = " once --strict left out the samples preempted or stolen from" if \
                    side.loc[side["interfered"], metric].notna().any() else ""
                raise AnalysisError(f"{role} has no valid values of {metric}{left}")
        why = " once --strict left out the samples preempted or stolen from" if \
            set.intersection(*(_valid_rows(side, keys, metric) for side in sides)) else ""
        raise AnalysisError(f"BASE and NEW have no scenario in common{why}"
                            f"{differences(*(s[s['ok']] for s in sides), keys)}")
    attrs = dict(table.attrs)
    both = pd.concat(sides)
    counts = both.assign(valid=both["ok"] | both["interfered"]).groupby(
        keys, sort=False, dropna=False)[["interfered", "valid"]].sum()
    table = table.join(counts, on=keys)
    base_f, new_f = (table.join(folio_texts(s[s["ok"]], keys).rename("f"), on=keys)["f"]
                     .fillna("") for s in sides)
    # a side of one size is named without its 100% ("4K -> 1M"), so the cell leaves the
    # labels room beside the numbers
    changed = (base_f != new_f).to_numpy()
    base_f, new_f = (f.where(~changed, f.str.removesuffix(" 100%")) for f in (base_f, new_f))
    table["folios"] = base_f.where(~changed, base_f + " -> " + new_f)
    table["interfered"] = table["interfered"].fillna(0).astype(int)
    table["hit_pct"] = 100 * table["interfered"] / table["valid"].where(table["valid"] > 0)
    table = table.drop(columns="valid")
    for column, ratio in (("change_pct", "ratio"), ("ci_lo_pct", "ci_lo"),
                          ("ci_hi_pct", "ci_hi"), ("detect_pct", "detect")):
        table[column] = 100 * (table[ratio] - 1)
    table = _matched_values(table, keys[:-1])
    table.attrs["knob_columns"] = [k for k in dict.fromkeys(knobs) if k != by]
    table["ok"] = True
    # what varies among the rows, or did before --strict left some out: labels stay stable
    # (concat keeps attrs only when every frame has the same, so the knobs are named here)
    left_out = [_matched_values(side.loc[~side["ok"]], keys[:-1]) for side in sides]
    kernels = several_kernels(base) or several_kernels(new)  # concat keeps no meta
    varying = label_columns(pd.concat([table, *left_out]), extra=table.attrs["knob_columns"],
                            kernels=kernels)
    table.attrs["label_columns"] = [*(c for c in varying if c in keys), "role"]
    table["label"] = labels(table, table.attrs["label_columns"])
    # named apart from the table's rows, by what tells them from those too
    one_sided = _one_sided(sides, keys, metric)
    naming = label_columns(pd.concat([table, *one_sided.values()]),
                           extra=table.attrs["knob_columns"], kernels=kernels)
    table.attrs["only_in"] = {role: list(labels(rows, [*(c for c in naming if c in keys),
                                                       "role"]))
                              for role, rows in one_sided.items()}
    gone = _left_by_strict(sides, keys, metric)
    table.attrs["strict_gone"] = list(labels(gone, [*(c for c in varying if c in keys), "role"]))
    table = sort_labels(table, table.attrs["label_columns"], knob_order(base, new))
    table.attrs.update(attrs)
    table.attrs["planes"] = sorted({*base["plane"].unique(), *new["plane"].unique()})
    return table


def _one_sided(sides: list[pd.DataFrame], keys: list[str],
               metric: str) -> dict[str, pd.DataFrame]:
    """Per side (BASE, NEW), one sample of each row with valid values of `metric` that the
    other side has none in: rows no comparison can hold, which the notes must name."""
    valid = [_valid_rows(side, keys, metric) for side in sides]
    only = {}
    for role, side, mine, other in (("BASE", sides[0], *valid), ("NEW", sides[1], *valid[::-1])):
        side = side[(side["ok"] | side["interfered"]) & side[metric].notna()]
        rows = side[[row in mine - other for row in side[keys].itertuples(index=False, name=None)]]
        only[role] = _matched_values(rows.drop_duplicates(keys), keys[:-1]).assign(ok=True)
    return only


def _left_by_strict(sides: list[pd.DataFrame], keys: list[str], metric: str) -> pd.DataFrame:
    """One sample of each row both sides have valid values in, but one of them only in
    samples --strict left out (every one preempted or stolen from): no row of the table,
    and in neither side alone, so named apart."""
    both = set.intersection(*(_valid_rows(side, keys, metric) for side in sides))
    kept = set.intersection(*(_valid_rows(side[side["ok"]], keys, metric) for side in sides))
    rows = pd.concat(sides)
    rows = rows[[row in both - kept for row in rows[keys].itertuples(index=False, name=None)]]
    return _matched_values(rows.drop_duplicates(keys), keys[:-1]).assign(ok=True)


def _valid_rows(side: pd.DataFrame, keys: list[str], metric: str) -> set[tuple[Any, ...]]:
    """The rows (values of `keys`) in which a side has valid values of `metric`, those
    --strict left out (interfered) counted too."""
    valid = side[(side["ok"] | side["interfered"]) & side[metric].notna()]
    return set(valid[keys].itertuples(index=False, name=None))


def compare_runs(
    base_arg: str, new_arg: str | None, by: str | None = None, metric: str = "ns_per_page",
    fmt_name: str = "text", force: bool = False, strict: bool = False, brief: bool = False,
    profile: bool = False,
) -> str:
    """The comparison `faultbench compare BASE [NEW]` prints (see its --help for the
    arguments); AnalysisError when the runs cannot be compared as asked."""
    if metric not in METRICS:
        raise AnalysisError(f"unknown --metric {metric!r}: one of {', '.join(METRICS)}")
    if new_arg is None:
        if by != "kernel":
            raise AnalysisError("give BASE and NEW (only --by kernel on a run of two kernels "
                                "implies them)")
        base_arg, new_arg = implied_kernels(base_arg)
    base_side = parse_side(base_arg, by, "BASE")
    new_side = parse_side(new_arg, by, "NEW")
    base_df = load(base_side.path)
    same = new_side.path.resolve() == base_side.path.resolve()
    new_df = base_df if same else load(new_side.path)
    if by is not None and not same:
        leave_unset(base_df, new_df, by)
        leave_unset(new_df, base_df, by)
    if strict:
        base_df = exclude_interfered(base_df)
        new_df = base_df if same else exclude_interfered(new_df)
    base = select(base_df, base_side, by, "BASE")
    new = select(new_df, new_side, by, "NEW")
    metas = [next(iter(d.attrs["meta"].values())) for d in (base_df, new_df)]
    alike = check_measured_apart(base, new, metas,
                                 base_arg if same else f"{base_arg} and {new_arg}")
    check_planes(base, new, force)
    if not force and (mismatch := epoch_mismatch(*metas)):
        raise AnalysisError(mismatch)
    infos = [run_info(meta, d) for meta, d in zip(metas, (base_df, new_df), strict=True)]
    title = (f"base {base_side.name}, new {new_side.name}" if same or by is None else  # which
             f"base {base_side.path} {base_side.name}, new {new_side.path} {new_side.name}")
    if by == "kernel":
        kernels = [booted_kernels(meta).get(str(side.value)) for meta, side in
                   zip(metas, (base_side, new_side), strict=True)]
        title += " (" + " vs ".join(f"Linux {k[0]}, sha {k[1]}" if k else "unknown kernel"
                                    for k in kernels) + ")"
    elif infos[0].kernel != infos[1].kernel:
        title += f" (Linux {infos[0].kernel} vs {infos[1].kernel})"
    else:
        title += f" (Linux {infos[0].kernel})"
    if infos[0].host != infos[1].host:  # two machines: the change may be theirs
        title += f" on {infos[0].host} vs {infos[1].host}"
    title += "; plane " + " vs ".join(sorted({i.plane_label() for i in infos}))
    samples = pd.concat([base, new])
    samples = samples[samples["ok"] | samples["interfered"]]
    if strict:
        samples.attrs["excluded"] = int(samples["interfered"].sum())
    unfinished = unfinished_sides(metas)
    incomplete = unfinished_notes(unfinished, same) + \
        sides_lacking_notes((base_df, new_df), metas, same)
    notes = incomplete + sides_notes(side_rows(base_df, base_side, by),
                                     side_rows(new_df, new_side, by), same) + \
        harness_notes(*metas, by, (base_side.value, new_side.value)) + alike + \
        ([] if same or by == "kernel" else relabelled_kernel_notes(base, new, metas))
    if fmt_name == "lkp":
        from faultbench.analysis.compare_format import lkp, lkp_tables, only_in_note

        tables, left_out = lkp_tables(lambda lkp_metric: compare(base, new, lkp_metric, by))
        notes = only_in_note(next(iter(tables.values()))) + left_out + notes
        return lkp(tables, base_side.name, new_side.name, title, brief) + "".join(
            wrap(note) for note in notes)
    from faultbench.analysis.compare_format import only_in_note

    table = compare(base, new, metric, by)
    table.attrs["unfinished"] = unfinished
    notes = only_in_note(table) + notes
    if fmt_name == "json":
        from faultbench.analysis.compare_format import as_json

        return as_json(table, metric, title, " ".join([footer(
            table, metric, metric_unit(metric, samples["plane"].unique()), not same, samples),
            *notes]))
    text = render(table, fmt_name, metric, title, samples, not same, brief)
    if fmt_name == "csv":  # rows only: the notes are prose, on stderr, where they are read
        sys.stderr.write("".join(wrap(note) for note in notes))
        return text
    text += "".join(wrap(note) for note in notes)  # --brief too: they say what is missing
    if not brief:
        text += memory_compare(base, new)
    if profile:
        text += "\n" + profile_compare(side_rows(base_df, base_side, by),
                                       side_rows(new_df, new_side, by), base_side.name,
                                       new_side.name, by)
    return text


def side_rows(df: pd.DataFrame, side: Side, by: str | None) -> pd.DataFrame:
    """Every row of one operand, profiled samples included (select() keeps timing rows)."""
    return df if by is None else df[at_value(df, by, side.value)]
