"""LV-RX-002 (opioids first line for low back pain), LV-RX-023 (drugs to avoid at 75+), LV-RX-024 (antipsychotics
in dementia) and LV-RX-025 (NSAIDs in CKD or heart failure), plus the truth rows these rules need for index events
other planters write (diazepam from LV-RX-022, an NSAID from LV-RX-026)."""

from __future__ import annotations

import numpy as np

from .. import coding as c
from ..clock import PERIOD_START
from .common import AFTERNOON, Chunk, Spec, age_on, back, context_dx, context_index, finish, pick, prepare, record, visit
from .imaging import LBP, lbp_anchor

OPIOID_SPEC = Spec(
    "LV-RX-002",
    0.2,
    {"outside window": 2.0, "recent opioid": 2.0, "not first": 1.5, "red flag": 2.0, "palliative": 1.0, "oud": 1.0, "analgesic": 3.0, "age": 0.5},
    frozenset({"outside window", "recent opioid", "age"}),
    18,
    age_kind="age",
    settings=(("primary_care", 1.0),),
)
AVOID_SPEC = Spec("LV-RX-023", 0.4, {"age": 3.0, "palliative": 2.0}, frozenset({"age"}), 75, age_kind="age",
                  settings=(("primary_care", 0.9), ("outpatient", 0.1)), age_edge=0.3)
ANTIPSYCHOTIC_SPEC = Spec(
    "LV-RX-024",
    0.3,
    {"no dementia": 2.0, "psychiatric": 2.0, "first dispensing": 2.0, "delirium": 2.0, "palliative": 1.5, "age": 0.5},
    frozenset({"no dementia", "psychiatric", "age"}),
    65,
    age_kind="age",
    settings=(("primary_care", 0.8), ("outpatient", 0.2)),
)
NSAID_SPEC = Spec("LV-RX-025", 0.3, {"no ckd/hf": 2.0, "palliative": 2.0, "age": 0.5}, frozenset({"no ckd/hf", "age"}), 65,
                  age_kind="age", settings=(("primary_care", 1.0),), age_edge=0.2)

OPIOIDS = ("N02AA05", "N02AA01", "N02AX06")  # none is on LV-RX-023's list
RED_FLAGS = ("C79.5", "S32.0", "M80.0", "G83.4", "M46.2", "R50.9", "R63.4")
AVOID = ("N05BB01", "R06AD02", "R06AD01", "N06AA09", "N06AA04", "G04BD07", "G04BD04", "G04BD08", "A10BB01", "N05CM06", "R05DA04")
"""LV-RX-023's list without the entries that are another rule's index (N05BA01, N05CD02/03: LV-RX-022;
N02AX02, N02AJ06, N02AA59: LV-RX-002; N05AA02: LV-RX-024)."""
ANTIPSYCHOTICS = ("N05AX08", "N05AH04", "N05AD01", "N05AH03")
DEMENTIA = ("F03", "F00.1", "F01.9", "G30.1")
PSYCHIATRIC = ("F20.0", "F31.9", "F32.3", "F25.9", "G10")
NSAIDS = ("M01AE01", "M01AB05", "M01AE02", "M01AH01")
CKD_HF = ("N18.3", "N18.4", "N18.5", "I50.9", "I50.1", "I11.0", "I13.0")
CKD_HF_PREFIXES = ("N18.3", "N18.4", "N18.5", "I50", "I11.0", "I13.0", "I13.2")


