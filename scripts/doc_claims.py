#!/usr/bin/env python3
"""Numbers that README.md and docs/*.md quote from the shipped results, each computed from
its results directory: a claim is a doc, a sentence with {fields}, and a function of the
shipped runs that fills them. tests/test_docs.py checks that every filled sentence is in its
doc (whitespace and line breaks aside), so a regenerated result cannot leave a stale number
behind: the test fails and this script prints the sentence as it now reads.

    python scripts/doc_claims.py      # every claim as the results now fill it, and where
                                      # the doc disagrees

The claims live in scripts/quoted/, one module per doc (`quoted.common`: the Claim, the
runs as faultbench's analysis reads them, number formats). Numbers a doc quotes that no
claim can compute are listed in UNCOVERED, with the reason.
"""

from __future__ import annotations

import re
import sys

from quoted import (
    breakeven,
    folios,
    icount,
    kernels,
    memory,
    profiles,
    readme,
    reference,
    results,
    workloads,
)
from quoted.common import ROOT, Claim

__all__ = ["CLAIMS", "UNCOVERED", "Claim", "squeezed", "stale"]

CLAIMS: list[Claim] = [
    *readme.CLAIMS, *reference.CLAIMS, *icount.CLAIMS, *profiles.CLAIMS, *breakeven.CLAIMS,
    *kernels.CLAIMS, *workloads.CLAIMS, *memory.CLAIMS, *results.CLAIMS,
    *folios.CLAIMS,
]

# Numbers the docs quote that no claim computes (doc: what, and why). Most come from runs
# not shipped in results/ (benchmark output, investigations, runs since replaced): with no
# file to compute them from, the doc says instead where each came from and when.
UNCOVERED = [
    ("docs/large-folios.md", "the reproduction of tcg-icount-large-folios at harness epoch 1 "
                             "(a rerun of its command at d9bcf05, 5 December 2026, compared "
                             "with the run shipped then): not shipped"),
    ("README.md", "the measure example's sample (5 December 2026), the 6.18 host's fault "
                  "counts (a native run docs/large-folios.md shows), 0.998-0.999x and ~0.07% "
                  "(benchmark output, docs/overhead.md and docs/icount.md): not shipped"),
    ("docs/icount.md", "the wall-clock A/B's 55%/58% (results/uffd-2020-patch until commit "
                       "9101a7a), the 0.3-era A/A's spread (results/icount-aa until 2fb081c) "
                       "and profile run's +6.8% (until 40a1d1b): runs no longer shipped; "
                       "issue 28's counts, repro_check's table and the measure/run counts (5 "
                       "December 2026), the SMP and boot-time trials (1 December 2026): "
                       "benchmark and investigation output"),
    ("docs/reference-results.md", "the wall-clock A/B's 0 of 66 and 58% (results/"
                                  "uffd-2020-patch until commit 9101a7a): no longer shipped"),
    ("docs/profiles.md", "6.12's 96% entry/exit under the phase table before commit 7d7b485 "
                         "(the analysis no longer has it), the 0.3-era run's +10% to +40% "
                         "(results/native-profile until 805e8a4), the published batching gain "
                         "(18.73% -> 9.93%, +15%): not computable from a shipped run"),
    ("docs/kernels.md", "the booted measure block (re-run for d63fa05) and the quick-vs-quick "
                        "drift of 1 December 2026: not shipped"),
    ("docs/overhead.md", "every table and figure: benchmarks/overhead.py output and the vmas "
                         "runs of 1 and 5 December 2026, not shipped"),
    ("docs/workloads.md", "quick's time, the runner's overhead and the fork/exec cost (1 "
                          "December 2026), the hot read (November 2026): benchmark output, "
                          "not shipped"),
]


def squeezed(text: str) -> str:
    """Whitespace runs as one space (docs wrap lines), and '> ' quote marks dropped."""
    return re.sub(r"\s+", " ", re.sub(r"(?m)^>\s?", "", text)).strip()


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
