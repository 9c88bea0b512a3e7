"""Round five, `faultbench merge` and names printed: a part whose samples.jsonl holds a sample
twice, or lacks samples although finished, is refused in one line (merged, it would look
complete); machine names that differ only in case or spaces are refused as ambiguous; the
--out name and a journal path are printed with control characters escaped, newlines too.
The second machine's run is this machine's with its host name rewritten in a copy (faultbench
offers no way to claim another machine name). Shards: tests/test_scale.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from analysis_runs import make_run, measured_again
from console import one_line
from test_hardening_round4_input import SMALL, fb


@pytest.fixture(scope="module")
def native_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("native"), "here", SMALL)


def _copy(src: Path, dst: Path, host: str = "other-machine") -> Path:
    measured_again(src, dst)  # a plain copy is the same samples, which merge refuses
    meta = json.loads((dst / "meta.json").read_text())
    meta["provenance"]["host"]["name"] = host
    (dst / "meta.json").write_text(json.dumps(meta))
    return dst


def merge_refused(*parts: Path, out: Path) -> str:
    """The one line `merge PARTS --out OUT` is refused with; OUT was not made."""
    done = fb("merge", *parts, "--out", out)
    assert done.returncode == 2, done.stdout
    assert not out.exists()
    return one_line(done.stderr)


def test_a_part_with_a_sample_twice_is_refused(native_run: Path, tmp_path: Path) -> None:
    other = _copy(native_run, tmp_path / "there")
    lines = (other / "samples.jsonl").read_text()
    (other / "samples.jsonl").write_text(lines + lines)
    done = fb("merge", native_run, other, "--out", tmp_path / "out")
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert f"{other}/samples.jsonl:{lines.count(chr(10)) + 1}: the sample of line 1 again" \
        in line and "an exact copy" in line, line
    assert not (tmp_path / "out").exists()


def test_a_finished_part_lacking_samples_is_refused(native_run: Path, tmp_path: Path) -> None:
    other = _copy(native_run, tmp_path / "there")
    first = (other / "samples.jsonl").read_text().splitlines()[0]
    (other / "samples.jsonl").write_text(first + "\n")
    done = fb("merge", native_run, other, "--out", tmp_path / "out")
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert line.startswith(f"faultbench merge: {other}: lacks the samples of 11 "
                           "measurement(s) (first: scenario "), line
    assert "samples.jsonl was cut short or edited" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("host", ["VM", "vm "])
def test_machine_names_that_differ_only_in_case_or_spaces_are_ambiguous(
        native_run: Path, tmp_path: Path, host: str) -> None:
    one = _copy(native_run, tmp_path / "one", "vm")
    two = _copy(one, tmp_path / "two", host)  # measured apart from `one` too
    done = fb("merge", one, two, "--out", tmp_path / "out")
    assert done.returncode == 2
    assert one_line(done.stderr) == (
        f"faultbench merge: {two} is from machine {host!r} and {one} from 'vm': names that "
        "differ only in case or spaces are ambiguous; merge runs whose host names differ "
        "otherwise")


def test_merge_prints_its_out_name_escaped(native_run: Path, tmp_path: Path) -> None:
    other = _copy(native_run, tmp_path / "there")
    out = tmp_path / "\x1b]0;T\a\x1b[31mRED\nz"
    done = fb("merge", native_run, other, "--out", out)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\a" not in done.stdout
    assert done.stdout.count("\n") == 1
    assert f"into {tmp_path}/\\x1b]0;T\\x07\\x1b[31mRED\\nz/ (" in done.stdout


def test_restore_prints_a_journal_path_with_a_newline_escaped(tmp_path: Path) -> None:
    journal = f"{tmp_path}/a\nb\tc\x1b.json"
    done = fb("restore", "--journal", journal)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith(f"(no journal at {tmp_path}/a\\nb\\tc\\x1b.json)\n")
    assert done.stdout.count("\n") == 1
