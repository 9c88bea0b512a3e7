"""docs/reference-results.md: what `native-quick` and the 2020 patch run show. README.md and
docs/icount.md quote the same values, from the functions here."""

from __future__ import annotations

from datetime import datetime

from quoted.common import Claim, about, kernel_rows, load, meta, n, pct, report_rows

DOC = "docs/reference-results.md"
LATER = "seq uffd=missing x4 reg=later [later]"  # Wilcox's case: the headline row


def native_quick() -> dict[str, str]:
    """One mapper and the later ones, fault-around on (uffd none) and off (uffd wp); the
    sparse worst case; the run's flagged samples and its machine."""
    rows = report_rows("native-quick")
    on, off = rows["seq uffd=none"], rows["seq uffd=wp"]
    df = load("native-quick")
    state = meta("native-quick")["machine_state"]
    release = meta("native-quick")["provenance"]["kernel"]["release"]
    return {
        "on": n(on["median"]), "off": n(off["median"]),
        "on_about": about(on["median"], 10), "off_about": about(off["median"], 10),
        "flt_on": f"{on['faults_per_page']:g}", "flt_off": f"{off['faults_per_page']:g}",
        "faults": n(df.loc[df["ok"] & (df["pattern"] == "seq") & (df["uffd"] == "none")
                           & (df["mappers"] == 1), "faults_minor"].median()),
        "later_on": n(rows["seq uffd=none x3 [later]"]["median"]),
        "later_off": n(rows["seq uffd=wp x3 reg=later [later]"]["median"]),
        "sparse_on": f"{rows['sparse uffd=none']['median'] / 1000:.2f}",
        "sparse_off": f"{rows['sparse uffd=wp']['median'] / 1000:.2f}",
        "hits": str(sum(int(r["hits"]) for r in rows.values())),
        "valid": str(sum(int(r["valid"]) for r in rows.values())),
        "load": f"{state['load'][0]:.1f}", "cpus": str(state["cpus"]),
        "linux": ".".join(release.split(".")[:2]),
    }


def patch_later() -> dict[str, str]:
    row = kernel_rows("uffd-2020-patch")[LATER]
    base, new = row["base"]["median"], row["new"]["median"]
    return {"base": n(base), "new": n(new), "more": n(new - base), "times": f"{new / base:.1f}",
            "change": pct(row["change_pct"], sign=True),
            "lo": pct(row["ci_pct"][0], sign=True), "hi": pct(row["ci_pct"][1], sign=True)}


def patch_faults() -> dict[str, str]:
    """Faults per page of every uffd-missing mapper the patch concerns (seq and random; all
    but the unregistered first mapper of `reg=later`), which must agree."""
    rows = kernel_rows("uffd-2020-patch", "faults_per_page")
    [(base, new)] = {(r["base"]["median"], r["new"]["median"]) for label, r in rows.items()
                     if label.startswith(("seq", "random")) and "uffd=missing" in label
                     and not label.endswith("reg=later [first]")}
    return {"base": f"{base:g}", "new": f"{new:g}"}


def patch_sparse() -> dict[str, str]:
    """The later mappers when only they register, as the headline row."""
    rows = kernel_rows("uffd-2020-patch")
    out = {}
    for key, label in (("s8", "stride:8"), ("sp", "sparse")):
        row = rows[f"{label} uffd=missing x4 reg=later [later]"]
        out.update({key: pct(row["change_pct"]), f"{key}_base": n(row["base"]["median"]),
                    f"{key}_new": n(row["new"]["median"])})
    return out


