"""LV-ABX-005 (antibiotics for acute sinusitis), LV-ABX-006 (antibiotics for sore throat without a strep test)
and LV-IMG-007 (sinus CT for uncomplicated acute sinusitis)."""

from __future__ import annotations

import numpy as np

from .. import adverse
from .. import coding as c
from ..clock import PERIOD_START
from .antibiotics import ANTIBIOTICS, competing_dx, prior_course
from .common import AFTERNOON, Batch, Chunk, Spec, age_on, back, context_dx, edge_back, finish, pick, prepare, visit
from .trial import trial_outcomes, untreated_when_young

_SETTINGS = (("primary_care", 0.75), ("digital", 0.25))
SINUS_ABX_SPEC = Spec(
    "LV-ABX-005",
    0.3,
    {"outside window": 2.0, "bacterial": 2.0, "prior antibiotic": 2.0, "competing": 2.5, "comorbidity": 2.0, "chronic sinusitis": 1.5, "age": 0.5,
     "no antibiotic": 14.0},
    frozenset({"outside window", "age"}),
    18,
    age_kind="age",
    settings=_SETTINGS,
)
THROAT_SPEC = Spec(
    "LV-ABX-006",
    0.3,
    {"outside window": 2.0, "strep test": 3.0, "strep diagnosis": 3.0, "age": 0.5},
    frozenset({"outside window", "strep test", "age"}),
    3,
    age_kind="age",
    settings=_SETTINGS,
)
CT_SPEC = Spec(
    "LV-IMG-007",
    0.2,
    {"outside window": 2.0, "chronic only": 2.0, "earlier sinusitis": 2.0, "red flag": 3.0, "age": 0.5},
    frozenset({"outside window", "age"}),
    18,
    age_kind="age",
    settings=(("outpatient", 1.0),),
    dept="KIR",
)
BACTERIAL = ("J01.0", "J01.1", "J01.8")
SITE_SPECIFIED = ("J01.0", "J01.0", "J01.4", "J01.8")
# J02/J03 only after the antibiotic: before it they would make it an LV-ABX-006 candidate.
COMPETING = ("J18.9", "H66.9", "N39.0", "L03.1", "J02.9", "J03.9")
COMORBIDITY = ("J44.9", "J43.9", "D84.9", "B20", "C34.9", "E84.9")
CHRONIC = ("J32.0", "J32.9")
THROAT_DX = ("J02.9", "J03.9")
STREP_DX = ("J02.0", "J03.0")
STREP_TESTS = ("STREP-A", "SVALGODLING")
CT_RED_FLAGS = ("J33.9", "D84.9", "B20", "H05.0", "H53.2", "H54.7", "S02.3")
THROAT_ABX = ("J01CE02", "J01CE02", "J01CA04", "J01FA09")


def _lag(ck: Chunk, bt, top: int, out_lo: int, out_hi: int) -> np.ndarray:
    """Days from the diagnosis to the index: 0..top (a fifth exactly top), the outside-window kind out_lo..out_hi."""
    rng, n = ck.rng, bt.n
    lag = rng.integers(0, top + 1, n)
    lag[rng.random(n) < 0.2] = top
    out = bt.is_("outside window")
    lag[out] = np.where(rng.random(out.sum()) < 0.6, out_lo, rng.integers(out_lo, out_hi + 1, out.sum()))
    bt.reason[out] = [f"diagnosis day -{k}" for k in lag[out]]
    return lag


