"""Data for catalog.py: the sysctl ranges the kernel accepts. No imports: this runs inside
emulated guests too."""

ULONG_MAX = 2**64 - 1  # no sysctl number can be larger
INT_MAX = 2**31 - 1
# What the kernel (6.x: mm/*.c, kernel/sysctl.c extra1/extra2) accepts for /proc/sys/vm
# sysctls with a bounded range; checked before the journal is written, so that a value the
# kernel would refuse changes nothing. Others are bounded only by the kernel's own parsing.
SYSCTL_RANGES: dict[str, tuple[int, int]] = {
    "swappiness": (0, 200), "overcommit_memory": (0, 2), "panic_on_oom": (0, 2),
    "dirty_ratio": (0, 100), "dirty_background_ratio": (0, 100),
    "compaction_proactiveness": (0, 100), "extfrag_threshold": (0, 1000),
    "compact_unevictable_allowed": (0, 1), "watermark_scale_factor": (1, 3000),
    "unprivileged_userfaultfd": (0, 1), "min_unmapped_ratio": (0, 100),
    "min_slab_ratio": (0, 100), "numa_stat": (0, 1), "page-cluster": (0, 31),
    "memory_failure_early_kill": (0, 1), "memory_failure_recovery": (0, 1),
    "hugetlb_optimize_vmemmap": (0, 1), "defrag_mode": (0, 1), "memfd_noexec": (0, 2),
    "max_map_count": (0, INT_MAX), "min_free_kbytes": (0, INT_MAX),
    "dirty_expire_centisecs": (0, INT_MAX), "overcommit_ratio": (0, INT_MAX),
    "vfs_cache_pressure": (0, INT_MAX), "watermark_boost_factor": (0, INT_MAX),
    "zone_reclaim_mode": (0, INT_MAX), "percpu_pagelist_high_fraction": (0, INT_MAX),
    "vfs_cache_pressure_denom": (1, INT_MAX),
}
# Values inside a range above that the kernel still refuses: percpu_pagelist_high_fraction
# is 0 (the default high mark) or at least MIN_PERCPU_PAGELIST_HIGH_FRACTION (mm/page_alloc.c).
SYSCTL_GAPS: dict[str, tuple[int, int]] = {"percpu_pagelist_high_fraction": (1, 7)}
