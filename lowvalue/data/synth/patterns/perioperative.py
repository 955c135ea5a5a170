"""LV-PRE-014 (pre-operative cardiac test) and LV-PRE-015 (routine pre-operative labs) before low-risk surgery,
and LV-HOSP-028 (daily haemoglobin in stable inpatients)."""

from __future__ import annotations

import numpy as np

from .. import adverse
from .. import coding as c
from ..clock import MIN_PER_DAY, PERIOD_START, clock_time
from .common import AFTERNOON, Chunk, Spec, age_on, back, context_dx, draw_linked, finish, pick, prepare, record, unit_for, visit
from .hospital import OPERATIONS

CARDIAC_SPEC = Spec(
    "LV-PRE-014",
    0.3,
    {"operation late": 2.0, "same day": 2.0, "cardiac": 3.0, "setting": 1.5, "age": 0.5},
    frozenset({"operation late", "age"}),
    18,
    age_kind="age",
    settings=(("outpatient", 0.7), ("primary_care", 0.3)),
    dept="KIR",
    tail=50,
)
LABS_SPEC = Spec(
    "LV-PRE-015",
    0.3,
    {"operation late": 2.0, "same day": 2.0, "anticoagulant": 2.0, "ckd": 2.0, "diabetes": 2.0, "setting": 1.5},
    frozenset({"operation late"}),
    0,
    settings=(("outpatient", 0.6), ("primary_care", 0.4)),
    dept="KIR",
    tail=50,
)
DAILY_HB_SPEC = Spec(
    "LV-HOSP-028",
    0.3,
    {"unstable": 2.0, "bleeding": 1.5, "transfusion": 1.0, "age": 0.3},
    frozenset({"age"}),
    18,
    age_kind="age",
    settings=(("inpatient", 1.0),),
    tail=10,
)
CARDIAC_TESTS = ("VILO-EKG", "VILO-EKG", "EKO", "ARBETSPROV")
CARDIAC_INDICATION = ("I48.9", "I50.9", "I25.1", "I35.0", "J44.9", "R07.4", "R06.0", "R55", "I47.1", "I20.9")
PREOP_LABS = (("NPU28309", "g/L", 110, 160), ("NPU18016", "µmol/L", 50, 110), ("NPU01685", "", 0.9, 1.2),
              ("NPU01682", "s", 26, 36), ("NPU02192", "mmol/L", 4.2, 6.5), ("NPU03429", "mmol/L", 136, 144), ("NPU03230", "mmol/L", 3.5, 4.8))
ANTICOAGULANTS = ("B01AA03", "B01AF01", "B01AF02", "B01AE07")
BLEEDING = ("K92.0", "K92.1", "K92.2", "D62", "K25.0")
OP_DX = {"CJE20": "H25.9", "JAB30": "K40.9", "JKA21": "K80.2"}


def _operation(ck: Chunk, bt, t_index: np.ndarray) -> np.ndarray:
    """The low-risk operation k days after the index (0 = the same day, two hours later); returns k."""
    rng, n, b = ck.rng, bt.n, ck.b
    k = rng.integers(1, 31, n)
    e = rng.random(n)
    k[e < 0.2] = 30
    k[(e >= 0.2) & (e < 0.3)] = 1
    k[bt.is_("same day")] = 0
    late = bt.is_("operation late")
    k[late] = np.where(rng.random(late.sum()) < 0.5, 31, rng.integers(32, 46, late.sum()))
    bt.reason[late] = [f"operation day {x}" for x in k[late]]
    bt.reason[bt.is_("same day")] = "operation day 0"
    op = pick(ck, OPERATIONS, n)
    stay = op == "JKA21"
    op_t = np.where(k == 0, t_index + 120, (bt.day + k) * MIN_PER_DAY + clock_time(rng, n, 8, 13))
    oe = b.encounter(bt.p, op_t, np.where(stay, rng.integers(1, 3, n) * MIN_PER_DAY, 240), np.where(stay, "inpatient", "outpatient"),
                     unit_for(b, bt.p, np.full(n, "outpatient"), "KIR"))
    c.proc(b, bt.p, oe, op_t + 60, op, 25000.0)
    c.dx(b, bt.p, oe, op_t + 5, np.array([OP_DX[x] for x in op]))
    return k


def _setting(ck: Chunk, bt) -> np.ndarray:
    setting = bt.setting.copy()
    acute = bt.is_("setting")
    setting[acute] = np.where(ck.rng.random(acute.sum()) < 0.6, "emergency", "inpatient")
    bt.reason[acute] = [f"setting {s}" for s in setting[acute]]
    return setting