def plant_sinus_antibiotic(ck: Chunk, persons: np.ndarray) -> None:
    """An antibiotic 0-3 days after acute sinusitis J01.9; lookalikes with a bacterial J01 code, the diagnosis
    on day -4, a course in the 30 days before, a competing infection within 3 days, COPD/immunodeficiency/
    cancer or chronic sinusitis in the year before, or at age 17; and the target trial's untreated arm: J01.9 at a
    visit and no antibiotic ("no antibiotic": no index event, no truth row). Being planted (treated) rises with
    frailty, so the untreated are fitter: confounding by indication. Then the trial's outcomes (:func:`trial_outcomes`)."""
    bt = prepare(ck, SINUS_ABX_SPEC, persons)
    rng, n, day, b = ck.rng, bt.n, bt.day, ck.b
    bt.reason[bt.is_("age")] = "age 17"
    lag = _lag(ck, bt, 3, 4, 7)
    # confounding by indication through age (which also sets the trial's baseline risk, trial_p0): the younger are
    # more often left untreated; the switched instances leave the planted set (no index event, no truth row)
    untreated_when_young(ck, bt, age_on(ck, bt.p, day))
    untreated = bt.is_("no antibiotic")
    lag[untreated] = 0
    dx_code = np.where(bt.is_("bacterial"), pick(ck, BACTERIAL, n), "J01.9")
    bt.reason[bt.is_("bacterial")] = [f"bacterial {x}" for x in dx_code[bt.is_("bacterial")]]
    same = lag == 0
    context_dx(ck, bt.p[~same], day[~same] - lag[~same], dx_code[~same], bt.setting[~same])
    enc, t = visit(ck, bt.p, day, bt.setting, bt.unit, hours=AFTERNOON, minutes=20)
    c.dx(b, bt.p[same], enc[same], t[same] + 3, dx_code[same])
    drug = pick(ck, ANTIBIOTICS, n)
    supply = rng.integers(5, 11, n)
    c.drug(b, bt.p[~untreated], enc[~untreated], t[~untreated] + 10, drug[~untreated], supply[~untreated])

    prior_course(ck, bt, lag, bt.spec.pattern, "no sinusitis diagnosis")

    competing_dx(ck, bt, COMPETING, THROAT_DX)

    for kind, pool in (("comorbidity", COMORBIDITY), ("chronic sinusitis", CHRONIC)):
        m_ = bt.is_(kind)
        x = pick(ck, pool, m_.sum())
        context_dx(ck, bt.p[m_], back(ck, day[m_], 0, 365), x)
        bt.reason[m_] = [f"{kind} {y}" for y in x]
    stale = bt.planted & (rng.random(n) < 0.1) & (day - 400 >= PERIOD_START)
    context_dx(ck, bt.p[stale], day[stale] - rng.integers(366, 401, stale.sum()), pick(ck, ("J44.9", "J32.9"), stale.sum()))
    grace = adverse.TRIALS[bt.spec.pattern].grace
    trial_outcomes(ck, bt, dx_code == "J01.9", ~untreated & (lag <= grace), day - lag)
    k = ~untreated
    sub = Batch(bt.spec, bt.p[k], day[k], bt.kind[k], bt.setting[k], bt.unit[k], bt.reason[k])
    finish(ck, sub, enc[k], t[k] + 10, "medication", c.ATC, drug[k])


