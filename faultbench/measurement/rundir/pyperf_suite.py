"""pyperf.json: a run's ok samples as a pyperf BenchmarkSuite, for `pyperf compare_to`.

pyperf refuses metadata holding a line break, or empty once stripped; names and values from
meta.json (a workload's name, a scenario's dir, a knob's value; a run written before such
text was refused) are escaped first, so the suite is always written. Only the parent imports
this, and pyperf (pure Python) only here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from faultbench.errors import printable
from faultbench.measurement.rundir.checks import clock_of
from faultbench.measurement.rundir.results import benchmark_name

_EDGE_SPACES = re.compile(r"^ +| +$")


def metadata_text(text: str) -> str:
    """`text` as pyperf takes a metadata value, escaped injectively (backslashes doubled,
    control characters and spaces at either end as escapes) so benchmark names stay distinct."""
    escaped = printable(text.replace("\\", "\\\\"))
    return _EDGE_SPACES.sub(lambda m: "\\x20" * len(m.group()), escaped)


def pyperf_suite(meta: dict[str, Any], records: Iterable[dict[str, Any]]) -> Any:
    """A pyperf BenchmarkSuite: one benchmark per scenario (per kernel, machine and mapper
    when several: benchmark_name), one run per round with one value, seconds per touched
    page (guest instructions on the instruction clock); warm-ups ride on the first run as
    pyperf warm-ups. None when no sample succeeded."""
    import pyperf

    by_bench: dict[str, list[dict[str, Any]]] = {}
    several = len(meta.get("kernels") or ()) > 1
    for record in records:
        # a sample measured while someone else had changed a knob measured another setting
        if record["status"] == "ok" and record.get("ns_per_page") and \
                not record.get("knob_drift"):
            by_bench.setdefault(benchmark_name(record, several), []).append(record)
    knobs = {s["name"]: s["knobs"] for s in meta["scenarios"]}
    # on the instruction clock a virtual ns is one guest instruction, not a time
    icount = clock_of(meta["plane"]) == "icount"
    scale = 1 if icount else 1e-9
    common = {
        "unit": "integer" if icount else "second",
        "loops": 1,
        "faultbench_plane": meta["plane"],
        "faultbench_workload": meta["workload"]["name"],
    }
    provenance = meta.get("provenance", {})
    release = provenance.get("kernel", {}).get("release")
    if release:
        common["platform"] = f"Linux-{release}"
    # a booted run measured in its guests, each kernel its own platform
    guests = {k["label"]: k.get("release") for k in meta.get("kernels") or []}
    if provenance.get("host", {}).get("name"):
        common["hostname"] = provenance["host"]["name"]
    benchmarks = []
    for name, group in by_bench.items():
        group.sort(key=lambda r: r["round"])
        warmups = [(1, r["ns_per_page"] * scale) for r in group if r["warmup"]]
        values = [r["ns_per_page"] * scale for r in group
                  if not r["warmup"] and not r.get("profiled")]
        if not values:
            continue
        first = group[0]
        metadata: dict[str, Any] = {**common, "name": name, "faultbench_scenario":
                                    first["scenario"], "faultbench_mapper": first["mapper"]}
        if first.get("kernel") is not None:
            metadata["faultbench_kernel"] = first["kernel"]
            if guests.get(first["kernel"]):
                metadata["platform"] = f"Linux-{guests[first['kernel']]}"
            else:  # not the host's: a guest's, which the run did not record
                metadata.pop("platform", None)
        for knob, value in knobs.get(first["scenario"], {}).items():
            metadata[f"knob_{knob}"] = value
        metadata = {key: value if isinstance(value, int | float) else metadata_text(str(value))
                    for key, value in metadata.items()}
        runs = [
            pyperf.Run([value], warmups=warmups if i == 0 and warmups else None,
                       metadata={k: v for k, v in metadata.items() if v != ""},
                       collect_metadata=False)
            for i, value in enumerate(values)
        ]
        benchmarks.append(pyperf.Benchmark(runs))
    return pyperf.BenchmarkSuite(benchmarks) if benchmarks else None
