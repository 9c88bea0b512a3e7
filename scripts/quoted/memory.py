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
    out["scan_times"] = f"{min(scans):.0f}-{max(scans):.0f}"
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


def runs() -> dict[str, str]:
    """The two app-launch runs of the results section, and the large-folio one."""
    small, big, folios = (_state(r) for r in ("tcg-memory-256M", "tcg-memory-1G",
                                              "tcg-memory-large-folios"))
    assert small["commit"] == big["commit"] and small["epoch"] == big["epoch"]
    return {**small, "g_load": big["load"], "g_others_cpu": big["others_cpu"],
            **{f"f_{k}": v for k, v in folios.items()}}


CLAIMS = [
    Claim(DOC, "both from a clean checkout of commit {commit}, harness epoch {epoch} (TCG,", runs),
    Claim(DOC, "one run after the other, at load {load} and {g_load} as each started, other "
          "processes using {others_cpu} CPU ({others}) and {g_others_cpu} CPU", runs),
    Claim(DOC, "from a clean checkout of commit {f_commit}, harness epoch {f_epoch}, at load "
          "{f_load} as it started, other processes using {f_others_cpu} CPU", runs),
    Claim(DOC, "Over {launches} launches per setting, 4K had {st_4k} direct reclaim, 16K and "
          "64K none, and 2M {st_2m}, in every one of its {st_2m_any} sessions (permutation p = "
          "{st_2m_p} against 4K). Refaults: {rf_4k} at 4K, {rf_16k} at 16K, {rf_64k} at 64K "
          "and {rf_2m} at 2M; at 4K and 64K every refault of the setting fell in one session "
          "(`top` {rf_64k_top}%), and no setting below 2M differs from 4K (16K and 64K against "
          "4K: p = {rf_16k_p} and {rf_64k_p})", memory),
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
