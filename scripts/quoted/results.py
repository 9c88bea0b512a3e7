"""docs/results.md: the A/A split it uses to show a false positive."""

from __future__ import annotations

from quoted.common import Claim, load


def _aa_split() -> dict[str, str]:
    from faultbench.analysis.replicates import replicate_values

    df = load("icount-aa")
    keys = ["pattern", "uffd", "mappers", "role"]
    boots = replicate_values(df.assign(boot=df["kernel"].astype(str) + df["boot"].astype(str)),
                             keys, "ns_per_page", "boot")
    row = boots[(boots["pattern"] == "sparse") & (boots["uffd"] == "none")
                & (boots["mappers"] == 1)]["value"].sort_values().to_numpy()
    ok = df[df["ok"] & ~df["warmup"] & (df["pattern"] == "sparse") & (df["uffd"] == "none")]
    loops = sorted(set((ok["ns_per_page"] * ok["pages_touched"]).round().astype(int)))
    return {"low": f"{row[0]:,.1f}-{row[2]:,.1f}", "high": f"{row[3]:,.1f}-{row[5]:,.1f}",
            "loops": " or ".join(f"{v:,}" for v in loops),
            "pages": str(int(ok["pages_touched"].median())),
            "step": f"{row[3] - row[2]:.3g}", "pct": f"{100 * (row[3] / row[2] - 1):.1g}"}


CLAIMS = [
    Claim("docs/results.md", "({low} instructions per page) against those on the other "
          "({high}): the row's loops counted {loops} instructions over their {pages} pages, and "
          "a boot is the median of its two rounds, so the step is {step} instructions per page "
          "touched, {pct}%", _aa_split),
]
