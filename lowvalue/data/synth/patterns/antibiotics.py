"""LV-ABX-003 (upper respiratory infection) and LV-ABX-004 (acute bronchitis): antibiotics for viral infections, and
their planted target trials (an antibiotic within 3 days of the diagnosis or not)."""

from __future__ import annotations

import numpy as np

from .. import adverse
from .. import coding as c
from ..clock import PERIOD_START
from .common import AFTERNOON, Batch, Chunk, Spec, age_on, back, context_dx, context_index, finish, pick, prepare, visit
from .trial import trial_outcomes, untreated_when_young

_LOOKALIKES = {"outside window": 2.0, "prior antibiotic": 2.0, "competing": 3.0, "comorbidity": 3.0, "no antibiotic": 8.0}
_BACKGROUND = ((("J43", "J44"), -365, 0, "comorbidity"),)
_SETTINGS = (("primary_care", 0.75), ("digital", 0.25))
SPECS = {
    "LV-ABX-003": Spec("LV-ABX-003", 0.3, _LOOKALIKES, frozenset({"outside window"}), 1, settings=_SETTINGS, background=_BACKGROUND),
    "LV-ABX-004": Spec("LV-ABX-004", 0.3, _LOOKALIKES, frozenset({"outside window"}), 1, settings=_SETTINGS, background=_BACKGROUND),
}
INFECTION = {"LV-ABX-003": ("J06.9", "J06.9", "J00"), "LV-ABX-004": ("J20.9", "J20.9", "J40")}
ANTIBIOTICS = ("J01CA04", "J01CE02", "J01FA09", "J01AA02")
COMPETING = ("J01.9", "J02.9", "J03.9", "J18.9", "H66.9", "N39.0", "L03.1")
COMORBIDITY = ("J44.9", "J43.9", "D84.9", "B20", "C34.9", "E84.9")
AFTER_ONLY = ("J01.9", "J02.9", "J03.9")
PRIOR_COURSE_DX = ("N30.0", "A46")  # cystitis, erysipelas: treated with antibiotics, not in any exclusion list


def plant(ck: Chunk, persons: np.ndarray, pattern: str) -> None:
    """An antibiotic 0-3 days after the infection diagnosis; lookalikes at day 4+, after a course in the
    previous 30 days, with a bacterial diagnosis within 3 days either side, or with a comorbidity; and the target
    trial's untreated arm: the diagnosis at a visit and no antibiotic ("no antibiotic": no index event, no truth row).
    Being planted (treated) rises with frailty and, through :func:`~.trial.untreated_when_young`, with age:
    confounding by indication. Every diagnosis is an anchor of the trial (:func:`~.trial.trial_outcomes`)."""
    spec = SPECS[pattern]
    bt = prepare(ck, spec, persons)
    rng, n, day, b = ck.rng, bt.n, bt.day, ck.b
    lag = rng.integers(0, 4, n)
    lag[rng.random(n) < 0.2] = 3
    out = bt.is_("outside window")
    lag[out] = np.where(rng.random(out.sum()) < 0.7, 4, rng.integers(5, 8, out.sum()))
    bt.reason[out] = [f"diagnosis day -{k}" for k in lag[out]]
    untreated_when_young(ck, bt, age_on(ck, bt.p, day))
    untreated = bt.is_("no antibiotic")
    lag[untreated] = 0
    same = lag == 0
    dx_code = pick(ck, INFECTION[pattern], n)
    context_dx(ck, bt.p[~same], day[~same] - lag[~same], dx_code[~same], bt.setting[~same])
    enc, t = visit(ck, bt.p, day, bt.setting, bt.unit, hours=AFTERNOON, minutes=20)
    c.dx(b, bt.p[same], enc[same], t[same] + 3, dx_code[same])
    drug = pick(ck, ANTIBIOTICS, n)
    supply = rng.integers(5, 11, n)
    c.drug(b, bt.p[~untreated], enc[~untreated], t[~untreated] + 10, drug[~untreated], supply[~untreated])

    prior_course(ck, bt, lag, pattern, "no infection diagnosis")

    competing_dx(ck, bt, COMPETING, AFTER_ONLY)

    como = bt.is_("comorbidity")
    ccodes = pick(ck, COMORBIDITY, n)
    context_dx(ck, bt.p[como], back(ck, day[como], 0, 365), ccodes[como])
    bt.reason[como] = [f"comorbidity {x}" for x in ccodes[como]]
    stale = bt.planted & (rng.random(n) < 0.1) & (day - 400 >= PERIOD_START)
    context_dx(ck, bt.p[stale], day[stale] - rng.integers(366, 401, stale.sum()), pick(ck, ("D84.9", "C34.9"), stale.sum()))
    trial_outcomes(ck, bt, np.ones(n, bool), ~untreated & (lag <= adverse.TRIALS[pattern].grace), day - lag)
    k = ~untreated
    sub = Batch(bt.spec, bt.p[k], day[k], bt.kind[k], bt.setting[k], bt.unit[k], bt.reason[k])
    finish(ck, sub, enc[k], t[k] + 10, "medication", c.ATC, drug[k])


