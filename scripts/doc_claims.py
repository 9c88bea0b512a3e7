#!/usr/bin/env python3
"""Numbers that README.md and docs/*.md quote from the shipped results, each computed from
its results directory: a claim is a doc, a sentence with {fields}, and a function of the
shipped runs that fills them. tests/test_docs.py checks that every filled sentence is in its
doc (whitespace and line breaks aside), so a regenerated result cannot leave a stale number
behind: the test fails and this script prints the sentence as it now reads.

    python scripts/doc_claims.py      # every claim as the results now fill it, and where
                                      # the doc disagrees

Numbers not yet covered are listed in UNCOVERED.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"


@dataclass(frozen=True)
class Claim:
    doc: str
    text: str  # with {field}s
    values: Callable[[], dict[str, str]]

    def filled(self) -> str:
        return self.text.format(**self.values())


def squeezed(text: str) -> str:
    """Whitespace runs as one space (docs wrap lines), and '> ' quote marks dropped."""
    return re.sub(r"\s+", " ", re.sub(r"(?m)^>\s?", "", text)).strip()


@cache
def load(run: str) -> Any:
    import faultbench

    return faultbench.load(RESULTS / run)


@cache
def kernel_rows(run: str, metric: str = "ns_per_page") -> dict[str, dict[str, Any]]:
    """`faultbench compare RUN --by kernel --format json`'s rows by label."""
    from faultbench.analysis.compare import compare_runs

    text = compare_runs(str(RESULTS / run), None, by="kernel", metric=metric, fmt_name="json")
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


def n(value: float, digits: int = 0) -> str:
    """1,602 / 13.5: thousands separated."""
    return f"{value:,.{digits}f}"


def pct(value: float, digits: int = 0, sign: bool = False) -> str:
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def ci(pair: list[float] | None, digits: int = 0, fmt: Callable[..., str] = n) -> str:
    assert pair is not None
    return f"{fmt(pair[0], digits)}..{fmt(pair[1], digits)}"


def _patch_later() -> dict[str, str]:
    row = kernel_rows("uffd-2020-patch")["seq uffd=missing x4 reg=later [later]"]
    return {"base": n(row["base"]["median"]), "new": n(row["new"]["median"]),
            "change": pct(row["change_pct"], sign=True),
            "lo": pct(row["ci_pct"][0], sign=True), "hi": pct(row["ci_pct"][1], sign=True)}


def _patch_sparse() -> dict[str, str]:
    """The later mappers when only they register, as the headline row."""
    rows = kernel_rows("uffd-2020-patch")
    out = {}
    for key, label in (("s8", "stride:8"), ("sp", "sparse")):
        row = rows[f"{label} uffd=missing x4 reg=later [later]"]
        out.update({key: pct(row["change_pct"]), f"{key}_base": n(row["base"]["median"]),
                    f"{key}_new": n(row["new"]["median"])})
    return out


def _native_crossing() -> dict[str, str]:
    from faultbench.analysis.breakeven import break_even

    [headline] = [b for b in break_even(load("native-break-even"), teardown=False)
                  if b.backing == "memfd"]
    return {"pages": f"{headline.pages_per_window:.1f}", "stride": f"{headline.stride:.1f}"}


def _share(run: str, label: str, phase: str, kernel: str | None = None) -> str:
    return pct(100 * phases(run)[(label, kernel)].shares[phase])


def _native_profile() -> dict[str, str]:
    on, off = "size=64M seq uffd=none", "size=64M seq uffd=wp"
    return {"fa": _share("native-profile", on, "fault-around"),
            "entry_on": _share("native-profile", on, "entry/exit"),
            "entry_off": _share("native-profile", off, "entry/exit")}


def _constant(name: str) -> dict[str, str]:
    model = cost_model("tcg-icount-cost-model")
    [check] = [c for c in model.profile.constants if c.constant == name]
    return {"profile": n(check.profile), "profile_ci": ci(check.profile_ci),
            "model": n(check.model), "model_ci": ci(check.model_ci),
            "ratio": f"{check.ratio:.2f}"}


