"""What a resume does with a boot that did not finish: its samples and their kernel profiles,
in its boot directory or already in the run's files (a kill between bootresult._collect adding
them and the boot recorded as done), moved to discarded.jsonl and discarded-profiles.jsonl.
A boot is the unit: its redone attempt's samples and profiles are then the only ones used (a
sample with two different profiles would have neither, read_profiles). Standard library only."""

from __future__ import annotations

from typing import Any

from faultbench.measurement.rundir.checks import profile_problem, run_rounds
from faultbench.measurement.rundir.results import (
    BOOTS_DIR,
    DISCARDED,
    PROFILES,
    SAMPLES,
    RunDir,
    json_lines,
    most_lines,
    parse_samples,
    run_file_lines,
)
from faultbench.measurement.rundir.runfiles import DISCARDED_PROFILES, boot_dir_name
from faultbench.measurement.rundir.safefile import ResultsError, SafeDir


def set_aside(run_dir: RunDir, boot: int, reason: str) -> int:
    """Move an unfinished boot's samples to discarded.jsonl, and their profiles to
    discarded-profiles.jsonl; returns how many samples. They are in its boot directory (see
    bootresult._collect), or in the run's files for a run started before boots had one, or killed
    between adding a boot's samples and recording it as done."""
    records = run_dir.read_samples()  # a profile line cut short is cut off here too
    meta = run_dir.read_meta()
    most = most_lines(meta)
    keep = [r for r in records if r.get("boot") != boot]
    gone = [r for r in records if r.get("boot") == boot]
    numbers, profiles = _profiles(run_dir.dir, boot, most)
    with run_dir.boots() as boots:
        if boots.is_dir(boot_dir_name(boot)):
            try:
                partial = RunDir(run_dir.path / BOOTS_DIR / boot_dir_name(boot),
                                 boots.sub(boot_dir_name(boot)))
                try:
                    # only the boot's own samples and profiles: its guest wrote the directory
                    gone += read_samples_lenient(partial, meta, boot)
                    profiles += _profiles(partial.dir, boot, most)[1]
                finally:
                    partial.dir.close()
            except ResultsError:
                pass  # what its guest made unreadable (given away, a link): set aside unread
            boots.remove_tree(boot_dir_name(boot))
    if profiles:  # before they leave profiles.jsonl: a kill in between copies them twice
        run_dir.append_lines(DISCARDED_PROFILES, ({**p, "discarded": reason} for p in profiles))
    if gone:
        run_dir.append_lines(DISCARDED, ({**record, "discarded": reason} for record in gone))
        if len(keep) < len(records):
            run_dir.rewrite_samples(keep)
    if numbers:
        with run_file_lines(run_dir.dir, PROFILES, most) as lines, \
                run_dir.dir.replacing(PROFILES, binary=True) as out:
            out.writelines(line for number, line in enumerate(lines or (), 1)
                           if number not in numbers)
    return len(gone)


def _profiles(directory: SafeDir, boot: int, most: int
              ) -> tuple[set[int], list[dict[str, Any]]]:
    """The profiles of boot `boot` in profiles.jsonl of `directory`: their line numbers and
    objects. A line that holds none stays where it is: its readers skip it."""
    numbers: set[int] = set()
    profiles: list[dict[str, Any]] = []
    with run_file_lines(directory, PROFILES, most) as lines:
        for number, _, record in json_lines(lines or ()):
            if record is not None and record.get("boot") == boot and \
                    profile_problem(record) is None:
                numbers.add(number)
                profiles.append(record)
    return numbers, profiles


def read_samples_lenient(run_dir: RunDir, meta: dict[str, Any], boot: int
                         ) -> list[dict[str, Any]]:
    """The samples of boot `boot` in an unfinished boot's directory (kept as discarded, not
    used) that are samples of the run of `meta`: any other line is left out."""
    with run_file_lines(run_dir.dir, SAMPLES, most_lines(meta)) as lines:
        records, _ = parse_samples(lines or (), run_dir.path / SAMPLES, strict=False,
                                   validate=True, rounds=run_rounds(meta))
    return [r for r in records if r.get("boot") == boot]