def controls() -> dict[str, str]:
    """The rows the patch should not move: uffd none and wp, and the first mapper when only
    later ones register; dense (2,048 pages touched) and sparse apart, and those marked."""
    rows = kernel_rows("uffd-2020-patch")
    control = {label: row for label, row in rows.items()
               if "uffd=none" in label or "uffd=wp" in label or "reg=later [first]" in label}
    dense = [abs(r["change_pct"]) for label, r in control.items()
             if not label.startswith("sparse")]
    sparse = [abs(r["change_pct"]) for label, r in control.items() if label.startswith("sparse")]
    marked = [label for label, r in control.items() if r["significant"]]
    full = [r for label, r in rows.items() if label.startswith(("seq", "random"))]
    detect = [r["detect_pct"] for r in full if r["detect_pct"] is not None]
    half = sorted((r["ci_pct"][1] - r["ci_pct"][0]) / 2 for r in full)
    changes = " and ".join(f"{control[m]['change_pct']:+.2f}%" for m in marked)
    # two significant digits however small (a sparse control moved by 0.0024%, not "0.00")
    return {"dense": f"{max(dense):.1f}", "sparse": f"{max(sparse):.2g}",
            # what compare marks among them: "none of them marked" or the rows, their
            # changes and their medians
            "marked_text": (
                f"{len(marked)} marked ({', '.join(marked)}): {changes}, "
                + ", ".join(f"{control[m]['base']['median']:,g}" for m in marked)
                + " against "
                + ", ".join(f"{control[m]['new']['median']:,g}" for m in marked)
                + " instructions per page touched") if marked else "none of them marked",
            "marked_by": (f"{len(marked)} of them marked ({', '.join(marked)}), by {changes}"
                          if marked else "none of them marked"),
            "lo": f"{min(detect):.2g}", "hi": f"{max(detect):.2g}",
            "half": f"{half[len(half) // 2]:.2g}", "half_max": f"{half[-1]:.2g}"}


def patch_counts() -> dict[str, str]:
    rows = kernel_rows("uffd-2020-patch")
    control = [label for label in rows
               if "uffd=none" in label or "uffd=wp" in label or "reg=later [first]" in label]
    changed = {label: r for label, r in rows.items() if label not in control}
    exact = [label for label, r in rows.items() if r["exact"]]
    # the significant rows are the rows the patch changes, and which rows are exact
    every = all(r["significant"] for r in changed.values()) and not any(
        r["significant"] for label, r in rows.items() if label in control)
    return {"significant": str(sum(r["significant"] for r in rows.values())),
            "rows": str(len(rows)), "wp": n(rows["seq uffd=wp x4 [later]"]["new"]["median"]),
            "which": ("every row the patch changes and no other" if every else
                      "not exactly the rows the patch changes"),
            "exact": ", ".join(f"`{label}`" for label in exact),
            "exact_what": ("a row the patch leaves alone" if all(label in control
                                                                  for label in exact)
                           else "a row the patch changes")}


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"


def patch_run() -> dict[str, str]:
    """How the run was made, from its meta.json and samples: boots in order, rounds, the
    measurements of one boot, and how long a boot took."""
    run = meta("uffd-2020-patch")
    boots = sorted(run["boots"], key=lambda b: b["index"])
    rounds = {b["rounds"][1] - b["rounds"][0] for b in boots}
    took = [(datetime.fromisoformat(b["finished_utc"]) - datetime.fromisoformat(b["started_utc"])
             ).total_seconds() for b in boots]
    df = load("uffd-2020-patch")
    per_boot = {int(k) for k in df[df["mapper"] == 0].groupby("boot").size()}
    [one_round], [one_boot] = rounds, per_boot
    return {"order": ", ".join(b["kernel"] for b in boots), "rounds": str(one_round),
            "boots": str(run["boots_per_kernel"]),
            "per_kernel": str(one_round * run["boots_per_kernel"]),
            "samples": n(int((~df["warmup"] & df["ok"]).sum())),
            "measurements": str(one_boot),
            "fastest": _minutes(min(took)), "slowest": _minutes(max(took)),
            "load": f"{run['machine_state']['load'][0]:.1f}",
            "took": _minutes((datetime.fromisoformat(run["finished_utc"])
                              - datetime.fromisoformat(run["started_utc"])).total_seconds()),
            "day": (lambda d: f"{d.day} {d:%B %Y}")(
                datetime.fromisoformat(run["started_utc"]))}