def plant_opioid(ck: Chunk, persons: np.ndarray) -> None:
    """A strong opioid 0-42 days after a first low-back-pain diagnosis with no NSAID/paracetamol in the 30 days
    before; lookalikes after one (or on the same day), with an opioid in the 90 days before (not judged), a
    recent earlier LBP diagnosis, a red flag, palliative care or opioid-dependence treatment in the year before,
    the diagnosis 43+ days before, or at 17."""
    bt = prepare(ck, OPIOID_SPEC, persons)
    rng, n, day, b = ck.rng, bt.n, bt.day, ck.b
    bt.reason[bt.is_("age")] = "age 17"
    lag, dx_day = lbp_anchor(ck, bt)
    prior = bt.is_("not first")
    gap = np.where(rng.random(n) < 0.2, 180, rng.integers(50, 180, n))
    gap = np.minimum(gap, dx_day - PERIOD_START)
    context_dx(ck, bt.p[prior], dx_day[prior] - gap[prior], pick(ck, LBP, prior.sum()))
    bt.reason[prior] = [f"LBP diagnosis {g} days before" for g in gap[prior]]
    old = bt.planted & (rng.random(n) < 0.15) & (dx_day - 181 >= PERIOD_START)
    context_dx(ck, bt.p[old], dx_day[old] - 181, pick(ck, LBP, old.sum()))

    # an earlier opioid: before the LBP diagnosis (so never a candidate itself), 1-90 days before the index
    recent = bt.is_("recent opioid")
    m = np.where(rng.random(n) < 0.3, 90, lag + 1 + (rng.random(n) * (90 - lag)).astype(int))
    m = np.minimum(m, day - PERIOD_START)
    stale = bt.planted & ~old & (rng.random(n) < 0.1) & (lag < 90)
    m[stale] = np.minimum(rng.integers(91, 121, stale.sum()), (day - PERIOD_START)[stale])
    course = recent | (stale & (m > 90))
    bt.reason[recent] = [f"opioid day -{k}" for k in m[recent]]
    e, t = visit(ck, bt.p[course], day[course] - m[course], "primary_care")
    o = pick(ck, OPIOIDS, course.sum())
    c.drug(b, bt.p[course], e, t + 10, o, 7)
    context_index(ck, bt.spec.pattern, bt.p[course], e, t + 10, "medication", c.ATC, o, "context: earlier opioid, before the LBP diagnosis")

    for kind, pool, hi, system in (("red flag", RED_FLAGS, 365, "dx"), ("palliative", ("Z51.5",), 365, "dx"), ("oud", ("N07BC02", "N07BC01"), 365, "rx")):
        k = bt.is_(kind)
        x = pick(ck, pool, n)
        when = back(ck, day, 0, hi)
        if system == "dx":
            context_dx(ck, bt.p[k], when[k], x[k], "outpatient")
        else:
            ev, tt = visit(ck, bt.p[k], when[k], "outpatient")
            c.drug(b, bt.p[k], ev, tt + 10, x[k], 28)
        bt.reason[k] = [f"{kind} {y}" for y in x[k]]
    # first-line analgesic tried: paracetamol, or an NSAID under 64 (at 65+ with CKD/HF it is an LV-RX-025 index)
    ana = bt.is_("analgesic")
    young = age_on(ck, bt.p, day) < 64
    drug = np.where(young & (rng.random(n) < 0.5), pick(ck, ("M01AE01", "M01AE02"), n), "N02BE01")
    when = back(ck, day, 0, 30)
    old_ana = bt.planted & (rng.random(n) < 0.1)
    when = np.where(old_ana, day - 31, when)
    w = ana | old_ana
    same_day = w & (when == day)
    ev, tt = visit(ck, bt.p[w & ~same_day], when[w & ~same_day], "primary_care")
    c.drug(b, bt.p[w & ~same_day], ev, tt + 10, drug[w & ~same_day], 10)
    bt.reason[ana] = [f"analgesic {y} day -{k}" for y, k in zip(drug[ana], (day - when)[ana])]
    enc, t = visit(ck, bt.p, day, bt.setting, bt.unit, hours=AFTERNOON, minutes=20)
    c.drug(b, bt.p[same_day], enc[same_day], t[same_day] + 5, drug[same_day], 10)
    code = pick(ck, OPIOIDS, n)
    c.drug(b, bt.p, enc, t + 10, code, rng.integers(5, 15, n))
    finish(ck, bt, enc, t + 10, "medication", c.ATC, code)