def _misfit() -> dict[str, str]:
    rows = cost_model("tcg-icount-cost-model").by_stride
    return {"a_low": n(rows[0][1]), "a_high": n(rows[-1][1]),
            "b_low": n(min(r[2] for r in rows)), "b_high": n(max(r[2] for r in rows))}


def _kernel_phases() -> dict[str, str]:
    run = "tcg-icount-profile-kernels"
    old, new = (phases(run)[(f"{k}: uffd=none", k)] for k in ("6.1", "6.12"))
    wp = phases(run)[("6.12: uffd=wp", "6.12")]
    return {"fa_old": n(old.phases["fault-around"]), "fa_new": n(new.phases["fault-around"]),
            "rmap_old": n(old.phases["rmap+memcg"]), "rmap_new": n(new.phases["rmap+memcg"]),
            "sum_old": n(old.phases["fault-around"] + old.phases["rmap+memcg"]),
            "share_old": pct(100 * old.shares["rmap+memcg"], 1),
            "share_new": pct(100 * new.shares["rmap+memcg"], 1),
            "vma": pct(100 * wp.shares["VMA lookup"]), "entry": pct(100 * wp.shares["entry/exit"])}


def _kernel_change() -> dict[str, str]:
    rows = kernel_rows("tcg-icount-profile-kernels")
    on, off = rows["uffd=none"], rows["uffd=wp"]
    return {"on_base": n(on["base"]["median"]), "on_new": n(on["new"]["median"]),
            "on_change": pct(-on["change_pct"], 1), "lo": pct(on["ci_pct"][0], 1, True),
            "hi": pct(on["ci_pct"][1], 1, True), "off_base": n(off["base"]["median"]),
            "off_new": n(off["new"]["median"]), "off_change": pct(off["change_pct"], 1)}


def _one_page_fault() -> dict[str, str]:
    row = phases("tcg-icount-cost-model")[("stride:1 fa=4K", "6.1.0-57-amd64")]
    return {k.replace(" ", "_").replace("/", "_").replace("+", "_"): n(row.phases[k])
            for k in ("entry/exit", "VMA lookup", "lookup", "rmap+memcg", "user")}


def _aa_split() -> dict[str, str]:
    from faultbench.analysis.replicates import replicate_values

    df = load("icount-aa")
    keys = ["pattern", "uffd", "mappers", "role"]
    boots = replicate_values(df.assign(boot=df["kernel"].astype(str) + df["boot"].astype(str)),
                             keys, "ns_per_page", "boot")
    row = boots[(boots["pattern"] == "sparse") & (boots["uffd"] == "missing")
                & (boots["mappers"] == 1)]["value"].sort_values().to_numpy()
    return {"low": f"{row[0]:,.1f}-{row[2]:,.1f}", "high": f"{row[3]:,.1f}-{row[5]:,.1f}"}


def _controls() -> dict[str, str]:
    """The rows the patch should not move: uffd none and wp, and the first mapper when only
    later ones register; dense (2,048 pages touched) and sparse apart, and those marked."""
    rows = kernel_rows("uffd-2020-patch")
    control = {label: row for label, row in rows.items()
               if "uffd=none" in label or "uffd=wp" in label or "reg=later [first]" in label}
    dense = [abs(r["change_pct"]) for label, r in control.items()
             if not label.startswith("sparse")]
    sparse = [abs(r["change_pct"]) for label, r in control.items() if label.startswith("sparse")]
    marked = [label for label, r in control.items() if r["significant"]]
    detect = [r["detect_pct"] for label, r in rows.items()
              if label.startswith(("seq", "random")) and r["detect_pct"] is not None]
    return {"dense": f"{max(dense):.1f}", "sparse": f"{max(sparse):.2f}",
            "marked": str(len(marked)), "marked_rows": ", ".join(marked) or "none",
            "lo": f"{min(detect):.2g}", "hi": f"{max(detect):.2g}"}


