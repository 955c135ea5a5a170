"""LV-IMG-001: lumbar imaging for non-specific low back pain (see docs/patterns.md)."""

from __future__ import annotations

import numpy as np

from .. import coding as c
from ..clock import PERIOD_START
from .common import AFTERNOON, Chunk, Spec, back, context_dx, finish, pick, prepare, visit

SPEC = Spec(
    pattern="LV-IMG-001",
    alpha=0.2,
    lookalikes={"outside window": 2.0, "not first": 1.5, "setting": 1.5, "red flag": 4.0, "age": 0.5},
    not_eligible=frozenset({"outside window", "age"}),
    min_age=18,
    age_kind="age",
    dept="KIR",
)
LBP = ("M54.5", "M54.4", "M54.9")
IMAGING = ("RTG-LRYGG", "RTG-LRYGG", "RTG-LRYGG", "DT-LRYGG", "DT-LRYGG", "MR-LRYGG")
RED_FLAGS = ("C79.5", "C50.9", "S32.0", "M80.0", "G83.4", "M46.2", "R50.9", "R63.4", "M54.1", "F11.2", "R61", "D64.9", "S33.5")
"""Drawn from CEVR's imglbp_exc_dx_cond (LV-IMG-001 v2's back_imaging_red_flags)."""


def plant(ck: Chunk, persons: np.ndarray) -> None:
    """Imaging 0-42 days after a first LBP diagnosis; lookalikes at day 43, after a recent earlier LBP
    diagnosis, in emergency care, with a red flag in the year before, or at age 17."""
    bt = prepare(ck, SPEC, persons)
    rng, n, day = ck.rng, bt.n, bt.day
    lag, dx_day = lbp_anchor(ck, bt)

    prior = bt.is_("not first")
    gap = rng.integers(50, 136, n)
    context_dx(ck, bt.p[prior], dx_day[prior] - gap[prior], pick(ck, LBP, prior.sum()))
    bt.reason[prior] = [f"LBP diagnosis {g} days before" for g in gap[prior]]
    old = bt.planted & (rng.random(n) < 0.2) & (dx_day - 300 >= PERIOD_START)
    old_gap = rng.integers(200, 301, n)
    context_dx(ck, bt.p[old], dx_day[old] - old_gap[old], pick(ck, LBP, old.sum()))

    flag = bt.is_("red flag")
    codes = pick(ck, RED_FLAGS, n)
    context_dx(ck, bt.p[flag], back(ck, day[flag], 0, 365), codes[flag], "outpatient")
    bt.reason[flag] = [f"red flag {x}" for x in codes[flag]]
    stale = bt.planted & (rng.random(n) < 0.1) & (day - 400 >= PERIOD_START)
    context_dx(ck, bt.p[stale], day[stale] - rng.integers(366, 401, stale.sum()), codes[stale], "outpatient")

    setting = bt.setting.copy()
    acute = bt.is_("setting")
    setting[acute] = np.where(rng.random(acute.sum()) < 0.7, "emergency", "inpatient")
    bt.reason[acute] = [f"setting {s}" for s in setting[acute]]
    young = bt.is_("age")
    bt.reason[young] = "age 17"
    enc, t = visit(ck, bt.p, day, setting, hours=AFTERNOON, minutes=45, dept=SPEC.dept)
    code = pick(ck, IMAGING, n)
    c.proc(ck.b, bt.p, enc, t + 20, code, np.where(code == "RTG-LRYGG", 900.0, 3500.0))
    finish(ck, bt, enc, t + 20, "procedure", c.KVA, code)


def lbp_anchor(ck: Chunk, bt) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """The back-pain diagnosis 0-42 days before the index (a fifth exactly on day 42), or 43-60 days for the
    'outside window' lookalikes; returns (lag in days, diagnosis day)."""
    rng, n, day = ck.rng, bt.n, bt.day
    lag = rng.integers(0, 43, n)
    lag[rng.random(n) < 0.2] = 42
    out = bt.is_("outside window")
    lag[out] = np.where(rng.random(out.sum()) < 0.6, 43, rng.integers(44, 61, out.sum()))
    bt.reason[out] = [f"outside window day {k}" for k in lag[out]]
    dx_day = day - lag
    context_dx(ck, bt.p, dx_day, pick(ck, LBP, n))
    return lag, dx_day
