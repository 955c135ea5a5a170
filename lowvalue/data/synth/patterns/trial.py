"""The outcomes of a planted target trial (:data:`lowvalue.data.synth.adverse.TRIALS`), shared by its planters.

A planter decides who has the anchor condition and who got the intervention within the grace period; this module
draws every anchor's outcome from its age and that treatment alone, so the causal risk ratio is known exactly and
confounding by indication acts only through what the planter made treatment depend on.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from .. import adverse
from ..clock import MIN_PER_DAY
from .common import Batch, Chunk, age_on


def trial_p0(age: np.ndarray) -> np.ndarray:
    """A trial's baseline risk: 2 % up to 18, rising 0.4 points per year of age after it (about 31 % at 90).

    It depends on age only, which the extract records exactly, so adjusting for the baseline features can remove the
    confounding: being treated rises with frailty (which rises with age), so the crude ratio is biased upwards, while
    the part of frailty no code shows does not act on the outcome. ``RR * p0`` stays below 1 for the ratios planted
    (at most 2.5 at age 105: 0.95), so the marginal ratio equals RR."""
    return 0.02 + 0.004 * np.maximum(age - 18, 0)


def trial_outcomes(ck: Chunk, bt: Batch, anchor: np.ndarray, treated: np.ndarray, anchor_day: np.ndarray) -> None:
    """Draw the outcome and the negative control of ``bt``'s pattern's trial for the rows in ``anchor``.

    ``treated`` marks the rows whose intervention came within the grace period, ``anchor_day`` is the anchor's day
    per row. The outcome happens with probability :func:`trial_p0` (times the true risk ratio when treated), the
    negative control at ``nc_share * trial_p0`` whatever the treatment; counts go to ``trial_*``."""
    rng, b = ck.rng, ck.b
    trial = adverse.TRIALS[bt.spec.pattern]
    p = bt.p[anchor]
    base = trial_p0(age_on(ck, p, anchor_day[anchor]))
    anchor_min = anchor_day[anchor] * MIN_PER_DAY
    tr = treated[anchor]
    u = rng.random(len(p))
    happens = u < base * np.where(tr, trial.rr, 1.0)
    excess = happens & (u >= base)
    rows = np.flatnonzero(happens)
    t_ae = adverse.EMITTERS[trial.trigger](b, p[rows], anchor_min[rows] + trial.outcome_after * MIN_PER_DAY)
    b.adverse(p[rows], t_ae, trial.trigger, np.where(excess[rows], bt.spec.pattern, ""), anchor_min[rows],
              excess[rows], bt.spec.pattern)
    nc = rng.random(len(p)) < trial.nc_share * base
    rows = np.flatnonzero(nc)
    t_nc = adverse.EMITTERS[trial.nc_trigger](b, p[rows], anchor_min[rows] + trial.nc_after * MIN_PER_DAY)
    b.adverse(p[rows], t_nc, trial.nc_trigger, "", anchor_min[rows], False, "")
    cnt = ck.counts.setdefault(bt.spec.pattern, Counter())
    cnt["trial_anchors_treated"] += int(tr.sum())
    cnt["trial_anchors_untreated"] += int((~tr).sum())
    cnt["trial_events_treated"] += int((happens & tr).sum())
    cnt["trial_events_untreated"] += int((happens & ~tr).sum())
    cnt["trial_negative_control_events"] += int(nc.sum())


def untreated_when_young(ck: Chunk, bt: Batch, age: np.ndarray) -> None:
    """Confounding by indication through age: a planted instance becomes the ``no antibiotic`` kind (no index event,
    no truth row) with probability ``0.7 / (1 + exp((age - 45) / 8))``, so the young are left untreated more often."""
    young = bt.planted & (ck.rng.random(bt.n) < 0.7 / (1 + np.exp((age - 45) / 8)))
    bt.kind[young] = "no antibiotic"
