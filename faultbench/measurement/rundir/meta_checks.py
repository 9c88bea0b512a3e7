"""meta.json checked as untrusted input: check_meta, the one place every reader of meta.json
goes through, and its provenance, kernels, boots and merged parts. Standard library only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from faultbench.measurement.booted.boot_order import plan_problem
from faultbench.measurement.booted.memsize import guest_size
from faultbench.measurement.rundir.checks import UTS_MAX_BYTES, short
from faultbench.measurement.rundir.safefile import ResultsError
from faultbench.measurement.spec import MAX_SEED, PLANES, Spec, SpecError, parse_size
from faultbench.measurement.workload import MAX_MEASUREMENTS, MAX_PROFILE_ROUNDS

FORMAT = "faultbench-run/1"

BOOT_STATUSES = ("pending", "running", "ok", "failed", "interrupted")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _int(value: Any, low: int, high: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and low <= value <= high


def meta_problem(meta: dict[str, Any], repetitions: int) -> str | None:
    """What is wrong with meta.json's provenance, epoch, command, kernels or boots."""
    return (provenance_problem(meta) or epoch_problem(meta) or merged_problem(meta)
            or booted_problem(meta, repetitions))


def merged_problem(meta: dict[str, Any]) -> str | None:
    """Why a merged run's `merged` record (merge.py: its kind and the parts it came from) is
    not one, or None (a run not merged has none). A part's machine names its samples'
    machine, a key every reader groups by. The report names every part (its host, how busy
    it was), so the parts are as many as merge can have written: each shard of the plan
    once, or each machine once (that each is a machine of the samples, identity checks)."""
    if "merged" not in meta:
        return None
    merged = meta["merged"]
    if not (isinstance(merged, dict) and merged.get("kind") in ("shards", "machines")
            and isinstance(merged.get("from"), list)):
        return "merged is not {kind: shards or machines, from: [parts]}"
    for index, part in enumerate(merged["from"]):
        if not (isinstance(part, dict) and isinstance(part.get("machine"), str | None)):
            return f"merged.from[{index}] is not a part whose machine is a name or null"
        name = part["machine"] or ""
        if len(name.encode("utf-8", "surrogatepass")) > UTS_MAX_BYTES:
            return f"merged.from[{index}]'s machine is longer than uname's {UTS_MAX_BYTES} bytes"
    if merged["kind"] == "shards":
        return _shards_problem(merged["from"], len(meta.get("boots", [])))
    machines: dict[str, int] = {}
    for index, part in enumerate(merged["from"]):
        if not part["machine"] or part.get("shard") is not None:
            return f"merged.from[{index}] is a shard or no machine in a merge of machines"
        if (first := machines.setdefault(part["machine"], index)) != index:
            return f"merged.from[{index}] is the machine of merged.from[{first}] again"
    return None


def _shards_problem(parts: list[dict[str, Any]], boots: int) -> str | None:
    """Why the parts of a merge of shards are not shards I/N of one N, each I once, of the
    plan of the run's `boots`, or None."""
    count, indices = None, set()
    for index, part in enumerate(parts):
        shard = part.get("shard")
        if not (isinstance(shard, dict) and _int(shard.get("plan_boots"), boots, boots)
                and _int(shard.get("count"), 1, boots)
                and _int(shard.get("index"), 1, shard["count"])):
            return (f"merged.from[{index}] is not a shard I/N of the plan of its {boots} "
                    "boots in a merge of shards")
        count = count or shard["count"]
        if shard["count"] != count:
            return (f"merged.from[{index}] is a shard of {shard['count']} and merged.from[0] "
                    f"one of {count}: not shards of one split")
        if shard["index"] in indices:
            return f"merged.from[{index}] is shard {shard['index']}/{count} again"
        indices.add(shard["index"])
    return None


def provenance_problem(meta: dict[str, Any]) -> str | None:
    """Why meta.json's provenance is not one, or None (it may be absent)."""
    provenance = meta.get("provenance", {})
    if not isinstance(provenance, dict):
        return "provenance is not an object"
    for part, key in (("kernel", "release"), ("host", "name")):
        value = provenance.get(part, {})
        if not isinstance(value, dict):
            return f"provenance.{part} is not an object"
        if not isinstance(value.get(key), str | None):
            return f"provenance.{part}.{key} is not a string"
    # where `faultbench run` ran: a native run's samples were measured there, a booted
    # run's in its guests (meta.json `plane`), on a host of any plane
    plane = provenance.get("plane")
    if plane is not None and (plane not in PLANES or (not meta.get("kernels")
                                                      and plane != meta.get("plane"))):
        return (f"provenance.plane is {short(plane)}, not where the run's samples say it "
                f"ran (plane {short(meta.get('plane'))})")
    return None


def epoch_problem(meta: dict[str, Any]) -> str | None:
    """Why meta.json's harness_epoch and command are not ones, or None (absent: before them)."""
    if not _int(meta.get("harness_epoch", 0), 0, 10**6):
        return "harness_epoch is not a small non-negative integer"
    command = meta.get("command", [])
    if not isinstance(command, list) or not all(isinstance(a, str) for a in command):
        return "command is not a list of strings"
    return None


