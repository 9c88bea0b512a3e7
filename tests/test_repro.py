"""Counts that reproduce: the guest's randomization off and every loop started right after a
timer tick (one boot), the harness epoch and recorded command, the address space as an axis
(`vmas`), and the regeneration script of the shipped results."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from analysis_runs import Runs, faultbench, native_runs, tcg_run
from groups import SWEEP_RUN

from faultbench.measurement.measure import measure_mappers
from faultbench.measurement.rundir.meta_checks import HARNESS_EPOCH, same_harness
from faultbench.measurement.rundir.provenance import git_revision
from faultbench.measurement.spec import Spec, SpecError

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    return native_runs(tmp_path_factory)


@pytest.mark.parametrize("vmas", [200, 2000])
def test_vmas_pads_a_process_mapper_to_exactly_n_mappings(vmas: int) -> None:
    for uffd in ("none", "wp"):
        (sample,) = measure_mappers(Spec(size=1 << 20, uffd=uffd, vmas=vmas).normalized())
        assert sample.status == "ok", sample.error
        assert sample.mappings == vmas


def test_vmas_without_padding_leaves_the_address_space_as_it_comes() -> None:
    (sample,) = measure_mappers(Spec(size=1 << 20).normalized())
    assert sample.spec["vmas"] == 0 and 0 < sample.mappings < 200


def test_vmas_below_what_the_mapper_has_is_unsupported_and_says_how_many() -> None:
    (sample,) = measure_mappers(Spec(size=1 << 20, vmas=3).normalized())
    assert sample.status == "unsupported"
    assert "vmas 3: the mapper already has" in sample.error


def test_vmas_is_refused_for_thread_mappers() -> None:
    with pytest.raises(SpecError, match="thread mappers share the caller's"):
        Spec(size=1 << 20, mapper_kind="thread", vmas=500).normalized()
    result = faultbench("measure", "--size", "1M", "--vmas", "500", "--mapper-kind", "thread",
                        check=False)
    assert result.returncode == 2 and result.stderr.count("\n") == 1


def test_a_sample_counts_the_timer_interrupts_of_its_loop() -> None:
    (sample,) = measure_mappers(Spec(size=1 << 20).normalized())
    if re.search(r"^\s*LOC:", Path("/proc/interrupts").read_text(), re.MULTILINE):
        assert isinstance(sample.ticks, int) and sample.ticks >= 0
    else:
        assert sample.ticks is None and "no LOC" in sample.null_reasons["ticks"]


def test_a_run_records_its_epoch_and_command(runs: Runs) -> None:
    meta = json.loads((runs.tiny / "meta.json").read_text())
    assert meta["harness_epoch"] == HARNESS_EPOCH >= 1
    assert meta["command"][:2] == ["faultbench", "run"]
    assert meta["command"][meta["command"].index("--out") + 1] == "{out}"


def test_compare_refuses_to_mix_epochs_without_force(runs: Runs, tmp_path: Path) -> None:
    older = tmp_path / "older"
    older.mkdir()
    for name in ("samples.jsonl", "meta.json"):
        (older / name).write_bytes((runs.tiny2 / name).read_bytes())
    meta = json.loads((older / "meta.json").read_text())
    del meta["harness_epoch"]  # a run from before the field: epoch 0
    (older / "meta.json").write_text(json.dumps(meta))
    refused = faultbench("compare", older, runs.tiny, check=False)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert f"harness epoch 0 and NEW at {HARNESS_EPOCH}" in refused.stderr
    assert faultbench("compare", older, runs.tiny, "--force").returncode == 0
    meta["harness_epoch"] = "1"
    (older / "meta.json").write_text(json.dumps(meta))
    bad = faultbench("compare", older, runs.tiny, check=False)
    assert bad.returncode == 2 and "harness_epoch is not" in bad.stderr


def test_reference_results_names_a_command_for_every_shipped_run() -> None:
    listed = subprocess.run([sys.executable, str(ROOT / "scripts" / "reference-results"),
                             "--list"], capture_output=True, text=True, check=True).stdout
    names = [line for line in listed.splitlines() if not line.startswith(" ")]
    # not the user's own runs (results/<UTC time>-<workload>, .gitignore): a new user runs
    # the README's main job in the checkout before its tests
    shipped = sorted(p.name for p in (ROOT / "results").iterdir() if (p / "meta.json").is_file()
                     and not re.fullmatch(r"[0-9]{8}T[0-9]{6}Z-.*", p.name))
    assert sorted(names) == shipped
    for name in shipped:
        meta = json.loads((ROOT / "results" / name / "meta.json").read_text())
        block = listed.split(f"{name}\n", 1)[1]
        run = block.splitlines()[0]
        assert f"faultbench run {meta['workload']['file'].removeprefix('workloads/')}" in run \
            or f"run {meta['workload']['name']} " in run, run


@pytest.fixture(scope="module")
def booted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The booted run the analysis tests share (analysis_runs.tcg_run): an instruction-clock
    fault_around_bytes sweep of a 16M memfd."""
    return tcg_run(tmp_path_factory)