def plant_avoid(ck: Chunk, persons: np.ndarray) -> None:
    """A drug on the Swedish list of drugs to avoid at 75+; lookalikes at 74 or in palliative care."""
    bt = prepare(ck, AVOID_SPEC, persons)
    rng, n, day = ck.rng, bt.n, bt.day
    bt.reason[bt.is_("age")] = "age 74"
    pal = bt.is_("palliative")
    context_dx(ck, bt.p[pal], back(ck, day[pal], 0, 365), "Z51.5", "outpatient")
    bt.reason[pal] = "palliative Z51.5"
    stale = bt.planted & (rng.random(n) < 0.1) & (day - 400 >= PERIOD_START)
    context_dx(ck, bt.p[stale], day[stale] - rng.integers(366, 401, stale.sum()), "Z51.5", "outpatient")
    enc, t = visit(ck, bt.p, day, bt.setting, bt.unit, hours=AFTERNOON, minutes=20)
    code = pick(ck, AVOID, n)
    c.drug(ck.b, bt.p, enc, t + 10, code, 30)
    finish(ck, bt, enc, t + 10, "medication", c.ATC, code)


def plant_antipsychotic(ck: Chunk, persons: np.ndarray) -> None:
    """An antipsychotic at 65+ with dementia in the 730 days before, another antipsychotic in the 180 days before,
    no psychotic/bipolar disorder, no delirium in 30 days, no palliative care; lookalikes for each. The earlier
    dispensing is an index event too and is labelled as it is (likely low value when dementia precedes it)."""
    bt = prepare(ck, ANTIPSYCHOTIC_SPEC, persons)
    rng, n, day, b = ck.rng, bt.n, bt.day, ck.b
    bt.reason[bt.is_("age")] = "age 64"
    room = day - PERIOD_START
    dem_day = back(ck, day, 0, 730)
    nod = bt.is_("no dementia")
    dem_day[nod] = day[nod] - rng.integers(731, 761, nod.sum())
    has_dem = dem_day >= PERIOD_START
    bt.reason[nod] = [f"dementia day -{k}" if h else "no dementia diagnosis" for k, h in zip((day - dem_day)[nod], has_dem[nod])]
    context_dx(ck, bt.p[has_dem], dem_day[has_dem], pick(ck, DEMENTIA, has_dem.sum()), "outpatient")
    psy = bt.is_("psychiatric")
    psy_day = back(ck, day, 0, 730)
    x = pick(ck, PSYCHIATRIC, n)
    context_dx(ck, bt.p[psy], psy_day[psy], x[psy], "outpatient")
    bt.reason[psy] = [f"psychiatric {y}" for y in x[psy]]
    # earlier dispensing
    first = bt.is_("first dispensing")
    m = np.where(rng.random(n) < 0.2, 180, rng.integers(1, 181, n))
    m[first] = rng.integers(181, 211, first.sum())
    has_prior = m <= room
    bt.reason[first] = [f"earlier dispensing day -{k}" if h else "first dispensing" for k, h in zip(m[first], has_prior[first])]
    pday = day - m
    e, t = visit(ck, bt.p[has_prior], pday[has_prior], "primary_care", hours=AFTERNOON)
    prior_code = pick(ck, ANTIPSYCHOTICS, has_prior.sum())
    c.drug(b, bt.p[has_prior], e, t + 10, prior_code, 30)
    # its label: population 65+, dementia in its [-730d, 0d], no psychiatric indication there; never repeated use
    pp = bt.p[has_prior]
    elig = (age_on(ck, pp, pday[has_prior]) >= 65) & has_dem[has_prior] & (dem_day[has_prior] <= pday[has_prior]) & (dem_day[has_prior] >= pday[has_prior] - 730)
    psych_there = psy[has_prior] & (psy_day[has_prior] <= pday[has_prior]) & (psy_day[has_prior] >= pday[has_prior] - 730)
    sens = elig & ~psych_there
    record(ck, bt.spec.pattern, pp, e, t + 10, "medication", c.ATC, prior_code, False, sens,
           np.where(sens, "context: earlier dispensing (likely low value, not repeated use)", "context: earlier dispensing"), "context")
    for kind, code, hi in (("delirium", "F05.9", 30), ("palliative", "Z51.5", 365)):
        k = bt.is_(kind)
        context_dx(ck, bt.p[k], back(ck, day[k], 0, hi), code, "outpatient")
        bt.reason[k] = f"{kind} {code}"
    stale = bt.planted & (rng.random(n) < 0.1)
    context_dx(ck, bt.p[stale], day[stale] - rng.integers(31, 41, stale.sum()), "F05.9", "outpatient")
    enc, t = visit(ck, bt.p, day, bt.setting, bt.unit, hours=AFTERNOON, minutes=20)
    code = pick(ck, ANTIPSYCHOTICS, n)
    c.drug(b, bt.p, enc, t + 10, code, 30)
    finish(ck, bt, enc, t + 10, "medication", c.ATC, code)


