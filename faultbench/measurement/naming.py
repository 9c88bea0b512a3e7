"""A scenario's name: what it shows of its spec and knobs, and what it leaves out because
it cannot matter.

Standard library only.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from faultbench.measurement.spec import Spec, format_size


def scenario_name(spec: Spec, knobs: dict[str, Any]) -> str:
    """A stable, readable name: the same spec and knobs always give the same name.

    Every field that changes the measurement is in it, whichever axes the workload varied,
    so runs of different workloads compare by name. Fields that cannot matter for this spec
    (one mapper's mode and uffd_mappers, uffd_mappers without uffd) are left out; one
    mapper's kind is not: a thread faults in the caller's address space, 90-165 mappings
    for each fault's VMA lookup to walk past against a mapper process's 25.
    """
    size = format_size(spec.size) if isinstance(spec.size, int) else str(spec.size)
    parts = [spec.backing if spec.tmpfs_huge is None else f"tmpfs-huge={spec.tmpfs_huge}",
             size]
    parts += [str(v) for v in (spec.map, spec.access, spec.cache) if v is not None]
    if spec.fill != "write":
        parts.append(f"fill={spec.fill}")
    parts += [spec.pattern, f"uffd={spec.uffd}"]
    if spec.mappers > 1:
        mappers = f"{spec.mappers}x{spec.mapper_kind}-{spec.mapper_mode}"
        if spec.uffd != "none" and spec.uffd_mappers != "all":
            mappers += f"-uffd@{spec.uffd_mappers}"
        parts.append(mappers)
    elif spec.mapper_kind == "thread":
        parts.append("1xthread")
    if spec.dir is not None:
        parts.append(f"dir={spec.dir}")
    if spec.populate != "none":
        parts.append(f"populate={spec.populate}")
    if not spec.pagemap:
        parts.append("pagemap=off")
    if spec.map_offset:
        offset = spec.map_offset
        parts.append(f"offset={format_size(offset) if isinstance(offset, int) else offset}")
    if spec.vmas:
        parts.append(f"vmas={spec.vmas}")
    if spec.apps:
        # e.g. apps=6x4files,launches=12,one-in=16[,anon=16M]: the session's shape
        parts.append(f"apps={spec.apps}x{spec.app_files}files,launches={spec.launches},"
                     f"one-in={spec.touch_one_in}")
        if spec.app_anon:
            anon = spec.app_anon
            parts.append(f"anon={format_size(anon) if isinstance(anon, int) else anon}")
    parts += [f"{name}={value}" for name, value in sorted(knobs.items())]
    return ",".join(parts)


def unnamed_difference(a: Spec, b: Spec) -> list[str]:
    """The fields in which two specs of one scenario name differ, beyond those the name
    leaves out because they cannot matter (scenario_name): [] when they are one scenario."""
    ignored = {"mapper_mode", "uffd_mappers"} if a.mappers == 1 else set()
    if a.uffd == "none":
        ignored.add("uffd_mappers")
    if not a.apps:
        ignored |= {"app_files", "launches", "touch_one_in", "app_anon"}
    return [f.name for f in dataclasses.fields(Spec)
            if f.name not in ignored and getattr(a, f.name) != getattr(b, f.name)]
