"""LV-PRE-013 (pre-operative chest X-ray before low-risk surgery) and LV-HOSP-027 (transfusion at high Hb)."""

from __future__ import annotations

import numpy as np

from .. import adverse
from .. import coding as c
from ..clock import MIN_PER_DAY, clock_time
from .common import AFTERNOON, Chunk, Spec, back, context_dx, finish, pick, prepare, unit_for, visit

PRE_SPEC = Spec(
    pattern="LV-PRE-013",
    alpha=0.3,
    lookalikes={"operation late": 2.0, "cardiopulmonary": 4.0, "setting": 1.5},
    not_eligible=frozenset({"operation late"}),
    settings=(("outpatient", 0.7), ("primary_care", 0.3)),
    dept="KIR",
    tail=50,
    background=((("J12", "J13", "J14", "J15", "J16", "J17", "J18", "J44", "I50", "C34", "R06.0", "R05"), -30, 0, "cardiopulmonary"),),
)
HB_SPEC = Spec(
    pattern="LV-HOSP-027",
    alpha=0.3,
    lookalikes={"hb 70-79": 3.0, "hb below 70": 1.5, "hb 25 h": 1.5, "bleeding": 2.5, "acs": 1.5, "haem cancer": 1.5, "chemo": 1.5, "setting": 1.0},
    not_eligible=frozenset({"hb below 70", "hb 25 h", "setting"}),
    settings=(("inpatient", 1.0),),
    tail=20,
)
OPERATIONS = ("CJE20", "JAB30", "JKA21")
CARDIOPULMONARY = ("J18.9", "J44.9", "I50.9", "C34.9", "R06.0", "R05")
BLEEDING = ("K92.0", "K92.1", "K92.2", "D62", "R58", "I85.0", "K25.0", "K26.0", "K27.0")
ACS = ("I21.4", "I20.0", "I22.9")
HAEM_CANCER = ("C92.0", "C83.3", "C90.0")


def plant_preop(ck: Chunk, persons: np.ndarray) -> None:
    """A chest X-ray 0-30 days before a low-risk operation; lookalikes with the operation on day 31+,
    a cardiopulmonary diagnosis in the 30 days before, or taken in emergency/inpatient care."""
    bt = prepare(ck, PRE_SPEC, persons)
    rng, n, day, b = ck.rng, bt.n, bt.day, ck.b
    setting = bt.setting.copy()
    acute = bt.is_("setting")
    setting[acute] = np.where(rng.random(acute.sum()) < 0.6, "emergency", "inpatient")
    bt.reason[acute] = [f"setting {s}" for s in setting[acute]]
    enc, t = visit(ck, bt.p, day, setting, hours=AFTERNOON, minutes=40, dept="KIR")
    c.proc(b, bt.p, enc, t + 15, "RTG-THORAX", 600.0)

    k = rng.integers(1, 31, n)
    k[rng.random(n) < 0.2] = 30
    k[rng.random(n) < 0.1] = 0
    late = bt.is_("operation late")
    k[late] = np.where(rng.random(late.sum()) < 0.4, 31, rng.integers(32, 46, late.sum()))
    bt.reason[late] = [f"operation day {x}" for x in k[late]]
    op = pick(ck, OPERATIONS, n)
    stay = op == "JKA21"
    op_t = np.where(k == 0, t + 120, (day + k) * MIN_PER_DAY + clock_time(rng, n, 8, 13))
    oe = b.encounter(bt.p, op_t, np.where(stay, rng.integers(1, 3, n) * MIN_PER_DAY, 240), np.where(stay, "inpatient", "outpatient"), unit_for(b, bt.p, np.full(n, "outpatient"), "KIR"))
    c.proc(b, bt.p, oe, op_t + 60, op, 25000.0)
    c.dx(b, bt.p, oe, op_t + 5, np.array(["H25.9", "K40.9", "K80.2"])[[OPERATIONS.index(x) for x in op]])

    cp = bt.is_("cardiopulmonary")
    x = pick(ck, CARDIOPULMONARY, n)
    context_dx(ck, bt.p[cp], back(ck, day[cp], 0, 30), x[cp])
    bt.reason[cp] = [f"cardiopulmonary {y}" for y in x[cp]]
    stale = bt.planted & (rng.random(n) < 0.1)
    context_dx(ck, bt.p[stale], day[stale] - rng.integers(31, 41, stale.sum()), "R05")
    finish(ck, bt, enc, t + 15, "procedure", c.KVA, np.full(n, "RTG-THORAX"))


