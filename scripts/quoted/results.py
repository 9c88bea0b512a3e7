"""docs/results.md: the A/A split it uses to show a false positive."""

from __future__ import annotations

from quoted.common import Claim, load


def _aa_split() -> dict[str, str]:
    from faultbench.analysis.replicates import replicate_values

    df = load("icount-aa")
    keys = ["pattern", "uffd", "mappers", "role"]
    boots = replicate_values(df.assign(boot=df["kernel"].astype(str) + df["boot"].astype(str)),
                             keys, "ns_per_page", "boot")
    row = boots[(boots["pattern"] == "sparse") & (boots["uffd"] == "missing")
                & (boots["mappers"] == 1)]["value"].sort_values().to_numpy()
    return {"low": f"{row[0]:,.1f}-{row[2]:,.1f}", "high": f"{row[3]:,.1f}-{row[5]:,.1f}"}


CLAIMS = [
    Claim("docs/results.md", "({low} instructions per page) against those on the other "
          "({high})", _aa_split),
]