def _icount_spread() -> dict[str, str]:
    from faultbench.analysis.replicates import replicate_values

    df = load("icount-aa")
    keys = ["kernel", "pattern", "uffd", "mappers", "uffd_mappers", "role"]
    boots = replicate_values(df, keys, "ns_per_page", "boot")
    cv = boots.groupby(keys)["value"].agg(lambda v: 100 * v.std(ddof=1) / v.mean())
    sparse = cv.index.get_level_values("pattern") == "sparse"
    rows = kernel_rows("icount-aa")
    half = [(r["ci_pct"][1] - r["ci_pct"][0]) / 2 for label, r in rows.items()
            if label.startswith("sparse")]
    return {"median": f"{cv.median():.2f}", "dense": f"{cv[~sparse].max():.2f}",
            "sparse": f"{cv[sparse].max():.1f}",
            "cis": ", ".join(f"±{h:.1f}%" for h in sorted(half)[:-1])
            + f" and ±{sorted(half)[-1]:.1f}%"}


def _memory() -> dict[str, str]:
    """Totals per setting of the 256 MiB run, its medians per launch, and the 1 GiB run's."""
    from faultbench.analysis.memory import count_totals, sessions
    from faultbench.analysis.stats import median_ci

    apps = sessions(load("tcg-memory-256M"))
    key = ["fault_around_bytes"]
    at = {4096: "4k", 16384: "16k", 65536: "64k", 2097152: "2m"}
    out: dict[str, str] = {}
    for metric, short in (("allocstall", "st"), ("refault", "rf")):
        for row in count_totals(apps, key, metric).to_dict("records"):
            name = f"{short}_{at[int(row['fault_around_bytes'])]}"
            out[name] = n(row["total"])
            out[f"{name}_p"] = f"{row['p']:.2g}" if row["p"] == row["p"] else "-"
            out[f"{name}_top"] = f"{100 * row['top']:.0f}"
            out[f"{name}_any"] = str(row["with_any"])
            out["launches"] = str(row["launches"])
    for run, memory in ((apps, ""), (sessions(load("tcg-memory-1G")), "g_")):
        for metric in ("faults", "mapped", "pgscan", "pgsteal", "majflt", "launch_ms"):
            ci = median_ci(run, key, metric).set_index("fault_around_bytes")
            for setting, short in at.items():
                name = f"{memory}{metric}_{short}"
                out[name] = n(ci.loc[setting, "median"])
                out[f"{name}_ci"] = f"{n(ci.loc[setting, 'ci_lo'])}-{n(ci.loc[setting, 'ci_hi'])}"
    return out


def _patch_counts() -> dict[str, str]:
    rows = kernel_rows("uffd-2020-patch")
    timed = [r for r in rows.values() if not r["exact"]]
    return {"significant": str(sum(r["significant"] for r in rows.values())),
            "rows": str(len(rows)), "timed": str(len(timed)),
            "wp": n(rows["seq uffd=wp x4 [later]"]["new"]["median"])}


