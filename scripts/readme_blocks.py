#!/usr/bin/env python3
"""Re-run the faultbench commands of README.md's console blocks and check their output.

A console block is a ```console fence; in it, a line `# faultbench ...` (root) or
`$ faultbench ...` is a command and the lines up to the next command are its output, as
printed (stdout and stderr together). Timings are masked before comparing: `N ns/page`,
percentages and ±spreads vary from run to run, and so does the checkout's directory; counts,
names and messages must match. A
`...` in a README line stands for the part of the real line left out. Commands that boot a
kernel (`--kernel`) run only with --slow; a command shown without output is not run.

    python scripts/readme_blocks.py [--update] [--slow] [README.md]

Exit status 1 when a block no longer matches (without --update, which rewrites those
blocks from the real runs, keeping each `...` elision).
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ("# ", "$ ")
ELISION = "..."
TIMEOUT_S = 600
# Values a re-run changes although nothing is wrong: timings, their spreads, and where the
# checkout is (`faultbench workloads` names its directory).
_MASKS = (
    (re.compile(r"\b\d+(\.\d+)? ns/page"), "N ns/page"),
    (re.compile(r"[±+-]?\d+(\.\d+)?%"), "N%"),
    (re.compile(r"/\S*/workloads\b"), "CHECKOUT/workloads"),
)


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
        if line[:2] in PROMPTS and line[2:].startswith("faultbench"):
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


def run(command: Command) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", *command.argv], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT_S, check=False,
    )
    return done.stdout.rstrip("\n").splitlines()


def matches(shown: list[str], real: list[str]) -> bool:
    return len(shown) == len(real) and all(map(line_matches, shown, real))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("readme", nargs="?", default=str(ROOT / "README.md"))
    parser.add_argument("--update", action="store_true", help="rewrite stale blocks")
    parser.add_argument("--slow", action="store_true", help="also run commands that boot")
    args = parser.parse_args()
    path = Path(args.readme)
    lines = path.read_text().splitlines()
    stale: list[tuple[Command, list[str]]] = []
    for command in console_commands(lines):
        where = f"{path.name}:{command.line}"
        if why := command.why_skipped(args.slow):
            print(f"{where}: skipped ({why}): {command.text}")
            continue
        real = run(command)
        if matches(command.output, real):
            print(f"{where}: ok: {command.text}")
            continue
        print(f"{where}: STALE: {command.text}")
        sys.stdout.writelines(f"    {d}\n" for d in difflib.unified_diff(
            command.output, real, "README", "real run", lineterm="", n=0))
        stale.append((command, real))
    if not stale:
        return 0
    if not args.update:
        return 1
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
    return 0


if __name__ == "__main__":
    os.environ.setdefault("COLUMNS", "100")
    sys.exit(main())
