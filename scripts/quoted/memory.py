"""docs/memory.md (and README.md's memory paragraph): the app-launch runs
`tcg-memory-256M` and `tcg-memory-1G`."""

from __future__ import annotations

from quoted.common import Claim, load, n

DOC = "docs/memory.md"


def memory() -> dict[str, str]:
    """Totals per setting of the 256 MiB run, its medians per launch, and the 1 GiB run's."""
    from faultbench.analysis.memory import count_totals, sessions
    from faultbench.analysis.stats import median_ci

    apps = sessions(load("tcg-memory-256M"))
    key = ["fault_around_bytes"]
    at = {4096: "4k", 16384: "16k", 65536: "64k", 2097152: "2m"}
    out: dict[str, str] = {}
    medians: dict[str, float] = {}
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
                medians[name] = ci.loc[setting, "median"]
    scans = [medians[f"pgscan_{short}"] / medians["pgscan_4k"] for short in ("16k", "64k")]
    out["scan_times"] = f"{min(scans):.1f}-{max(scans):.1f}"
    below = ("4k", "16k", "64k")
    out["rf_any"] = _span(int(out[f"rf_{k}_any"]) for k in below)
    out["sessions"] = str(int(count_totals(apps, key, "refault")["sessions"].max()))
    out["rf_2m_per"] = n(count_totals(apps, key, "refault").set_index(
        "fault_around_bytes").loc[2097152, "rate"])
    for metric, short in (("allocstall", "st"), ("refault", "rf")):
        ci = median_ci(apps, key, metric).set_index("fault_around_bytes")
        out[f"{short}_med"] = _span(ci.loc[[4096, 16384, 65536], "median"], g=True)
        out[f"{short}_max"] = n(count_totals(apps, key, metric).set_index(
            "fault_around_bytes").loc[[4096, 16384, 65536], "total"].max())
    return out


def _span(values, g: bool = False) -> str:
    """"lo-hi" (one value when they are equal), `:g` for fractions."""
    values = sorted(values)
    fmt = (lambda v: f"{v:g}") if g else n
    lo, hi = fmt(values[0]), fmt(values[-1])
    return lo if lo == hi else f"{lo} to {hi}" if g else f"{lo}-{hi}"


def folio_memory() -> dict[str, str]:
    """tcg-memory-large-folios: refaults and direct reclaims per filesystem and setting,
    major faults and launch times below 2M."""
    from faultbench.analysis.memory import count_totals, sessions
    from faultbench.analysis.stats import median_ci

    apps = sessions(load("tcg-memory-large-folios"))
    key = ["dir", "fault_around_bytes"]
    fs = {"/var/tmp": "ext4", "/var/tmp/xfs": "xfs"}
    at = {4096: "4k", 65536: "64k", 2097152: "2m"}
    out: dict[str, str] = {}
    for metric, short in (("allocstall", "st"), ("refault", "rf")):
        for row in count_totals(apps, key, metric).to_dict("records"):
            name = f"{fs[row['dir']]}_{short}_{at[int(row['fault_around_bytes'])]}"
            out[name] = n(row["total"])
            out[f"{name}_per"] = n(row["rate"])
            out[f"{name}_p"] = f"{row['p']:.2g}" if row["p"] == row["p"] else "-"
            out[f"{name}_ratio"] = f"{row['ratio']:.3g}" if row["ratio"] == row["ratio"] else "-"
            out[f"{name}_ci"] = (f"{row['ci_lo']:.3g}-{row['ci_hi']:.3g}"
                                 if row["ci_lo"] == row["ci_lo"] else "-")
    # the folio sizes of the XFS launches' mapped pages, summed over each setting's sessions
    df = load("tcg-memory-large-folios")
    xfs = df[df["ok"] & ~df["warmup"] & (df["dir"] == "/var/tmp/xfs")]
    shares: dict[str, list[float]] = {"8": [], "0": [], "2": []}
    for _, setting in xfs.groupby("fault_around_bytes"):
        pages: dict[str, int] = {}
        for folios in setting["folios"]:
            for order, count in folios.items():
                pages[order] = pages.get(order, 0) + count
        for order, got in shares.items():
            got.append(100 * pages.get(order, 0) / sum(pages.values()))
    for order, name in (("8", "1m"), ("0", "4k"), ("2", "16k")):
        out[f"xfs_{name}_pct"] = f"{min(shares[order]):.0f}-{max(shares[order]):.0f}"
    for metric in ("majflt", "launch_ms"):
        ci = median_ci(apps, key, metric).set_index(key)["median"]
        for d, name in fs.items():
            out[f"{name}_{metric}"] = _span(ci.loc[(d, v)] for v in (4096, 65536))
    return out


def _state(run: str) -> dict[str, str]:
    """A run's commit and epoch, and how busy the host was as it started (its report's
    header: the load average and the other processes' CPU)."""
    from quoted.common import meta

    m = meta(run)
    state = m["machine_state"]
    return {"commit": m["provenance"]["faultbench"]["git_revision"][:7],
            "epoch": str(m["harness_epoch"]), "load": f"{state['load'][0]:.1f}",
            "others_cpu": f"{state['others_cpu']:.1f}",
            "others": ", ".join(f"{name} {cpu * 100:.0f}%" for name, cpu in state["others"])}


def json_key(memory: dict) -> tuple[int, int]:
    """A guest's memory as its provenance recorded it: total and available, in kB."""
    return memory["total_kb"], memory["available_kb"]