# What a sample counts, as the harness makes it: bumped whenever the harness changes that
# (the mapper program, the mapping's alignment, the mapper's environment, a guest's command
# line, where the loop starts against the tick, what may run beside it). compare refuses to
# mix epochs; runs from before the field are epoch 0. The history is in docs/results.md
# ("Harness epochs").
HARNESS_EPOCH = 3
# The planes whose samples each epoch changed (None: every plane). Epochs between which a
# plane's samples did not change count the same there: a native run of epoch 1 is current.
EPOCH_PLANES: dict[int, frozenset[str] | None] = {
    1: None, 2: frozenset({"tcg-icount"}), 3: frozenset({"tcg-icount", "tcg-guest", "kvm-guest"})}


def harness_epoch(meta: dict[str, Any]) -> int:
    return meta.get("harness_epoch", 0)


def same_harness(epochs: tuple[int, int], planes: set[str]) -> bool:
    """Whether samples of these epochs, on these planes, count the same things."""
    low, high = sorted(epochs)
    return all(EPOCH_PLANES.get(epoch) is not None and not EPOCH_PLANES[epoch] & planes
               for epoch in range(low + 1, high + 1))


def epoch_mismatch(base: dict[str, Any], new: dict[str, Any]) -> str | None:
    """compare's one line when two runs' samples count different things, or None."""
    epochs = harness_epoch(base), harness_epoch(new)
    if same_harness(epochs, {str(base.get("plane")), str(new.get("plane"))}):
        return None
    return (f"BASE was measured at harness epoch {epochs[0]} and NEW at {epochs[1]}: the "
            "harness changed what a sample counts in between (docs/results.md, harness "
            "epochs; --force compares anyway)")


def booted_problem(meta: dict[str, Any], repetitions: int) -> str | None:
    """Why a booted run's kernels and boots cannot be resumed or reported, or None.
    `kernels` and `boots` are lists of objects already (check_meta saw to that)."""
    kernels, boots = meta.get("kernels", []), meta.get("boots", [])
    labels = set()
    for index, kernel in enumerate(kernels):
        if not isinstance(kernel.get("label"), str) or not kernel["label"] \
                or kernel["label"] in labels:
            return f"kernels[{index}] has no label of its own"
        labels.add(kernel["label"])
        if not isinstance(kernel.get("image"), str) or not kernel["image"]:
            return f"kernels[{index}] has no image path"
        if not isinstance(kernel.get("sha256"), str) or not _SHA256.fullmatch(kernel["sha256"]):
            return f"kernels[{index}] has no sha256 (64 hex digits)"
        # present, as every run writes them: a sample's release tag is checked against it
        if not all(k in kernel and isinstance(kernel[k], str | None) for k in ("release", "tree")):
            return f"kernels[{index}]: release and tree must be strings or null"
    if bool(kernels) != bool(boots):
        return "kernels and boots go together (a booted run has both)"
    problem = shard_problem(meta)
    if problem:
        return problem
    plan_boots = meta["shard"]["plan_boots"] if "shard" in meta else len(boots)
    if kernels and not _int(meta.get("boots_per_kernel"), 1, plan_boots):
        return "boots_per_kernel is not a count of boots"
    for index, boot in enumerate(boots):
        rounds = boot.get("rounds")
        if not (boot.get("index") == index and _int(boot.get("index"), 0, len(boots))):
            return f"boots[{index}] has index {boot.get('index')!r}, not {index}"
        if not isinstance(boot.get("kernel"), str):
            return f"boots[{index}]: kernel must be a string (a label of kernels)"
        if boot.get("kernel") not in labels:
            return f"boots[{index}] names no kernel of kernels"
        if boot.get("status") not in BOOT_STATUSES:
            return f"boots[{index}]: status is not one of {', '.join(BOOT_STATUSES)}"
        if meta.get("finished_utc") and boot["status"] != "ok":
            # no run writes it, and the report would show the run as done, pooling the
            # samples of a boot that never finished
            return (f"boots[{index}] is {boot['status']}, and finished_utc says the run "
                    "finished (a run finishes when every boot is ok)")
        if not (_int(boot.get("kernel_boot"), 0, len(boots)) and _int(boot.get("attempts"),
                                                                      0, 10**6)):
            return f"boots[{index}]: kernel_boot and attempts must be counts"
        if not (isinstance(rounds, list) and len(rounds) == 2
                and all(_int(r, 0, repetitions) for r in rounds) and rounds[0] <= rounds[1]):
            return f"boots[{index}]: rounds is not [first, stop] of the {repetitions} rounds"
        if "plan_index" in boot and not _int(boot["plan_index"], 0, plan_boots - 1):
            return f"boots[{index}]: plan_index is not a position in the plan"
        if not all(isinstance(boot.get(k), str | None)
                   for k in ("reason", "started_utc", "finished_utc")):
            return f"boots[{index}]: reason and times must be strings or null"
    return plan_problem(meta, repetitions) if kernels else None



