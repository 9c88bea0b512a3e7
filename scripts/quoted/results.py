"""docs/results.md: the A/A split it uses to show a false positive."""

from __future__ import annotations

from quoted.common import Claim, benchmark, load, n


def _aa_split() -> dict[str, str]:
    """The one row that `benchmarks/aa_check.py --one-image results/icount-aa` marks: the
    per-boot medians of its two sides, its loops and their ticks."""
    from faultbench.analysis.aa import aa_tables, distinct_halves

    aa_check = benchmark("aa_check")
    df, keys = aa_check.split_input(load("icount-aa"), None, one_image=True)
    tables = aa_tables(df, keys, aa_check.METRIC)
    [(half, table)] = [(half, t) for half, t in
                       zip(distinct_halves(df.loc[df["ok"], "boot"].unique()), tables, strict=True)
                       if t["significant"].any()]
    [marked] = table[table["significant"]].to_dict("records")
    ok = df[df["ok"] & ~df["warmup"] & ~df["profiled"]]
    named = [k for k in keys if isinstance(marked[k], str)]  # a key absent here is NaN
    row = ok[(ok[named] == [marked[k] for k in named]).all(axis=1)]
    boots = row.groupby("boot")["ns_per_page"].median()
    sides = sorted((boots[boots.index.isin(half)], boots[~boots.index.isin(half)]),
                   key=lambda side: side.median())
    loops = (row["ns_per_page"] * row["pages_touched"]).round()
    [ticks] = row["ticks"].unique()
    # the loops count one of two values, and the higher one falls in the upper side's boots
    fewer, more = sorted(loops.unique())
    upper = set(row.loc[loops == more, "boot"])
    assert upper == set(sides[1].index), (upper, sides)
    assert (row[loops == more].groupby("boot").size() == 1).all()
    return {"pattern": marked["pattern"], "uffd": marked["uffd"], "p": f"{marked['p_adj']:.2g}",
            "low": f"{n(sides[0].min(), 2)}-{n(sides[0].max(), 2)}",
            "high": f"{n(sides[1].min(), 2)}-{n(sides[1].max(), 2)}",
            "step": n(sides[1].median() - sides[0].median(), 2),
            "pct": f"{100 * (sides[1].median() / sides[0].median() - 1):.2g}",
            "loops_lo": n(loops.min()), "loops_hi": n(loops.max()),
            "pages": n(row["pages_touched"].median()),
            "ticks": {0: "no timer tick", 1: "one timer tick", 2: "two timer ticks",
                      3: "three timer ticks"}.get(int(ticks), f"{int(ticks)} timer ticks"),
            "loops": str(len(loops)), "at_lo": str(int((loops == fewer).sum())),
            "at_hi": str(int((loops == more).sum())), "upper": str(len(upper)),
            "more": n(more - fewer), "tested": str(int(table["p_adj"].notna().sum()))}


CLAIMS = [
    Claim("docs/results.md", "The one split that marks a row ({pattern}, uffd {uffd}, Holm p = "
          "{p}) puts the boots whose medians are {low} instructions per page against those at "
          "{high}: {step} instructions per page touched apart, {pct}%. The row's loops took "
          "{ticks} each and counted {loops_lo} to {loops_hi} instructions over their {pages} "
          "pages: {at_lo} of its {loops} loops counted {loops_lo} and {at_hi} counted "
          "{loops_hi}, one in each of the {upper} upper boots", _aa_split),
    Claim("docs/results.md", "the moderated t shrinks the row's variance towards that of all "
          "{tested} tested rows", _aa_split),
    Claim("docs/results.md", "calls a {pct}% difference between boots of one image, {more} "
          "instructions in one loop of each of {upper} boots, significant", _aa_split),
]
