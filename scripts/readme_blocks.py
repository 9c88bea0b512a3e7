#!/usr/bin/env python3
"""Re-run the faultbench commands (and `python benchmarks/...` scripts) of the console blocks
in README.md and docs/*.md, check
their output, and check that no absolute path of this machine is in those files.

A console block is a ```console fence; in it, a line `# faultbench ...` (root) or
`$ faultbench ...` is a command and the lines up to the next command are its output, as
printed (stdout and stderr together). A command runs in a shell (so `| sed ...` and
`# comments` work) from a scratch directory holding a copy of results/, so that a command
writing there (`report`, `run`) leaves the checkout as it was. Timings are masked before
comparing: `N ns/page`, percentages and ±spreads vary from run to run, and the lines a busy
moment adds (the busy-machine warning, the note on preempted samples) are left out; counts,
names, messages and paths must match. A `...` in a shown line stands for the part of the
real line left out. Commands that boot a kernel (`--kernel`) run only with --slow; a command shown
without output is not run. tests/test_docs.py runs the same checks in the test command.

    python scripts/readme_blocks.py [--update] [--slow] [FILE.md ...]

Exit status 1 when a block no longer matches or a file names a machine path (without
--update, which rewrites stale blocks from the real runs, keeping each `...` elision).
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ("# ", "$ ")
BENCHMARK = "python benchmarks/"  # a benchmark script shown with its output is checked too
ELISION = "..."
TIMEOUT_S = 600
# Values a re-run changes although nothing is wrong: timings (ns, or instructions under
# icount) and their spreads. Paths are not masked: a machine path in a doc is an error.
_MASKS = (
    (re.compile(r"\b\d+(\.\d+)? (ns|insn)/(page|pg)"), r"N \2/\3"),
    (re.compile(r"[±+-]?\d+(\.\d+)?%"), "N%"),
)
# Lines a busy moment adds (and a quiet one leaves out); not compared.
MOMENTARY = re.compile(r"faultbench run: WARNING: busy|hit: samples whose timed loop")
# Absolute paths that only exist on the machine a doc was written on: a home or root home, a
# development tree under /work, a temporary file. System paths (/boot, /var/tmp, /dev/shm,
# /sys, /proc) name the same thing on every machine and are allowed.
PATH_CHAR = r"[^\s`'\")\];,]"
MACHINE_PATH = re.compile(r"(?<![\w.~/-])/(?:work|home|root|tmp|scratch|mnt)/" + PATH_CHAR + "+")


@dataclass
class Command:
    line: int  # 1-based line of the command in the README
    text: str  # as shown, prompt included
    output: list[str] = field(default_factory=list)

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.text[2:], comments=True)

    def why_skipped(self, slow: bool) -> str | None:
        if not self.output:
            return "shown without output"
        if "--kernel" in self.argv and not slow:
            return "boots a kernel (--slow runs it)"
        return None


def console_commands(lines: list[str]) -> list[Command]:
    """Every faultbench command in a console block, with the output shown under it."""
    commands: list[Command] = []
    fence = False
    current: Command | None = None
    for number, line in enumerate(lines, 1):
        if line.startswith("```"):
            fence = line.strip() == "```console" and not fence
            current = None
            continue
        if not fence:
            continue
        if line[:2] in PROMPTS and line[2:].startswith(("faultbench", BENCHMARK)):
            current = Command(number, line)
            commands.append(current)
        elif current is not None:
            current.output.append(line)
    return commands


def masked(text: str) -> str:
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text


def line_matches(shown: str, real: str) -> bool:
    pieces = [re.escape(masked(part)) for part in shown.split(ELISION)]
    return re.fullmatch(".*".join(pieces), masked(real)) is not None


def elided_like(shown: str, real: str) -> str:
    """real cut where shown leaves a part out: the same number of leading comma-separated
    fields, and the same length of tail."""
    if ELISION not in shown:
        return real
    head, tail = shown.split(ELISION, 1)
    fields = head.count(", ")
    kept = ", ".join(real.split(", ")[:fields]) + (", " if fields else "")
    return kept + ELISION + (real[len(real) - len(tail):] if tail else "")


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def machine_paths(text: str) -> list[tuple[int, str]]:
    """(line, path) of every absolute path in `text` that names this machine: the checkout,
    the home directory, or a MACHINE_PATH."""
    own = [re.compile(re.escape(str(p)) + r"(?![\w.-])" + PATH_CHAR + "*")
           for p in (ROOT, Path.home()) if len(str(p)) > 1]
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        found += [(number, m.group()) for m in MACHINE_PATH.finditer(line)]
        if not MACHINE_PATH.search(line):
            found += [(number, m.group()) for pattern in own for m in pattern.finditer(line)]
    return found


def scratch() -> Path:
    """A directory to run the commands from, with a copy of the shipped results."""
    where = Path(tempfile.mkdtemp(prefix="faultbench-docs-"))
    shutil.copytree(ROOT / "results", where / "results", symlinks=True)
    return where


def run(command: Command, cwd: Path) -> list[str]:
    """The command's output, run by the shell with this Python's faultbench (or benchmark
    script, from this checkout's benchmarks/)."""
    text, python = command.text[2:], shlex.quote(sys.executable)
    shell = (f"{python} {shlex.quote(str(ROOT / 'benchmarks'))}/{text.removeprefix(BENCHMARK)}"
             if text.startswith(BENCHMARK) else f"{python} -m faultbench"
                                                f"{text.removeprefix('faultbench')}")
    done = subprocess.run(
        shell, shell=True, cwd=cwd,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT_S,
        check=False, env={**os.environ, "COLUMNS": "100"},
    )
    return done.stdout.rstrip("\n").splitlines()


def steady(lines: list[str]) -> list[str]:
    """`lines` without what the machine's load at that moment decides: the busy-machine
    warning and the note on preempted samples (with its wrapped lines)."""
    out: list[str] = []
    dropping = False
    for line in lines:
        dropping = bool(MOMENTARY.match(line)) or (dropping and line.startswith("  "))
        if not dropping:
            out.append(line)
    return out


def matches(shown: list[str], real: list[str]) -> bool:
    shown, real = steady(shown), steady(real)
    return len(shown) == len(real) and all(map(line_matches, shown, real))


def check(
    path: Path, slow: bool, cwd: Path
) -> tuple[list[str], list[tuple[Command, list[str]]]]:
    """(machine paths found, stale commands with their real output) of one file, saying
    what it checks as it goes."""
    text = path.read_text()
    paths = [f"{path.name}:{n}: machine path {p}" for n, p in machine_paths(text)]
    for problem in paths:
        print(problem)
    stale: list[tuple[Command, list[str]]] = []
    for command in console_commands(text.splitlines()):
        where = f"{path.name}:{command.line}"
        if why := command.why_skipped(slow):
            print(f"{where}: skipped ({why}): {command.text}")
            continue
        real = run(command, cwd)
        if matches(command.output, real):
            print(f"{where}: ok: {command.text}")
            continue
        print(f"{where}: STALE: {command.text}")
        sys.stdout.writelines(f"    {d}\n" for d in difflib.unified_diff(
            command.output, real, path.name, "real run", lineterm="", n=0))
        stale.append((command, real))
    return paths, stale


def update(path: Path, stale: list[tuple[Command, list[str]]]) -> None:
    lines = path.read_text().splitlines()
    for command, real in sorted(stale, key=lambda s: s[0].line, reverse=True):
        shown = command.output
        if len(shown) == len(real):
            new = [elided_like(s, r) for s, r in zip(shown, real, strict=True)]
        else:
            new = [elided_like(shown[0], r) if ELISION in shown[0] else r for r in real]
        lines[command.line:command.line + len(shown)] = new
    if path.is_symlink():
        raise SystemExit(f"{path} is a symlink: not writing through it")
    path.write_text("\n".join(lines) + "\n")
    print(f"rewrote {len(stale)} command output(s) in {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, help="default: README.md docs/*.md")
    parser.add_argument("--update", action="store_true", help="rewrite stale blocks")
    parser.add_argument("--slow", action="store_true", help="also run commands that boot")
    args = parser.parse_args()
    cwd = scratch()
    failed = False
    try:
        for path in args.files or doc_files():
            paths, stale = check(path, args.slow, cwd)
            failed |= bool(paths) or (bool(stale) and not args.update)
            if stale and args.update:
                update(path, stale)
    finally:
        shutil.rmtree(cwd)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
