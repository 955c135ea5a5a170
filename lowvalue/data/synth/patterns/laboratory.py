"""LV-LAB-012 (T3 in treated hypothyroidism), LV-SCR-009 (cervical screening after 70) and LV-SCR-010
(colorectal endoscopy at 86+)."""

from __future__ import annotations

import numpy as np

from .. import coding as c
from ..clock import MIN_PER_DAY, PERIOD_START, uniform_days
from .common import AFTERNOON, Chunk, Spec, age_on, back, context_dx, finish, pick, prepare, record, visit

T3_SPEC = Spec(
    "LV-LAB-012",
    0.2,
    {"no hypothyroidism": 2.0, "untreated": 2.0, "no tsh": 2.0, "indication": 2.0, "amiodarone": 1.5, "age": 0.5},
    frozenset({"no hypothyroidism", "age"}),
    18,
    age_kind="age",
    settings=(("primary_care", 0.8), ("outpatient", 0.2)),
)
CERVIX_SPEC = Spec("LV-SCR-009", 0.3, {"one prior": 2.0, "neoplasia": 2.0, "age": 2.5}, frozenset({"age"}), 71, age_kind="age",
                   settings=(("primary_care", 0.7), ("outpatient", 0.3)), age_edge=0.2)
COLON_SPEC = Spec("LV-SCR-010", 0.3, {"neoplasia": 2.0, "bleeding": 2.0, "setting": 1.5, "age": 2.0}, frozenset({"age"}), 86,
                  age_kind="age", settings=(("outpatient", 0.9), ("primary_care", 0.1)), dept="KIR", age_edge=0.2)
HYPOTHYROID = ("E03.9", "E03.8", "E89.0", "E02")
T3_INDICATION = ("E05.0", "E05.9", "C73", "E23.0")
T3 = ("NPU03624", "NPU03625")
TSH = ("NPU03577", "NPU27547")
CERVIX_TESTS = ("CX-CYTOLOGI", "CX-HPV")
CERVIX_EXCL = ("N87.1", "D06.9", "R87.6", "Z85.4", "C53.9", "D07.1")
COLON_EXCL = ("C18.7", "D12.6", "K63.5", "K50.9", "K51.9", "Z85.0")
COLON_BLEED = ("K92.1", "K92.2", "D50.9", "R19.5", "D62", "D64.9", "R19.4", "R10.4", "R63.4", "R93.3", "K57.3", "K52.9")
"""Diagnostic reasons of LV-SCR-010 v2 (bleeding, anaemia, bowel habit, pain, weight loss, imaging, diverticula, colitis)."""


def plant_t3(ck: Chunk, persons: np.ndarray) -> None:
    """T3 with a same-day TSH in treated hypothyroidism; lookalikes without levothyroxine in the year, with the
    TSH the day before, with a T3 indication or amiodarone, the hypothyroidism diagnosis 366+ days before
    (not judged), or at 17."""
    bt = prepare(ck, T3_SPEC, persons)
    rng, n, day, b = ck.rng, bt.n, bt.day, ck.b
    bt.reason[bt.is_("age")] = "age 17"
    dx_day = back(ck, day, 0, 365)
    nohypo = bt.is_("no hypothyroidism")
    dx_day[nohypo] = day[nohypo] - rng.integers(366, 401, nohypo.sum())
    ok = dx_day >= PERIOD_START
    bt.reason[nohypo] = [f"hypothyroidism day -{k}" if o else "no hypothyroidism diagnosis" for k, o in zip((day - dx_day)[nohypo], ok[nohypo])]
    context_dx(ck, bt.p[ok], dx_day[ok], pick(ck, HYPOTHYROID, ok.sum()))
    treated = ~bt.is_("untreated")
    bt.reason[~treated] = "no levothyroxine"
    e, t = visit(ck, bt.p[treated], back(ck, day[treated], 0, 365), "primary_care")
    c.drug(b, bt.p[treated], e, t + 10, "H03AA01", 100)
    stale = bt.is_("untreated") & (rng.random(n) < 0.3) & (day - 400 >= PERIOD_START)
    e, t = visit(ck, bt.p[stale], day[stale] - rng.integers(366, 401, stale.sum()), "primary_care")
    c.drug(b, bt.p[stale], e, t + 10, "H03AA01", 100)
    for kind, pool, write in (("indication", T3_INDICATION, "dx"), ("amiodarone", ("C01BD01",), "rx")):
        k = bt.is_(kind)
        x = pick(ck, pool, n)
        when = back(ck, day, 0, 365)
        if write == "dx":
            context_dx(ck, bt.p[k], when[k], x[k], "outpatient")
        else:
            ev, tt = visit(ck, bt.p[k], when[k], "outpatient")
            c.drug(b, bt.p[k], ev, tt + 10, x[k], 90)
        bt.reason[k] = [f"{kind} {y}" for y in x[k]]
    enc, t = visit(ck, bt.p, day, bt.setting, bt.unit, hours=AFTERNOON, minutes=20)
    notsh = bt.is_("no tsh")
    tsh = pick(ck, TSH, n)
    c.lab(b, bt.p[~notsh], enc[~notsh], t[~notsh] + 14, tsh[~notsh], np.round(rng.lognormal(0.7, 0.5, (~notsh).sum()), 2), "mIE/L")
    prev = notsh & (rng.random(n) < 0.6)
    ev, tt = visit(ck, bt.p[prev], day[prev] - 1, "primary_care")
    c.lab(b, bt.p[prev], ev, tt + 10, tsh[prev], np.round(rng.lognormal(0.7, 0.5, prev.sum()), 2), "mIE/L")
    bt.reason[notsh] = np.where(prev[notsh], "TSH day -1", "no TSH")
    code = pick(ck, T3, n)
    c.lab(b, bt.p, enc, t + 15, code, np.round(rng.uniform(3.0, 6.5, n), 1), "pmol/L")
    finish(ck, bt, enc, t + 15, "lab", c.NPU, code)