@SWEEP_RUN
def test_guest_boots_without_randomization_and_records_it(booted: Path) -> None:
    meta = json.loads((booted / "meta.json").read_text())
    # the guest's own provenance, collected inside it (meta.json's is the host's)
    boot = json.loads((booted / "boots" / "0.json").read_text())
    cmdline = boot["guest"]["kernel"]["cmdline"].split()
    for param in ("nokaslr", "randomize_kstack_offset=off", "page_alloc.shuffle=0",
                  "norandmaps", "slab_nomerge"):
        assert param in cmdline and param in meta["clock"]["kernel_params"].split()
    assert meta["harness_epoch"] == HARNESS_EPOCH and "--kernel" in meta["command"]


@SWEEP_RUN
def test_guest_loops_start_after_a_tick_and_agree(booted: Path) -> None:
    """A 16M seq loop at fault_around_bytes 64K (~2.4 M instructions) against a 4 ms tick:
    started right after one, no tick lands in it, and every sample of the row counts the
    same instructions to 0.01% (it took 0 or 1 tick before, two values 0.4% apart)."""
    samples = [json.loads(line) for line in (booted / "samples.jsonl").read_text().splitlines()]
    timed = [s for s in samples if s["status"] == "ok" and not s.get("warmup")
             and s["spec"]["pattern"] == "seq" and s["knobs"]["fault_around_bytes"] == 65536]
    assert len(timed) == 6
    assert all(s["ticks"] == 0 for s in timed)
    values = [s["touch_ns"] for s in timed]
    assert (max(values) - min(values)) / min(values) < 1e-4, values


def test_every_shipped_result_counts_what_the_current_harness_counts_on_its_plane() -> None:
    results = Path(__file__).resolve().parent.parent / "results"
    for run in sorted(p for p in results.iterdir() if p.is_dir()):
        meta = json.loads((run / "meta.json").read_text())
        epoch = meta.get("harness_epoch", 0)
        assert same_harness((epoch, HARNESS_EPOCH), {meta["plane"]}), \
            f"{run.name} is harness epoch {epoch} ({meta['plane']}): regenerate it"


def test_an_epoch_is_compared_with_another_only_where_nothing_changed_between() -> None:
    assert same_harness((1, 2), {"native"}) and same_harness((1, 2), {"tcg-guest"})
    assert not same_harness((1, 2), {"tcg-icount"})
    assert not same_harness((0, 2), {"native"})  # epoch 1 changed every plane
    assert same_harness((2, 2), {"tcg-icount"})


def test_a_changed_result_does_not_make_the_code_dirty_and_a_changed_source_does(
        tmp_path: Path) -> None:
    """scripts/reference-results regenerates one run after another in one checkout: the
    later ones recorded `-dirty` though only the earlier ones' results/ had changed."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--local", str(Path(__file__).resolve().parents[1]),
                    str(clone)], check=True)
    head = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    (clone / "results" / "native-quick" / "meta.json").write_text("{}\n")
    assert git_revision(clone) == (head, "")
    with (clone / "faultbench" / "errors.py").open("a") as source:
        source.write("# changed\n")
    assert git_revision(clone) == (f"{head}-dirty", "")
