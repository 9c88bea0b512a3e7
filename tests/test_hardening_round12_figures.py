"""Round twelve, figures: the break-even figures of two groups whose names differ only in
characters a file name does not keep overwrote each other (R12-7); a group of a long, valid
directory name made a figure name past NAME_MAX and failed the report (R12-8); text from
another user's run reached matplotlib raw, which warned with its control characters on root's
terminal, or (a "$") parsed it as mathtext and ended the report in a traceback (R12-11); and
merge took a 5000-character host name as a machine's. Real native runs through the CLI."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from analysis_runs import faultbench
from console import one_line
from test_hardening_round3_input import shm_dir
from test_hardening_round5_merge import _copy

from faultbench.analysis.figure_text import DRAWN, figure_names

BREAK_EVEN = """\
description = "groups"
repetitions = 2
warmups = 0
seed = 1
[defaults]
backing = "tmpfs"
size = "1M"
[[matrix]]
dir = {dirs}
pattern = ["stride:1", "stride:4", "stride:16"]
uffd = ["none", "wp"]
"""
# a valid directory name (NAME_MAX is 255) the figure's name adds 20 characters to, one per
# process: each xdist worker running a test of this module makes the module's run
LONG = f"fb-r12-{os.getpid()}-".ljust(220, "l")
# a control character that switches a VT to line drawing (SO), ESC, a character DejaVu has
# no glyph for, and mathtext
HOSTILE = "h\x0e\x1b\U0001f980"
MATH = "$\\frac{$"
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _break_even_run(base: Path, names: list[str]) -> Path:
    """A real run of BREAK_EVEN, one group per tmpfs directory of `names`."""
    with contextlib.ExitStack() as stack:
        dirs = [stack.enter_context(shm_dir(name)) for name in names]
        (base / "w.toml").write_text(BREAK_EVEN.format(dirs=json.dumps(dirs)))
        faultbench("run", base / "w.toml", "--out", base / "run", "-q")
    return base / "run"


@pytest.fixture(scope="module")
def groups_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A break-even per tmpfs directory: `P a` and `P_a`, named apart only by what a file
    name does not keep, and one of a 220-character name."""
    prefix = f"fb-r12-{os.getpid()}"
    return _break_even_run(tmp_path_factory.mktemp("round12-figures"),
                           [f"{prefix} a", f"{prefix}_a", LONG])