def _hb_values(ck: Chunk, bt) -> tuple[np.ndarray, np.ndarray]:
    """(earlier, latest) haemoglobin in g/L; earlier is NaN when only one value is measured."""
    rng, n = ck.rng, bt.n
    latest = rng.integers(80, 101, n).astype(float)
    latest[bt.planted & (rng.random(n) < 0.2)] = 80
    mid = bt.is_("hb 70-79")
    latest[mid] = rng.choice([72, 79, 70, 74, 76, 78], mid.sum(), p=[0.3, 0.2, 0.1, 0.15, 0.15, 0.1])
    low = bt.is_("hb below 70")
    latest[low] = rng.integers(55, 70, low.sum())
    earlier = np.full(n, np.nan)
    two = (bt.planted | mid) & (rng.random(n) < 0.2)
    earlier[two] = np.where(bt.planted[two], rng.integers(65, 80, n)[two], rng.integers(82, 95, n)[two])
    return earlier, latest


def plant_transfusion(ck: Chunk, persons: np.ndarray) -> None:
    """A red-cell transfusion in a stay with the most recent Hb in the last 24 h >= 80 g/L; lookalikes with
    Hb 70-79 (sensitive only) or < 70, Hb measured 25 h before, bleeding, ACS, haematological cancer,
    chemotherapy, or given in outpatient care."""
    bt = prepare(ck, HB_SPEC, persons)
    rng, n, b = ck.rng, bt.n, ck.b
    earlier, latest = _hb_values(ck, bt)
    outpatient = bt.is_("setting")
    bt.reason[outpatient] = "setting outpatient"
    admit = bt.day * MIN_PER_DAY + np.where(outpatient, clock_time(rng, n, 8, 10), clock_time(rng, n, 0, 22))
    hb1 = admit + rng.integers(30, 121, n)
    two = ~np.isnan(earlier)
    hb2 = np.where(two, hb1 + rng.integers(120, 721, n), hb1)
    gap = rng.integers(30, 23 * 60, n)
    gap[(bt.planted & ~two) & (rng.random(n) < 0.2)] = 24 * 60
    late = bt.is_("hb 25 h")
    gap[late] = 25 * 60
    gap[outpatient] = rng.integers(60, 180, outpatient.sum())
    tx = hb2 + np.where(two, rng.integers(30, 361, n), gap)
    unit = bt.unit
    setting = np.where(outpatient, "outpatient", "inpatient")
    end = np.where(outpatient, tx + 180, tx + rng.integers(1, 8, n) * MIN_PER_DAY)
    enc = b.encounter(bt.p, admit, end - admit, setting, unit)
    dx_t = admit + 5
    bleed = bt.is_("bleeding")
    bcode = pick(ck, BLEEDING, n)
    in_stay = bleed & (rng.random(n) < 0.6)
    c.dx(b, bt.p, enc, dx_t, np.where(in_stay, bcode, "D64.9"))
    c.hb(b, bt.p[two], enc[two], hb1[two], earlier[two])
    c.hb(b, bt.p, enc, hb2, latest)
    c.proc(b, bt.p, enc, tx, "DR029", 3500.0)

    tday = tx // MIN_PER_DAY
    before = bleed & ~in_stay
    bday = tday - np.where(rng.random(n) < 0.5, 7, rng.integers(3, 7, n))
    context_dx(ck, bt.p[before], bday[before], bcode[before], "emergency")
    bt.reason[bleed] = [f"bleeding {x}" for x in bcode[bleed]]
    stale = bt.planted & (rng.random(n) < 0.1)
    context_dx(ck, bt.p[stale], tday[stale] - rng.integers(8, 13, stale.sum()), bcode[stale], "emergency")
    for kind, codes, lo, hi, setting_ in (("acs", ACS, 3, 30, "emergency"), ("haem cancer", HAEM_CANCER, 10, 365, "outpatient"), ("chemo", ("Z51.1",), 3, 90, "outpatient")):
        m = bt.is_(kind)
        x = pick(ck, codes, m.sum())
        context_dx(ck, bt.p[m], back(ck, tday[m], lo, hi), x, setting_)
        bt.reason[m] = [f"{kind} {y}" for y in x]
    for m, why in ((bt.is_("hb 70-79"), "Hb {:.0f} g/L"), (bt.is_("hb below 70"), "Hb {:.0f} g/L")):
        bt.reason[m] = [why.format(v) + ("" if np.isnan(e) else f" (most recent; earlier {e:.0f})") for v, e in zip(latest[m], earlier[m])]
    bt.reason[late] = "Hb measured 25 h before"

    def emit(rows: np.ndarray) -> np.ndarray:
        return adverse.hai(b, bt.p[rows], enc[rows], admit[rows], tx[rows])

    finish(ck, bt, enc, tx, "procedure", c.KVA, np.full(n, "DR029"), candidate=~outpatient, emit=emit)
