"""Kernel profiles (--profile): real cpu-clock samples of a real fault loop, resolved
against this kernel's /proc/kallsyms, stored, grouped into phases and refused cleanly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from inprocess import in_process

from faultbench import Spec, load, measure_mappers
from faultbench.analysis.profile import PHASE_NAMES, TEARDOWN, phase_costs, phase_of
from faultbench.analysis.profile_section import section
from faultbench.analysis.report import report_data
from faultbench.measurement.profile import (
    USER,
    Kallsyms,
    ProfileUnavailable,
    top_symbols,
    unavailable,
)
from faultbench.measurement.rundir.results import PROFILES

FAULTBENCH = [sys.executable, "-m", "faultbench"]
NOBODY = 65534
needs_profiles = pytest.mark.skipif(
    os.geteuid() != 0 or unavailable() is not None,
    reason=f"kernel profiles need root here: {unavailable()}")
FAULT_ENTRY = {"exc_page_fault", "handle_mm_fault", "__handle_mm_fault"}
# the fault-around path (6.1: next_uptodate_page; 6.5+: next_uptodate_folio)
FAULT_AROUND = {"filemap_map_pages", "next_uptodate_folio", "next_uptodate_page"}
TINY = """
repetitions = 2
warmups = 0
profile = 1
[defaults]
backing = "memfd"
size = "8M"
[[matrix]]
uffd = ["none", "wp"]
"""


def _frames(part: dict) -> set[str]:
    return {frame for stack in part["stacks"] for frame in stack.split(";")}


@needs_profiles
def test_a_real_sample_names_the_fault_path():
    plain, = measure_mappers(Spec(size=32 << 20), profile=True)
    assert plain.status == "ok", plain.error
    assert plain.profiled and "profile" not in plain.null_reasons
    loop, munmap = plain.profile["loop"], plain.profile["munmap"]
    assert loop["samples"] > 0 and munmap["samples"] > 0
    for part in (loop, munmap):
        # every sample is in exactly one stack, unresolved ones too (as [unknown])
        assert sum(part["stacks"].values()) == part["samples"]
        assert 0 <= part["unresolved"] <= part["samples"]
        assert part["user"] == part["stacks"].get(USER, 0)
    assert _frames(loop) & FAULT_ENTRY, loop["stacks"]
    assert _frames(loop) & FAULT_AROUND, loop["stacks"]
    assert "unmap_page_range" in _frames(munmap) or "zap_pte_range" in _frames(munmap)
    shares = top_symbols(loop, 1000)
    assert sum(share for _, share in shares) == pytest.approx(1.0)


@needs_profiles
def test_without_fault_around_the_lookup_replaces_it():
    wp, = measure_mappers(Spec(size=16 << 20, uffd="wp"), profile=True)
    assert wp.status == "ok", wp.error
    frames = _frames(wp.profile["loop"])
    assert not frames & {"filemap_map_pages"}  # uffd-wp switches fault-around off
    assert frames & {"shmem_fault", "shmem_get_folio_gfp", "filemap_get_entry"}


@needs_profiles
def test_every_mapper_is_profiled_apart():
    samples = measure_mappers(Spec(size=8 << 20, mappers=3), profile=True)
    assert [s.mapper for s in samples] == [0, 1, 2]
    for sample in samples:
        assert sample.status == "ok" and sample.profile["loop"]["samples"] > 0


def test_unprofiled_samples_carry_no_profile():
    sample, = measure_mappers(Spec(size=1 << 20))
    assert not sample.profiled and sample.profile is None


@pytest.fixture(scope="module")
def profiled_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run of TINY, made once for the tests that read it (copied by one that adds
    to it)."""
    where = tmp_path_factory.mktemp("profiled")
    (where / "tiny.toml").write_text(TINY)
    done = subprocess.run([*FAULTBENCH, "run", str(where / "tiny.toml"), "--out",
                           str(where / "run"), "-q"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return where / "run"


@needs_profiles
def test_a_profiled_run_stores_marks_and_reports(profiled_run: Path, tmp_path: Path):
    out = shutil.copytree(profiled_run, tmp_path / "run")
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    profiled = [s for s in samples if s["profiled"]]
    assert len(profiled) == 2 and {s["round"] for s in profiled} == {2}
    assert not any("profile" in s for s in samples)  # the stacks live in profiles.jsonl
    lines = [json.loads(line) for line in (out / PROFILES).read_text().splitlines()]
    assert {(p["scenario"], p["round"]) for p in lines} == \
        {(s["scenario"], s["round"]) for s in profiled}
    df = load(out)
    assert not df.loc[df["profiled"], "ok"].any()  # never in the timing statistics
    costs = {c.label: c for c in phase_costs(df)}
    assert set(costs) == {"uffd=none", "uffd=wp"}
    for c in costs.values():
        assert sum(c.shares.values()) == pytest.approx(1.0)
        assert sum(c.phases[p] for p in PHASE_NAMES) == pytest.approx(c.ns_per_page)
        assert c.phases[TEARDOWN] > 0 and c.rounds == 1
    assert costs["uffd=none"].shares["fault-around"] > 0
    assert costs["uffd=wp"].shares["fault-around"] == 0
    assert costs["uffd=wp"].shares["lookup"] > 0
    assert "Kernel profiles" in section(df)
    assert [p["label"] for p in report_data(out)["profiles"]] == list(costs)
    # another line for a sample: neither is its profile, as of samples.jsonl's lines (R19-5);
    # a line that is not a profile is skipped; both counted
    again = {**lines[0], "loop": {**lines[0]["loop"], "stacks": {USER: 3}, "samples": 3,
                                  "user": 3, "unresolved": 0}}
    with (out / PROFILES).open("a") as fh:
        fh.write(json.dumps(again) + "\n" + '{"scenario": 1}\n')
    label = next(c.label for c in costs.values() if c.scenario == lines[0]["scenario"])
    assert label not in {c.label for c in phase_costs(load(out))}
    assert report_data(out)["profile_coverage"]["skipped_lines"] == 3


@needs_profiles
def test_compare_profile_side_by_side(profiled_run: Path):
    out = profiled_run
    done = in_process("compare", f"{out}:none", f"{out}:wp", "--by", "uffd", "--profile")
    assert done.returncode == 0, done.stderr
    text = done.stdout[done.stdout.index("Kernel profiles"):]
    assert "fault-around" in text and "lookup" in text
    assert max(map(len, text.splitlines())) <= 72


def test_phases_take_the_first_table_entry_on_the_stack():
    fault = "asm_exc_page_fault;exc_page_fault;handle_mm_fault;__handle_mm_fault;do_fault"
    around = f"{fault};filemap_map_pages"
    assert phase_of(f"{around};next_uptodate_folio;xas_load") == "fault-around"
    assert phase_of(f"{around};set_pte_range;folio_add_file_rmap_ptes") == "rmap+memcg"
    assert phase_of(f"{around};pte_alloc_one;__memcg_kmem_charge_page") == "page tables"
    assert phase_of(f"{fault};__do_fault;shmem_fault;shmem_get_folio_gfp;xas_load") == "lookup"
    assert phase_of(f"{fault};finish_fault;set_pte_range") == "entry/exit"
    assert phase_of(f"{fault};asm_sysvec_apic_timer_interrupt;handle_softirqs") == "interrupts"
    assert phase_of(f"{fault};handle_userfault") == "userfaultfd"
    assert phase_of("[unknown];[unknown]") == "other kernel"
    assert phase_of(USER) == "user"
    assert phase_of("exc_page_fault;next_uptodate_page.isra.0") == "entry/exit"


def test_hidden_kallsyms_is_refused_in_one_line(tmp_path: Path):
    hidden = tmp_path / "kallsyms"
    hidden.write_text("0000000000000000 T _stext\n0000000000000000 t exc_page_fault\n")
    with pytest.raises(ProfileUnavailable, match="hides kernel addresses"):
        Kallsyms.load(str(hidden))


def test_kallsyms_names_addresses_and_counts_what_it_cannot(tmp_path: Path):
    table = tmp_path / "kallsyms"
    table.write_text("ffffffff81000000 T _stext\nffffffff81000100 t exc_page_fault\n"
                     "garbage line\nffffffff81000200 d some_data\n"
                     "ffffffffc0000000 t foo_fault\t[foo]\n")
    symbols = Kallsyms.load(str(table))
    assert symbols.name(0xFFFFFFFF81000150) == "exc_page_fault"
    assert symbols.name(0xFFFFFFFFC0000010) == "foo_fault [foo]"
    assert symbols.name(0xFFFFFFFF80000000) == "[unknown]"
    assert symbols.name(0xFFFFFFFFC1000000) == "[unknown]"  # far past the last symbol


def _as_nobody(argv: list[str]) -> tuple[int, str, str]:
    """`faultbench ARGV` in a forked child that dropped root for nobody (and with it every
    capability), run in-process: this python is not executable by nobody."""
    from faultbench import cli

    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 70
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.chdir("/")
            sys.stdout = os.fdopen(out_w, "w")  # pytest captures the parent's sys.stdout
            sys.stderr = os.fdopen(err_w, "w")
            code = cli.main(argv)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    os.close(out_w)
    os.close(err_w)
    with os.fdopen(out_r) as out, os.fdopen(err_r) as err:
        stdout, stderr = out.read(), err.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), stdout, stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="switches to nobody")
def test_a_user_the_kernel_forbids_gets_one_line_and_unprofiled_samples():
    paranoid = int(Path("/proc/sys/kernel/perf_event_paranoid").read_text())
    if paranoid < 2:
        pytest.skip("perf_event_paranoid < 2 lets nobody profile the kernel")
    code, stdout, stderr = _as_nobody(["measure", "--profile", "--size", "1M", "--warmups",
                                       "0"])
    assert code == 0, stderr
    assert "Traceback" not in stderr
    line, = stderr.strip().splitlines()
    assert line.startswith("faultbench measure: no kernel profiles: perf_event_open")
    assert "profiled" not in stdout and "ns/page" in stdout


def test_the_documented_phase_table_is_the_code_s():
    from faultbench.analysis.profile import PHASES

    doc = (Path(__file__).resolve().parent.parent / "docs" / "results.md").read_text()
    for phase in PHASES:
        functions = ", ".join(f"`{f}`" for f in phase.functions)
        assert f"| {phase.name} | {functions} | {phase.meaning} |" in doc, phase.name