def shard_problem(meta: dict[str, Any]) -> str | None:
    """Why a shard's `shard` record (run --shard I/N) is not one, or None (none is fine)."""
    if "shard" not in meta:
        return None
    shard = meta["shard"]
    if not (isinstance(shard, dict) and _int(shard.get("count"), 1, 10**6)
            and _int(shard.get("index"), 1, shard["count"])
            and _int(shard.get("plan_boots"), shard["count"], 10**6)):
        return "shard is not {index, count, plan_boots} with 1 <= index <= count <= plan_boots"
    if not all("plan_index" in boot for boot in meta.get("boots", [])):
        return "a shard's boots must each say their plan_index"
    return None


_UTC = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z", re.ASCII)  # utc_now


def check_meta(meta: Any, path: Path) -> dict[str, Any]:
    """meta.json's content, validated as untrusted input: what resuming, reporting and
    comparing read from it has the type and range they rely on (ResultsError otherwise)."""
    def refuse(problem: str) -> ResultsError:
        return ResultsError(f"{path}: {problem}")

    if not isinstance(meta, dict):
        raise refuse(f"not a faultbench meta.json (a JSON {type(meta).__name__}, not an object)")
    if meta.get("format") != FORMAT:
        raise refuse(f"format {short(meta.get('format'))}, expected {FORMAT!r} (written by "
                     "another faultbench version, or not by faultbench)")
    workload = meta.get("workload")
    if not isinstance(workload, dict):
        raise refuse("workload is not an object")
    for key, low, high in (("repetitions", 1, MAX_MEASUREMENTS), ("warmups", 0, MAX_MEASUREMENTS),
                           ("seed", 0, MAX_SEED), ("profile", 0, MAX_PROFILE_ROUNDS)):
        value = workload.get(key, 0 if key == "profile" else None)  # runs from before it
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise refuse(f"workload.{key} is {short(value)}, not an integer from {low} to "
                         f"{high}")
    for key in ("name", "plane"):
        value = workload.get(key) if key == "name" else meta.get(key)
        if not isinstance(value, str):
            raise refuse(f"{key} is {short(value)}, not a string")
    scenarios = meta.get("scenarios")
    if not isinstance(scenarios, list) or not scenarios:
        raise refuse("scenarios is not a non-empty list")
    rounds = workload["warmups"] + workload["repetitions"] + workload.get("profile", 0)
    if len(scenarios) * rounds > MAX_MEASUREMENTS:
        raise refuse(f"{len(scenarios):,} scenarios x {rounds:,} rounds are more than the "
                     f"{MAX_MEASUREMENTS:,} measurements a run may make")
    names = set()
    settings: dict[tuple[Spec, frozenset[tuple[str, str]]], str] = {}
    for index, scenario in enumerate(scenarios):
        if not (isinstance(scenario, dict) and isinstance(scenario.get("name"), str)
                and isinstance(scenario.get("knobs"), dict)):
            raise refuse(f"scenarios[{index}] is not an object with a name, spec and knobs")
        try:
            spec = Spec.from_dict(scenario.get("spec")).normalized()
        except SpecError as exc:
            raise refuse(f"scenario {scenario['name']}: {exc}") from None
        if scenario["name"] in names:
            raise refuse(f"scenario {scenario['name']} is listed twice")
        names.add(scenario["name"])
        # the analysis makes a row of a spec and knob values ("60" and 60 one value): two
        # scenarios of one would be pooled into it, the other's name gone
        setting = spec, frozenset((k, str(v)) for k, v in scenario["knobs"].items())
        if (other := settings.setdefault(setting, scenario["name"])) != scenario["name"]:
            raise refuse(f"scenarios {other} and {scenario['name']} have one spec and knobs: "
                         "their samples would be one row")
    for key in ("skipped", "kernels", "boots"):
        value = meta.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise refuse(f"{key} is not a list of objects")
    if not all(isinstance(s.get("scenario"), str) for s in meta.get("skipped", [])):
        raise refuse("skipped has an entry without a scenario name")
    if not all(isinstance(s.get("reason"), str) for s in meta.get("skipped", [])):
        raise refuse("skipped has an entry without a reason (text)")
    for key in ("started_utc", "finished_utc"):  # merge orders runs made elsewhere by them
        value = meta.get(key)
        if value is not None and not (isinstance(value, str) and _UTC.fullmatch(value)):
            raise refuse(f"{key} is not a time (YYYY-MM-DDTHH:MM:SSZ) or null")
    problem = meta_problem(meta, workload["repetitions"])
    if problem:
        raise refuse(problem)
    memory = meta.get("guest_memory")
    if memory is not None:
        if not _is_size(memory):
            raise refuse(f"guest_memory is {short(memory)}, not a size such as '512M'")
        try:  # what a resume boots with: a size no guest boots with fails every boot again
            guest_size(memory)
        except SpecError as exc:
            raise refuse(f"guest_memory: {exc}") from None
    return meta


def _is_size(value: Any) -> bool:
    try:
        return isinstance(value, str) and parse_size(value) > 0
    except SpecError:
        return False
