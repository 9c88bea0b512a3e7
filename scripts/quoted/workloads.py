"""docs/workloads.md: the warm read it names as what `cache = "warm"` costs."""

from __future__ import annotations

from quoted.common import Claim
from quoted.reference import native_quick

CLAIMS = [
    Claim("docs/workloads.md", "about {on_about} ns/page for a 64 MiB memfd seq read in "
          "`results/native-quick`", native_quick),
]