def runs() -> dict[str, str]:
    """The two app-launch runs of the results section, and the large-folio one."""
    small, big, folios = (_state(r) for r in ("tcg-memory-256M", "tcg-memory-1G",
                                              "tcg-memory-large-folios"))
    assert small["commit"] == big["commit"] and small["epoch"] == big["epoch"]
    from quoted.common import meta

    [guest] = {json_key(b["guest"]["memory"]) for b in meta("tcg-memory-256M")["boots"]}
    return {**small, "total": f"{guest[0] / 1024:.0f}", "available": f"{guest[1] / 1024:.0f}",
            "g_load": big["load"], "g_others_cpu": big["others_cpu"],
            **{f"f_{k}": v for k, v in folios.items()}}


CLAIMS = [
    Claim(DOC, "both from a clean checkout of commit {commit}, harness epoch {epoch} (TCG,", runs),
    Claim(DOC, "The 256 MiB guest had {total} MiB total and {available} MiB available at the "
          "start", runs),
    Claim(DOC, "one run after the other, at load {load} and {g_load} as each started, other "
          "processes using {others_cpu} CPU ({others}) and {g_others_cpu} CPU", runs),
    Claim(DOC, "from a clean checkout of commit {f_commit}, harness epoch {f_epoch}, at load "
          "{f_load} as it started, other processes using {f_others_cpu} CPU", runs),
    Claim(DOC, "Over {launches} launches per setting, 4K had {st_4k} direct reclaims (in "
          "{st_4k_any} of its {sessions} sessions), 16K {st_16k}, 64K {st_64k} and 2M {st_2m}, "
          "in every one of its {st_2m_any} sessions (permutation p = {st_2m_p} against 4K; 16K "
          "and 64K against 4K: p = {st_16k_p} and {st_64k_p}). Refaults: {rf_4k} at 4K, "
          "{rf_16k} at 16K, {rf_64k} at 64K and {rf_2m} at 2M; below 2M in {rf_any} of a "
          "setting's {sessions} sessions, and no setting below 2M differs from 4K (16K and 64K "
          "against 4K: p = {rf_16k_p} and {rf_64k_p})", memory),
    Claim(DOC, "Below 2M a setting's median per launch is {st_med} direct reclaims and {rf_med} "
          "refaults, and its totals are as small (at most {st_max} and {rf_max} in "
          "{launches} launches)", memory),
    Claim(DOC, "Every 2M session reclaimed directly and refaulted {rf_2m_per} pages per launch "
          "({rf_2m} in {launches})", memory),
    Claim(DOC, "This run has {st_64k} direct reclaims at 64K against {st_4k} at 4K", memory),
    Claim(DOC, "launches): 4 KiB on ext4; on XFS {xfs_1m_pct}% of the pages in 1 MiB folios "
          "and the rest in smaller ones (4 KiB {xfs_4k_pct}%, 16 KiB {xfs_16k_pct}%; each "
          "setting's sessions summed)", folio_memory),
    Claim(DOC, "XFS refaulted {xfs_rf_4k_per} and {xfs_rf_64k_per} pages per launch at 4K and "
          "64K ({xfs_rf_4k} and {xfs_rf_64k} in 60 launches; ratio {xfs_rf_64k_ratio}, "
          "permutation p = {xfs_rf_64k_p}: no difference the sessions resolve), and ext4 about "
          "none ({ext4_rf_4k} and {ext4_rf_64k})", folio_memory),
    Claim(DOC, "On ext4, direct reclaims rose from {ext4_st_4k} at 4K to {ext4_st_64k} at 64K "
          "(ratio {ext4_st_64k_ratio}, 95% CI {ext4_st_64k_ci} if Poisson; permutation p = "
          "{ext4_st_64k_p} over six sessions) and {ext4_st_2m} at 2M (p = {ext4_st_2m_p}); "
          "refaults stayed near zero until 2M ({ext4_rf_2m})", folio_memory),
    Claim(DOC, "({xfs_st_4k}, {xfs_st_64k} and {xfs_st_2m} direct reclaims at 4K, 64K and 2M, "
          "none different from 4K: p = {xfs_st_64k_p} and {xfs_st_2m_p}) but paid in reads: "
          "{xfs_majflt} major faults per launch against {ext4_majflt} on ext4 below 2M, and "
          "launches of {xfs_launch_ms} ms against {ext4_launch_ms} ms", folio_memory),
    Claim(DOC, "every launch mapped {mapped_2m} file pages to read {faults_4k}, and reclaim "
          "evicted the pages the next launches needed (major faults {majflt_2m} per launch "
          "against {majflt_4k}). 16K and 64K made kswapd scan {scan_times} times the pages of 4K "
          "({pgscan_16k} and {pgscan_64k} against {pgscan_4k} per launch) but steal no more "
          "({pgsteal_16k} and {pgsteal_64k} against {pgsteal_4k})", memory),
    Claim(DOC, "faults per launch fall from {faults_4k} (4K) to {faults_16k} (16K), "
          "{faults_64k} (64K) and {faults_2m} (2M); with 1 GiB, 2M takes {g_faults_2m}", memory),
    Claim(DOC, "2M's median launch took {launch_ms_2m} ms against {launch_ms_4k} at 4K, with "
          "95% CIs of {launch_ms_2m_ci} and {launch_ms_4k_ci} ms", memory),
    Claim(DOC, "With 1 GiB, {g_launch_ms_2m} against {g_launch_ms_4k} ms, with overlapping CIs "
          "({g_launch_ms_2m_ci} and {g_launch_ms_4k_ci})", memory),
]