def plant_cardiac_test(ck: Chunk, persons: np.ndarray) -> None:
    """An ECG/echo/stress test 1-30 days before a low-risk operation; lookalikes with the operation the same day
    (likely low value) or on day 31+ (not judged), a cardiac or pulmonary indication in the year before, taken in
    emergency/inpatient care, or at 17."""
    bt = prepare(ck, CARDIAC_SPEC, persons)
    rng, n, day, b = ck.rng, bt.n, bt.day, ck.b
    bt.reason[bt.is_("age")] = "age 17"
    ind = bt.is_("cardiac")
    x = pick(ck, CARDIAC_INDICATION, n)
    context_dx(ck, bt.p[ind], back(ck, day[ind], 0, 365), x[ind], "outpatient")
    bt.reason[ind] = [f"cardiac indication {y}" for y in x[ind]]
    stale = bt.planted & (rng.random(n) < 0.1) & (day - 400 >= PERIOD_START)
    context_dx(ck, bt.p[stale], day[stale] - rng.integers(366, 401, stale.sum()), "I48.9", "outpatient")
    enc, t = visit(ck, bt.p, day, _setting(ck, bt), hours=AFTERNOON, minutes=40, dept="KIR")
    code = pick(ck, CARDIAC_TESTS, n)
    c.proc(b, bt.p, enc, t + 15, code, 800.0)
    _operation(ck, bt, t + 15)
    finish(ck, bt, enc, t + 15, "procedure", c.KVA, code)


def plant_preop_labs(ck: Chunk, persons: np.ndarray) -> None:
    """A routine lab 1-30 days before a low-risk operation (any age); lookalikes with the operation the same day
    or on day 31+, an anticoagulant in the 90 days before, CKD or diabetes in the year before, or taken in
    emergency/inpatient care."""
    bt = prepare(ck, LABS_SPEC, persons)
    rng, n, day, b = ck.rng, bt.n, bt.day, ck.b
    for kind, pool, hi in (("ckd", ("N18.3", "N18.4", "N18.9"), 365), ("diabetes", ("E11.9", "E10.9", "E14.9"), 365)):
        k = bt.is_(kind)
        x = pick(ck, pool, n)
        context_dx(ck, bt.p[k], back(ck, day[k], 0, hi), x[k])
        bt.reason[k] = [f"{kind} {y}" for y in x[k]]
    anti = bt.is_("anticoagulant")
    a = pick(ck, ANTICOAGULANTS, n)
    stale = bt.planted & (rng.random(n) < 0.1)
    for rows, when in ((anti, back(ck, day, 0, 90)), (stale, day - rng.integers(91, 121, n))):
        e, tt = visit(ck, bt.p[rows], when[rows], "primary_care")
        c.drug(b, bt.p[rows], e, tt + 10, a[rows], 30)
    bt.reason[anti] = [f"anticoagulant {y}" for y in a[anti]]
    old = bt.planted & (rng.random(n) < 0.1) & (day - 400 >= PERIOD_START)
    context_dx(ck, bt.p[old], day[old] - rng.integers(366, 401, old.sum()), "N18.3")
    enc, t = visit(ck, bt.p, day, _setting(ck, bt), hours=AFTERNOON, minutes=20, dept="KIR")
    which = rng.integers(0, len(PREOP_LABS), n)
    code = np.array([x[0] for x in PREOP_LABS])[which]
    unit = np.array([x[1] for x in PREOP_LABS])[which]
    lo = np.array([x[2] for x in PREOP_LABS], float)[which]
    hi = np.array([x[3] for x in PREOP_LABS], float)[which]
    value = np.round(rng.uniform(lo, hi), 1)
    c.lab(b, bt.p, enc, t + 15, code, value, unit)
    _operation(ck, bt, t + 15)
    finish(ck, bt, enc, t + 15, "lab", c.NPU, code)


