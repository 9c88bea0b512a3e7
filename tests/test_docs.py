"""README.md and docs/*.md are checked like code: every console block that does not boot a
kernel is re-run and must match (timings masked, scripts/readme_blocks.py), every number
they quote from a shipped result is computed from it (scripts/doc_claims.py), and no file
names an absolute path of the machine it was written on."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from groups import ALONE, DOC_CLAIMS, HOST

ROOT = Path(__file__).resolve().parent.parent


def _script(name: str) -> ModuleType:
    if str(ROOT / "scripts") not in sys.path:  # doc_claims imports its package, scripts/quoted
        sys.path.insert(0, str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


blocks = _script("readme_blocks")
claims = _script("doc_claims")
COMMANDS = [(path, command) for path in blocks.doc_files()
            for command in blocks.console_commands(path.read_text().splitlines())
            if command.why_skipped(slow=False) is None]


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    where = blocks.scratch()
    yield where
    shutil.rmtree(where)


# some blocks set knobs; all on one worker, in order, sharing one scratch directory; one that
# sets a THP knob runs alone
@HOST
@pytest.mark.parametrize(("path", "command"), [
    pytest.param(path, command, marks=[ALONE] if "--set thp." in command.text else [])
    for path, command in COMMANDS], ids=[f"{p.name}:{c.line}" for p, c in COMMANDS])
def test_console_block_matches_a_real_run(path: Path, command, scratch: Path) -> None:
    real = blocks.run(command, scratch)
    assert blocks.matches(command.output, real), (
        f"{path.name}:{command.line} {command.text} no longer prints what is shown; "
        "real output:\n" + "\n".join(real))


@pytest.mark.parametrize("path", blocks.doc_files(), ids=lambda p: p.name)
def test_no_machine_path_in_docs(path: Path) -> None:
    assert blocks.machine_paths(path.read_text()) == []


def test_the_path_check_catches_a_development_tree() -> None:
    text = "(from /work/wt-honest-measure/workloads; run one)\nkernel /boot/vmlinuz-6.1\n"
    text += f"see {ROOT}/results and /var/tmp and /dev/shm\n"
    assert blocks.machine_paths(text) == [(1, "/work/wt-honest-measure/workloads"),
                                          (3, f"{ROOT}/results")]


def test_a_stale_block_is_told_apart_from_masked_timings() -> None:
    shown = ["memfd 64M: 16384 pages, 1025 minor faults, 172 ns/page (+3.1%)"]
    assert blocks.matches(shown, ["memfd 64M: 16384 pages, 1025 minor faults, 981 ns/page "
                                  "(-12%)"])
    assert not blocks.matches(shown, ["memfd 64M: 16384 pages, 1024 minor faults, 172 ns/page "
                                      "(+3.1%)"])


@DOC_CLAIMS
@pytest.mark.parametrize("claim", claims.CLAIMS,
                         ids=[f"{c.doc}:{c.text[:30]}" for c in claims.CLAIMS])
def test_a_quoted_number_is_what_its_result_gives(claim) -> None:
    sentence = claim.filled()
    assert claims.squeezed(sentence) in claims.squeezed((ROOT / claim.doc).read_text()), (
        f"{claim.doc} no longer says what the shipped result gives; it should read: "
        f"{sentence}")


def test_a_stale_number_is_caught() -> None:
    """The check is on the filled sentence: one digit off and it is not in the doc."""
    [claim] = [c for c in claims.CLAIMS if c.doc == "README.md" and "breaks even" in c.text]
    real = claim.values()
    drifted = claims.Claim(claim.doc, claim.text,
                           lambda: {**real, "pages": f"{float(real['pages']) + 0.1:.1f}"})
    assert drifted.filled() != claim.filled()
    assert claims.squeezed(drifted.filled()) not in claims.squeezed(
        (ROOT / claim.doc).read_text())
