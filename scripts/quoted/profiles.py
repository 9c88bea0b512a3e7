"""docs/profiles.md: kernel profiles of Debian 6.1 vs 6.12 on the instruction clock, natively
(`native-profile`), and the cost model checked by them (`tcg-icount-cost-model`)."""

from __future__ import annotations

from quoted.common import (
    Claim,
    about,
    boot_spreads,
    ci,
    cost_model,
    kernel_rows,
    load,
    n,
    pct,
    phases,
)

DOC = "docs/profiles.md"
NATIVE = "native-profile"


def _share(run: str, label: str, phase: str, kernel: str | None = None) -> str:
    return pct(100 * phases(run)[(label, kernel)].shares[phase])


def native_profile() -> dict[str, str]:
    """One mapper's warm 64 MiB read, fault-around on (uffd none) and off (uffd wp): the
    phases' shares of the loop and their ns per touched page."""
    on = phases(NATIVE)[("size=64M seq uffd=none", None)]
    off = phases(NATIVE)[("size=64M seq uffd=wp", None)]
    return {"fa": pct(100 * on.shares["fault-around"]), "fa_ns": n(on.phases["fault-around"]),
            "on_ns": n(on.ns_per_page),
            "next": pct(100 * dict(on.symbols)["next_uptodate_folio"]),
            "entry_on": pct(100 * on.shares["entry/exit"]),
            "rmap_on": pct(100 * on.shares["rmap+memcg"]), "user_on": pct(100 * on.shares["user"]),
            "entry_off": pct(100 * off.shares["entry/exit"]),
            "entry_off_ns": n(off.phases["entry/exit"]), "off_ns": n(off.ns_per_page),
            "lookup_off": pct(100 * off.shares["lookup"]),
            "vma_off": pct(100 * off.shares["VMA lookup"])}


def _later() -> dict[str, str]:
    on, off = "size=64M seq uffd=none x3 [later]", "size=64M seq uffd=wp x3 [later]"
    return {"fa": _share(NATIVE, on, "fault-around"),
            "entry_on": _share(NATIVE, on, "entry/exit"), "rmap": _share(NATIVE, on, "rmap+memcg"),
            "entry_off": _share(NATIVE, off, "entry/exit"), "lookup": _share(NATIVE, off, "lookup")}


def _sparse() -> dict[str, str]:
    """One page per 2 MiB: what the 15 of 16 pages fault-around maps and nobody touches cost."""
    on = phases(NATIVE)[("size=1G sparse uffd=none", None)]
    off = phases(NATIVE)[("size=1G sparse uffd=wp", None)]
    mapping = on.phases["fault-around"] + on.phases["rmap+memcg"]
    unused = mapping * (on.mapped_per_touched - 1) / on.mapped_per_touched
    return {"on": n(on.ns_per_page), "off": n(off.ns_per_page),
            "share": pct(100 * (on.shares["fault-around"] + on.shares["rmap+memcg"])),
            "ns": n(mapping), "mapped": f"{on.mapped_per_touched - 1:.0f}/"
            f"{on.mapped_per_touched:.0f}", "unused": about(unused, 10),
            "unused_share": pct(100 * unused / on.ns_per_page),
            "pt_on": n(on.phases["page tables"]), "pt_off": n(off.phases["page tables"])}


def _profiler_cost() -> dict[str, str]:
    """How much slower the profiled rounds ran than the unprofiled ones, over the rows."""
    slower = [c.profiled_ns_per_page / c.ns_per_page for c in phases(NATIVE).values()]
    return {"lo": f"{min(slower):.0f}", "hi": f"{max(slower):.0f}",
            "lo_pct": n(100 * (min(slower) - 1)), "hi_pct": n(100 * (max(slower) - 1))}


def _repeatability() -> dict[str, str]:
    spreads = boot_spreads("tcg-icount-profile-kernels")
    within, between = spreads["within_cv_pct"], spreads["between_cv_pct"]
    df = load("tcg-icount-profile-kernels")
    timed = df[df["ok"] & ~df["warmup"] & ~df["profiled"]]
    ticks = {uffd: sorted(set(timed.loc[timed["uffd"] == uffd, "ticks"].astype(int)))
             for uffd in ("none", "wp")}
    words = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
    ticks_word = "timer tick" if ticks["none"] == [1] else "timer ticks"
    return {"within": f"{within.median():.2g}", "within_max": f"{within.max():.2g}",
            "between": f"{between.median():.2g}", "between_max": f"{between.max():.2g}",
            "ticks_on": " or ".join(words[t] for t in ticks["none"]), "tick_word": ticks_word,
            "ticks_off": " or ".join(words[t] for t in ticks["wp"])}


def constant(name: str) -> dict[str, str]:
    check = next(c for c in cost_model("tcg-icount-cost-model").profile.constants
                 if c.constant == name)
    lo, hi = check.profile_ci
    return {"profile": n(check.profile), "profile_ci": ci(check.profile_ci),
            "model": n(check.model), "model_ci": ci(check.model_ci),
            "ratio": f"{check.ratio:.2f}", "width": pct(100 * (hi - lo) / check.profile, 1),
            "apart": pct(100 * abs(check.profile / check.model - 1), 1)}


def _misfit() -> dict[str, str]:
    rows = cost_model("tcg-icount-cost-model").by_stride
    return {"a_low": n(rows[0][1]), "a_high": n(rows[-1][1]),
            "b_low": n(min(r[2] for r in rows)), "b_high": n(max(r[2] for r in rows))}