CLAIMS: list[Claim] = [
    Claim("README.md", "from {base} to {new} guest instructions per page touched ({change}%, "
          "95% CI {lo}..{hi}%", _patch_later),
    Claim("docs/reference-results.md", "their cost from {base} to {new} guest instructions "
          "per page touched ({change}%, 95% CI {lo}..{hi}%)", _patch_later),
    Claim("docs/icount.md", "{base} -> {new} guest instructions per page touched, {change}% "
          "(95% CI {lo}..{hi}%)", _patch_later),
    Claim("README.md", "(stride 8: {s8}%; one page per 2 MiB: {sp}%)", _patch_sparse),
    Claim("docs/reference-results.md", "(stride 8: {s8_base} -> {s8_new}, {s8}%; one page "
          "per 2 MiB: {sp_base} -> {sp_new}, {sp}%)", _patch_sparse),
    Claim("README.md", "fault-around breaks even at ~{pages} pages per window",
          _native_crossing),
    Claim("docs/break-even.md", "at about {pages} pages touched per 64 KiB window (stride "
          "{stride})", _native_crossing),
    Claim("README.md", "installing PTEs ({fa}%, `next_uptodate_folio` most of it) and "
          "{entry_on}% fault entry and exit; with it off, entry and exit take {entry_off}%",
          _native_profile),
    Claim("docs/profiles.md", "fault entry and exit {entry_on}%", _native_profile),
    Claim("docs/profiles.md", "entry/exit becomes the cost ({entry_off}%", _native_profile),
    Claim("README.md", "cost per page mapped, {profile} guest instructions (95% CI "
          "{profile_ci}), and the cost model's b, {model} (95% CI {model_ci})",
          lambda: _constant("b")),
    Claim("docs/profiles.md", "the regression's {model} guest instructions per page mapped "
          "(95% CI {model_ci}) and the profile's fault-around + rmap+memcg phases, {profile} "
          "per page mapped (95% CI {profile_ci})", lambda: _constant("b")),
    Claim("docs/profiles.md", "the regression's {model} instructions per fault (95% CI "
          "{model_ci}) against the profile's fixed phases, {profile} (95% CI {profile_ci}): "
          "the intervals are apart, by {ratio}x", lambda: _constant("a")),
    Claim("docs/profiles.md", "a runs from {a_low} (stride 1) to {a_high} (stride 16) while b "
          "stays at {b_low}..{b_high}", _misfit),
    Claim("docs/profiles.md", "the fault-around phase {fa_old} -> {fa_new} instructions, rmap "
          "and memcg accounting {rmap_old} -> {rmap_new}. Their sum on 6.1 ({sum_old})",
          _kernel_phases),
    Claim("docs/profiles.md", "The rmap+memcg *share* is unchanged ({share_old}% vs "
          "{share_new}%)", _kernel_phases),
    Claim("docs/profiles.md", "spends {vma}% of its loop finding the VMA "
          "(`lock_vma_under_rcu`, `mas_walk`: the VMA lookup phase) and {entry}% in the "
          "fault's entry and exit", _kernel_phases),
    Claim("docs/profiles.md", "executes {on_change}% fewer instructions than 6.1 with "
          "fault-around on ({on_base} -> {on_new}, 95% CI {lo}..{hi}%, all 3 rows) and "
          "{off_change}% more with it off (uffd-wp, {off_base} -> {off_new})", _kernel_change),
    Claim("docs/profiles.md", "entry/exit {entry_exit}, VMA lookup {VMA_lookup}, page-cache "
          "lookup {lookup}, rmap+memcg {rmap_memcg} and `[user]` {user} instructions",
          _one_page_fault),
    Claim("docs/results.md", "({low} instructions per page) against those on the other "
          "({high})", _aa_split),
    Claim("docs/reference-results.md", "every change of the rows that touch 2,048 pages "
          "within ±{dense}%, of the sparse rows, 4 pages touched each, within ±{sparse}%; "
          "{marked} marked ({marked_rows})", _controls),
    Claim("docs/reference-results.md", "is {lo}-{hi}% for rows that touch 2,048 pages",
          _controls),
    Claim("docs/icount.md", "within ±{dense}% where it touches 2,048 pages and ±{sparse}% "
          "where it touches 4; {marked} of them marked ({marked_rows})", _controls),
    Claim("docs/icount.md", "column {lo}-{hi}% for rows that touch 2,048 pages", _controls),
    Claim("docs/icount.md", "between boots: CV of the three per-boot medians | {median}% | "
          "{dense}% without sparse; {sparse}% sparse", _icount_spread),
    Claim("docs/icount.md", "Their CIs (moderated t) are {cis}", _icount_spread),
    Claim("docs/icount.md", "{significant} of {rows} timing rows significant after Holm",
          _patch_counts),
    Claim("docs/reference-results.md", "{significant} of {rows} timing rows are significant "
          "after Holm", _patch_counts),
    Claim("docs/reference-results.md", "the same as uffd-wp ({wp})", _patch_counts),
    Claim("README.md", "{launches} per setting: at `fault_around_bytes=2M` {st_2m} direct "
          "reclaims and {rf_2m} refaults in all, in every session, against {st_4k} and {rf_4k} "
          "at 4K (permutation p = {st_2m_p})", _memory),
    Claim("docs/memory.md", "Over {launches} launches per setting, 4K had {st_4k} direct "
          "reclaim, 16K and 64K none, and 2M {st_2m}, in every one of its {st_2m_any} sessions "
          "(permutation p = {st_2m_p} against 4K). Refaults: {rf_4k} at 4K, {rf_16k} at 16K, "
          "{rf_64k} at 64K and {rf_2m} at 2M; at 4K and 64K every refault of the setting fell "
          "in one session (`top` {rf_64k_top}%), and no setting below 2M differs from 4K (16K "
          "and 64K against 4K: p = {rf_16k_p} and {rf_64k_p})", _memory),
    Claim("docs/memory.md", "every launch mapped {mapped_2m} file pages to read {faults_4k}, "
          "and reclaim evicted the pages the next launches needed (major faults {majflt_2m} per "
          "launch against {majflt_4k}). 16K and 64K made kswapd scan 6-8 times the pages of 4K "
          "({pgscan_16k} and {pgscan_64k} against {pgscan_4k} per launch) but steal no more "
          "({pgsteal_16k} and {pgsteal_64k} against {pgsteal_4k})", _memory),
    Claim("docs/memory.md", "faults per launch fall from {faults_4k} (4K) to {faults_16k} (16K), "
          "{faults_64k} (64K) and {faults_2m} (2M); with 1 GiB, 2M takes {g_faults_2m}", _memory),
    Claim("docs/memory.md", "2M's median launch took {launch_ms_2m} ms against {launch_ms_4k} "
          "at 4K, with 95% CIs of {launch_ms_2m_ci} and {launch_ms_4k_ci} ms", _memory),
    Claim("docs/memory.md", "With 1 GiB, {g_launch_ms_2m} against {g_launch_ms_4k} ms, with "
          "overlapping CIs ({g_launch_ms_2m_ci} and {g_launch_ms_4k_ci})", _memory),
]