def plant_nsaid(ck: Chunk, persons: np.ndarray) -> None:
    """An NSAID at 65+ with CKD stage 3-5 or heart failure in the year before; lookalikes in palliative care,
    with only CKD stage 2 or the diagnosis 366+ days before, or at 64."""
    bt = prepare(ck, NSAID_SPEC, persons)
    rng, n, day = ck.rng, bt.n, bt.day
    bt.reason[bt.is_("age")] = "age 64"
    dx_day = back(ck, day, 0, 365)
    code = pick(ck, CKD_HF, n)
    no = bt.is_("no ckd/hf")
    stage2 = no & (rng.random(n) < 0.5)
    code[stage2] = "N18.2"
    far = no & ~stage2
    dx_day[far] = day[far] - rng.integers(366, 401, far.sum())
    ok = dx_day >= PERIOD_START
    bt.reason[no] = [f"{x} day -{k}" if o else "no CKD/HF diagnosis" for x, k, o in zip(code[no], (day - dx_day)[no], ok[no])]
    context_dx(ck, bt.p[ok], dx_day[ok], code[ok])
    pal = bt.is_("palliative")
    context_dx(ck, bt.p[pal], back(ck, day[pal], 0, 365), "Z51.5", "outpatient")
    bt.reason[pal] = "palliative Z51.5"
    enc, t = visit(ck, bt.p, day, bt.setting, bt.unit, hours=AFTERNOON, minutes=20)
    drug = pick(ck, NSAIDS, n)
    c.drug(ck.b, bt.p, enc, t + 10, drug, 30)
    finish(ck, bt, enc, t + 10, "medication", c.ATC, drug)


# ---------------------------------------------------------------------------------------------- cross-rule truth
def cross_avoid_from_benzo(ck: Chunk, bt, enc: np.ndarray, time: np.ndarray, code: np.ndarray) -> None:
    """The long-acting benzodiazepines LV-RX-022 plants (diazepam N05BA01, nitrazepam N05CD02, flunitrazepam
    N05CD03) are on LV-RX-023's list: label them for LV-RX-023 too (population 75+, low value unless palliative
    care in the year before)."""
    m = np.isin(code, ("N05BA01", "N05CD02", "N05CD03"))
    p = bt.p[m]
    sens = age_on(ck, p, bt.day[m]) >= 75
    low = sens & ~bt.is_("palliative")[m]
    reason = np.where(low, "planted", np.where(sens, "palliative Z51.5 (LV-RX-022 lookalike)", "age 74 (LV-RX-022 lookalike)"))
    record(ck, "LV-RX-023", p, enc[m], time[m], "medication", c.ATC, code[m], low, sens, reason, "cross")


def cross_nsaid_from_ppi(ck: Chunk, p: np.ndarray, enc: np.ndarray, time: np.ndarray, day: np.ndarray, code: np.ndarray) -> None:
    """An NSAID written as the LV-RX-026 gastroprotection lookalike is an LV-RX-025 index: 65+ and CKD 3-5 or
    heart failure (background comorbidity codes) in the year before make it low value (no palliative care is
    ever planted with it)."""
    m = np.char.startswith(code.astype(str), "M01A")
    if not m.any():
        return
    hit = ck.bg.first_match(p[m], day[m] - 365, day[m], CKD_HF_PREFIXES) != ""
    sens = (age_on(ck, p[m], day[m]) >= 65) & hit
    reason = np.where(sens, "planted", "no CKD/HF or under 65 (LV-RX-026 lookalike)")
    record(ck, "LV-RX-025", p[m], enc[m], time[m], "medication", c.ATC, code[m], sens, sens, reason, "cross")