def _kernel_phases() -> dict[str, str]:
    run = "tcg-icount-profile-kernels"
    old, new = (phases(run)[(f"{k}: uffd=none", k)] for k in ("6.1", "6.12"))
    wp = phases(run)[("6.12: uffd=wp", "6.12")]
    # the share on 6.1 and on 6.12 in each fault-around row: one mapper, then the two's
    shares = [tuple(phases(run)[(f"{k}: uffd=none{role}", k)].shares["rmap+memcg"]
                    for k in ("6.1", "6.12")) for role in ("", " x2 [first]", " x2 [later]")]
    rises = sum(on_612 > on_61 for on_61, on_612 in shares)
    return {"moves": ("moves little and not one way" if 0 < rises < len(shares) else
                      f"moves little, {'up' if rises else 'down'} in all {len(shares)} rows"),
            "fa_old": n(old.phases["fault-around"]), "fa_new": n(new.phases["fault-around"]),
            "rmap_old": n(old.phases["rmap+memcg"]), "rmap_new": n(new.phases["rmap+memcg"]),
            "sum_old": n(old.phases["fault-around"] + old.phases["rmap+memcg"]),
            "share_old": pct(100 * old.shares["rmap+memcg"], 1),
            "share_new": pct(100 * new.shares["rmap+memcg"], 1),
            **{f"share_{role}": " vs ".join(
                pct(100 * phases(run)[(f"{k}: uffd=none x2 [{role}]", k)].shares["rmap+memcg"], 1)
                + "%" for k in ("6.1", "6.12")) for role in ("first", "later")},
            "vma": pct(100 * wp.shares["VMA lookup"]), "entry": pct(100 * wp.shares["entry/exit"])}


def kernel_change() -> dict[str, str]:
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


CLAIMS = [
    Claim(DOC, "Sampling slows the loop ({lo}-{hi} times natively at the 20 µs period in "
          "`results/native-profile`, below)", _profiler_cost),
    Claim(DOC, "the fault-around phase {fa_old} -> {fa_new} instructions, rmap and memcg "
          "accounting {rmap_old} -> {rmap_new}. Their sum on 6.1 ({sum_old}) is close to the "
          "cost model's b on the same kernel ({model} fitted, {profile} profiled; below)",
          lambda: {**_kernel_phases(), **constant("b")}),
    Claim(DOC, "The rmap+memcg *share* {moves} ({share_old}% vs "
          "{share_new}% here; {share_first} and {share_later} in the two-mapper rows)",
          _kernel_phases),
    Claim(DOC, "spends {vma}% of its loop finding the VMA (`lock_vma_under_rcu`, `mas_walk`: "
          "the VMA lookup phase) and {entry}% in the fault's entry and exit", _kernel_phases),
    Claim(DOC, "executes {on_change}% fewer instructions than 6.1 with fault-around on "
          "({on_base} -> {on_new}, 95% CI {lo}..{hi}%, all 3 rows) and {off_change}% more "
          "with it off (uffd-wp, {off_base} -> {off_new})", kernel_change),
    Claim(DOC, "within a boot the rounds of a row vary by a median {within}% (at most "
          "{within_max}%), the three boots' medians by {between}% (at most {between_max}%), "
          "though these 32 MiB loops take {ticks_on} {tick_word} with fault-around on and "
          "{ticks_off} with it off", _repeatability),
    Claim(DOC, "installing PTEs is the largest part (fault-around {fa}%, {fa_ns} of {on_ns} "
          "ns per touched page, `next_uptodate_folio` {next}% of the loop), fault entry and "
          "exit {entry_on}%, rmap+memcg {rmap_on}%, the loop itself and what skid puts there "
          "{user_on}%.", native_profile),
    Claim(DOC, "entry/exit becomes the cost ({entry_off}%, {entry_off_ns} ns of {off_ns} per "
          "page); the page-cache lookup adds {lookup_off}%, the VMA lookup {vma_off}%.",
          native_profile),
    Claim(DOC, "split the same way: fault-around {fa}%, entry/exit {entry_on}%, rmap+memcg "
          "{rmap}% with fault-around on; entry/exit {entry_off}% and lookup {lookup}% with "
          "it off.", _later),
    Claim(DOC, "{on} ns per touched page against {off} with fault-around off. Fault-around "
          "and rmap+memcg take {share}% ({ns} ns), {mapped} of it for pages never touched: "
          "about {unused} ns, {unused_share}% of the cost. Both sides allocate a page table "
          "per touch ({pt_on} and {pt_off} ns).", _sparse),
    Claim(DOC, "ran {lo}-{hi} times slower than the unprofiled ones (the report's \"profiler "
          "cost\": +{lo_pct}% to +{hi_pct}% on these rows", _profiler_cost),
    Claim(DOC, "the regression's {model} guest instructions per page mapped (95% CI "
          "{model_ci}) and the profile's fault-around + rmap+memcg phases, {profile} per page "
          "mapped (95% CI {profile_ci})", lambda: constant("b")),
    Claim(DOC, "The profile's interval is about {width}% wide, so it supports b to within a "
          "few percent, not the {apart}% between the two point values.", lambda: constant("b")),
    Claim(DOC, "the regression's {model} instructions per fault (95% CI {model_ci}) against "
          "the profile's fixed phases, {profile} (95% CI {profile_ci}): the intervals are "
          "apart, by {ratio}x", lambda: constant("a")),
    Claim(DOC, "entry/exit {entry_exit}, VMA lookup {VMA_lookup}, page-cache lookup {lookup}, "
          "rmap+memcg {rmap_memcg} and `[user]` {user} instructions", _one_page_fault),
    Claim(DOC, "they are part of the gap; rmap+memcg ({rmap_memcg}) is the faulting page's own "
          "share of b", _one_page_fault),
    Claim(DOC, "a runs from {a_low} (stride 1) to {a_high} (stride 16) while b stays at "
          "{b_low}..{b_high}", _misfit),
]
