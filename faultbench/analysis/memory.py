"""What fault-around costs in memory: app-launch sessions (spec `apps > 0`) per
fault_around_bytes, in the units of the published cases (Menon 2016: allocstalls over ten
app launches; Deacon 2021: direct reclaim on app launch): counts per launch.

A session's sample holds /proc/vmstat deltas across its launches and the launches' own
counts; every number here is that sum divided by the session's `launches_done`. The round
(one session) is the unit: medians and order-statistic CIs over sessions (stats.median_ci).
`report` and `compare` call memory_section / compare_section; both are empty for runs
without app sessions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from faultbench.analysis.frame import (
    EMULATED_PLANES,
    FAULT_AROUND_KNOB,
    INSTRUCTION_CLOCK_PLANES,
)
from faultbench.analysis.labels import format_value
from faultbench.analysis.stats import median_ci
from faultbench.analysis.text import fmt, fmt_pct, text_table, wrap

# name -> (what it counts, the vmstat counters or sample fields summed)
PER_LAUNCH: dict[str, tuple[str, tuple[str, ...]]] = {
    "allocstall": ("direct reclaim entries (allocstall_*)", ("allocstall_",)),
    "refault": ("evicted pages faulted back (workingset_refault_*)",
                ("workingset_refault_", "workingset_refault")),
    "pgscan": ("pages scanned by kswapd and direct reclaim",
               ("pgscan_kswapd", "pgscan_direct")),
    "pgsteal": ("pages reclaimed by kswapd and direct reclaim",
                ("pgsteal_kswapd", "pgsteal_direct")),
    "majflt": ("major faults of the launches (getrusage)", ()),
    "faults": ("faults of the launches, minor + major (getrusage)", ()),
    "mapped": ("file pages mapped at the end of a launch (pagemap)", ()),
    "launch_ms": ("launch time: mmap + reads, ms", ()),
}
SHORT = {"allocstall": "stalls", "refault": "refaults", "pgscan": "scanned",
         "pgsteal": "stolen", "majflt": "majflt", "faults": "faults", "mapped": "mapped",
         "launch_ms": "ms"}
ANCHOR = ("Menon 2016 (arm64, 2 GB, 3.18, 10 launches x2): allocstall 47 -> 7 without "
          "swap, 110 -> 26 with swap at fault_around_bytes=4096.")


def _vmstat_sum(vmstat: Any, names: tuple[str, ...]) -> float:
    if not isinstance(vmstat, dict) or not vmstat:
        return np.nan
    return float(sum(v for k, v in vmstat.items()
                     if k in names or any(n.endswith("_") and k.startswith(n) for n in names)))


def sessions(df: pd.DataFrame) -> pd.DataFrame:
    """The app-launch samples of df (measured, not warm-ups, any status), with one column
    per PER_LAUNCH name, the guest memory and the session's outcome."""
    if "apps" not in df or "launches_done" not in df:
        return df.iloc[0:0]
    apps = df[(pd.to_numeric(df["apps"], errors="coerce").fillna(0) > 0) & ~df["warmup"]].copy()
    if apps.empty:
        return apps
    launches = pd.to_numeric(apps["launches_done"], errors="coerce")
    launches = launches.where(launches > 0)
    vmstat = apps["vmstat"] if "vmstat" in apps else pd.Series([{}] * len(apps), apps.index)
    for name, (_, counters) in PER_LAUNCH.items():
        if counters:
            apps[name] = vmstat.map(lambda v, c=counters: _vmstat_sum(v, c)) / launches
    minor = pd.to_numeric(apps["faults_minor"], errors="coerce")
    major = pd.to_numeric(apps["faults_major"], errors="coerce")
    apps["majflt"] = major / launches
    apps["faults"] = (minor + major) / launches
    apps["mapped"] = pd.to_numeric(apps["pages_mapped"], errors="coerce") / launches
    apps["launch_ms"] = pd.to_numeric(apps["touch_ns"], errors="coerce") / launches / 1e6
    apps["guest_memory"] = _memory_column(apps, df.attrs.get("meta", {}))
    apps["outcome"] = apps["launch_outcome"].fillna("error")
    return apps


def _memory_column(apps: pd.DataFrame, metas: dict[str, Any]) -> pd.Series:
    def memory(meta: Any) -> str:
        value = meta.get("guest_memory") if isinstance(meta, dict) else None
        return str(value) if value else "host"

    if "run" in apps:
        return apps["run"].map(lambda run: memory(metas.get(run)))
    return pd.Series(memory(next(iter(metas.values()), None)), index=apps.index)


def _keys(apps: pd.DataFrame) -> list[str]:
    """What the rows are: the swept knob, within kernels and guest memories when several."""
    keys = [k for k in ("kernel", "guest_memory") if apps[k].nunique(dropna=False) > 1]
    keys += [FAULT_AROUND_KNOB] if FAULT_AROUND_KNOB in apps else []
    return keys or ["guest_memory"]