def plant_throat_antibiotic(ck: Chunk, persons: np.ndarray) -> None:
    """An antibiotic 0-3 days after pharyngitis/tonsillitis with no group A strep test within 3 days; lookalikes
    with a test (not judged), a streptococcal diagnosis within 3 days (likely low value), the diagnosis on day -4,
    or at age 2."""
    bt = prepare(ck, THROAT_SPEC, persons)
    rng, n, day, b = ck.rng, bt.n, bt.day, ck.b
    bt.reason[bt.is_("age")] = "age 2"
    lag = _lag(ck, bt, 3, 4, 6)
    dx_code = pick(ck, THROAT_DX, n)
    same = lag == 0
    context_dx(ck, bt.p[~same], day[~same] - lag[~same], dx_code[~same], bt.setting[~same])
    enc, t = visit(ck, bt.p, day, bt.setting, bt.unit, hours=AFTERNOON, minutes=20)
    c.dx(b, bt.p[same], enc[same], t[same] + 3, dx_code[same])
    drug = pick(ck, THROAT_ABX, n)
    c.drug(b, bt.p, enc, t + 10, drug, 10)

    off = rng.integers(-3, 4, n)
    edge = rng.random(n) < 0.3
    off[edge] = np.where(rng.random(edge.sum()) < 0.5, -3, 3)
    far = np.where(rng.random(n) < 0.5, -4, 4)
    for kind, pool, write in (("strep test", STREP_TESTS, "lab"), ("strep diagnosis", STREP_DX, "dx")):
        m = bt.is_(kind)
        stale = bt.planted & (rng.random(n) < 0.08)
        x = pick(ck, pool, n)
        for rows, o in ((m, off), (stale, far)):
            when = day[rows] + o[rows]
            if write == "lab":
                e, tt = visit(ck, bt.p[rows], when, "primary_care")
                c.lab(b, bt.p[rows], e, tt + 5, x[rows], np.nan, "")
            else:
                context_dx(ck, bt.p[rows], when, x[rows])
        bt.reason[m] = [f"{kind} {y} day {o:+d}" for y, o in zip(x[m], off[m])]
    finish(ck, bt, enc, t + 10, "medication", c.ATC, drug)


def plant_sinus_ct(ck: Chunk, persons: np.ndarray) -> None:
    """A sinus CT 0-30 days after a first acute sinusitis; lookalikes after chronic sinusitis only, after an
    earlier sinusitis 31-365 days before, with a complicating condition in the year before, 31+ days after
    the diagnosis, or at age 17."""
    bt = prepare(ck, CT_SPEC, persons)
    rng, n, day, b = ck.rng, bt.n, bt.day, ck.b
    bt.reason[bt.is_("age")] = "age 17"
    lag = _lag(ck, bt, 30, 31, 40)
    chronic = bt.is_("chronic only")
    # site-specified acute sinusitis only: J01.9 is reserved for LV-ABX-005's target trial, whose anchors must all get
    # its outcome draws (an untreated anchor without one would have no risk at all and bias the trial)
    code = np.where(chronic, pick(ck, CHRONIC, n), pick(ck, SITE_SPECIFIED, n))
    bt.reason[chronic] = [f"chronic sinusitis {x} only" for x in code[chronic]]
    context_dx(ck, bt.p, day - lag, code)
    # the same episode: a second acute visit exactly 30 days before the CT
    again = bt.planted & (lag < 30) & (rng.random(n) < 0.2)
    context_dx(ck, bt.p[again], day[again] - 30, "J01.0")

    earlier = bt.is_("earlier sinusitis")
    when = edge_back(ck, day, 31, 365, 0.3)
    x = pick(ck, ("J01.4", "J32.0"), n)
    context_dx(ck, bt.p[earlier], when[earlier], x[earlier])
    bt.reason[earlier] = [f"earlier sinusitis {y} day -{k}" for y, k in zip(x[earlier], (day - when)[earlier])]
    flag = bt.is_("red flag")
    y = pick(ck, CT_RED_FLAGS, n)
    context_dx(ck, bt.p[flag], back(ck, day[flag], 0, 365), y[flag], "outpatient")
    bt.reason[flag] = [f"red flag {z}" for z in y[flag]]
    stale = bt.planted & (rng.random(n) < 0.1) & (day - 400 >= PERIOD_START)
    context_dx(ck, bt.p[stale], day[stale] - rng.integers(366, 401, stale.sum()), pick(ck, ("J32.9", "J33.9"), stale.sum()))
    enc, t = visit(ck, bt.p, day, bt.setting, hours=AFTERNOON, minutes=30, dept="KIR")
    c.proc(b, bt.p, enc, t + 15, "DT-BIHALOR", 2500.0)
    finish(ck, bt, enc, t + 15, "procedure", c.KVA, np.full(n, "DT-BIHALOR"))