def plant_cervix(ck: Chunk, persons: np.ndarray) -> None:
    """A cervical screening test in a woman of 71+ after two earlier tests; lookalikes with one earlier test,
    with cervical neoplasia (or another exclusion) coded, or at 70. The earlier tests are index events too:
    likely low value when she was 71+ (never low value: at most one test before them)."""
    bt = prepare(ck, CERVIX_SPEC, persons)
    rng, n, day, b = ck.rng, bt.n, bt.day, ck.b
    bt.reason[bt.is_("age")] = "age 70"
    p1 = uniform_days(rng, np.full(n, PERIOD_START + 1), day - 1)
    edge = rng.random(n) < 0.1
    p1[edge] = day[edge] - 1
    p2 = uniform_days(rng, np.full(n, PERIOD_START), p1 - 1)
    one = bt.is_("one prior")
    bt.reason[one] = "one earlier test"
    for days, rows in ((p2, ~one), (p1, np.ones(n, bool))):
        e, t = visit(ck, bt.p[rows], days[rows], "primary_care", hours=AFTERNOON)
        code = pick(ck, CERVIX_TESTS, rows.sum())
        c.lab(b, bt.p[rows], e, t + 10, code, np.nan, "")
        sens = age_on(ck, bt.p[rows], days[rows]) >= 71
        record(ck, bt.spec.pattern, bt.p[rows], e, t + 10, "lab", c.NPU, code, False, sens,
               np.where(sens, "context: earlier test at 71+ (likely low value)", "context: earlier test"), "context")
    neo = bt.is_("neoplasia")
    x = pick(ck, CERVIX_EXCL, n)
    context_dx(ck, bt.p[neo], back(ck, day[neo], 0, 3650), x[neo], "outpatient")
    bt.reason[neo] = [f"exclusion {y}" for y in x[neo]]
    enc, t = visit(ck, bt.p, day, bt.setting, bt.unit, hours=AFTERNOON, minutes=20)
    code = pick(ck, CERVIX_TESTS, n)
    c.lab(b, bt.p, enc, t + 15, code, np.nan, "")
    finish(ck, bt, enc, t + 15, "lab", c.NPU, code)


def plant_colon(ck: Chunk, persons: np.ndarray) -> None:
    """Colonoscopy/sigmoidoscopy at 86+ in primary/outpatient care; lookalikes with colorectal neoplasia/IBD
    coded, a diagnostic reason (bleeding, anaemia, bowel-habit change, abdominal pain, weight loss, abnormal imaging,
    diverticular disease, colitis) in the 180 days before, in inpatient/emergency care, or at 85."""
    bt = prepare(ck, COLON_SPEC, persons)
    rng, n, day, b = ck.rng, bt.n, bt.day, ck.b
    bt.reason[bt.is_("age")] = "age 85"
    neo = bt.is_("neoplasia")
    x = pick(ck, COLON_EXCL, n)
    context_dx(ck, bt.p[neo], back(ck, day[neo], 0, 3650), x[neo], "outpatient")
    bt.reason[neo] = [f"neoplasia or IBD {y}" for y in x[neo]]
    bl = bt.is_("bleeding")
    y = pick(ck, COLON_BLEED, n)
    context_dx(ck, bt.p[bl], back(ck, day[bl], 0, 180), y[bl])
    bt.reason[bl] = [f"diagnostic reason {z}" for z in y[bl]]
    stale = bt.planted & (rng.random(n) < 0.1)
    context_dx(ck, bt.p[stale], day[stale] - np.minimum(rng.integers(181, 201, stale.sum()), (day - PERIOD_START)[stale]), "D50.9")
    setting = bt.setting.copy()
    acute = bt.is_("setting")
    setting[acute] = np.where(rng.random(acute.sum()) < 0.5, "emergency", "inpatient")
    bt.reason[acute] = [f"setting {s}" for s in setting[acute]]
    minutes = np.where(setting == "inpatient", rng.integers(2, 6, n) * MIN_PER_DAY, 60)
    enc, t = visit(ck, bt.p, day, setting, hours=AFTERNOON, minutes=minutes, dept="KIR")
    code = pick(ck, ("UJF32", "UJF42"), n)
    c.proc(b, bt.p, enc, t + 20, code, 5000.0)
    finish(ck, bt, enc, t + 20, "procedure", c.KVA, code)
