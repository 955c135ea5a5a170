"""LV-IMG-016 (head CT/MRI for syncope), LV-IMG-017 (head CT/MRI for uncomplicated headache) and LV-IMG-018
(carotid imaging for syncope). The two head-imaging rules share their index codes, so each planter keeps the
other's anchor diagnosis (R55 syncope, R51/G43/G44 headache) out of the day before the scan."""

from __future__ import annotations

import numpy as np

from .. import coding as c
from ..clock import PERIOD_START
from .common import AFTERNOON, Chunk, Spec, back, context_dx, finish, pick, prepare, visit

SYNCOPE_CT_SPEC = Spec(
    "LV-IMG-016",
    0.2,
    {"outside window": 2.0, "red flag": 3.0, "neuro history": 2.0, "anticoagulant": 2.0, "age": 0.5},
    frozenset({"outside window", "age"}),
    18,
    age_kind="age",
    settings=(("emergency", 0.8), ("outpatient", 0.2)),
)
HEADACHE_CT_SPEC = Spec(
    "LV-IMG-017",
    0.2,
    {"outside window": 2.0, "red flag": 4.0, "cancer": 2.0, "age": 0.5},
    frozenset({"outside window", "age"}),
    18,
    age_kind="age",
    settings=(("primary_care", 0.3), ("outpatient", 0.4), ("emergency", 0.3)),
)
CAROTID_SPEC = Spec(
    "LV-IMG-018",
    0.2,
    {"outside window": 2.0, "indication": 3.0, "age": 0.5},
    frozenset({"outside window", "age"}),
    18,
    age_kind="age",
    settings=(("outpatient", 1.0),),
)
HEAD_IMAGING = ("DT-HJARNA", "DT-HJARNA", "MR-HJARNA")
CAROTID = ("UL-HALSKARL", "DT-ANGIO-HALS", "MR-ANGIO-HALS")
ACUTE_NEURO = ("R56.9", "S06.0", "R29.8", "R47.0", "R20.2", "R26.8", "R41.0", "I63.9", "G45.9")
NEURO_HISTORY = ("G40.9", "I69.3", "T90.5", "G45.9")
ANTICOAGULANTS = ("B01AF01", "B01AF02", "B01AA03", "B01AE07")
HEADACHE = ("R51", "G43.9", "G44.2", "G44.8", "G43.0")
HEADACHE_FLAGS = ("S06.0", "G40.9", "R56.9", "I63.9", "G45.9", "R29.8", "R47.0", "R20.2", "R26.8", "R41.0", "H47.1", "G03.9", "R50.9", "G44.3", "B20")
CANCER = ("C71.9", "C50.9", "D43.2", "D05.1", "C34.9")
CAROTID_INDICATION = ("I63.9", "I65.2", "G45.9", "G46.3", "R29.8", "R47.0", "R20.2")


def _anchor(ck: Chunk, bt, top: int, out_lo: int, out_hi: int, codes) -> np.ndarray:
    rng, n = ck.rng, bt.n
    lag = rng.integers(0, top + 1, n)
    lag[rng.random(n) < 0.3] = top
    out = bt.is_("outside window")
    lag[out] = np.where(rng.random(out.sum()) < 0.6, out_lo, rng.integers(out_lo, out_hi + 1, out.sum()))
    bt.reason[out] = [f"diagnosis day -{k}" for k in lag[out]]
    context_dx(ck, bt.p, bt.day - lag, pick(ck, codes, n), "emergency")
    bt.reason[bt.is_("age")] = "age 17"
    return lag


