"""What `faultbench run` tells a user whose run stopped (how to resume it, or why there is
nothing to resume), a resume's warning of another faultbench changing the knobs, and the
command meta.json records to run it again."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from faultbench.measurement.rundir.results import BadSampleLine, RunDir


def recovery(bad: BadSampleLine) -> str:
    """How to resume past the lines a strict read refused: by deleting them, which the user
    does (faultbench drops no sample it cannot vouch for, nor picks one of two)."""
    from faultbench.errors import shell_word
    from faultbench.measurement.rundir.results import resume_command

    which = (f"lines {' and '.join(map(str, bad.lines))}" if len(bad.lines) > 1
             else f"line {bad.lines[0]}")
    script = ";".join(f"{n}d" for n in bad.lines)
    return (f"resuming builds on every line: delete {which} (sed -i '{script}' "
            f"{shell_word(bad.path)}; keep a copy to look at), then "
            f"{resume_command(bad.path.parent)}; a sample then missing is measured again (in "
            "a booted run, if its boot had not finished)")


def knob_writer_said_once() -> Callable[[Any], None]:
    """execute()'s on_unit for a resume that sets no knob: before its first measurement, the
    warning that another faultbench is changing the knobs. Not before: a resume refused for
    its files stays one line, as a new run's refusal does (its warning follows acceptance)."""
    said = False

    def say(unit: Any) -> None:
        nonlocal said
        if said:
            return
        said = True
        from faultbench.measurement import machine

        if warning := machine.knob_writer_warning(machine.knob_writer({})):
            print(f"faultbench run: {warning}", file=sys.stderr)

    return say


def started(args: argparse.Namespace) -> Path | None:
    """The run directory a failed run leaves, when it can be resumed (its meta.json exists)."""
    from faultbench.measurement.rundir.results import META

    path = args.resume or args.out
    try:
        return Path(path) if path and (Path(path) / META).is_file() else None
    except OSError:  # a name too long, ...: nothing to resume there
        return None


def interrupted_hint(run_dir: RunDir | None) -> str:
    """What an interruption leaves: a run whose meta.json is sealed (finished_utc) has all
    its samples, and `--resume` would say there is nothing to resume; otherwise how to go on."""
    from faultbench.errors import FaultbenchError
    from faultbench.measurement.rundir.results import report_command, resume_hint

    if run_dir is None:
        return ""
    try:
        finished = run_dir.read_meta().get("finished_utc")
    except FaultbenchError:  # unreadable: the resume hint, whose command says why
        finished = None
    if finished:
        return (f" after the run finished: every sample is in {run_dir.path}; see them with: "
                f"{report_command(run_dir.path)}")
    return resume_hint(run_dir.path)


def recorded_command(argv: list[str]) -> list[str]:
    """The command line meta.json records (scripts/reference-results reruns it): the
    results directory, which differs from run to run, as {out}."""
    command, after_out = ["faultbench", "run"], False
    for arg in argv[1:] if argv[:1] == ["run"] else argv:
        # argparse takes any unambiguous prefix: --ou is --out ("--o" is also --only's)
        name, equals, _ = arg.partition("=")
        out = len(name) > len("--o") and "--out".startswith(name)
        command.append("{out}" if after_out else "--out={out}" if out and equals
                       else "--out" if out else arg)
        after_out = out and not equals
    return command
