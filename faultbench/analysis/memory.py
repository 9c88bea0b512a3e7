"""What fault-around costs in memory: app-launch sessions (spec `apps > 0`) per
fault_around_bytes, in the units of the published cases (Menon 2016: allocstalls over ten
app launches; Deacon 2021: direct reclaim on app launch): counts per launch.

A session's sample holds /proc/vmstat deltas across its launches and the launches' own
counts; the per-launch numbers are that sum divided by the session's `launches_done`. The
round (one session) is the unit: medians and order-statistic CIs over sessions
(stats.median_ci). Reclaim counts are mostly zeros, where a median hides what the anchors
count, totals: `count_totals` gives each setting's totals and rate per launch, and the rate
ratio against fault-around off with an exact conditional (Poisson) interval and an exact
permutation p over sessions. The sessions of one boot run one after another on one machine
(vmstat is machine-wide, and reclaim state carries over), so they are serially dependent:
both the interval and the permutation treat them as exchangeable, which they are not quite.
`report` and `compare` call memory_section / compare_section; both are empty for runs
without app sessions.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from faultbench.analysis.frame import (
    EMULATED_PLANES,
    FAULT_AROUND_KNOB,
    INSTRUCTION_CLOCK_PLANES,
)
from faultbench.analysis.labels import (
    APP_FIELDS,
    dir_names,
    format_value,
    is_unset,
    label_columns,
)
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
    """What the rows are: the swept knob, within kernels, guest memories and any other field
    or knob the sessions vary (a `dir` axis: one filesystem against another), when several."""
    keys = [k for k in ("kernel", "guest_memory") if apps[k].nunique(dropna=False) > 1]
    keys += [k for k in label_columns(apps) if k not in (FAULT_AROUND_KNOB, "kernel")]
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


# Counts whose totals the anchors report (Menon: allocstalls over the launches).
COUNTED = ("allocstall", "refault")
# Sessions of two settings: up to this many splits the permutation is enumerated exactly.
EXACT_SPLITS = 20000


def count_totals(apps: pd.DataFrame, keys: list[str], metric: str) -> pd.DataFrame:
    """Per setting (keys) over valid sessions: `sessions`, `launches`, `total` (the count
    summed over sessions), `rate` (total / launches), `with_any` (sessions with a count),
    `top` (the largest session's share of the total), and against the first setting of its
    stratum (the smallest value of the last key, fault_around_bytes: fault-around off, with
    the other keys the same) `ratio` of rates, `ci_lo`, `ci_hi`
    (exact conditional interval: given both totals, the setting's share is binomial when
    the counts are Poisson in launches) and `p` (exact two-sided permutation p of the
    difference in rates, the sessions of both settings relabelled in every way)."""
    valid = apps[apps["outcome"] == "ok"]
    launches = pd.to_numeric(valid["launches_done"], errors="coerce")
    counts = (valid[metric] * launches).round()
    frame = valid[keys].assign(_count=counts, _launches=launches)
    groups = [(key if isinstance(key, tuple) else (key,), part)
              for key, part in frame.groupby(keys, sort=False, dropna=False)]
    groups.sort(key=lambda item: (tuple(map(str, item[0][:-1])),
                                  pd.to_numeric(pd.Series([item[0][-1]]), errors="coerce").iloc[0]))
    rows = []
    bases: dict[tuple[Any, ...], pd.DataFrame] = {}
    for key, part in groups:
        base = bases.setdefault(tuple(map(str, key[:-1])), part)
        total, exposure = float(part["_count"].sum()), float(part["_launches"].sum())
        row = dict(zip(keys, key, strict=True))
        row.update(sessions=len(part), launches=int(exposure), total=int(total),
                   rate=total / exposure if exposure else np.nan,
                   with_any=int((part["_count"] > 0).sum()),
                   top=float(part["_count"].max() / total) if total else np.nan)
        row.update(_against(part, base) if part is not base else
                   {"ratio": np.nan, "ci_lo": np.nan, "ci_hi": np.nan, "p": np.nan})
        rows.append(row)
    return pd.DataFrame(rows)


def _against(part: pd.DataFrame, base: pd.DataFrame) -> dict[str, float]:
    from scipy import stats  # here only: a summary without memory rows needs no scipy

    x, y = float(part["_count"].sum()), float(base["_count"].sum())
    tx, ty = float(part["_launches"].sum()), float(base["_launches"].sum())
    if x + y == 0:
        return {"ratio": np.nan, "ci_lo": np.nan, "ci_hi": np.nan, "p": 1.0}
    share = stats.binomtest(int(x), int(x + y)).proportion_ci(0.95)

    def ratio(q: float) -> float:
        return np.inf if q >= 1 else q / (1 - q) * ty / tx

    return {"ratio": ratio(x / (x + y)), "ci_lo": ratio(share.low), "ci_hi": ratio(share.high),
            "p": _permutation_p(part, base)}


def _permutation_p(part: pd.DataFrame, base: pd.DataFrame) -> float:
    """Exact two-sided p: the share of relabellings of the sessions whose rate difference is
    at least the observed one (sessions are the units; launches per session as measured)."""
    counts = np.concatenate([part["_count"].to_numpy(float), base["_count"].to_numpy(float)])
    exposure = np.concatenate([part["_launches"].to_numpy(float),
                               base["_launches"].to_numpy(float)])
    mine = len(part)
    picks = list(combinations(range(len(counts)), mine))
    if len(picks) > EXACT_SPLITS:
        return np.nan
    chosen = np.zeros((len(picks), len(counts)), dtype=bool)
    for i, pick in enumerate(picks):
        chosen[i, list(pick)] = True
    diff = ((chosen @ counts) / (chosen @ exposure)
            - ((~chosen) @ counts) / ((~chosen) @ exposure))
    observed = diff[0] if picks[0] == tuple(range(mine)) else None
    assert observed is not None
    return float(np.mean(np.abs(diff) >= abs(observed) - 1e-12))


def _number(value: float) -> str:
    return "-" if pd.isna(value) else "inf" if value == np.inf else fmt(value)


def totals_text(apps: pd.DataFrame, keys: list[str]) -> str:
    """The report's totals: per count and setting, total, rate and the rate ratio."""
    parts = []
    dirs = dir_names(apps["dir"].unique()) if "dir" in keys else None
    for metric in COUNTED:
        table = count_totals(apps, keys, metric)
        if table.empty:
            continue
        rows = [[_key_label(r, keys, dirs), str(r["sessions"]), str(r["launches"]), str(r["total"]),
                 fmt(r["rate"]), f"{r['with_any']}/{r['sessions']}",
                 "-" if pd.isna(r["top"]) else f"{100 * r['top']:.0f}%",
                 _number(r["ratio"]),
                 "-" if pd.isna(r["ci_lo"]) else f"{_number(r['ci_lo'])}..{_number(r['ci_hi'])}",
                 "-" if pd.isna(r["p"]) else f"{r['p']:.2g}"]
                for r in table.to_dict("records")]
        parts += [f"\n{SHORT[metric]}, totals over valid sessions:\n",
                  text_table(["setting", "n", "launches", "total", "/launch", "any", "top",
                              "ratio", "95% CI", "p"], rows)]
    if not parts:
        return ""
    return "".join(parts) + "\n" + wrap(
        "total: summed over the sessions; /launch: total / launches; any: sessions with a "
        "count; top: the largest session's share of the total; ratio: rate against the "
        "first setting (inf: none there), 95% CI exact given both totals if the counts were "
        "Poisson in launches (too narrow when a few sessions hold most of a total: see top); "
        "p: exact permutation of the two settings' sessions. The sessions of one boot ran "
        "one after another on one machine (vmstat counts all of it), so they are serially "
        "dependent, not the independent units both assume.")


def _key_label(row: Any, keys: list[str], dirs: dict[str, str] | None = None) -> str:
    """A setting's label; `dirs`: the sessions' directories as `labels.dir_names` names
    them."""
    parts = []
    for key in keys:
        value = getattr(row, key) if not isinstance(row, dict) else row[key]
        parts.append(format_value(key, value, dirs)
                     if key in (FAULT_AROUND_KNOB, "dir", *APP_FIELDS) or is_unset(value)
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
        key = pd.Series({k: row[k] for k in keys})
        # an unset knob (null) is a setting of its own, which == never matches
        same = (table[keys] == key) | (table[keys].isna() & key.isna())
        found = table[(table["metric"] == metric) & same.all(axis=1)]
        if found.empty:
            return "-"
        one = found.iloc[0]
        return _ci(one["ci_lo"], one["ci_hi"]) if ci else fmt(one["median"])

    dirs = dir_names(apps["dir"].unique()) if "dir" in keys else None
    labels_ = [_key_label(r, keys, dirs) for r in rows.to_dict("records")]
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
        totals_text(apps, keys),
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
    # a session shape either side varies, and a knob both sides sweep, pair rows; otherwise
    # (compare --by fault_around_bytes, or two runs of one setting each) each side is one row
    keys = [c for c in APP_FIELDS if any(c in d and d[c].nunique() > 1 for d in (old, now))]
    swept = all(FAULT_AROUND_KNOB in d and d[FAULT_AROUND_KNOB].nunique() > 1
                for d in (old, now))
    keys = [*keys, FAULT_AROUND_KNOB] if swept else keys or ["_all"]
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
