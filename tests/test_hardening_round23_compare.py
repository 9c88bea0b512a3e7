"""Round twenty-three, compare. R23-1: `compare --profile` left out the rows whose profile
lines were missing or invalid on a side without a word, where report notes them. R23-2: a
run still running or interrupted was compared as if finished. R23-8: a copy of a run with
every mmap_ns (a time no table shows) edited was compared and merged as a second run, and a
booted copy whose samples are byte-identical, with only its boots' records edited, was
compared as independent without a note. Copies of shipped runs and the real commands."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from analysis_runs import faultbench, measured_again
from console import one_line

RESULTS = Path(__file__).parents[1] / "results"
QUICK, PROFILED, ICOUNT = (RESULTS / name for name in ("native-quick", "native-profile",
                                                       "icount-aa"))


def _edit_meta(run: Path, **fields: object) -> None:
    meta = json.loads((run / "meta.json").read_text())
    meta.update(fields)
    (run / "meta.json").write_text(json.dumps(meta))


def test_compare_profile_names_rows_and_lines_it_leaves_out(tmp_path: Path) -> None:
    cut = shutil.copytree(PROFILED, tmp_path / "cut")
    lines = (cut / "profiles.jsonl").read_text().splitlines(keepends=True)
    gone = json.loads(lines[0])["scenario"]  # every profile of this scenario removed
    kept = [line for line in lines if json.loads(line)["scenario"] != gone]
    (cut / "profiles.jsonl").write_text("".join(kept[:-1]) + kept[-1][:len(kept[-1]) // 2])
    out = " ".join(faultbench("compare", cut, measured_again(PROFILED, tmp_path / "again"),
                              "--profile").stdout.split())
    assert "NOTE: not compared, profiles on the new side (" in out, out
    assert "NOTE, base side (" in out and "1 line(s) of profiles.jsonl skipped" in out
    assert "profiled sample(s) have no kernel profile" in out


def test_compare_profile_of_one_run_says_its_skipped_lines_once(tmp_path: Path) -> None:
    run = shutil.copytree(PROFILED, tmp_path / "run")
    with (run / "profiles.jsonl").open("a") as fh:
        fh.write('{"scenario": 1}\n')  # not a profile
    out = faultbench("compare", f"{run}:none", f"{run}:wp", "--by", "uffd",
                     "--profile").stdout
    assert " ".join(out.split()).count("1 line(s) of profiles.jsonl skipped") == 1, out
    assert "match no profiled sample" not in out  # the other side's lines are no loss


def test_compare_says_a_side_has_not_finished(tmp_path: Path) -> None:
    run = shutil.copytree(QUICK, tmp_path / "running")
    _edit_meta(run, finished_utc=None)  # what an interrupted or still running run has
    finished = measured_again(QUICK, tmp_path / "finished")
    out = faultbench("compare", run, finished).stdout
    assert "BASE: the run has not finished" in out and "NEW: the run has not" not in out
    done = json.loads(faultbench("compare", run, finished, "--format", "json").stdout)
    assert done["unfinished"] == ["BASE"] and "BASE: the run has not finished" in done["footer"]
    done = json.loads(faultbench("compare", QUICK, finished,
                                 "--format", "json").stdout)
    assert done["unfinished"] == []


def test_a_copy_with_every_mmap_time_edited_is_the_same_samples(tmp_path: Path) -> None:
    copy = shutil.copytree(QUICK, tmp_path / "copy")
    records = [json.loads(line) for line in (QUICK / "samples.jsonl").open()]
    (copy / "samples.jsonl").write_text("".join(
        json.dumps({**r, "mmap_ns": r["mmap_ns"] + 1 if isinstance(r["mmap_ns"], int)
                    else r["mmap_ns"]}) + "\n" for r in records))
    refused = faultbench("compare", QUICK, copy, check=False)
    assert refused.returncode == 2 and "are the same samples" in one_line(refused.stderr)
    meta = json.loads((copy / "meta.json").read_text())
    meta["provenance"]["host"]["name"] = "vm2"
    (copy / "meta.json").write_text(json.dumps(meta))
    merged = faultbench("merge", "--out", tmp_path / "m", QUICK, copy, check=False)
    assert merged.returncode == 2 and "measured" in one_line(merged.stderr)


def test_a_booted_copy_with_its_boot_records_edited_gets_a_note(tmp_path: Path) -> None:
    copy = shutil.copytree(ICOUNT, tmp_path / "copy")
    meta = json.loads((copy / "meta.json").read_text())
    for boot in meta["boots"]:
        boot["started_utc"] = boot["started_utc"][:-3] + "59Z"
    (copy / "meta.json").write_text(json.dumps(meta))
    out = faultbench("compare", ICOUNT, copy).stdout
    assert "NOTE: every measured sample of BASE has the times of NEW's" in " ".join(out.split())
    # two kernels of one run, measured in their own boots, count apart: no note
    assert "every measured sample" not in faultbench("compare", ICOUNT, "--by", "kernel").stdout
