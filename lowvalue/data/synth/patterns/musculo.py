"""LV-PROC-019 (knee arthroscopy for degenerative disease), LV-PROC-020 (vertebroplasty for osteoporotic
fracture) and LV-IMG-021 (repeat DXA within two years)."""

from __future__ import annotations

import numpy as np

from .. import coding as c
from ..clock import MIN_PER_DAY, PERIOD_START
from .common import AFTERNOON, Chunk, Spec, back, context_dx, context_index, finish, pick, prepare, visit

KNEE_SPEC = Spec(
    "LV-PROC-019",
    0.2,
    {"no degenerative": 2.0, "injury": 3.0, "cancer": 2.0, "age": 0.5},
    frozenset({"no degenerative", "age"}),
    50,
    age_kind="age",
    settings=(("outpatient", 1.0),),
    dept="KIR",
)
VERTEBRO_SPEC = Spec(
    "LV-PROC-020",
    0.2,
    {"no osteoporosis code": 3.0, "tumour": 2.0, "fracture old": 2.0, "age": 0.5},
    frozenset({"fracture old", "age"}),
    50,
    age_kind="age",
    settings=(("inpatient", 0.6), ("outpatient", 0.4)),
    dept="KIR",
)
DXA_SPEC = Spec(
    "LV-IMG-021",
    0.2,
    {"earlier dxa old": 2.0, "fracture": 2.0, "new drug": 2.0, "glucocorticoid": 2.0, "hormone": 1.5, "hyperparathyroidism": 1.5, "age": 0.5},
    frozenset({"earlier dxa old", "age"}),
    50,
    age_kind="age",
    settings=(("outpatient", 0.7), ("primary_care", 0.3)),
)
DEGENERATIVE = ("M17.1", "M17.0", "M23.2", "M23.3", "M22.4", "M94.2")
KNEE_INDICATION = ("S83.2", "S83.5", "S83.7", "M23.8", "M00.9")
CANCER = ("C50.9", "C61", "D48.1", "C18.7", "D05.1")
FRACTURE_NON_OP = ("S22.0", "S32.0", "M48.5")
OSTEOPOROTIC = ("M80.0", "M80.8")
TUMOUR = ("C79.5", "C90.0", "D18.0", "C41.2", "D16.6")
FRAGILITY = ("M80.0", "S22.0", "S32.0", "S42.2", "S52.5", "S72.0", "S72.1")
OSTEO_DRUGS = ("M05BA04", "M05BB03", "M05BX04", "G03XC01")
HORMONE = ("L02AE02", "L02BG03", "L02BB03")


def plant_knee(ck: Chunk, persons: np.ndarray) -> None:
    """Knee arthroscopy at 50+ with degenerative knee disease in the year before; lookalikes with an injury or
    infection in the 90 days before, a cancer in the year before, the diagnosis 366+ days before, or at 49."""
    bt = prepare(ck, KNEE_SPEC, persons)
    rng, n, day, b = ck.rng, bt.n, bt.day, ck.b
    bt.reason[bt.is_("age")] = "age 49"
    dx_day = back(ck, day, 0, 365)
    old = bt.is_("no degenerative")
    far = day - rng.integers(366, 401, n)
    dx_day = np.where(old, far, dx_day)
    ok = dx_day >= PERIOD_START
    bt.reason[old] = [f"degenerative diagnosis day -{k}" if o else "no degenerative diagnosis" for k, o in zip((day - dx_day)[old], ok[old])]
    context_dx(ck, bt.p[ok], dx_day[ok], pick(ck, DEGENERATIVE, ok.sum()), "outpatient", dept="KIR")
    inj = bt.is_("injury")
    x = pick(ck, KNEE_INDICATION, n)
    context_dx(ck, bt.p[inj], back(ck, day[inj], 0, 90), x[inj], "emergency")
    bt.reason[inj] = [f"injury or infection {y}" for y in x[inj]]
    ca = bt.is_("cancer")
    y = pick(ck, CANCER, n)
    context_dx(ck, bt.p[ca], back(ck, day[ca], 0, 365), y[ca], "outpatient")
    bt.reason[ca] = [f"cancer {z}" for z in y[ca]]
    stale = bt.planted & (rng.random(n) < 0.1)
    context_dx(ck, bt.p[stale], day[stale] - rng.integers(91, 121, stale.sum()), "S83.2", "emergency")
    enc, t = visit(ck, bt.p, day, bt.setting, bt.unit, hours=AFTERNOON, minutes=120, dept="KIR")
    code = pick(ck, ("NGA11", "NGD11"), n)
    c.proc(b, bt.p, enc, t + 30, code, 18000.0)
    finish(ck, bt, enc, t + 30, "procedure", c.KVA, code)


