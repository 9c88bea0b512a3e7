"""docs/break-even.md: the reference run `native-break-even` (curves, crossings, the cost of
a fault, the floor) and the instruction clock's a and b."""

from __future__ import annotations

from functools import cache

from quoted.common import Claim, cost_model, load, meta, n
from quoted.profiles import constant

DOC = "docs/break-even.md"
RUN = "native-break-even"


@cache
def _crossing(teardown: bool) -> object:
    from faultbench.analysis.breakeven import break_even

    [memfd] = [b for b in break_even(load(RUN), teardown=teardown) if b.backing == "memfd"]
    return memfd


def crossing() -> dict[str, str]:
    """The headline crossing (touch only), where README.md quotes it too."""
    headline = _crossing(False)
    return {"pages": f"{headline.pages_per_window:.1f}", "stride": f"{headline.stride:.1f}"}


def _reading() -> dict[str, str]:
    """The prose under the report: the curves' ends, the cost of one fault, c, the crossing
    with teardown and the floor."""
    from faultbench.analysis.breakeven import floor_points, populate_rows

    curve = _crossing(False).curve
    dense = curve[0]
    [window] = [p for p in curve if p.pages_per_window == 1]
    model = cost_model(RUN)
    per_fault = {f.pages_per_fault: f.ns for f in model.per_fault}
    [floor] = [p for p in floor_points(populate_rows(load(RUN)))
               if p.populate == "madvise" and p.stride == 1]
    teardown = _crossing(True)
    return {"on": n(dense.on_ns), "off": n(dense.off_ns),
            "slower": f"{window.on_ns / window.off_ns:.1f}", "rows": str(model.design_rows),
            "one": n(per_fault[1.0]), "sixteen": n(per_fault[16.0]),
            "c": n(model.ns_per_touch.value, 1), "t_stride": f"{teardown.stride:.1f}",
            "t_pages": f"{teardown.pages_per_window:.1f}", "floor": n(floor.ns_per_page, 1),
            "populate": n(floor.with_populate_ns_per_page)}


def _run() -> dict[str, str]:
    return {"rounds": str(cost_model(RUN).rounds),
            "load": f"{meta(RUN)['machine_state']['load'][0]:.1f}"}


CLAIMS = [
    Claim(DOC, "(`faultbench run break-even`, 2M warm memfd, {rounds} rounds, harness epoch 1, "
          "on the 2-vCPU development VM with no other process running, its load average "
          "{load} from earlier work)", _run),
    Claim(DOC, "with every page touched, fault-around costs {on} ns per page against {off} "
          "without", _reading),
    Claim(DOC, "at about {pages} pages touched per 64 KiB window (stride {stride})", crossing),
    Claim(DOC, "at one page per window fault-around is {slower}× slower. Natively a and b are "  # noqa: RUF001 the doc's sign
          "not identified ({rows} distinct design rows; faults and pages mapped move "
          "together): a fault mapping one page costs {one} ns and one mapping 16 pages "
          "{sixteen} ns; c is {c} ns.", _reading),
    Claim(DOC, "which moves it to denser access (stride {t_stride}, {t_pages} pages per "
          "window). The floor, touching already-mapped pages, is {floor} ns/page; "
          "MADV_POPULATE_READ + touch at stride 1 costs {populate} ns against {on} ns with "
          "fault-around.", _reading),
    Claim(DOC, "`results/tcg-icount-cost-model`: a = {a} and b = {b} guest instructions",
          lambda: {"a": constant("a")["model"], "b": constant("b")["model"]}),
]
