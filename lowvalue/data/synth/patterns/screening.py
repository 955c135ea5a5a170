"""LV-SCR-008 (PSA in men aged 75+) and LV-LAB-011 (vitamin D without a risk condition): tests with no action."""

from __future__ import annotations

import numpy as np

from .. import coding as c
from ..clock import MIN_PER_DAY, PERIOD_START
from .common import AFTERNOON, Chunk, Spec, back, context_dx, finish, pick, prepare, visit

PSA_SPEC = Spec(
    pattern="LV-SCR-008",
    alpha=0.3,
    lookalikes={"age": 3.0, "setting": 1.5, "prostate cancer": 1.5, "raised PSA": 1.5, "urinary": 2.0, "5-ARI": 1.5},
    not_eligible=frozenset({"age"}),
    min_age=75,
    age_kind="age",
    dept="KIR",
    age_edge=0.3,
)
VITD_SPEC = Spec(
    pattern="LV-LAB-011",
    alpha=0.2,
    lookalikes={"chronic": 2.5, "recent": 1.5, "fracture": 1.5, "pregnancy or obesity": 1.0, "setting": 1.5, "age": 0.5},
    not_eligible=frozenset({"age"}),
    min_age=18,
    age_kind="age",
    background=((("N18", "E11"), -3650, 0, "risk condition"),),
)
URINARY = ("R35", "R39.1", "R30.0", "N40")
PROSTATE_CANCER = ("C61", "C61", "Z85.4", "D07.5", "D40.0")
FIVE_ARI = ("G04CB01", "G04CB02")
RISK = {
    # LV-LAB-011 v2 (CEVR's lists): (codes, days back as (lo, hi); pregnancy/obesity only on the test day)
    "chronic": (("E55.9", "M81.0", "M80.0", "M83.9", "N18.3", "K90.0", "K50.9", "K51.9", "E21.0", "E20.9", "E11.9", "K70.3", "C50.9"), (0, 1000)),
    "recent": (("D86.0", "A15.0", "G40.9", "C83.3", "J63.2"), (0, 90)),
    "fracture": (("S52.5", "S22.0", "S32.0", "S42.2", "M48.5"), (0, 365)),
    "pregnancy or obesity": (("E66.9", "E66.0"), (0, 0)),
}


def _index_visit(ck: Chunk, bt, dept: str):
    """The test's encounter: routine setting, or emergency/inpatient for the setting lookalikes."""
    rng = ck.rng
    setting = bt.setting.copy()
    acute = bt.is_("setting")
    setting[acute] = np.where(rng.random(acute.sum()) < 0.5, "emergency", "inpatient")
    bt.reason[acute] = [f"setting {s}" for s in setting[acute]]
    minutes = np.where(setting == "inpatient", rng.integers(2, 6, bt.n) * MIN_PER_DAY, 30)
    return visit(ck, bt.p, bt.day, setting, hours=AFTERNOON, minutes=minutes, dept=dept)


def plant_psa(ck: Chunk, persons: np.ndarray) -> None:
    """PSA at 75+; lookalikes at 74, outside primary/outpatient care, after prostate cancer (C61, Z85.4, D07.5,
    D40.0), on a 5-alpha-reductase inhibitor in the year before, with a raised PSA or urinary symptoms in the 90 days before."""
    bt = prepare(ck, PSA_SPEC, persons)
    rng, n, day = ck.rng, bt.n, bt.day
    bt.reason[bt.is_("age")] = "age 74"
    ca = bt.is_("prostate cancer")
    pc = pick(ck, PROSTATE_CANCER, n)
    context_dx(ck, bt.p[ca], day[ca] - rng.integers(30, 181, ca.sum()), pc[ca], "outpatient", dept="KIR")
    bt.reason[ca] = [f"prostate cancer {x}" for x in pc[ca]]
    ari = bt.is_("5-ARI")
    drug = pick(ck, FIVE_ARI, n)
    e, t0 = visit(ck, bt.p[ari], back(ck, day[ari], 0, 365), "primary_care")
    c.drug(ck.b, bt.p[ari], e, t0 + 10, drug[ari], 100)
    bt.reason[ari] = [f"5-ARI {x}" for x in drug[ari]]
    raised = bt.is_("raised PSA")
    context_dx(ck, bt.p[raised], back(ck, day[raised], 0, 365), "R97.2")
    bt.reason[raised] = "raised PSA R97.2"
    uri = bt.is_("urinary")
    codes = pick(ck, URINARY, n)
    context_dx(ck, bt.p[uri], back(ck, day[uri], 0, 90), codes[uri])
    bt.reason[uri] = [f"urinary symptoms {x}" for x in codes[uri]]
    stale = bt.planted & (rng.random(n) < 0.1)
    context_dx(ck, bt.p[stale], day[stale] - rng.integers(91, 121, stale.sum()), "N40")
    enc, t = _index_visit(ck, bt, PSA_SPEC.dept)
    c.lab(ck.b, bt.p, enc, t + 15, c.PSA, np.round(rng.lognormal(0.5, 0.8, n), 1), "µg/L")
    finish(ck, bt, enc, t + 15, "lab", c.NPU, np.full(n, c.PSA))


def plant_vitamin_d(ck: Chunk, persons: np.ndarray) -> None:
    """Vitamin D in primary/outpatient care without a risk condition; lookalikes with a chronic one (any time
    before), a recent one (90 days), a fracture (365 days), pregnancy/obesity the same day, in emergency/inpatient
    care, or at age 17. Planted ones may have a recent-type risk 91+ days, a fracture 366+ days or obesity the day
    before (all outside CEVR's look-backs)."""
    bt = prepare(ck, VITD_SPEC, persons)
    rng, n, day = ck.rng, bt.n, bt.day
    bt.reason[bt.is_("age")] = "age 17"
    for kind, (codes, (lo, hi)) in RISK.items():
        risk = bt.is_(kind)
        x = pick(ck, codes, n)
        context_dx(ck, bt.p[risk], back(ck, day[risk], lo, hi), x[risk])
        bt.reason[risk] = [f"risk condition {y}" for y in x[risk]]
    stale = bt.planted & (rng.random(n) < 0.1)
    context_dx(ck, bt.p[stale], day[stale] - np.minimum(rng.integers(91, 121, stale.sum()), (day - PERIOD_START)[stale]), "D86.0")
    old = bt.planted & (rng.random(n) < 0.1) & (day - 400 >= PERIOD_START)
    context_dx(ck, bt.p[old], day[old] - rng.integers(366, 401, old.sum()), "S52.5")
    obese = bt.planted & (rng.random(n) < 0.05) & (day - 1 >= PERIOD_START)
    context_dx(ck, bt.p[obese], day[obese] - 1, "E66.9")
    enc, t = _index_visit(ck, bt, VITD_SPEC.dept)
    c.lab(ck.b, bt.p, enc, t + 15, c.VITAMIN_D, np.round(rng.uniform(20, 120, n)), "nmol/L")
    finish(ck, bt, enc, t + 15, "lab", c.NPU, np.full(n, c.VITAMIN_D))
