"""docs/large-folios.md and README.md's large-folio paragraph: `tcg-icount-large-folios`
(Debian 6.1 against 6.12 on the instruction clock) and `tcg-memory-large-folios`."""

from __future__ import annotations

from quoted.common import Claim, kernel_rows, n, pct, phases

RUN = "tcg-icount-large-folios"
DOC = "docs/large-folios.md"
XFS = "file fill=hole-read dir=xfs"


def _cell(label: str) -> str:
    """'559 -> 217 (-61.1%)': base and new medians of a first mapper's row, and the change."""
    row = kernel_rows(RUN)[f"{label} [first]"]
    digits = 1 if row["new"]["median"] < 100 else 0
    return (f"{n(row['base']['median'], digits if row['base']['median'] < 100 else 0)} -> "
            f"{n(row['new']['median'], digits)} ({pct(row['change_pct'], 1, sign=True)}%)")


def table() -> dict[str, str]:
    backings = {"memfd": "memfd", "ext4": "file dir=tmp", "hole": XFS, "w1m": "file dir=xfs",
                "w64k": "file fill=write:64K dir=xfs", "tmpfs": "tmpfs"}
    return {f"{name}_{fa}": _cell(f"{label} fa={fa}") for name, label in backings.items()
            for fa in ("4K", "64K", "2M")}


def _phase(label: str, kernel: str, phase: str) -> float:
    return phases(RUN)[(f"{kernel}: {label} [first]", kernel)].phases[phase]


def batching() -> dict[str, str]:
    """Per page mapped (every page touched is mapped): the phases that batching changes."""
    rows = kernel_rows(RUN)
    xfs, memfd = rows[f"{XFS} fa=64K [first]"], rows["memfd fa=64K [first]"]
    out = {"xfs_base": n(xfs["base"]["median"]), "xfs_new": n(xfs["new"]["median"]),
           "xfs_chg": pct(-xfs["change_pct"]), "memfd_base": n(memfd["base"]["median"]),
           "memfd_new": n(memfd["new"]["median"]), "memfd_chg": pct(-memfd["change_pct"])}
    for name, label in (("xfs", f"{XFS} fa=64K"), ("memfd", "memfd fa=64K"),
                        ("xfs2m", f"{XFS} fa=2M")):
        for phase, short in (("rmap+memcg", "rmap"), ("fault-around", "fa")):
            old, new = _phase(label, "6.1", phase), _phase(label, "6.12", phase)
            digits = 1 if new < 100 else 0
            out[f"{name}_{short}"] = f"{n(old)} -> {n(new, digits)}"
            out[f"{name}_{short}_chg"] = pct(100 * (new / old - 1), 1 if name == "memfd" else 0,
                                             sign=True)
    out["xfs_rmap_19"] = n(_phase(f"{XFS} fa=64K", "6.12", "rmap+memcg"))
    return out


def whole_folio() -> dict[str, str]:
    """The 6.12 whole-folio backport against 6.12: the XFS seq reads, the sparse readers."""
    rows = kernel_rows("tcg-icount-whole-folio")
    out = {}
    for pattern in ("seq", "sparse"):
        for fa in ("4K", "64K"):
            row = rows[f"file fill=hole-read {pattern} dir=xfs fa={fa} [first]"]
            digits = 1 if row["new"]["median"] < 100 else 0
            out[f"{pattern}_{fa}"] = (f"{n(row['base']['median'])} to "
                                      f"{n(row['new']['median'], digits)}")
            out[f"{pattern}_{fa}_chg"] = pct(row["change_pct"])
    return out


def _symbol(label: str, kernel: str, name: str) -> float:
    return dict(phases(RUN)[(f"{kernel}: {label} [first]", kernel)].symbols).get(name, 0.0)


