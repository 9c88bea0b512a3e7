"""README.md: its summary of the reference results, each value from the doc that explains
it."""

from __future__ import annotations

from quoted.breakeven import crossing
from quoted.common import Claim
from quoted.memory import folio_memory, memory
from quoted.profiles import constant, native_profile
from quoted.reference import native_quick, patch_faults, patch_later, patch_run, patch_sparse

DOC = "README.md"


def _fault_ratio() -> dict[str, str]:
    values = native_quick()
    return {"per": f"{1 / float(values['flt_on']):.0f}", "off": values["flt_off"]}


CLAIMS = [
    Claim(DOC, "fault-around takes 1/{per} of a fault per page touched instead of {off}",
          _fault_ratio),
    Claim(DOC, "(natively {later_on} vs {later_off} ns/page for them with fault-around on and "
          "off, `results/native-quick`: Linux {linux} on a {cpus}-vCPU VM, no other process "
          "running, its load average still {load} from earlier work", native_quick),
    Claim(DOC, "raises every uffd-missing mapper's faults, later ones included, from {base} to "
          "{new} per page", patch_faults),
    Claim(DOC, "from {base} to {new} guest instructions per page touched ({change}%, 95% CI "
          "{lo}..{hi}%", patch_later),
    Claim(DOC, "{boots} boots per kernel, `results/uffd-2020-patch`", patch_run),
    Claim(DOC, "(stride 8: {s8}%; one page per 2 MiB: {sp}%)", patch_sparse),
    Claim(DOC, "fault-around breaks even at ~{pages} pages per window", crossing),
    Claim(DOC, "installing PTEs ({fa}%, `next_uptodate_folio` most of it) and {entry_on}% "
          "fault entry and exit; with it off, entry and exit take {entry_off}%",
          native_profile),
    Claim(DOC, "cost per page mapped, {profile} guest instructions (95% CI {profile_ci}), and "
          "the cost model's b, {model} (95% CI {model_ci})", lambda: constant("b")),
    Claim(DOC, "{launches} per setting: at `fault_around_bytes=2M` {st_2m} direct reclaims and "
          "{rf_2m} refaults in all, in every session, against {st_4k} and {rf_4k} at 4K "
          "(permutation p = {st_2m_p})", memory),
    Claim(DOC, "launches from XFS refaulted {xfs_rf_4k_per} and {xfs_rf_64k_per} pages each "
          "at 4K and 64K (ext4: about none)", folio_memory),
    Claim(DOC, "reports medians with CIs, {on} ns/page for this row in the reference run "
          "below", native_quick),
]
