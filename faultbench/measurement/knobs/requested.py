"""What faultbench asks the kernel for: `--set NAME=V1,V2` parsed and validated, and the
values it will not ask for although the kernel would take them (bounds tighter than the
kernel's, sysctls of the whole machine). Nothing is written here. Standard library only:
this runs inside emulated guests too.
"""

from __future__ import annotations

from faultbench.measurement.knobs.catalog import (
    COUPLED,
    Knob,
    KnobError,
    page_size,
    read_value,
    resolve,
    validate,
)

# Members whose 0 the kernel reads out but refuses to be written (its extra1: dirty_bytes
# two pages, dirty_background_bytes 1): 0 means "the ratio is in effect".
NO_ZERO = ("vm.dirty_bytes", "vm.dirty_background_bytes")


# Values faultbench asks for, bounded more tightly than the kernel bounds them (an original
# a journal restores is the machine's own, and is not): see check_requested.
MIN_FREE_SHARE = 4  # vm.min_free_kbytes: at most 1/4 of MemTotal
HUGEPAGES_SHARE = 2  # vm.nr_hugepages: at most 1/2 of MemTotal in huge pages
WATERMARK_SCALE_MAX = 1000  # vm.watermark_scale_factor: 10% of memory (the kernel: 30%)
WATERMARK_BOOST_MAX = 150000  # vm.watermark_boost_factor: ten times the kernel's default
RESERVES = ("vm.admin_reserve_kbytes", "vm.user_reserve_kbytes")  # at most 1/MIN_FREE_SHARE
HUGE_POOLS = ("vm.nr_hugepages", "vm.nr_hugepages_mempolicy", "vm.nr_overcommit_hugepages")
# the machine's defences, not its memory management: the lowest address a process may map,
# whether unprivileged users may create a userfaultfd, which group may create SHM_HUGETLB
# segments (huge pages past RLIMIT_MEMLOCK); faultbench measures as root and needs none
SECURITY = ("vm.mmap_min_addr", "vm.unprivileged_userfaultfd", "vm.hugetlb_shm_group")
BOUNDED = ("vm.panic_on_oom", "vm.min_free_kbytes", *HUGE_POOLS, *RESERVES, *SECURITY,
           "vm.max_map_count", "vm.overcommit_memory", "vm.watermark_scale_factor",
           "vm.watermark_boost_factor")


def given_twice(name: str, where: str) -> str:
    """The refusal of a knob given twice (`--set`, a workload's knob table), whose first
    values would otherwise be dropped without a word; `where`: where to list them all."""
    return f"{name} is given twice; list all its values {where}"


def parse_set_options(
    values: list[str], file_dir: str | None = None
) -> list[tuple[str, list[str]]]:
    """['NAME=V1,V2', ...] -> [(name, [value, ...]), ...], everything validated, nothing written.

    `file_dir` is the `file` backing's directory, for read_ahead_kb.
    """
    axes: list[tuple[str, list[str]]] = []
    seen: set[str] = set()
    for option in values:
        name, sep, rest = option.partition("=")
        name = name.strip()
        items = [v.strip() for v in rest.split(",")] if sep else []
        if not name or not items or any(not v for v in items):
            raise KnobError(f"--set wants NAME=V1[,V2...], got {option!r}")
        knob = resolve(name, file_dir)
        if knob.name in seen:
            raise KnobError(given_twice(knob.name, "in one --set"))
        seen.add(knob.name)
        values = [validate(knob, v) for v in items]
        for value in values:
            check_requested(knob, value)
        axes.append((knob.name, values))
    return axes


