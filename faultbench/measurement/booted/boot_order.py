"""The order in which a run boots several kernels, and each boot's share of the rounds.

Measurement plane: standard library only (the runner plans boots before anything is booted).
Boots of different kernels are interleaved so that drift over the run (a host getting busier,
caches warming, thermal state) and boot-to-boot variation hit every kernel alike instead of
masquerading as a difference between kernels.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from faultbench.errors import FaultbenchError, printable
from faultbench.measurement.rundir.checks import UNSET, UTS_MAX_BYTES
from faultbench.measurement.spec import SpecError, clipped, parse_int, shown


class BootPlanError(FaultbenchError, ValueError):
    """A boot plan that cannot be made; the message says how to fix the request."""


# what a kernel label may be: every table shows it and `compare RUN:LABEL` selects by it;
# as long as the longest release (uname's), which is what a label defaults to
LABEL_MAX_BYTES = UTS_MAX_BYTES
LABEL_RULE = ("a label is printable text with no spaces at its ends and no `,` or `=`, other "
              "than `unset` (the name `compare` gives a value left unset), of at most "
              f"{LABEL_MAX_BYTES} bytes of UTF-8")


def label_fault(label: str) -> str | None:
    """Why `label` cannot name a kernel, or None. Shown on the terminal and stored as the
    kernel's name, in every row: UTF-8 (a byte that is not arrives from argv as a surrogate,
    which is called what it is, not a control character), no longer than a release, no
    control characters; spaces at its ends would make two labels that look the same in a
    table; `,` and `=` are what scenario names and `--baseline KNOB=VALUE` split on;
    `compare RUN:unset` selects samples with no kernel, as with a knob left unset, so a
    kernel named so could never be compared."""
    if not label:
        return f"a label cannot be empty (leave out `LABEL=` for the image's release); {LABEL_RULE}"
    try:
        size = len(label.encode("utf-8"))
    except UnicodeEncodeError:
        return f"it has bytes that are not UTF-8; {LABEL_RULE}"
    if size > LABEL_MAX_BYTES:
        return f"it is {size:,} bytes long; {LABEL_RULE}"
    if not label.isprintable():
        return f"control characters are not allowed in a label; {LABEL_RULE}"
    if label != label.strip() or label == UNSET or "," in label or "=" in label:
        return LABEL_RULE
    return None


def label_refusal(text: str, label: str) -> str | None:
    """The refusal of `--kernel TEXT` whose label cannot name a kernel, or None; both clipped,
    since a label too long to take may be thousands of bytes."""
    fault = label_fault(label)
    return fault and f"--kernel {clipped(printable(text), 80)}: label {shown(label)}: {fault}"


def boot_order(labels: Sequence[str], boots: int) -> list[tuple[str, int]]:
    """Every boot of every kernel as (label, that label's boot index), in the order to run them.

    The run is `boots` blocks of one boot per label; blocks alternate the label order forward
    and reversed (two kernels, three boots: A B B A A B). Within any two consecutive blocks a
    label's positions are i and 2k-1-i (k labels), the same sum for every label, so a drift
    that grows linearly over the run costs every kernel the same when `boots` is even; with an
    odd count only the last block is unpaired. With three or more labels the middle ones never
    take a block's first or last slot; edge effects of that kind are not balanced.

    Raises BootPlanError for no labels, a repeated label (or two that differ only in case),
    or boots < 1.
    """
    if not labels:
        raise BootPlanError("no kernels to boot: give at least one --kernel")
    # counted once: a meta.json's kernels are checked on every load, and may be many
    repeated = sorted(label for label, count in Counter(labels).items() if count > 1)
    if repeated:
        raise BootPlanError(
            f"kernel label(s) {', '.join(repeated)} given twice: give each --kernel its own "
            "LABEL= (the same image may appear under two labels)"
        )
    folded: dict[str, str] = {}
    for label in labels:  # `base`, `Base`: one kernel named twice, or two? (merge's rule)
        if (alike := folded.setdefault(label.casefold(), label)) != label:
            raise BootPlanError(f"kernel labels {alike!r} and {label!r} differ only in case: "
                                "give labels that differ otherwise")
    if boots < 1:
        raise BootPlanError(f"--boots must be at least 1, got {boots}")
    order: list[tuple[str, int]] = []
    for block in range(boots):
        sequence = labels if block % 2 == 0 else list(reversed(labels))
        order += [(label, block) for label in sequence]
    return order


def split_rounds(total_rounds: int, boots: int) -> list[range]:
    """The measured rounds each boot of one kernel runs: `boots` equal, consecutive shares.

    Every boot then rests on the same number of rounds, so boots weigh alike in boot-level
    statistics. Warm-up rounds are not part of `total_rounds`: each boot runs them anew.
    Raises BootPlanError when the rounds cannot be shared equally (fewer rounds than boots, or
    not a multiple), naming the nearest counts that work.
    """
    if boots < 1:
        raise BootPlanError(f"--boots must be at least 1, got {boots}")
    if total_rounds < boots:
        raise BootPlanError(
            f"{total_rounds} measured round(s) cannot be shared by {boots} boots (each boot "
            f"needs at least one): set the workload's repetitions to at least {boots}, or use "
            f"--boots {max(total_rounds, 1)} or fewer"
        )
    if total_rounds % boots:
        lower = total_rounds - total_rounds % boots
        fewer = max(b for b in range(1, boots) if total_rounds % b == 0)
        more = min(b for b in range(boots + 1, total_rounds + 1) if total_rounds % b == 0)
        raise BootPlanError(
            f"{total_rounds} measured rounds do not divide into {boots} equal boots: set the "
            f"workload's repetitions to a multiple of {boots} (e.g. {lower} or "
            f"{lower + boots}), or use --boots {fewer} or --boots {more}"
        )
    share = total_rounds // boots
    return [range(boot * share, (boot + 1) * share) for boot in range(boots)]


def parse_shard(text: str) -> tuple[int, int]:
    """`I/N` (shard I of N, counted from 1) as (I, N); BootPlanError otherwise."""
    first, sep, second = text.partition("/")
    try:
        index, count = parse_int(first), parse_int(second)
    except SpecError:  # not ASCII digits ('²'.isdigit() holds, int('²') fails)
        index = count = 0
    if not (sep and 1 <= index <= count):
        raise BootPlanError(f"--shard {text!r}: give I/N with 1 <= I <= N, e.g. 1/2")
    return index, count


def shard_positions(plan_boots: int, index: int, count: int) -> list[int]:
    """The plan positions shard `index` of `count` boots: every count-th boot, from position
    index-1 (two kernels, three boots, two shards: A B A and B A B). Depends on nothing but
    the three numbers, so every machine computes the same split. Raises BootPlanError when
    some shard would have no boot."""
    if count > plan_boots:
        raise BootPlanError(f"--shard {index}/{count}: the run has only {plan_boots} boots, "
                            f"so at most {plan_boots} shards")
    return list(range(index - 1, plan_boots, count))


def plan_problem(meta: dict[str, Any], repetitions: int) -> str | None:
    """Why a booted run's boots (a shard's: at their plan positions) are not the plan `run`
    makes of its kernels, boots_per_kernel and `repetitions`, or None. A boot whose rounds
    overlap another's measures those rounds twice, and its samples would be pooled with the
    other's; a boots_per_kernel that is not the run's would be reported as the run's.
    meta.json's types are checked already (meta_checks.booted_problem)."""
    per_kernel = meta["boots_per_kernel"]
    shard = meta.get("shard")
    planned = len(meta["kernels"]) * per_kernel
    made = (f"its {len(meta['kernels'])} kernel(s) at boots_per_kernel {per_kernel} make a "
            f"plan of {planned} boots")
    # the plan's size first, from the counts: a small file may claim one of billions of boots
    # (a shard's against its kernels' is merge's to refuse, with the other shards)
    if not shard and planned != len(meta["boots"]):
        return f"{made}, and it has {len(meta['boots'])}: not the run's boot plan"
    if shard and planned > shard["plan_boots"]:
        return f"{made}, and its shard is of a plan of {shard['plan_boots']}"
    try:
        shares = split_rounds(repetitions, per_kernel)
        order = boot_order([kernel["label"] for kernel in meta["kernels"]], per_kernel)
    except BootPlanError as exc:
        return f"its boot plan cannot be made: {exc}"
    # a position is one boot's: two boots at one would measure its rounds twice, and a
    # position no boot is at, a kernel's boot, would never be booted. A run's boots are at
    # their indices; a shard's at distinct positions of its own (shard())
    mine = (set(shard_positions(shard["plan_boots"], shard["index"], shard["count"]))
            if shard else set())
    claimed: dict[int, int] = {}
    for boot in meta["boots"]:
        position = boot.get("plan_index", boot["index"])
        if not shard and position != boot["index"]:
            return (f"its boot {boot['index']} is at plan position {position}, its boot "
                    f"{position}'s: not the run's boot plan")
        if shard and position not in mine:
            return (f"its boot {boot['index']} is at plan position {position}, which is not "
                    f"one of shard {shard['index']}/{shard['count']}'s: not a shard of this "
                    "run")
        if (first := claimed.setdefault(position, boot["index"])) != boot["index"]:
            return (f"its boots {first} and {boot['index']} are both at plan position "
                    f"{position}: not a shard of this run")
        if position >= len(order):
            return f"{made}, and its boot {boot['index']} is at plan position {position}"
        label, nth = order[position]
        rounds = [shares[nth].start, shares[nth].stop]
        if (boot["kernel"], boot["kernel_boot"], boot["rounds"]) != (label, nth, rounds):
            return (f"its boot {boot['index']} at plan position {position} is kernel "
                    f"{boot['kernel']}'s boot {boot['kernel_boot']} (rounds {boot['rounds'][0]}-"
                    f"{boot['rounds'][1]}), where the plan has kernel {label}'s boot {nth} "
                    f"(rounds {rounds[0]}-{rounds[1]}): "
                    + ("not a shard of this run" if shard else "not the run's boot plan"))
    return None