def sweep() -> dict[str, str]:
    """The sweep's kernel, its epoch and commit, and how busy the host was when it started
    (the load average and the other processes' CPU, as its report's header says)."""
    run = meta("tcg-fault-around-sweep")
    release = load("tcg-fault-around-sweep")["kernel_release"].dropna().iloc[0]
    state = run["machine_state"]
    return {"load": f"{run['provenance']['load_average'][0]:.1f}", "release": release,
            "epoch": str(run["harness_epoch"]),
            "commit": run["provenance"]["faultbench"]["git_revision"][:7],
            "others_cpu": f"{state['others_cpu']:.1f}",
            "others": ", ".join(f"{name} {cpu * 100:.0f}%" for name, cpu in state["others"])}


CLAIMS = [
    Claim(DOC, "`faultbench run fault-around-sweep --kernel /boot/vmlinuz-{release} --clock "
          "wall`", sweep),
    Claim(DOC, "harness epoch {epoch}, from a clean checkout of commit {commit}: load average "
          "{load} at its start, with other processes using {others_cpu} CPU ({others})",
          sweep),
    Claim(DOC, "The native run had no other process beside it (its load average still "
          "{load} from earlier work); {hits} of its {valid} valid samples are flagged in the "
          "`hit` column.", native_quick),
    Claim(DOC, "a warm 64 MiB memfd takes {flt_on} faults per page touched ({faults} faults) "
          "and ~{on_about} ns/page; with it off (uffd-wp) one fault per page and "
          "~{off_about} ns/page.", native_quick),
    Claim(DOC, "fault-around saves them as much ({later_on} vs {later_off} ns/page)",
          native_quick),
    Claim(DOC, "The price is the sparse worst case (one page per 2 MiB): {sparse_on} µs vs "
          "{sparse_off} µs per touched page natively at 64 KiB", native_quick),
    Claim(DOC, "6 boots in the order {order}, {rounds} measured rounds per boot ({per_kernel} "
          "per kernel), {samples} samples.", patch_run),
    Claim(DOC, "(QEMU TCG with -icount, {boots} boots per kernel, {rounds} rounds per boot)",
          patch_run),
    Claim(DOC, "shmem file from {base} to {new} per page touched for seq and random access",
          patch_faults),
    Claim(DOC, "their cost from {base} to {new} guest instructions per page touched "
          "({change}%, 95% CI {lo}..{hi}%): about {more} more instructions per page",
          patch_later),
    Claim(DOC, "so \"{more} more instructions per page\" is the claim, not \"{times}x slower "
          "on a CPU\"", patch_later),
    Claim(DOC, "(stride 8: {s8_base} -> {s8_new}, {s8}%; one page per 2 MiB: {sp_base} -> "
          "{sp_new}, {sp}%)", patch_sparse),
    Claim(DOC, "every change of the rows that touch 2,048 pages within ±{dense}%, of the "
          "sparse rows, 4 pages touched each, within ±{sparse}%; {marked_text})", controls),
    Claim(DOC, "the changes of rows that touch 2,048 pages have 95% CIs of ±{half}% (median; "
          "at most ±{half_max}%), and `detect`, the smallest change each row's test would "
          "find, is {lo}-{hi}% for them", controls),
    Claim(DOC, "{significant} of {rows} timing rows are significant after Holm: {which} "
          "(one more, {exact}, {exact_what}, is `exact`: every sample of each kernel had the "
          "same count, so it is not tested)", patch_counts),
    Claim(DOC, "the same as uffd-wp ({wp})", patch_counts),
    Claim(DOC, "The first rows of the timing comparison ({rows} rows in all", patch_counts),
    Claim("docs/scale.md", "two guests at once, {day}) took {took} from start to finish "
          "(meta.json `started_utc`, `finished_utc`), on the 2-CPU VM at load {load} as it "
          "started", patch_run),
]
