"""Round nineteen, profiles.jsonl. R19-1: a stack had no bound on its frames, and report
classified each frame of each stack in Python: one line holding a stack of 30M frames (60 MB)
took two minutes. A stack of more frames than faultbench's profiler asks perf for is now not
a valid profile, and each distinct stack and function is classified once. R19-5: of two
different lines for one sample the later silently won; both are now skipped and counted, as
samples.jsonl's are, and the note on lines matching no sample counts lines, not samples.
Copies of the shipped native-profile run (50 profiled samples, a line each), edited as anyone
can edit a run directory."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from test_hardening_round4_input import fb
from test_hardening_round11 import _words

from faultbench import load
from faultbench.analysis import profile
from faultbench.analysis.profile import phase_costs, read_profiles
from faultbench.measurement.rundir.checks import MAX_PROFILE_FRAMES, profile_problem

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "results" / "native-profile"
PROFILED = 50


def _profiles(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "profiles.jsonl").read_text().splitlines()]


def _with_profiles(to: Path, lines: list[dict]) -> Path:
    shutil.copytree(RUN, to)
    (to / "profiles.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return to


def _coverage(run: Path) -> dict:
    done = fb("report", "--json", run)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["profile_coverage"]


def _one_stack(line: dict, frames: int) -> dict:
    """`line` with its loop's samples all on one stack of `frames` frames."""
    stack = ";".join(["asm_exc_page_fault", *["x"] * (frames - 2), "filemap_map_pages"])
    return {**line, "loop": {**line["loop"], "stacks": {stack: line["loop"]["samples"]}}}


def test_the_frame_cap_is_what_the_profiler_asks_perf_for() -> None:
    """R19-1: native/profile.c's sample_max_stack bounds every stack fold() makes."""
    source = (ROOT / "native" / "profile.c").read_text()
    asked = re.search(r"#define FB_PROFILE_MAX_STACK (\d+)", source)
    assert asked and int(asked.group(1)) == MAX_PROFILE_FRAMES


def test_a_stack_of_more_frames_than_perf_records_is_not_a_profile() -> None:
    line = _profiles(RUN)[0]
    assert profile_problem(_one_stack(line, MAX_PROFILE_FRAMES)) is None
    assert profile_problem(_one_stack(line, MAX_PROFILE_FRAMES + 1)) == (
        f"loop: a stack of more than the {MAX_PROFILE_FRAMES} frames faultbench records")


def test_report_skips_and_counts_a_line_of_a_long_stack(tmp_path: Path) -> None:
    """R19-1: as the repro's, one stack of many frames (100,000 here) in the first line."""
    lines = _profiles(RUN)
    run = _with_profiles(tmp_path / "long", [_one_stack(lines[0], 100_000), *lines[1:]])
    done = fb("report", "--no-figures", "--out", tmp_path / "out", run)
    assert done.returncode == 0, done.stderr
    words = _words(done.stdout)
    assert "1 line(s) of profiles.jsonl skipped: not a valid profile" in words
    assert f"NOTE: 1 of {PROFILED} profiled sample(s) have no kernel profile" in words


def test_each_distinct_stack_is_classified_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """R19-1: a loop stack recurs in every round's profile of a row; its phase is found once,
    by stack_frame, and phase_costs (profile_check's per round too) finds none again."""
    calls: list[str] = []
    real = profile.phase_of
    monkeypatch.setattr(profile, "phase_of", lambda stack: calls.append(stack) or real(stack))
    df = load(RUN)
    stacks = profile.stack_frame(df)
    loop = stacks[stacks["part"] == "loop"]
    assert sorted(calls) == sorted(set(loop["stack"])) and len(calls) < len(loop)
    assert phase_costs(df, stacks) and len(calls) == len(set(loop["stack"]))


def _differing(line: dict) -> dict:
    """Another profile of `line`'s sample: all its loop samples in do_page_mkwrite."""
    return {**line, "loop": {**line["loop"], "stacks": {"a;b;do_page_mkwrite":
                                                        line["loop"]["samples"]}}}


@pytest.mark.parametrize("planted_first", [False, True])
def test_two_different_profiles_of_one_sample_are_both_skipped(
        tmp_path: Path, planted_first: bool) -> None:
    """R19-5: whichever comes first, neither is the sample's; both lines are counted."""
    lines = _profiles(RUN)
    other = _differing(lines[0])
    run = _with_profiles(tmp_path / "two",
                         [other, *lines] if planted_first else [*lines, other])
    records, bad = read_profiles(run, json.loads((run / "meta.json").read_text()))
    assert (records, bad) == (lines[1:], 2)
    coverage = _coverage(run)
    assert (coverage["without_profile"], coverage["skipped_lines"]) == (1, 2)
    done = fb("report", "--no-figures", "--out", tmp_path / "out", run)
    assert done.returncode == 0, done.stderr
    assert "do_page_mkwrite" not in done.stdout
    assert "2 line(s) of profiles.jsonl skipped" in _words(done.stdout)


def test_a_copy_of_a_differing_line_goes_too(tmp_path: Path) -> None:
    """R19-5: line 1, a line that differs, then line 1 again: all three are left out."""
    lines = _profiles(RUN)
    run = _with_profiles(tmp_path / "three", [*lines, _differing(lines[0]), lines[0]])
    records, bad = read_profiles(run, json.loads((run / "meta.json").read_text()))
    assert (records, bad) == (lines[1:], 3)


def test_exact_copies_are_one_profile(tmp_path: Path) -> None:
    """R19-5: every line twice: the same coverage as the run's own (no note)."""
    lines = _profiles(RUN)
    run = _with_profiles(tmp_path / "copies", [*lines, *lines])
    assert _coverage(run) == _coverage(RUN)
    assert _coverage(RUN)["without_profile"] == 0


def test_lines_matching_no_sample_are_counted_as_lines(tmp_path: Path) -> None:
    """R19-5: 50 lines matching no sample, each twice, are 100 lines, not 50 samples."""
    lines = [{**line, "boot": 0} for line in _profiles(RUN)]
    run = _with_profiles(tmp_path / "twice", [*lines, *lines])
    assert _coverage(run)["unmatched_lines"] == 2 * PROFILED
    done = fb("report", "--no-figures", "--out", tmp_path / "out", run)
    assert done.returncode == 0, done.stderr
    assert (f"{2 * PROFILED} valid line(s) of profiles.jsonl match no profiled sample"
            in _words(done.stdout))


@pytest.mark.parametrize(("stack", "phase"), [
    ("a;find_vma [kvm];b", "VMA lookup"), ("a;find_vma.isra.0", "VMA lookup"),
    ("find_vma_prev", "VMA lookup"), ("a;find_vmax;xfind_vma", "other kernel"),
    ("uffd_x.constprop.0;filemap_map_pages", "userfaultfd"), ("a;uffd", "other kernel"),
    ("filemap_map_pages;sysvec_apic_timer_interrupt", "interrupts"), ("", "other kernel"),
])
def test_a_frame_is_named_by_its_function_before_any_suffix(stack: str, phase: str) -> None:
    """R19-1: phase_of finds the functions of a stack in one pass; what it names is unchanged:
    a function (less `.isra.0`, ` [module]`) or a prefix, the first phase that names one."""
    assert profile.phase_of(stack) == phase


def test_no_function_a_phase_names_is_also_a_prefix() -> None:
    """phase_of's pattern gives the text it matched: one that were a function of one phase
    and a prefix of another would not say which."""
    names = {f for p in profile.PHASES for f in p.functions if not f.endswith("*")}
    assert not names & {f[:-1] for p in profile.PHASES for f in p.functions if f.endswith("*")}