def large_folio_text() -> dict[str, str]:
    """What the 6.1-vs-6.12 section says around its table: the run, the later mappers, the
    CIs, the faults, 6.1's per-page symbols, 6.12's fixed cost, fault-around off."""
    from datetime import datetime

    from quoted.common import meta

    rows, faults = kernel_rows(RUN), kernel_rows(RUN, "faults_per_page")
    later = max(abs(r[side]["median"] / rows[label.replace("[later]", "[first]")][side]["median"]
                    - 1) * 100 for label, r in rows.items() if label.endswith("[later]")
                for side in ("base", "new"))
    width = sorted(((max(abs(c - r["change_pct"]) for c in r["ci_pct"]), label)
                    for label, r in rows.items()), reverse=True)
    wide = [w for w, _ in width if w > 0.5]
    run = meta(RUN)
    took = (datetime.fromisoformat(run["finished_utc"])
            - datetime.fromisoformat(run["started_utc"])).total_seconds()
    exact = ", ".join(f"`{label}`" for label, r in rows.items() if r["exact"])
    xfs64 = phases(RUN)[(f"6.12: {XFS} fa=64K [first]", "6.12")]
    fixed = sum(xfs64.phases[p] for p in ("entry/exit", "VMA lookup", "page tables"))
    off = [r["change_pct"] for label, r in rows.items()
           if "fa=4K" in label and not label.startswith("tmpfs")]
    writes = [rows[f"{label} fa=64K [first]"]["change_pct"]
              for label in ("file dir=xfs", "file fill=write:64K dir=xfs")]
    return {
        "minutes": f"{took / 60:.0f}",
        "later": f"{later:.2g}",
        "checkout": run["provenance"]["faultbench"]["git_revision"][:7],
        "epoch": str(run["harness_epoch"]),
        "significant": ("not every change is significant after Holm" if not all(
            r["significant"] or r["exact"] for r in rows.values()) else
            "every change is significant after Holm" if not exact else
            f"every change is significant after Holm or exact ({exact}: every sample of a "
            "kernel alike, not tested)"),
        "width": f"{width[len(wide)][0]:.2g}",
        "but": {0: "", 1: " but for one"}.get(len(wide), f" but for {len(wide)}"),
        "same": (lambda same: f"all {same}" if same == len(faults) else f"{same} of {len(faults)}")(
            sum(r["base"]["median"] == r["new"]["median"] for r in faults.values())),
        "rmap": f"{100 * _symbol(f'{XFS} fa=64K', '6.1', 'page_add_file_rmap'):.1f}",
        "pte": f"{100 * _symbol(f'{XFS} fa=64K', '6.1', 'do_set_pte'):.1f}",
        "lruvec": f"{100 * _symbol(f'{XFS} fa=64K', '6.1', '__mod_lruvec_page_state'):.1f}",
        "rmap2m": f"{100 * _symbol(f'{XFS} fa=2M', '6.1', 'page_add_file_rmap'):.1f}",
        "fixed": n(fixed), "total": n(rows[f"{XFS} fa=64K [first]"]["new"]["median"]),
        "entry": f"{100 * xfs64.shares['entry/exit']:.0f}",
        "off_lo": f"{min(off):.0f}", "off_hi": f"{max(off):.0f}",
        "w1m": f"{writes[0]:.0f}", "w64k": f"{writes[1]:.0f}",
    }


WHOLE = "tcg-icount-whole-folio"
WHOLE_ROWS = {"xfs": "file fill=hole-read {p} dir=xfs", "ext4": "file fill=hole-read {p} dir=tmp",
              "memfd": "memfd {p}"}


def _arrow(base: float, new: float) -> str:
    """'1,952 -> 82.5': one digit below 100, as compare prints them."""
    return " -> ".join(n(v, 1 if v < 100 else 0) for v in (base, new))


def whole_folio_table() -> dict[str, str]:
    """The seq table of the whole-folio section: first mappers' faults (of the 4,096 pages
    touched) and instructions per page, base -> patched, per backing and window."""
    rows, faults = kernel_rows(WHOLE), kernel_rows(WHOLE, "faults_per_page")
    out = {}
    for name, label in WHOLE_ROWS.items():
        for fa in ("4K", "64K", "2M"):
            key = f"{label.format(p='seq')} fa={fa} [first]"
            out[f"{name}_{fa}"] = _arrow(rows[key]["base"]["median"], rows[key]["new"]["median"])
            out[f"{name}_{fa}_flt"] = " -> ".join(
                n(4096 * faults[key][side]["median"]) for side in ("base", "new"))
    return out