# Quoted numbers from shipped results that no claim computes yet (doc: what).
UNCOVERED = [
    ("docs/icount.md", "the within-boot CV row, the sparse rows' per-boot values, the "
                       "instruction counts per page (602, 2,022, 14,101, 6,143)"),
    ("docs/reference-results.md", "'about 1,215 more instructions per page', the "
                                  "boot-to-boot spreads of the unshipped 0.2 run"),
    ("docs/profiles.md", "the native section's ns figures (141 of 271, 748/701, the sparse "
                         "worst case), the later-mapper shares"),
    ("docs/break-even.md", "the reference run's curve values and the populate floor"),
    ("docs/kernels.md, docs/overhead.md, docs/workloads.md", "their quoted measurements"),
]


def stale() -> list[tuple[Claim, str]]:
    """(claim, its sentence as the results fill it) for each claim its doc no longer has."""
    out = []
    for claim in CLAIMS:
        sentence = claim.filled()
        if squeezed(sentence) not in squeezed((ROOT / claim.doc).read_text()):
            out.append((claim, sentence))
    return out


def main() -> int:
    bad = stale()
    for claim in CLAIMS:
        mark = "STALE" if any(c is claim for c, _ in bad) else "ok"
        print(f"{mark:5} {claim.doc}: {claim.filled()}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
