"""A run's results directory (the contract is docs/results.md).

samples.jsonl is appended, flushed and fsynced one sample at a time, so SIGKILL or power loss
loses at most the sample being written; meta.json and pyperf.json are replaced atomically.
Every file is written through measurement.safefile (no planted link is followed).
Standard library only, except pyperf (pure Python), which only the parent imports.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from faultbench.measurement.safefile import ResultsError, SafeDir

FORMAT = "faultbench-run/1"
META = "meta.json"
SAMPLES = "samples.jsonl"
PYPERF = "pyperf.json"
WORKER_LOG = "worker.log"
BOOTS_DIR = "boots"  # a booted run's per-boot records, written by the guest
DISCARDED = "discarded.jsonl"  # samples of boots that did not finish, set aside


def read_samples(path: Path, strict: bool) -> tuple[list[dict[str, Any]], int]:
    """The samples of a samples.jsonl (one JSON object per line; blank lines are ignored)
    and how many lines were not one.

    strict: a bad line raises ResultsError naming it (resuming must not build on a file it
    does not understand). Otherwise bad lines are skipped and counted: a run killed
    mid-write leaves a partial last line, and the rest is still worth reading.
    """
    with path.open(encoding="utf-8") as handle:
        return parse_samples(handle, path, strict)


def parse_samples(
    lines: Iterable[str], path: Path, strict: bool
) -> tuple[list[dict[str, Any]], int]:
    """read_samples() of lines already read from `path`."""
    records: list[dict[str, Any]] = []
    bad = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        elif strict:
            raise ResultsError(f"{path}:{number}: not a JSON object")
        else:
            bad += 1
    return records, bad


def sample_key(record: dict[str, Any]) -> tuple[str, int | None, int, int]:
    """What identifies a sample within a run (a booted run repeats warm-up rounds per boot)."""
    return record["scenario"], record.get("boot"), record["round"], record["mapper"]


def benchmark_name(record: dict[str, Any]) -> str:
    """pyperf benchmark of a sample: the scenario, per mapper when there are several
    (first and later mappers measure different things)."""
    if record["spec"]["mappers"] > 1:
        return f"{record['scenario']},mapper={record['mapper']}"
    return record["scenario"]


class RunDir:
    """One run's directory: create it, append samples, resume it.

    `any_owner`: the guest side of a booted run writes the host's directory, which the host
    checked; its owner as seen over 9p is the host user's."""
    def __init__(self, path: Path, directory: SafeDir | None = None,
                 any_owner: bool = False) -> None:
        self.path = path
        self.dir = directory or SafeDir.open(path, any_owner=any_owner)
        self._samples: IO[str] | None = None

    @classmethod
    def create(cls, path: Path) -> RunDir:
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise ResultsError(
                f"{path} already exists and is not empty (continue it with --resume {path})"
            )
        return cls(path, SafeDir.open(path, create=True))

    @classmethod
    def existing(cls, path: Path, any_owner: bool = False) -> RunDir:
        if not (path / META).is_file():
            raise ResultsError(f"{path}: not a faultbench run directory (no {META})")
        run_dir = cls(path, any_owner=any_owner)
        run_dir.dir.remove_temp_files()  # atomic writes an interruption cut short
        return run_dir

    def read_meta(self) -> dict[str, Any]:
        data = self.dir.read_bytes(META)
        try:
            meta = json.loads(data if data is not None else b"")
        except ValueError as exc:
            raise ResultsError(f"{self.path / META}: unreadable: {exc}") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
            raise ResultsError(f"{self.path / META}: format {found!r}, expected {FORMAT!r}")
        return meta

    def write_meta(self, meta: dict[str, Any]) -> None:
        self.dir.replace(META, json.dumps(meta, indent=1) + "\n")

    def read_samples(self) -> list[dict[str, Any]]:
        """Every complete line, strictly (for resuming); a last line cut short by a kill is
        removed from the file, so the sample is measured again and never half-recorded."""
        data = self.dir.read_bytes(SAMPLES)
        if data is None:
            return []
        end = data.rfind(b"\n") + 1
        if end < len(data):
            self.dir.truncate(SAMPLES, end)
        try:
            text = data[:end].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ResultsError(f"{self.path / SAMPLES}: not UTF-8 text ({exc.reason} at "
                               f"byte {exc.start})") from None
        records, _ = parse_samples(text.splitlines(), self.path / SAMPLES, strict=True)
        return records

    def rewrite_samples(self, records: list[dict[str, Any]]) -> None:
        """samples.jsonl replaced, atomically, by `records`."""
        self.close()
        self.dir.replace(SAMPLES, "".join(json.dumps(r) + "\n" for r in records))

    def append(self, record: dict[str, Any]) -> None:
        if self._samples is None:
            # kept open across appends; close() ends it
            self._samples = self.dir.appending(SAMPLES)
        # one write per line, so a kill leaves at most one partial line, at the end
        self._samples.write(json.dumps(record) + "\n")
        self._samples.flush()
        os.fsync(self._samples.fileno())

    def append_lines(self, name: str, records: Iterable[dict[str, Any]]) -> None:
        """Records appended to the JSON-lines file `name` (e.g. discarded.jsonl), durably."""
        with self.dir.appending(name) as fh:
            for record in records:
                fh.write(json.dumps(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def open_log(self) -> IO[bytes]:
        """worker.log, for appending; the caller closes it."""
        return self.dir.appending(WORKER_LOG, binary=True)

    def write_boot_report(self, index: int, report: dict[str, Any]) -> None:
        """boots/<index>.json, replaced atomically."""
        with self.dir.sub(BOOTS_DIR) as boots:
            boots.replace(f"{index}.json", json.dumps(report, indent=1) + "\n")

    def close(self) -> None:
        if self._samples is not None:
            self._samples.close()
            self._samples = None

    def write_pyperf(self, meta: dict[str, Any], records: Iterable[dict[str, Any]]) -> int:
        """pyperf.json from the ok samples; returns the number of benchmarks."""
        suite = pyperf_suite(meta, records)
        if suite is None:
            return 0
        with self.dir.replacing(PYPERF) as fh:
            suite.dump(fh, replace=True)
        return len(suite)


def pyperf_suite(meta: dict[str, Any], records: Iterable[dict[str, Any]]) -> Any:
    """A pyperf BenchmarkSuite: one benchmark per scenario (per mapper when several), one run
    per round with one value, seconds per touched page; warm-ups ride on the first run as
    pyperf warm-ups. None when no sample succeeded."""
    import pyperf

    by_bench: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        if record["status"] == "ok" and record.get("ns_per_page"):
            by_bench.setdefault(benchmark_name(record), []).append(record)
    knobs = {s["name"]: s["knobs"] for s in meta["scenarios"]}
    common = {
        "unit": "second",
        "loops": 1,
        "faultbench_plane": meta["plane"],
        "faultbench_workload": meta["workload"]["name"],
    }
    provenance = meta.get("provenance", {})
    release = provenance.get("kernel", {}).get("release")
    if release:
        common["platform"] = f"Linux-{release}"
    if provenance.get("host", {}).get("name"):
        common["hostname"] = provenance["host"]["name"]
    benchmarks = []
    for name, group in by_bench.items():
        group.sort(key=lambda r: r["round"])
        warmups = [(1, r["ns_per_page"] * 1e-9) for r in group if r["warmup"]]
        values = [r["ns_per_page"] * 1e-9 for r in group if not r["warmup"]]
        if not values:
            continue
        first = group[0]
        metadata: dict[str, Any] = {**common, "name": name, "faultbench_scenario":
                                    first["scenario"], "faultbench_mapper": first["mapper"]}
        for knob, value in knobs.get(first["scenario"], {}).items():
            metadata[f"knob_{knob}"] = value
        runs = [
            pyperf.Run([value], warmups=warmups if i == 0 and warmups else None,
                       metadata=metadata, collect_metadata=False)
            for i, value in enumerate(values)
        ]
        benchmarks.append(pyperf.Benchmark(runs))
    return pyperf.BenchmarkSuite(benchmarks) if benchmarks else None