def whole_folio_text() -> dict[str, str]:
    """What the section says of the table: the later mappers against the first, the 4 KiB
    folios' changes and their CIs, the sparse readers, the run's time."""
    from datetime import datetime

    from quoted.common import meta

    rows = kernel_rows(WHOLE)
    later = max(abs(r[side]["median"] / rows[label.replace("[later]", "[first]")][side]["median"]
                    - 1) * 100 for label, r in rows.items() if label.endswith("[later]")
                for side in ("base", "new"))
    small = [r for label, r in rows.items() if " seq " in label and "dir=xfs" not in label]
    assert all(r["significant"] for r in small)
    width = max(abs(c - r["change_pct"]) for r in small for c in r["ci_pct"])
    sparse = {fa: rows[f"file fill=hole-read sparse dir=xfs fa={fa} [first]"]
              for fa in ("4K", "64K")}
    run = meta(WHOLE)
    took = (datetime.fromisoformat(run["finished_utc"])
            - datetime.fromisoformat(run["started_utc"])).total_seconds()
    return {"later": f"{later:.2g}",
            "lo": pct(min(r["change_pct"] for r in small), 1, sign=True),
            "hi": pct(max(r["change_pct"] for r in small), 1, sign=True),
            "width": f"{width:.2g}",
            **{f"sp_{fa}": _arrow(r["base"]["median"], r["new"]["median"])
               for fa, r in sparse.items()},
            **{f"sp_{fa}_chg": pct(r["change_pct"]) for fa, r in sparse.items()},
            "took": f"{int(took // 60)} min {int(took % 60)} s",
            "checkout": run["provenance"]["faultbench"]["git_revision"][:7],
            "epoch": str(run["harness_epoch"])}


def preempted() -> dict[str, str]:
    """The large-folio run's samples preempted in the loop (`nivcsw` > 0): how many, how
    often, and how far each counted from its row's other samples (each took one timer tick
    more than they did)."""
    from quoted.common import load, meta

    df = load(RUN)
    valid = df[df["ok"] & ~df["warmup"]]
    hit = valid[valid["nivcsw"] > 0]
    apart = []
    for index, sample in hit.iterrows():
        row = valid[(valid["kernel"] == sample["kernel"])
                    & (valid["scenario"] == sample["scenario"])
                    & (valid["role"] == sample["role"])].drop(index)
        [ticks] = row["ticks"].unique()
        assert sample["ticks"] == ticks + 1, (sample["ticks"], ticks)
        apart += [abs(sample["ns_per_page"] / other - 1) * 100 for other in row["ns_per_page"]]
    [times] = hit["nivcsw"].unique()
    return {"epoch": str(meta(RUN)["harness_epoch"]), "hit": str(len(hit)),
            "valid": str(len(valid)), "times": {1: "once", 2: "twice"}.get(int(times), ""),
            "nivcsw": str(int(times)), "apart": f"{max(apart):.2g}"}