@pytest.fixture(scope="module")
def group_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One group: what a run's hostile text does to figures needs each kind of figure (a
    break-even one included) once, not three break-even figures (a second each to draw)."""
    return _break_even_run(tmp_path_factory.mktemp("round12-group"), [f"fb-r12-{os.getpid()}"])


def _figures(done_stdout: str, figures: Path) -> list[str]:
    """The figure files, after checking that the report counted as many as there are."""
    names = sorted(p.name for p in figures.iterdir() if p.name != DRAWN)
    assert f"and {len(names)} figures in {figures}" in done_stdout, (done_stdout, names)
    return names


def test_groups_named_apart_by_replaced_characters_get_figures_of_their_own(
        groups_run: Path, tmp_path: Path) -> None:
    """R12-7, R12-8: three groups, three break-even figures, each titled with its own group;
    the `P a` one and the `P_a` one had the same file, and the long one none (rc 2)."""
    done = faultbench("report", "--out", tmp_path, groups_run, check=False)
    assert done.returncode == 0, done.stderr
    names = _figures(done.stdout, tmp_path / "figures")
    svgs = [n for n in names if n.startswith("break-even-") and n.endswith(".svg")]
    assert len(svgs) == 3, names
    assert all(len(n.encode()) <= 255 for n in names)
    titles = {re.search(r"Break-even access density, ([^<]*) - Linux",
                        (tmp_path / "figures" / n).read_text())[1] for n in svgs}
    prefix = f"fb-r12-{os.getpid()}"
    assert titles == {f"tmpfs dir={prefix} a", f"tmpfs dir={prefix}_a", f"tmpfs dir={LONG}"}


def test_figure_names_are_distinct_bounded_and_kept_where_they_need_nothing() -> None:
    texts = ["dir=a b", "dir=a:b", "dir=a_b", "memfd base:", "x" * 1000, "x" * 999 + "y",
             "lone \udc80"]
    names = figure_names("break-even-", texts)
    assert len(set(names.values())) == len(texts)
    assert all(len(n) + len(".png") + len("..4194304.01234567.tmp") <= 255
               for n in names.values())
    # safe, or alone in coming out as it does: the name reports gave (uffd-2020-patch ships
    # break-even-memfd_base_.svg)
    assert names["dir=a_b"] == "break-even-dir=a_b"
    assert names["memfd base:"] == "break-even-memfd_base_"
    assert names["dir=a b"].startswith("break-even-dir=a_b+")


def _hostile_copy(run: Path, to: Path, host: str) -> Path:
    """`run` as another user may leave it: a host name, a kernel release and (as a merged
    run has) machine names holding `host`."""
    shutil.copytree(run, to)
    meta = json.loads((to / "meta.json").read_text())
    meta["provenance"]["host"]["name"] = host
    meta["provenance"]["kernel"]["release"] = f"6.1{host}"
    meta["merged"] = {"kind": "machines", "from": [{"machine": f"m{host}"}, {"machine": "other"}]}
    (to / "meta.json").write_text(json.dumps(meta))
    records = [json.loads(line) for line in (to / "samples.jsonl").read_text().splitlines()]
    for record in records:
        record["machine"] = f"m{host}" if record["round"] % 2 else "other"
    (to / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return to


def test_a_runs_control_characters_and_glyphless_text_are_drawn_escaped(
        group_run: Path, tmp_path: Path) -> None:
    """R12-11: matplotlib warned `Glyph 27 (\\x1b) missing from font(s)` with the raw
    character on stderr; now the figures draw the escapes and nothing raw reaches stderr."""
    run = _hostile_copy(group_run, tmp_path / "run", HOSTILE)
    done = faultbench("report", "--out", tmp_path / "out", run, check=False)
    assert done.returncode == 0, done.stderr
    assert not CONTROL.search(done.stderr) and "Glyph" not in done.stderr, done.stderr
    # what matplotlib still warns of (a layout it gave up on) is one escaped line each
    assert all(line.startswith("faultbench: warning: ")
               for line in done.stderr.splitlines()), done.stderr
    for svg in (tmp_path / "out" / "figures").glob("*.svg"):
        text = svg.read_text()
        assert not CONTROL.search(text) and "\U0001f980" not in text, svg.name
    drawn = (tmp_path / "out" / "figures" / "distributions.svg").read_text()
    assert r"h\x0e\x1b\U0001f980" in drawn and r"mh\x0e\x1b\U0001f980 " in drawn


def test_a_dollar_in_a_runs_text_is_drawn_not_parsed_as_mathtext(
        group_run: Path, tmp_path: Path) -> None:
    """R12-11: a host name "h$\\frac{$" ended the report in a mathtext ParseSyntaxException."""
    run = _hostile_copy(group_run, tmp_path / "run", MATH)
    done = faultbench("report", "--out", tmp_path / "out", run, check=False)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    drawn = (tmp_path / "out" / "figures" / "distributions.svg").read_text()
    assert f"{MATH}, " in drawn and f"m{MATH} " in drawn


@pytest.mark.parametrize(("field", "value", "what"), [
    ("host", "h" * 5000, "host name is 5000 bytes"),
    ("kernel", "6." + "1" * 63, "kernel release is 65 bytes")], ids=["host", "release"])
def test_merge_refuses_a_host_name_or_release_longer_than_uname_gives(
        group_run: Path, tmp_path: Path, field: str, value: str, what: str) -> None:
    """R12-8: merge took a 5000-character machine name, which labelled every row (and
    named figures); uname gives at most 64 bytes."""
    other = _copy(group_run, tmp_path / "there")
    meta = json.loads((other / "meta.json").read_text())
    meta["provenance"][field]["name" if field == "host" else "release"] = value
    (other / "meta.json").write_text(json.dumps(meta))
    done = faultbench("merge", group_run, other, "--out", tmp_path / "out", check=False)
    assert done.returncode == 2, done.stdout
    assert one_line(done.stderr) == (f"faultbench merge: {other}: its provenance's {what}, "
                                     "more than uname's 64: no machine's")
