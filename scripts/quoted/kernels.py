"""docs/kernels.md: what the shipped instruction-clock A/A says about repeating counts."""

from __future__ import annotations

from quoted.common import Claim, boot_spreads, kernel_rows

DOC = "docs/kernels.md"


def _aa() -> dict[str, str]:
    rows = kernel_rows("icount-aa")
    return {"marked": str(sum(r["significant"] for r in rows.values())), "rows": str(len(rows)),
            "between": f"{boot_spreads('icount-aa')['between_cv_pct'].max():.2g}"}


CLAIMS = [
    Claim(DOC, "timings count guest instructions and repeat from boot to boot within "
          "{between}% (the largest CV of a row's per-boot medians in `results/icount-aa`)",
          _aa),
    Claim(DOC, "`results/icount-aa`, marks {marked} of its {rows} rows", _aa),
]