def plant_syncope_ct(ck: Chunk, persons: np.ndarray) -> None:
    """Head CT/MRI on the day of or after a syncope diagnosis R55; lookalikes with an acute neurological sign in
    [-7d, 1d], a neurological history or an anticoagulant, the diagnosis 2+ days before, or at age 17."""
    bt = prepare(ck, SYNCOPE_CT_SPEC, persons)
    rng, n, day, b = ck.rng, bt.n, bt.day, ck.b
    _anchor(ck, bt, 1, 2, 4, ("R55",))
    flag = bt.is_("red flag")
    code = pick(ck, ACUTE_NEURO + ("R51",), n)
    off = rng.integers(-7, 2, n)
    e = rng.random(n)
    off[e < 0.15] = -7
    off[(e >= 0.15) & (e < 0.3)] = 1
    # headache only where it cannot anchor LV-IMG-017 ([-1d, 0d])
    off = np.where((code == "R51") & (off >= -1) & (off <= 0), -2, off)
    context_dx(ck, bt.p[flag], day[flag] + off[flag], code[flag], "emergency")
    bt.reason[flag] = [f"red flag {x} day {o:+d}" for x, o in zip(code[flag], off[flag])]
    hist = bt.is_("neuro history")
    h = pick(ck, NEURO_HISTORY, n)
    context_dx(ck, bt.p[hist], back(ck, day[hist], 8, 365), h[hist], "outpatient")
    bt.reason[hist] = [f"history {x}" for x in h[hist]]
    anti = bt.is_("anticoagulant")
    stale = bt.planted & (rng.random(n) < 0.1)
    a = pick(ck, ANTICOAGULANTS, n)
    for rows, when in ((anti, back(ck, day, 0, 90)), (stale, day - rng.integers(91, 121, n))):
        e, t = visit(ck, bt.p[rows], when[rows], "primary_care")
        c.drug(b, bt.p[rows], e, t + 10, a[rows], 30)
    bt.reason[anti] = [f"anticoagulant {x}" for x in a[anti]]
    late = bt.planted & (rng.random(n) < 0.1)
    context_dx(ck, bt.p[late], day[late] + np.where(rng.random(late.sum()) < 0.5, -8, 2), "R56.9", "emergency")
    enc, t = visit(ck, bt.p, day, bt.setting, bt.unit, hours=AFTERNOON, minutes=60)
    code = pick(ck, HEAD_IMAGING, n)
    c.proc(b, bt.p, enc, t + 30, code, 2500.0)
    finish(ck, bt, enc, t + 30, "procedure", c.KVA, code)


def plant_headache_ct(ck: Chunk, persons: np.ndarray) -> None:
    """Head CT/MRI on the day of or after an uncomplicated headache diagnosis; lookalikes with a red flag or a
    cancer in the year before, the diagnosis 2+ days before, or at age 17."""
    bt = prepare(ck, HEADACHE_CT_SPEC, persons)
    rng, n, day, b = ck.rng, bt.n, bt.day, ck.b
    _anchor(ck, bt, 1, 2, 4, HEADACHE)
    female = b.pop.sex[bt.p] == "F"
    for kind, pool in (("red flag", HEADACHE_FLAGS), ("cancer", CANCER)):
        m = bt.is_(kind)
        x = pick(ck, pool, n)
        x = np.where((kind == "red flag") & female & (rng.random(n) < 0.07), "O26.8", x)
        context_dx(ck, bt.p[m], back(ck, day[m], 0, 365), x[m], "outpatient")
        bt.reason[m] = [f"{kind} {y}" for y in x[m]]
    stale = bt.planted & (rng.random(n) < 0.1) & (day - 400 >= PERIOD_START)
    context_dx(ck, bt.p[stale], day[stale] - rng.integers(366, 401, stale.sum()), pick(ck, ("G40.9", "C50.9"), stale.sum()))
    enc, t = visit(ck, bt.p, day, bt.setting, bt.unit, hours=AFTERNOON, minutes=40)
    code = pick(ck, HEAD_IMAGING, n)
    c.proc(b, bt.p, enc, t + 20, code, 2500.0)
    finish(ck, bt, enc, t + 20, "procedure", c.KVA, code)


def plant_carotid(ck: Chunk, persons: np.ndarray) -> None:
    """Carotid imaging 0-30 days after a syncope diagnosis; lookalikes with a stroke/TIA/focal sign in the year
    before, the diagnosis 31+ days before, or at age 17."""
    bt = prepare(ck, CAROTID_SPEC, persons)
    rng, n, day, b = ck.rng, bt.n, bt.day, ck.b
    _anchor(ck, bt, 30, 31, 45, ("R55",))
    ind = bt.is_("indication")
    x = pick(ck, CAROTID_INDICATION, n)
    context_dx(ck, bt.p[ind], back(ck, day[ind], 0, 365), x[ind], "outpatient")
    bt.reason[ind] = [f"indication {y}" for y in x[ind]]
    stale = bt.planted & (rng.random(n) < 0.1) & (day - 400 >= PERIOD_START)
    context_dx(ck, bt.p[stale], day[stale] - rng.integers(366, 401, stale.sum()), "G45.9", "outpatient")
    enc, t = visit(ck, bt.p, day, bt.setting, bt.unit, hours=AFTERNOON, minutes=40)
    code = pick(ck, CAROTID, n)
    c.proc(b, bt.p, enc, t + 20, code, 1500.0)
    finish(ck, bt, enc, t + 20, "procedure", c.KVA, code)