CLAIMS = [
    Claim(DOC, "from checkout {checkout}, harness epoch {epoch}; {minutes} minutes with two "
          "guests at once)", large_folio_text),
    Claim(DOC, "In the epoch-{epoch} run above, whose mappers run `SCHED_FIFO` through the loop "
          "([icount.md](icount.md#another-task-in-the-loop-harness-epoch-2)), {hit} of the "
          "{valid} valid samples were preempted {times} (`nivcsw` {nivcsw};", preempted),
    Claim(DOC, "each with one timer tick more than the rest of its row took), and each counted "
          "within {apart}% of its row's other samples", preempted),
    Claim(DOC, "(First mappers; the later mappers' rows are within {later}% of them, and "
          "{significant}, 95% CIs within ±{width}%{but}: "
          "`results/tcg-icount-large-folios/ compare.txt`.) Faults per page are the same on "
          "both kernels in {same} rows", large_folio_text),
    Claim(DOC, "`page_add_file_rmap`, `do_set_pte` and `__mod_lruvec_page_state` ({rmap}%, "
          "{pte}% and {lruvec}% of the XFS loop)", large_folio_text),
    Claim(DOC, "where 6.1 spends {rmap2m}% of the loop in `page_add_file_rmap`",
          large_folio_text),
    Claim(DOC, "about {fixed} of its {total} instructions at fa=64K (entry and exit alone are "
          "a third of the loop)", large_folio_text),
    Claim(DOC, "every row takes one fault per page and 6.12 is {off_lo}-{off_hi}% dearer than "
          "6.1 whatever the folio", large_folio_text),
    Claim(DOC, "so those rows change both the kernel and the folios ({w1m}%, {w64k}%)",
          large_folio_text),
    Claim(DOC, "| XFS, `hole-read` | {xfs_4K_flt} | {xfs_4K} | {xfs_64K_flt} | {xfs_64K} | "
          "{xfs_2M_flt} | {xfs_2M} |", whole_folio_table),
    Claim(DOC, "| ext4 (`/var/tmp`), `hole-read`, 4K folios | {ext4_4K_flt} | {ext4_4K} | "
          "{ext4_64K_flt} | {ext4_64K} | {ext4_2M_flt} | {ext4_2M} |", whole_folio_table),
    Claim(DOC, "| memfd, 4K folios | {memfd_4K_flt} | {memfd_4K} | {memfd_64K_flt} | "
          "{memfd_64K} | {memfd_2M_flt} | {memfd_2M} |", whole_folio_table),
    Claim(DOC, "(First mappers; the later mappers' faults are the same and their times within "
          "{later}%.)", whole_folio_text),
    Claim(DOC, "and their times moved by {lo}% to {hi}% on the seq rows, every change "
          "significant with 3 boots a side (95% CIs within ±{width}% of each change; "
          "`compare.txt`)", whole_folio_text),
    Claim(DOC, "for {sp_4K_chg}% and {sp_64K_chg}% more instructions per page touched ({sp_4K} "
          "and {sp_64K})",
          whole_folio_text),
    Claim(DOC, "from clean checkout {checkout}, harness epoch {epoch}; 3 boots a kernel with "
          "two guests at once, {took};", whole_folio_text),
    Claim("README.md", "that takes a warm XFS read from {seq_4K} guest instructions per page "
          "with fault-around off and from {seq_64K} at 64 KiB, and a sparse reader pays "
          "{sparse_4K_chg}-{sparse_64K_chg}% more", whole_folio),
    Claim(DOC, "| memfd | 4K | 4K | {memfd_4K} | {memfd_64K} | {memfd_2M} |", table),
    Claim(DOC, "| ext4 file (`/var/tmp`) | 4K | 4K | {ext4_4K} | {ext4_64K} | {ext4_2M} |",
          table),
    Claim(DOC, "| XFS, `fill = \"hole-read\"` | 1M 95% +3 | 1M 95% +3 | {hole_4K} | {hole_64K} "
          "| {hole_2M} |", table),
    Claim(DOC, "| XFS, 1 MiB writes | 4K | 1M | {w1m_4K} | {w1m_64K} | {w1m_2M} |", table),
    Claim(DOC, "| XFS, 64 KiB writes | 4K | 64K | {w64k_4K} | {w64k_64K} | {w64k_2M} |", table),
    Claim(DOC, "| tmpfs `huge=always` | 2M | 2M | {tmpfs_4K} | {tmpfs_64K} | {tmpfs_2M} |",
          table),
    Claim(DOC, "rmap and memcg accounting {xfs_rmap} instructions ({xfs_rmap_chg}%) and the "
          "fault-around phase itself {xfs_fa} ({xfs_fa_chg}%); on 4 KiB folios (memfd, fa=64K) "
          "{memfd_rmap} ({memfd_rmap_chg}%) and {memfd_fa} ({memfd_fa_chg}%)", batching),
    Claim(DOC, "rmap and memcg go from {xfs2m_rmap} instructions per page ({xfs2m_rmap_chg}%)",
          lambda: {**batching(), "xfs2m_rmap": batching()["xfs2m_rmap"].replace(" -> ", " to ")}),
    Claim("README.md", "costs {xfs_chg}% fewer guest instructions per page at the default 64 "
          "KiB window ({xfs_base} -> {xfs_new}; rmap and memcg accounting {xfs_rmap_base} -> "
          "{xfs_rmap_19} per page), against {memfd_chg}% fewer in 4 KiB folios ({memfd_base} -> "
          "{memfd_new})", lambda: {**batching(), "xfs_rmap_base": n(_phase(
              f"{XFS} fa=64K", "6.1", "rmap+memcg"))}),
]