def check_requested(knob: Knob, value: str) -> None:
    """KnobError for a valid value faultbench still will not ask for, before anything is
    written (parse_set_options; KnobSession.apply, in a guest against the guest's memory)."""
    if knob.kind != "sysctl" or knob.name not in (*BOUNDED, *NO_ZERO):
        return
    number = int(value)
    if knob.name == "vm.overcommit_memory" and number == 2:
        raise KnobError("vm.overcommit_memory=2: strict accounting of the whole machine; "
                        "while the run lasts every process's allocations past the commit "
                        "limit fail, not only the benchmark's")
    if knob.name == "vm.watermark_scale_factor" and number > WATERMARK_SCALE_MAX:
        # in 0.01% of memory: how far above the low watermark kswapd reclaims to
        raise KnobError(f"vm.watermark_scale_factor={number}: above {WATERMARK_SCALE_MAX} "
                        f"({WATERMARK_SCALE_MAX // 100}% of memory) kswapd's reclaim is what "
                        "every sample would measure")
    if knob.name == "vm.watermark_boost_factor" and number > WATERMARK_BOOST_MAX:
        # in 0.01% of the high watermark: how far kswapd reclaims after a fragmenting event
        raise KnobError(f"vm.watermark_boost_factor={number}: above {WATERMARK_BOOST_MAX} "
                        "(ten times the kernel's default) the reclaim a boost starts is what "
                        "samples would measure")
    current = read_value(knob)
    # limits of every process on the machine, not of the sample: while the run lasts they
    # would break other programs (too few maps) or weaken the machine's defences
    if knob.name == "vm.max_map_count" and isinstance(current, int) and number < current:
        raise KnobError(f"vm.max_map_count={number}: below its {current} it limits every "
                        "process on the machine while the run lasts; faultbench only raises it")
    if knob.name in SECURITY and number != current:
        raise KnobError(f"{knob.name}={number}: a security setting of the whole machine, not "
                        "one of memory management; faultbench (root) needs no change to it")
    if knob.name in NO_ZERO:
        least = 2 * page_size() if knob.name == "vm.dirty_bytes" else 1
        if number < least:  # the kernel refuses it (EINVAL): 0 is what the ratio shows
            raise KnobError(f"{knob.name}={number}: the kernel accepts at least {least}; "
                            f"its 0 means {COUPLED[knob.name]} is in effect: set that instead")
        return
    if knob.name == "vm.panic_on_oom":
        # an out-of-memory a memory workload may cause on purpose would panic the machine:
        # the run and everything else on it end, no knob restored until the reboot
        if number != 0:
            raise KnobError(f"vm.panic_on_oom={number}: faultbench sets only 0; 1 or 2 panics "
                            "the machine at the next out-of-memory, which a benchmark may "
                            "cause")
        return
    from faultbench.measurement.measure import meminfo

    info = meminfo()
    total_kb = info.get("MemTotal")
    if total_kb is None:
        return  # no /proc/meminfo: the kernel's own bounds only
    memory = f"this machine's memory ({total_kb / 2**20:.1f} GiB)"
    if knob.name in RESERVES and number > total_kb // MIN_FREE_SHARE:
        # memory kept from processes under strict overcommit: the machine's, not the run's
        raise KnobError(f"{knob.name}={number}: more than 1/{MIN_FREE_SHARE} of {memory}")
    if knob.name == "vm.min_free_kbytes" and number > total_kb // MIN_FREE_SHARE:
        # kswapd keeps free up to 1.5x it (the high watermark): at 1/4, 3/8 of memory;
        # above, the reclaim it forces is what every sample measures, near all an OOM
        raise KnobError(f"vm.min_free_kbytes={number}: more than 1/{MIN_FREE_SHARE} of "
                        f"{memory}; the kernel would reclaim to keep 1.5x that free")
    huge_kb = info.get("Hugepagesize", 0)
    # the mempolicy variant resizes the same persistent pool; the overcommit one lets
    # hugetlb mappings take as many more on demand
    if knob.name in HUGE_POOLS and number * huge_kb > total_kb // HUGEPAGES_SHARE:
        # reserved huge pages are memory nothing else may use: too many, and the system
        # and the benchmark itself run out of the rest
        raise KnobError(f"{knob.name}={number}: {number} x {huge_kb} kB is more than "
                        f"1/{HUGEPAGES_SHARE} of {memory}, which huge pages would take from "
                        "everything else")
