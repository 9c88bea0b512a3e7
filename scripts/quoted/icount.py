"""docs/icount.md: the A/A (`icount-aa`), the instruction clock against native timings, the
point releases and the 2020 patch on this plane."""

from __future__ import annotations

from functools import partial

from faultbench.analysis.compare_text import _pct as ci_bound  # compare's CI cells
from faultbench.analysis.text import fmt_pct
from quoted.common import Claim, about, boot_spreads, kernel_rows, load, meta, n, report_rows
from quoted.profiles import kernel_change
from quoted.reference import controls, patch_counts, patch_later, patch_run

DOC = "docs/icount.md"
RELEASES = "tcg-icount-point-releases"
OLD, NEW = ("6.1.0-50", "6.1.0-57"), ("6.12.107", "6.12.117")  # point releases of a series
# the point-release table's rows: first cell, and the row's label in compare
TABLE = [(f"uffd={uffd}, {cell}", f"uffd={uffd}{vmas}") for uffd in ("none", "wp")
         for cell, vmas in (("{maps} mappings", ""), ("200", " vmas=200"), ("2,000", " vmas=2000"))]


def _aa() -> dict[str, str]:
    """One image under labels a and b: what it counts, and how little that moves."""
    rows = report_rows("icount-aa")
    on, off = rows["a: seq uffd=none"]["median"], rows["a: seq uffd=wp"]["median"]
    sp_on, sp_off = rows["a: sparse uffd=none"]["median"], rows["a: sparse uffd=wp"]["median"]
    spreads = boot_spreads("icount-aa")
    sparse = spreads["scenario"].str.contains(",sparse,")
    # the uffd-wp mappers (not the unregistered first one of `uffd@later`): two ticks a loop
    registered_wp = spreads["scenario"].str.contains(",uffd=wp,") & (spreads["role"] != "first")
    df = load("icount-aa")
    run = meta("icount-aa")
    return {
        "on": n(on), "off": n(off), "ratio": f"{off / on:.1f}",
        "flt_on": f"{rows['a: seq uffd=none']['faults_per_page']:g}",
        "later_on": n(rows["a: seq uffd=none x3 [later]"]["median"]),
        "later_off": n(rows["a: seq uffd=wp x3 reg=later [later]"]["median"]),
        "sp_on": n(sp_on), "sp_off": n(sp_off),
        "sp_ratio": f"{sp_on / sp_off:.1f}",
        "sp_pages": str(int(df.loc[df["pattern"] == "sparse", "pages_touched"].median())),
        "rows": str(len(spreads)), "labels": str(spreads["kernel"].nunique()),
        "per_label": str(len(spreads) // spreads["kernel"].nunique()),
        "within": f"{spreads['within_cv_pct'].median():.5f}",
        "within_max": f"{spreads['within_cv_pct'].max():.2g}",
        "within_rest": f"{spreads.loc[~sparse & ~registered_wp, 'within_cv_pct'].max():.2g}",
        "between": f"{spreads['between_cv_pct'].median():.2g}",
        "between_dense": f"{spreads.loc[~sparse, 'between_cv_pct'].max():.2g}",
        "between_sparse": f"{spreads.loc[sparse, 'between_cv_pct'].max():.2g}",
        "order": " ".join(b["kernel"] for b in sorted(run["boots"], key=lambda b: b["index"])),
        "boots": str(len(run["boots"])), "rounds": str(run["workload"]["repetitions"]),
        "per_boot": str(run["workload"]["repetitions"] // run["boots_per_kernel"]),
        "load": f"{run['machine_state']['load'][0]:.1f}",
    }


def _aa_compare() -> dict[str, str]:
    """compare --by kernel on the A/A: what it marks, its widest CI, and the tick behind it
    (the first of three mappers, uffd-wp registered by the later ones, in one round of b)."""
    rows = kernel_rows("icount-aa")
    label, widest = max(rows.items(), key=lambda kv: kv[1]["ci_pct"][1] - kv[1]["ci_pct"][0])
    half = [(r["ci_pct"][1] - r["ci_pct"][0]) / 2 for name, r in rows.items()
            if name.startswith("sparse")]
    df = load("icount-aa")
    spec = widest["spec"]
    row = df[df["ok"] & ~df["warmup"] & (df["pattern"] == spec["pattern"])
             & (df["uffd"] == spec["uffd"]) & (df["mappers"] == spec["mappers"])
             & (df["uffd_mappers"] == spec["uffd_mappers"]) & (df["role"] == widest["role"])]
    ticked = row["ticks"] > 0
    [(kernel, tick_boot)] = row.loc[ticked, ["kernel", "boot"]].drop_duplicates().itertuples(
        index=False)
    whose = {"first": "the first mapper's", "later": "a later mapper's", "only": "the mapper's"}
    return {"marked": str(sum(r["significant"] for r in rows.values())), "rows": str(len(rows)),
            "ci_max": f"{max(max(abs(b) for b in r['ci_pct']) for r in rows.values()):.2g}",
            "lo": f"{widest['ci_pct'][0]:+.3f}", "hi": f"{widest['ci_pct'][1]:+.3f}",
            "label": label, "kernel": kernel, "whose": whose[widest["role"]],
            "tick": n(row.loc[ticked, "ns_per_page"].median(), 1),
            "plain": n(row.loc[~ticked, "ns_per_page"].median(), 1),
            "boot": n(row.loc[row["boot"] == tick_boot, "ns_per_page"].median(), 1),
            "cis": _listed([f"±{h:.2g}%" for h in sorted(half) if h]),
            "exact": _exact([name for name, r in rows.items()
                             if name.startswith("sparse") and r["exact"]])}


def _listed(items: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return " and ".join(filter(None, [", ".join(items[:-1]), *items[-1:]]))


def _exact(names: list[str]) -> str:
    """The sparse rows whose CI is exact (every sample of both labels alike), as a clause
    after their CIs; none: nothing."""
    if not names:
        return ""
    verb = "is" if len(names) == 1 else "are"
    rows = _listed([f"`{name}`" for name in names])
    return f"; {rows} {verb} exact (every sample of both labels alike)"


def _native_vs_icount() -> dict[str, str]:
    """Fault-around off against on (uffd-wp vs none, one mapper, seq) on both clocks."""
    native, aa = report_rows("native-quick"), report_rows("icount-aa")
    n_on, n_off = native["seq uffd=none"]["median"], native["seq uffd=wp"]["median"]
    i_on, i_off = aa["a: seq uffd=none"]["median"], aa["a: seq uffd=wp"]["median"]
    return {"n_on": n(n_on), "n_off": n(n_off), "n_ratio": f"{n_off / n_on:.1f}",
            "i_on": n(i_on), "i_off": n(i_off), "i_ratio": f"{i_off / i_on:.1f}",
            "i_more": about(i_off - i_on, 100)}


def _releases(sides: tuple[str, str]) -> dict[str, dict]:
    return kernel_rows(RELEASES, sides=sides)


def _own_mappings(run: str) -> dict[str, str]:
    """The mapper's own mappings (no `vmas` padding) per uffd mode: wp adds the uffd
    thread's."""
    df = load(run)
    own = df[df["ok"] & (df["vmas"] == 0)]
    out = {}
    for uffd in ("none", "wp"):
        [value] = own.loc[own["uffd"] == uffd, "mappings"].unique()  # every sample alike
        out[uffd] = str(value)
    return out


def _release_run() -> dict[str, str]:
    """What the run measured: boots, faults per page, and the mapper's own mappings."""
    df = load(RELEASES)
    [flt] = df.loc[df["ok"] & (df["vmas"] == 0) & (df["uffd"] == "none"),
                   "faults_per_page"].unique()
    return {"boots": str(meta(RELEASES)["boots_per_kernel"]), "flt": f"{flt:g}",
            **_own_mappings(RELEASES)}


def _release_row(label: str) -> dict[str, str]:
    """One row of the point-release table: each kernel's median of per-boot values, and
    6.1.0-57 -> 6.12.117 as compare gives it."""
    old, new, across = (_releases(s)[label] for s in (OLD, NEW, (OLD[1], NEW[1])))
    return {"maps": _release_run()[label.split()[0].removeprefix("uffd=")],
            "k0": n(old["base"]["median"], 1), "k1": n(old["new"]["median"], 1),
            "k2": n(new["base"]["median"], 1), "k3": n(new["new"]["median"], 1),
            "change": fmt_pct(across["change_pct"]),
            "lo": ci_bound(across["ci_pct"][0]), "hi": ci_bound(across["ci_pct"][1])}


def _release_findings() -> dict[str, str]:
    """What the table shows: point releases agree, and which part of 6.1 -> 6.12 moves with
    the address space."""
    old, new, across = (_releases(s) for s in (OLD, NEW, (OLD[1], NEW[1])))
    fa = [r for t in (old, new) for label, r in t.items() if label.startswith("uffd=none")]
    marked_fa = {f"{r['change_pct']:+.3f}%" for r in fa if r["significant"]}
    # the fault-around row of 6.12 that moved most, and the sample that moved it
    fa_label, fa_worst = max(((label, r) for label, r in new.items() if "none" in label),
                             key=lambda kv: abs(kv[1]["change_pct"]))
    fa_rest = [r for r in fa if r is not fa_worst]
    fa_vmas = int(fa_label.partition("vmas=")[2] or 0)
    worst_label, worst = max(((label, r) for label, r in new.items() if "wp" in label),
                             key=lambda kv: abs(kv[1]["change_pct"]))
    vmas = int(worst_label.partition("vmas=")[2] or 0)
    df = load(RELEASES)
    row = df[df["ok"] & ~df["warmup"] & (df["uffd"] == "wp") & (df["vmas"] == vmas)
             & df["kernel"].isin(NEW)]
    boots = row[row["kernel"] == NEW[0]].groupby("boot")["ns_per_page"].median()
    # its samples, both 6.12 releases: a low level and those above it
    low = row["ns_per_page"].min()
    high = row.loc[row["ns_per_page"] > low * 1.002, "ns_per_page"]
    levels = sorted({f"{100 * (v / low - 1):.1f}" for v in (high.min(), high.max())})
    above = sorted({n(v) for v in (high.min(), high.max())})
    on = [across[label]["change_pct"] for label in across if label.startswith("uffd=none")]
    fa_row = df[df["ok"] & ~df["warmup"] & (df["uffd"] == "none") & (df["vmas"] == fa_vmas)
                & df["kernel"].isin(NEW)]
    fa_low = fa_row["ns_per_page"].min()
    fa_high = fa_row[fa_row["ns_per_page"] > fa_low * 1.002]
    [fa_kernel] = fa_high["kernel"].unique()
    ticks = int(fa_high["ticks"].max())

    def wp(table: dict[str, dict], vmas: str = "") -> float:
        return table[f"uffd=wp{vmas}"]["new"]["median"]

    added = {k: wp(t, " vmas=2000") - wp(t) for k, t in (("61", old), ("612", new))}
    return {
        "fa": f"{max(abs(r['change_pct']) for r in fa_rest):.3f}",
        "fa_at": f"{n(fa_vmas)} mappings" if fa_vmas else "its own mappings",
        "fa_change": f"{fa_worst['change_pct']:+.3f}",
        "fa_moved": f"{abs(fa_worst['change_pct']):.3f}",
        "fa_lo": f"{fa_worst['ci_pct'][0]:+.2f}", "fa_hi": f"{fa_worst['ci_pct'][1]:+.2f}",
        "fa_which": (f"one of {fa_kernel}'s samples" if len(fa_high) == 1 else
                     f"{len(fa_high)} of {fa_kernel}'s samples"),
        "fa_high": "-".join(sorted({n(v, 1) for v in fa_high["ns_per_page"]})),
        "fa_level": f"{100 * (fa_high['ns_per_page'].max() / fa_low - 1):.1f}",
        "fa_others": str(len(fa_row) - len(fa_high)), "fa_low": n(fa_low, 1),
        "fa_ticks": "no timer tick" if not ticks else f"up to {ticks} timer ticks",
        "old_all": f"{max(abs(r['change_pct']) for r in old.values()):.2g}",
        "fa_marked": ", ".join(sorted(marked_fa)),
        "wp_old": f"{max(abs(r['change_pct']) for k, r in old.items() if 'wp' in k):.2g}",
        "old_marked": str(sum(r["significant"] for r in old.values()) or "no"),
        "wp_new": f"{max(abs(r['change_pct']) for k, r in new.items() if 'wp' in k):.2g}",
        "worst": f"{worst['change_pct']:+.2f}",
        "worst_at": f"{n(vmas)} mappings" if vmas else "its own mappings",
        "worst_lo": f"{worst['ci_pct'][0]:+.2f}", "worst_hi": f"{worst['ci_pct'][1]:+.2f}",
        "apart": f"{100 * (boots.max() / boots.min() - 1):.2f}",
        "low": n(low), "high": "-".join(above), "levels": "-".join(levels),
        "which": ("one of its samples on the 6.12 releases fell" if len(high) == 1 else
                  f"{len(high)} of its {len(row)} samples on both 6.12 releases fell"),
        "carry": f"{100 * (high.max() / low - 1):.1g}",
        "on_lo": fmt_pct(max(on)), "on_hi": fmt_pct(min(on)),
        "wp_own": fmt_pct(across["uffd=wp"]["change_pct"]),
        "wp_2000": fmt_pct(across["uffd=wp vmas=2000"]["change_pct"]),
        "add_old": n(added["61"]), "add_new": n(added["612"]),
    }


def _profile_mappings() -> dict[str, str]:
    return {**_own_mappings("tcg-icount-profile-kernels"), **kernel_change()}


CLAIMS = [
    Claim(DOC, "natively, in one run (`results/native-quick`, 64 MiB, Linux 6.18 on the "
          "development VM), {n_off} vs {n_on} ns per page touched, **{n_ratio}x**; on the "
          "instruction clock (`results/icount-aa`, 16 MiB, Debian 6.1), {i_off} vs {i_on} "
          "instructions, **{i_ratio}x**. A fault costs about {i_more} more instructions than "
          "a fault-around-mapped page", _native_vs_icount),
    Claim(DOC, "So this plane under-states what fault-around saves ({i_ratio}x against "
          "{n_ratio}x here", _native_vs_icount),
    Claim(DOC, "{rounds} rounds, {per_boot} per boot, {boots} boots in the order {order}, two "
          "guests at once (`--jobs` default), on a host at load {load} as it started", _aa),
    Claim(DOC, "| spread ({rows} rows: {per_label} scenario/role rows x {labels} labels) | "
          "median | largest |", _aa),
    Claim(DOC, "| within a boot: CV of the per-round values, median over the boots | "
          "{within}% | {within_max}% |", _aa),
    Claim(DOC, "| between boots: CV of the three per-boot medians | {between}% | "
          "{between_dense}% without sparse; {between_sparse}% sparse |", _aa),
    Claim(DOC, "`compare results/icount-aa --by kernel` marks {marked} of {rows} rows; every "
          "95% CI of the change is within ±{ci_max}% (the widest, {lo}..{hi}%, is `{label}`: "
          "in one of `{kernel}`'s boots {whose} loop took a timer tick in one round, {tick} "
          "instructions per page against {plain}, and that boot's median is {boot})",
          _aa_compare),
    Claim(DOC, "The uffd-wp rows, whose loops take two ticks each, and the sparse rows spread "
          "most within a boot (at most the {within_max}%; every other row within "
          "{within_rest}%). The sparse rows touch {sp_pages} pages", _aa),
    Claim(DOC, "The sparse rows touch {sp_pages} pages (one per 2 MiB of 16 MiB); their CIs "
          "(moderated t) are {cis}{exact}", lambda: {**_aa(), **_aa_compare()}),
    Claim(DOC, "What the instruction clock counts here: {on} guest instructions per page "
          "touched with fault-around on ({flt_on} faults per page), {off} with it off "
          "(uffd-wp, one fault per page), a ratio of {ratio}x; the later mappers of a file "
          "already in the page cache cost the same as the only mapper ({later_on} vs {on}, "
          "{later_off} vs {off}). Sparse: {sp_on} (none) vs {sp_off} (wp) instructions per "
          "touched page: fault-around's 16 PTEs per fault cost {sp_ratio}x the single-page "
          "fault there.", _aa),
    Claim(DOC, "{boots} boots each, a warm 16 MiB memfd read (seq) with fault-around on (uffd "
          "none, {flt} faults per page) and off (uffd wp, one fault per page), the mapper's "
          "address space padded to 200 and 2,000 mappings or left at its own {none} ({wp} "
          "with the uffd thread)", _release_run),
    *(Claim(DOC, f"| {cell} | {{k0}} | {{k1}} | {{k2}} | {{k3}} | {{change}} ({{lo}}..{{hi}}) |",
            partial(_release_row, label)) for cell, label in TABLE),
    Claim(DOC, "the fault-around rows agree to {fa}% (compare marks 6.12.107 -> .117 "
          "\"significant\" at {fa_marked} there, a real but immaterial change), except 6.12's "
          "at {fa_at}: {fa_change}% (95% CI {fa_lo}..{fa_hi}%, not marked), because {fa_which} "
          "there counted {fa_high} instructions per page, {fa_level}% above the other "
          "{fa_others} of both 6.12 releases ({fa_low}), with {fa_ticks} in its loop",
          _release_findings),
    Claim(DOC, "The uffd-wp rows agree within {wp_old}% for 6.1 ({old_marked} row marked) "
          "and within {wp_new}% for 6.12 ({worst}% at {worst_at}, 95% CI "
          "{worst_lo}..{worst_hi}%, not marked after Holm): that row's two boots of "
          "6.12.107 sat {apart}% apart, because {which} on a level {levels}% above the rest "
          "(about {low} instructions per page, against {high}) and a boot is the median of "
          "two of them. So a quoted \"6.12\" number on a fault-per-page row can carry up to "
          "about {carry}% from the level its samples fell on, and the fault-around row at {fa_at} "
          "carried {fa_moved}% from {fa_which}; 6.1's rows moved by at most {old_all}% "
          "between its point releases", _release_findings),
    Claim(DOC, "Fault-around on: {on_lo} to {on_hi}, nearly the same at every size",
          _release_findings),
    Claim(DOC, "{wp_own} at 27 mappings but {wp_2000} at 2,000", _release_findings),
    Claim(DOC, "2,000 mappings add {add_old} instructions a fault on 6.1, {add_new} on 6.12",
          _release_findings),
    Claim(DOC, "its mappers at {none} mappings ({wp} with the uffd thread)) puts the uffd-wp "
          "change at +{off_change}%, against this run's {wp_own} at 27", lambda: {
              **_profile_mappings(), **_release_findings()}),
    Claim(DOC, "{boots} boots per kernel, {rounds} rounds per boot", patch_run),
    Claim(DOC, "{significant} of {rows} timing rows significant after Holm", patch_counts),
    Claim(DOC, "within ±{dense}% where it touches 2,048 pages and ±{sparse}% where it touches "
          "4; {marked_by}", controls),
    Claim(DOC, "{base} -> {new} guest instructions per page touched, {change}% (95% CI "
          "{lo}..{hi}%)", patch_later),
    Claim(DOC, "column {lo}-{hi}% for rows that touch 2,048 pages", controls),
    Claim(DOC, "({measurements} measurements of an 8 MiB memfd), took {fastest} to {slowest} "
          "(meta.json `boots`), two guests at once, on a host at load {load} as the run "
          "started", patch_run),
]