def per_launch(apps: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Long table: keys, `metric`, n, median, ci_lo, ci_hi, plus per key the sessions by
    outcome (`ok`, `oom`, `deadline`, `error`); statistics over valid (ok) sessions."""
    tables = []
    for name in PER_LAUNCH:
        table = median_ci(apps, keys, name)
        tables.append(table.assign(metric=name))
    out = pd.concat(tables, ignore_index=True)
    outcomes = apps.groupby([*keys, "outcome"], dropna=False).size().unstack(fill_value=0)
    out = out.merge(outcomes.reset_index(), on=keys, how="left")
    return out.sort_values(keys, key=lambda s: pd.to_numeric(s, errors="coerce")
                           if s.name == FAULT_AROUND_KNOB else s, kind="stable")


def _key_label(row: Any, keys: list[str]) -> str:
    parts = []
    for key in keys:
        value = getattr(row, key) if not isinstance(row, dict) else row[key]
        parts.append(format_value(FAULT_AROUND_KNOB, value) if key == FAULT_AROUND_KNOB
                     else str(value))
    return " ".join(parts)


def _ci(lo: Any, hi: Any) -> str:
    return "-" if pd.isna(lo) else f"{fmt(lo)}..{fmt(hi)}"


def memory_section(df: pd.DataFrame) -> str:
    """The report's section on app-launch sessions; '' when the run has none."""
    apps = sessions(df)
    if apps.empty:
        return ""
    keys = _keys(apps)
    table = per_launch(apps, keys)
    rows = table.drop_duplicates(keys)
    outcome_cols = [c for c in ("oom", "deadline", "error") if c in table]

    def cell(row: Any, metric: str, ci: bool = False) -> str:
        found = table[(table["metric"] == metric)
                      & (table[keys] == pd.Series({k: row[k] for k in keys})).all(axis=1)]
        if found.empty:
            return "-"
        one = found.iloc[0]
        return _ci(one["ci_lo"], one["ci_hi"]) if ci else fmt(one["median"])

    labels_ = [_key_label(r, keys) for r in rows.to_dict("records")]
    first = "setting" if len(keys) > 1 or keys[0] != FAULT_AROUND_KNOB else "fa"
    medians = [[label, *(cell(r, m) for m in PER_LAUNCH), str(int(r.get("ok", 0))),
                *(str(int(r[c])) for c in outcome_cols)]
               for label, r in zip(labels_, rows.to_dict("records"), strict=True)]
    cis = [[label, *(cell(r, m, ci=True) for m in ("allocstall", "refault", "faults",
                                                     "launch_ms"))]
           for label, r in zip(labels_, rows.to_dict("records"), strict=True)]
    return "".join([
        wrap(f"App launches, per launch ({' '.join(keys)}): medians over sessions (one "
             "session = one round: its counts divided by its launches); n: valid sessions, "
             "then sessions that ended in OOM, past the deadline or in error."),
        text_table([first, *(SHORT[m] for m in PER_LAUNCH), "n", *outcome_cols],
                   medians),
        "\n95% CIs of the medians (order statistics; '-' below 6 sessions):\n",
        text_table([first, "stalls", "refaults", "faults", "ms"], cis),
        "\n",
        wrap("stalls: allocstall_* (direct reclaim); refaults: workingset_refault_*; "
             "scanned/stolen: pgscan/pgsteal by kswapd and direct reclaim; majflt, faults: "
             "the launches' own (getrusage); mapped: file pages in the launch's page table "
             "at its end; ms: mmap + reads. vmstat counts the whole machine, so kswapd and the "
             "measuring worker are in the vmstat columns. " + _clock_note(apps)
             + "Anchor: " + ANCHOR),
    ])


def _clock_note(apps: pd.DataFrame) -> str:
    planes = set(apps["plane"].dropna())
    if planes & INSTRUCTION_CLOCK_PLANES:
        return ("launch ms are QEMU instruction-clock milliseconds (1 virtual ns = 1 guest "
                "instruction; repeatable, but instructions are not cycles, and disk I/O "
                "costs what QEMU's emulation does). ")
    if planes & EMULATED_PLANES:
        return ("launch ms are TCG-emulated wall-clock times on a shared host: not "
                "comparable with anything but the same run's rows. ")
    return ""


def compare_section(base: pd.DataFrame, new: pd.DataFrame) -> str:
    """For `faultbench compare`: per-launch medians of both sides and their change, for
    every setting both sides' app sessions share; '' when either side has none."""
    old, now = sessions(base), sessions(new)
    if old.empty or now.empty:
        return ""
    # a knob both sides sweep pairs rows; otherwise (compare --by fault_around_bytes, or two
    # runs of one setting each) each side is one row
    swept = all(FAULT_AROUND_KNOB in d and d[FAULT_AROUND_KNOB].nunique() > 1
                for d in (old, now))
    keys = [FAULT_AROUND_KNOB] if swept else ["_all"]
    a = per_launch(old.assign(_all=""), keys)
    b = per_launch(now.assign(_all=""), keys)
    both = a.merge(b, on=[*keys, "metric"], suffixes=("_base", "_new"))
    rows = [[f"{r['metric']} {_key_label(r, keys)}".strip(), fmt(r["median_base"]),
             _ci(r["ci_lo_base"], r["ci_hi_base"]), fmt(r["median_new"]),
             _ci(r["ci_lo_new"], r["ci_hi_new"]),
             fmt_pct(100 * (r["median_new"] / r["median_base"] - 1)
                     if r["median_base"] else np.nan)]
            for r in both.to_dict("records") if r["metric"] in ("allocstall", "refault",
                                                                   "pgscan", "faults",
                                                                   "launch_ms")]
    if not rows:
        return ""
    return ("\nApp launches, per launch (medians over sessions, 95% CIs):\n"
            + text_table(["metric", "base", "CI", "new", "CI", "change"], rows))