def plant_vertebroplasty(ck: Chunk, persons: np.ndarray) -> None:
    """Vertebroplasty at 50+ after an osteoporotic vertebral fracture (M80, or S22.0/S32.0/M48.5 with M81 in the
    year before); lookalikes without an osteoporosis code, with a vertebral tumour, the fracture 366+ days
    before, or at 49."""
    bt = prepare(ck, VERTEBRO_SPEC, persons)
    rng, n, day, b = ck.rng, bt.n, bt.day, ck.b
    bt.reason[bt.is_("age")] = "age 49"
    m80 = rng.random(n) < 0.5
    plain = bt.is_("no osteoporosis code") | bt.is_("fracture old")
    m80 &= ~plain
    frac = np.where(m80, pick(ck, OSTEOPOROTIC, n), pick(ck, FRACTURE_NON_OP, n))
    fday = back(ck, day, 0, 365)
    old = bt.is_("fracture old")
    fday = np.where(old, day - rng.integers(366, 401, n), fday)
    ok = fday >= PERIOD_START
    context_dx(ck, bt.p[ok], fday[ok], frac[ok], "emergency")
    bt.reason[old] = [f"fracture day -{k}" if o else "no fracture diagnosis" for k, o in zip((day - fday)[old], ok[old])]
    m81 = ~m80 & ~bt.is_("no osteoporosis code")
    context_dx(ck, bt.p[m81], back(ck, day[m81], 0, 365), "M81.0", "outpatient")
    bt.reason[bt.is_("no osteoporosis code")] = [f"fracture {x}, no osteoporosis code" for x in frac[bt.is_("no osteoporosis code")]]
    tum = bt.is_("tumour")
    x = pick(ck, TUMOUR, n)
    context_dx(ck, bt.p[tum], back(ck, day[tum], 0, 365), x[tum], "outpatient")
    bt.reason[tum] = [f"tumour {y}" for y in x[tum]]
    stale = bt.planted & (rng.random(n) < 0.1) & (day - 400 >= PERIOD_START)
    context_dx(ck, bt.p[stale], day[stale] - rng.integers(366, 401, stale.sum()), "C79.5", "outpatient")
    setting = bt.setting
    enc, t = visit(ck, bt.p, day, setting, hours=AFTERNOON, minutes=np.where(setting == "inpatient", 2 * MIN_PER_DAY, 180), dept="KIR")
    code = pick(ck, ("VERTEBROPLASTIK", "KYFOPLASTIK"), n)
    c.proc(b, bt.p, enc, t + 30, code, 30000.0)
    finish(ck, bt, enc, t + 30, "procedure", c.KVA, code)


def plant_dxa(ck: Chunk, persons: np.ndarray) -> None:
    """A DXA at 50+ within 730 days of an earlier one; lookalikes with a fragility fracture, a newly started
    osteoporosis drug, long-term glucocorticoids (coverage >= 90 days), hormone therapy or hyperparathyroidism,
    the earlier DXA 731+ days before, or at 49."""
    bt = prepare(ck, DXA_SPEC, persons)
    rng, n, day, b = ck.rng, bt.n, bt.day, ck.b
    bt.reason[bt.is_("age")] = "age 49"
    room = day - PERIOD_START
    g = rng.integers(300, 731, n)
    g[rng.random(n) < 0.2] = 730
    g = np.minimum(g, room)
    g[rng.random(n) < 0.05] = 1
    old = bt.is_("earlier dxa old")
    g[old] = rng.integers(731, 761, old.sum())
    has = day - g >= PERIOD_START
    bt.reason[old] = [f"earlier DXA day -{k}" if h else "no earlier DXA" for k, h in zip(g[old], has[old])]
    e, t = visit(ck, bt.p[has], day[has] - g[has], "outpatient")
    c.proc(b, bt.p[has], e, t + 20, "DXA", 1200.0)
    context_index(ck, bt.spec.pattern, bt.p[has], e, t + 20, "procedure", c.KVA, np.full(has.sum(), "DXA"), "context: earlier DXA")

    frac = bt.is_("fracture")
    x = pick(ck, FRAGILITY, n)
    context_dx(ck, bt.p[frac], back(ck, day[frac], 0, 730), x[frac], "emergency")
    bt.reason[frac] = [f"fracture {y}" for y in x[frac]]
    hp = bt.is_("hyperparathyroidism")
    context_dx(ck, bt.p[hp], back(ck, day[hp], 0, 730), pick(ck, ("E21.0", "E21.3"), hp.sum()), "outpatient")
    bt.reason[hp] = "hyperparathyroidism"
    drugs = [("new drug", OSTEO_DRUGS, back(ck, day, 0, 365), 90), ("hormone", HORMONE, back(ck, day, 0, 365), 90),
             ("glucocorticoid", ("H02AB06",), day - np.minimum(rng.integers(100, 301, n), room), 0)]
    for kind, pool, when, supply in drugs:
        m = bt.is_(kind)
        y = pick(ck, pool, n)
        if kind == "glucocorticoid":
            # coverage 90 days exactly (edge) or more, all inside [-365d, 0d]
            supply = np.where(rng.random(n) < 0.4, 90, rng.integers(91, 100, n))
            bt.reason[m] = [f"glucocorticoid coverage {s} days" for s in supply[m]]
        else:
            bt.reason[m] = [f"{kind} {z}" for z in y[m]]
        ev, tt = visit(ck, bt.p[m], when[m], "primary_care")
        c.drug(b, bt.p[m], ev, tt + 10, y[m], np.broadcast_to(supply, (n,))[m])
    # planted edge cases: 89 days of glucocorticoid, or an osteoporosis drug continued (dispensed within the
    # year, but also 340 days before that dispensing, outside the window, so it is not newly started)
    gc = bt.planted & (rng.random(n) < 0.1)
    ev, tt = visit(ck, bt.p[gc], day[gc] - np.minimum(rng.integers(100, 250, gc.sum()), room[gc]), "primary_care")
    c.drug(b, bt.p[gc], ev, tt + 10, "H02AB06", 89)
    cont = bt.planted & ~gc & (rng.random(n) < 0.1) & (day - 400 >= PERIOD_START)
    d1 = day - rng.integers(30, 61, n)
    for when in (d1, d1 - 340):
        ev, tt = visit(ck, bt.p[cont], when[cont], "primary_care")
        c.drug(b, bt.p[cont], ev, tt + 10, "M05BA04", 90)
    enc, t = visit(ck, bt.p, day, bt.setting, bt.unit, hours=AFTERNOON, minutes=30)
    c.proc(b, bt.p, enc, t + 20, "DXA", 1200.0)
    finish(ck, bt, enc, t + 20, "procedure", c.KVA, np.full(n, "DXA"))