def prior_course(ck: Chunk, bt, lag: np.ndarray, pattern: str, why: str) -> None:  # noqa: ANN001
    """An earlier antibiotic course 1-45 days back: the 'prior antibiotic' lookalikes (within 30 days) and some planted
    ones just outside (31+ days). Always before the infection diagnosis, so it is never a candidate itself."""
    rng, n, day, b = ck.rng, bt.n, bt.day, ck.b
    prior = bt.is_("prior antibiotic")
    m = np.where(rng.random(n) < 0.2, 30, lag + 1 + (rng.random(n) * (30 - lag)).astype(int))
    old = bt.planted & (rng.random(n) < 0.15)
    m[old] = np.where(rng.random(old.sum()) < 0.5, 31, rng.integers(32, 46, old.sum()))
    course = (prior | old) & (day - m >= PERIOD_START)
    bt.reason[prior] = [f"antibiotic day -{k}" for k in m[prior]]
    pe, pt = visit(ck, bt.p[course], day[course] - m[course], "primary_care")
    c.dx(b, bt.p[course], pe, pt + 5, pick(ck, PRIOR_COURSE_DX, course.sum()))
    earlier = pick(ck, ANTIBIOTICS, course.sum())
    c.drug(b, bt.p[course], pe, pt + 10, earlier, 7)
    context_index(ck, pattern, bt.p[course], pe, pt + 10, "medication", c.ATC, earlier, f"context: earlier course, {why}")


def competing_dx(ck: Chunk, bt, pool: tuple[str, ...], after_only: tuple[str, ...]) -> None:  # noqa: ANN001
    """'competing' lookalikes: a bacterial diagnosis in [-3d, 3d] (a third exactly on an edge), codes in ``after_only``
    only after the antibiotic (before it they would anchor another antibiotic rule); some planted get one on day ±4."""
    rng, n, day = ck.rng, bt.n, bt.day
    comp = bt.is_("competing")
    codes = pick(ck, pool, n)
    after = np.isin(codes, after_only)
    off = np.where(after, rng.integers(1, 4, n), rng.integers(-3, 4, n))
    edge = rng.random(n) < 0.3
    off[edge] = np.where(after[edge] | (rng.random(edge.sum()) < 0.5), 3, -3)
    context_dx(ck, bt.p[comp], day[comp] + off[comp], codes[comp])
    bt.reason[comp] = [f"competing {x} day {o:+d}" for x, o in zip(codes[comp], off[comp])]
    near = bt.planted & (rng.random(n) < 0.1)
    context_dx(ck, bt.p[near], day[near] + np.where(after[near] | (rng.random(near.sum()) < 0.5), 4, -4), codes[near])