def plant_daily_hb(ck: Chunk, persons: np.ndarray) -> None:
    """A 4-7 day stay with a haemoglobin every morning. Every sample is an index event, labelled as it is: a
    candidate from the third day's sample on, likely low value from 48 h after admission, low value when the
    previous value is within 10 % and there was no transfusion in the 48 h before and no bleeding in 7 days.
    Stays: stable (planted), one sharp change (unstable), a bleeding diagnosis, a transfusion after a sample of
    75 g/L (also an LV-HOSP-027 index: likely low value there), or at 17."""
    from collections import Counter

    bt = prepare(ck, DAILY_HB_SPEC, persons)
    rng, n, day, b = ck.rng, bt.n, bt.day, ck.b
    L = rng.integers(4, 8, n)
    A = day * MIN_PER_DAY + clock_time(rng, n, 8.0, 20.0)
    # daily samples at 06:00-07:30 from the day after admission; one at admission
    sample = [A + rng.integers(30, 121, n)]
    for j in range(1, 7):
        sample.append((day + j) * MIN_PER_DAY + clock_time(rng, n, 6.0, 7.5))
    T = np.stack(sample, 1)
    # edges: the third sample exactly 48 h after admission (or 47 h: not yet likely low value)
    e = rng.random(n)
    edge48, edge47 = e < 0.15, (e >= 0.15) & (e < 0.25)
    A = np.where(edge48, T[:, 2] - 48 * 60, np.where(edge47, T[:, 2] - 47 * 60, A))
    T[:, 0] = np.where(edge48 | edge47, A + 20, T[:, 0])
    end = (day + L) * MIN_PER_DAY + clock_time(rng, n, 10.0, 15.0)
    unit = bt.unit
    enc = b.encounter(bt.p, A, end - A, "inpatient", unit)
    context = np.array(["R53", "E86", "I95.1", "R10.4"])[rng.integers(0, 4, n)]
    bleed = bt.is_("bleeding")
    bcode = pick(ck, BLEEDING, n)
    c.dx(b, bt.p, enc, A + 5, np.where(bleed, bcode, context))
    bt.reason[bleed] = [f"bleeding {x}" for x in bcode[bleed]]
    # values in g/L: a random walk within +-5 %
    v = np.empty((n, 7))
    v[:, 0] = rng.integers(95, 140, n)
    for j in range(1, 7):
        v[:, j] = np.round(v[:, j - 1] * rng.uniform(0.95, 1.05, n))
    unstable = bt.is_("unstable")
    jump = rng.integers(2, 4, n)
    factor = np.where(rng.random(n) < 0.6, rng.uniform(0.75, 0.85, n), rng.uniform(1.15, 1.25, n))
    for j in range(2, 7):
        hit = unstable & (j >= jump)
        v[hit, j] = np.round(v[hit, j - 1] * np.where(j == jump[hit], factor[hit], rng.uniform(0.97, 1.03, hit.sum())))
    tx = bt.is_("transfusion")
    v[tx, 2] = 75
    v[tx, 3:] = np.round(85 * rng.uniform(0.98, 1.02, (tx.sum(), 4)))
    tx_t = T[:, 2] + rng.integers(120, 300, n)
    c.proc(b, bt.p[tx], enc[tx], tx_t[tx], "DR029", 3500.0)
    bt.reason[unstable] = [f"Hb change on day {j}" for j in jump[unstable]]
    bt.reason[tx] = "transfusion on day 2"
    bt.reason[bt.is_("age")] = "age 17"
    # write the samples: about 10 % in g/dL
    rows, cols = np.nonzero(np.arange(7)[None, :] < L[:, None])
    in_dl = rng.random(len(rows)) < 0.1
    val = v[rows, cols]
    written = np.where(in_dl, np.round(val / 10, 1), val)
    gl = np.where(in_dl, written * 10, written)
    p, tt, e_ = bt.p[rows], T[rows, cols], enc[rows]
    c.lab(b, p, e_, tt, c.HB, written, np.where(in_dl, "g/dL", "g/L"))
    # labels per sample
    G = np.full((n, 7), np.nan)
    G[rows, cols] = gl
    prev = np.where(cols >= 1, G[rows, np.maximum(cols - 1, 0)], np.nan)
    adult = age_on(ck, p, tt // MIN_PER_DAY) >= 18
    elig = adult & (cols >= 2)
    sens = elig & (tt - A[rows] >= 48 * 60)
    stable = (prev <= 1.1 * gl) & (prev >= 0.9 * gl)
    after_tx = tx[rows] & (tt > tx_t[rows]) & (tt - tx_t[rows] <= 48 * 60)
    low = sens & stable & ~after_tx & ~bleed[rows]
    reason = np.where(low, "planted", np.where(~adult, "age 17", np.where(cols < 2, "context: first two samples of the stay",
                      np.where(~sens, "within 48 h of admission", np.where(~stable, np.char.add("Hb change, previous ", np.nan_to_num(prev).astype(int).astype(str)),
                      np.where(after_tx, "transfusion within 48 h", np.where(bleed[rows], bt.reason[rows].astype(str), "")))))))
    b.intervention(bt.spec.pattern, p, e_, tt, "lab", c.NPU, np.full(len(p), c.HB), low, sens, reason)
    cnt = ck.counts.setdefault(bt.spec.pattern, Counter())
    cnt["planted"] += int(low.sum())
    cnt["lookalikes"] += int((~low & (cols >= 2)).sum())
    cnt["lookalikes_sensitive"] += int((~low & sens).sum())
    cnt["context"] += int((cols < 2).sum())
    # the transfusion is an LV-HOSP-027 index: Hb 75 g/L within 24 h, inpatient -> likely low value only
    ptx = bt.p[tx]
    record(ck, "LV-HOSP-027", ptx, enc[tx], tx_t[tx], "procedure", c.KVA, np.full(len(ptx), "DR029"), False,
           age_on(ck, ptx, tx_t[tx] // MIN_PER_DAY) >= 18, "Hb 75 g/L (transfusion in an LV-HOSP-028 stay)", "cross")
    draw_linked(ck, "LV-HOSP-027", ptx, tx_t[tx], np.zeros(len(ptx), bool),
                emit=lambda rows: adverse.hai(b, ptx[rows], enc[tx][rows], A[tx][rows], tx_t[tx][rows]))
