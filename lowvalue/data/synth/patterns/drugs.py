"""LV-RX-022 (benzodiazepines/Z-drugs at 75+) and LV-RX-026 (long-term PPI without indication)."""

from __future__ import annotations

import numpy as np

from .. import coding as c
from .prescribing import cross_avoid_from_benzo, cross_nsaid_from_ppi
from .common import AFTERNOON, Chunk, Spec, back, context_dx, context_index, finish, pick, prepare, visit

BENZO_SPEC = Spec(
    pattern="LV-RX-022",
    alpha=0.4,
    lookalikes={"age": 3.0, "palliative": 2.0, "epilepsy": 2.0, "alcohol": 2.0, "single course": 3.0, "interrupted": 2.0},
    not_eligible=frozenset({"age", "single course", "interrupted"}),
    min_age=75,
    age_kind="age",
    settings=(("primary_care", 0.9), ("outpatient", 0.1)),
    age_edge=0.3,
)
PPI_SPEC = Spec(
    pattern="LV-RX-026",
    alpha=0.2,
    lookalikes={"coverage": 2.0, "indication": 3.0, "drug": 3.0},
    not_eligible=frozenset({"coverage"}),
    settings=(("primary_care", 1.0),),
)
BENZOS_AVOID = ("N05BA01", "N05CD02", "N05CD03")
"""Long-acting benzodiazepines: low value at any use (LV-RX-022 v2); also on LV-RX-023's list."""
BENZOS_REGULAR = ("N05CF01", "N05CF02", "N05BA04")
"""Zopiclone, zolpidem, oxazepam: low value only as regular use (coverage of every day in [-28d, 0d])."""
PPIS = ("A02BC01", "A02BC02", "A02BC05")
INDICATION = ("K21.9", "K22.7", "K22.1", "K25.9", "K26.9", "K27.9", "K28.9")
GASTRO_DRUGS = ("M01AE01", "B01AC06", "B01AA03", "B01AF01", "H02AB06", "B01AC04", "B01AC24", "B01AE07")


def plant_benzo(ck: Chunk, persons: np.ndarray) -> None:
    """At 75+ either a long-acting benzodiazepine (any use) or regular use of zopiclone/zolpidem/oxazepam: an
    earlier dispensing ``g`` (28 or 30) days before with a supply of ``g`` days, so that [-28d, 0d] is covered.
    Lookalikes: at 74, in palliative care, with epilepsy or in alcohol withdrawal (sensitive only); a single
    short course of a preferred agent, or a renewal after a one-day gap in coverage (not judged at all)."""
    bt = prepare(ck, BENZO_SPEC, persons)
    rng, n, day, b = ck.rng, bt.n, bt.day, ck.b
    bt.reason[bt.is_("age")] = "age 74"
    for kind, codes, window in (("palliative", ("Z51.5",), 365), ("epilepsy", ("G40.9", "G41.0"), 365), ("alcohol", ("F10.3", "F10.4"), 30)):
        m = bt.is_(kind)
        x = pick(ck, codes, m.sum())
        context_dx(ck, bt.p[m], back(ck, day[m], 0, window), x)
        bt.reason[m] = [f"{kind} {y}" for y in x]
    stale = bt.planted & (rng.random(n) < 0.1)
    context_dx(ck, bt.p[stale], day[stale] - rng.integers(31, 46, stale.sum()), "F10.3")
    single, gap = bt.is_("single course"), bt.is_("interrupted")
    avoid = (rng.random(n) < 0.5) & ~single & ~gap
    code = np.where(avoid, pick(ck, BENZOS_AVOID, n), pick(ck, BENZOS_REGULAR, n))
    supply = np.where(rng.random(n) < 0.5, 28, 30)
    supply[single] = np.where(rng.random(single.sum()) < 0.5, 10, 14)
    bt.reason[single] = [f"single course {x} {s} days" for x, s in zip(code[single], supply[single])]
    series = ~avoid & ~single
    g = np.where(rng.random(n) < 0.4, 28, 30)
    s0 = np.where(gap, g - 1, g)
    bt.reason[gap] = "coverage gap day -1"
    e, t0 = visit(ck, bt.p[series], day[series] - g[series], "primary_care", hours=AFTERNOON, minutes=20)
    c.drug(b, bt.p[series], e, t0 + 10, code[series], s0[series])
    context_index(ck, BENZO_SPEC.pattern, bt.p[series], e, t0 + 10, "medication", c.ATC, code[series], "context: earlier course")
    enc, t = visit(ck, bt.p, day, bt.setting, bt.unit, hours=AFTERNOON, minutes=25)
    c.drug(b, bt.p, enc, t + 10, code, supply)
    finish(ck, bt, enc, t + 10, "medication", c.ATC, code)
    cross_avoid_from_benzo(ck, bt, enc, t + 10, code)


def plant_ppi(ck: Chunk, persons: np.ndarray) -> None:
    """Three PPI dispensings ``g`` days apart; the third is the index. Supplies of g days give coverage
    56 (g=28), 60 or 90 days in [-90d, -1d]; the "coverage" lookalike gets 28+27 = 55 days."""
    bt = prepare(ck, PPI_SPEC, persons)
    rng, n, day, b = ck.rng, bt.n, bt.day, ck.b
    g = np.array([28, 30, 45])[rng.choice(3, n, p=[0.3, 0.5, 0.2])]
    cov = bt.is_("coverage")
    g[cov] = 28
    s1, s2 = g.copy(), np.where(cov, 27, g)
    bt.reason[cov] = "coverage 55 days"
    code = pick(ck, PPIS, n)
    for k, (supply, why) in enumerate(((s1, "context: coverage 0 days"), (s2, None))):
        e, t = visit(ck, bt.p, day - (2 - k) * g, "primary_care", hours=AFTERNOON, minutes=20)
        c.drug(b, bt.p, e, t + 10, code, supply)
        reason = why or np.char.add(np.char.add("context: coverage ", s1.astype(str)), " days")
        context_index(ck, PPI_SPEC.pattern, bt.p, e, t + 10, "medication", c.ATC, code, reason)
    ind = bt.is_("indication")
    x = pick(ck, INDICATION, n)
    context_dx(ck, bt.p[ind], back(ck, day[ind], 0, 1825), x[ind])
    bt.reason[ind] = [f"indication {y}" for y in x[ind]]
    drug = bt.is_("drug")
    y = pick(ck, GASTRO_DRUGS, n)
    stale = bt.planted & (rng.random(n) < 0.1)
    for m, when in ((drug, back(ck, day, 0, 90)), (stale, day - rng.integers(91, 121, n))):
        e, t = visit(ck, bt.p[m], when[m], "primary_care")
        c.drug(b, bt.p[m], e, t + 10, y[m], 30)
        cross_nsaid_from_ppi(ck, bt.p[m], e, t + 10, when[m], y[m])
    bt.reason[drug] = [f"gastroprotection drug {z}" for z in y[drug]]
    enc, t = visit(ck, bt.p, day, "primary_care", bt.unit, hours=AFTERNOON, minutes=20)
    c.drug(b, bt.p, enc, t + 10, code, g)
    finish(ck, bt, enc, t + 10, "medication", c.ATC, code)
