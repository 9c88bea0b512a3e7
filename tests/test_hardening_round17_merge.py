"""Round seventeen, `merge` and merged runs: shards whose kernels were given in another order
merged, one kernel booted twice and the other never, with nothing left to resume (R17-9); in
a merge of machines every machine showed the last machine's kernel profiles (R17-8); the
report of a merge named only the first part's host and how busy it was (R17-4).
Copies of shipped runs (a booted one split into shards as `run --shard` splits the plan; no
guest is booted), the real commands."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from analysis_runs import faultbench
from test_hardening_round5_merge import _copy as other_machine
from test_hardening_round5_merge import merge_refused

from faultbench.measurement.booted.boot_order import shard_positions

RESULTS = Path(__file__).parents[1] / "results"
AA = RESULTS / "icount-aa"  # kernels a, b; 3 boots each: a b b a a b
Record = dict[str, Any]


def _lines(path: Path) -> list[Record]:
    return [json.loads(line) for line in path.open()] if path.exists() else []


def _write_lines(path: Path, records: list[Record]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def shards(run: Path, to: Path, count: int = 2,
           change: Callable[[int, dict[str, Any], list[Record]], None] | None = None
           ) -> list[Path]:
    """`run` split into `count` shards as `run --shard I/count` of its plan would have
    measured them: each a copy holding its plan positions' boots, numbered from 0, with
    their samples, profiles and boot reports. `change(I, meta, samples)` edits shard I."""
    meta = json.loads((run / "meta.json").read_text())
    samples, profiles = _lines(run / "samples.jsonl"), _lines(run / "profiles.jsonl")
    out = []
    for index in range(1, count + 1):
        shard = to / f"shard-{index}"
        shutil.copytree(run, shard)
        shutil.rmtree(shard / "boots")
        (shard / "boots").mkdir()
        local = {p: k for k, p in enumerate(shard_positions(len(meta["boots"]), index, count))}
        part = {**meta, "boots": [{**meta["boots"][p], "index": k, "plan_index": p}
                                  for p, k in local.items()],
                "shard": {"index": index, "count": count, "plan_boots": len(meta["boots"]),
                          "split": "plan position p goes to shard p mod count + 1"}}
        mine = [{**r, "boot": local[r["boot"]]} for r in samples if r["boot"] in local]
        if change:
            change(index, part, mine)
        _write_lines(shard / "samples.jsonl", mine)
        if profiles:
            _write_lines(shard / "profiles.jsonl", [{**r, "boot": local[r["boot"]]}
                                                    for r in profiles if r["boot"] in local])
        for p, k in local.items():
            shutil.copy(run / "boots" / f"{p}.json", shard / "boots" / f"{k}.json")
        (shard / "meta.json").write_text(json.dumps(part))
        out.append(shard)
    return out


def test_shards_of_a_shipped_run_merge_into_it(tmp_path: Path) -> None:
    """The control: the split above is what merge takes back."""
    faultbench("merge", *shards(AA, tmp_path), "--out", tmp_path / "merged")
    merged = json.loads((tmp_path / "merged" / "meta.json").read_text())
    original = json.loads((AA / "meta.json").read_text())
    assert [(b["kernel"], b["kernel_boot"], b["rounds"]) for b in merged["boots"]] == [
        (b["kernel"], b["kernel_boot"], b["rounds"]) for b in original["boots"]]


def _kernels_reversed(index: int, meta: dict[str, Any], samples: list[Record]) -> None:
    """Shard 2 of a Slurm array task given `--kernel b=... --kernel a=...`: its plan is
    b a a b b a, whose positions 1, 3, 5 are a b a (rounds as each kernel's boot has them)."""
    if index != 2:
        return
    meta["kernels"] = meta["kernels"][::-1]
    booted = {1: ("a", 0, [0, 2]), 3: ("b", 1, [2, 4]), 5: ("a", 2, [4, 6])}
    for boot in meta["boots"]:
        boot["kernel"], boot["kernel_boot"], boot["rounds"] = booted[boot["plan_index"]]
    for record in samples:
        record["kernel"] = booted[meta["boots"][record["boot"]]["plan_index"]][0]


def test_shards_of_kernels_given_in_another_order_are_refused(tmp_path: Path) -> None:
    """R17-9: merged, plan position 1 booted a where the first shard's plan boots b: b's
    boot there was never made, and the merged run was finished."""
    one, two = shards(AA, tmp_path, change=_kernels_reversed)
    assert merge_refused(one, two, out=tmp_path / "merged") == (
        f"faultbench merge: {two} and {one} give the kernels in another order (b, a; a, b), "
        "so their boot plans differ: they are not parts of one run")


def _position_rebooted(index: int, meta: dict[str, Any], samples: list[Record]) -> None:
    """Shard 2's boot at plan position 1 (b's first) recorded as booting a."""
    if index == 2:
        meta["boots"][0]["kernel"] = "a"
        for record in samples:
            if record["boot"] == 0:
                record["kernel"] = "a"


def test_a_shard_booting_another_kernel_than_its_plan_position_is_refused(
        tmp_path: Path) -> None:
    one, two = shards(AA, tmp_path, change=_position_rebooted)
    assert merge_refused(one, two, out=tmp_path / "merged") == (
        f"faultbench merge: {two / 'meta.json'}: its boot 0 at plan position 1 is kernel a's "
        "boot 0 (rounds 0-2), where the plan has kernel b's boot 0 (rounds 0-2): not a shard "
        "of this run")


def _profile_samples(run: Path, *args: str) -> dict[str, int]:
    """Loop samples per row of `report --json`'s profiles."""
    done = faultbench("report", run, "--json", *args)
    return {p["label"]: p["samples"] for p in json.loads(done.stdout)["profiles"]}


def test_each_merged_machine_shows_its_own_profiles(tmp_path: Path) -> None:
    """R17-8: profiles were keyed and joined without `machine`, so the last machine's
    profile of a sample was every machine's. The second machine's profiles here have twice
    the first's loop samples (every count doubled: the same shares)."""
    here = RESULTS / "native-profile"
    there = other_machine(here, tmp_path / "there", "vm2")
    doubled = []
    for record in _lines(there / "profiles.jsonl"):
        for part in ("loop", "munmap"):
            data = record[part]
            for key in ("samples", "unresolved", "user"):
                data[key] *= 2
            data["stacks"] = {stack: 2 * n for stack, n in data["stacks"].items()}
        doubled.append(record)
    _write_lines(there / "profiles.jsonl", doubled)
    fleet = tmp_path / "fleet"
    faultbench("merge", here, there, "--out", fleet)
    alone = _profile_samples(here)
    assert _profile_samples(fleet) == {
        **{f"machine=vm {label}": n for label, n in alone.items()},
        **{f"machine=vm2 {label}": 2 * n for label, n in alone.items()}}
    compared = faultbench("compare", f"{fleet}:vm", f"{fleet}:vm2", "--by", "machine",
                          "--profile").stdout
    first, n = next(iter(alone.items()))
    assert f"{first}: {n:,} vs {2 * n:,} samples" in compared, compared


def test_a_profile_line_whose_machine_is_no_name_is_skipped(tmp_path: Path) -> None:
    """`machine` is now a key of a profile: a list there would be no key (unhashable)."""
    there = other_machine(RESULTS / "native-profile", tmp_path / "there", "vm2")
    fleet = tmp_path / "fleet"
    faultbench("merge", RESULTS / "native-profile", there, "--out", fleet)
    records = _lines(fleet / "profiles.jsonl")
    records[0]["machine"] = ["vm"]
    _write_lines(fleet / "profiles.jsonl", records)
    done = faultbench("report", fleet, "--no-figures", "--out", tmp_path / "out")
    assert "1 line(s) of profiles.jsonl skipped: not a valid profile" in done.stdout


def _report(run: Path, out: Path) -> str:
    """report.txt's text with its lines joined (the report wraps at 72 columns)."""
    return " ".join(faultbench("report", run, "--no-figures", "--out", out).stdout.split())


def _busy_other_host(index: int, meta: dict[str, Any], samples: list[Record]) -> None:
    if index == 2:
        meta["provenance"]["host"]["name"] = "otherhost"
        meta["machine_state"]["load"] = [9.5, 9.0, 9.0]


def test_a_merge_of_shards_names_every_host_and_its_state(tmp_path: Path) -> None:
    """R17-4: the report said "on vm" and vm's load alone; otherhost and its load of 9.5
    were only in meta.json's merged.from."""
    faultbench("merge", *shards(AA, tmp_path, change=_busy_other_host), "--out",
               tmp_path / "merged")
    text = _report(tmp_path / "merged", tmp_path / "out")
    assert "3 boot(s) per kernel on vm, otherhost NOTE:" in text
    load = json.loads((AA / "meta.json").read_text())["machine_state"]["load"][0]
    assert f"At the start of shard 1/2 on vm, machine: load {load:.2f} on 2 CPUs;" in text
    # the instruction clock: no busy-machine warning (the host's load moves no count)
    assert "At the start of shard 2/2 on otherhost, machine: load 9.50 on 2 CPUs;" in text
    done = faultbench("report", tmp_path / "merged", "--json")
    assert json.loads(done.stdout)["host"] == "vm, otherhost"


def test_a_merge_of_machines_says_how_busy_each_was(tmp_path: Path) -> None:
    """A merge of machines named them all, but said nothing of any one's load: each
    machine's line, with its busy-machine warning on the wall clock."""
    there = other_machine(RESULTS / "native-quick", tmp_path / "there", "vm2")
    meta = json.loads((there / "meta.json").read_text())
    meta["machine_state"]["load"] = [9.5, 9.0, 9.0]
    (there / "meta.json").write_text(json.dumps(meta))
    faultbench("merge", RESULTS / "native-quick", there, "--out", tmp_path / "fleet")
    text = _report(tmp_path / "fleet", tmp_path / "out")
    busy = "WARNING: busy enough to bend timings; compare only with runs under a like load."
    assert f"At the start on vm, machine: load 1.63 on 2 CPUs; others used 0.0 CPU. {busy}" \
        in text
    assert f"At the start on vm2, machine: load 9.50 on 2 CPUs; others used 0.0 CPU. {busy}" \
        in text


def test_a_plan_size_its_kernels_cannot_make_is_refused(tmp_path: Path) -> None:
    """R17-9: every shard says 8 boots, where 2 kernels of 3 boots each make 6."""
    one, two = shards(AA, tmp_path, change=lambda i, meta, s: meta["shard"].update(
        plan_boots=8))
    assert merge_refused(one, two, out=tmp_path / "merged") == (
        f"faultbench merge: {one}: its shard is of a plan of 8 boots, and its kernels and "
        "boots per kernel make 6")


PROFILED = RESULTS / "tcg-icount-profile-kernels"  # kernels 6.1, 6.12; 3 boots each


@pytest.mark.parametrize("line", [{"boot": [0]}, {"scenario": "x", "boot": 0, "round": 1}])
def test_a_shard_profile_line_readers_would_skip_is_refused(tmp_path: Path,
                                                           line: Record) -> None:
    """R18-2: merge read profile lines only as JSON objects and renumbered their boots: a
    list there ended in `unhashable type: 'list'`."""
    one, two = shards(PROFILED, tmp_path)
    with (two / "profiles.jsonl").open("a") as fh:
        fh.write(json.dumps(line) + "\n")
    count = len((two / "profiles.jsonl").read_text().splitlines())
    refusal = merge_refused(one, two, out=tmp_path / "merged")
    assert refusal.startswith(f"faultbench merge: {two / 'profiles.jsonl'}: profile {count}: ")
