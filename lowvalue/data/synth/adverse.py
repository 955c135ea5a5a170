"""Adverse events: those linked to patterns (with a known risk ratio) and background ones with no planted cause.

Linked events are drawn once per candidate intervention within 30 days of the
index: probability ``p0(frailty)`` after a justified lookalike and
``RR * p0(frailty)`` after a planted instance. Because frailty also raises the
chance of being planted, a crude comparison overstates the RR; adjusting for
frailty (or its observable proxies) recovers it. That is the point of the data.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import coding as c
from .background import no_hb
from .builder import ChunkBuilder
from .clock import MIN_PER_DAY, PERIOD_START, clock_time, uniform_days
from .population import COMORBIDITY_CODES
from .region import hospital_unit

P0_INTERCEPT, P0_SLOPE = 0.03, 0.22
HORIZON_DAYS = 30

LINKED: dict[str, tuple[str, float]] = {
    "LV-RX-026": ("TR-CDIFF", 1.8),
    "LV-RX-022": ("TR-FALL-FRACTURE", 2.0),
    "LV-HOSP-027": ("TR-HAI", 1.6),
}
"""pattern -> (trigger id, true risk ratio within 30 days), from docs/patterns.md. A pattern with a planted target
trial (:data:`TRIALS`) draws its outcomes there instead: an anchor's risk must depend on the treatment within the grace
period and baseline only, not on a second draw at the index."""


class Trial(NamedTuple):
    """A planted target trial (docs/patterns.md, "Target trials"): every anchor of the planter draws ``trigger`` with
    probability ``trial_p0(age)``, times ``rr`` when the intervention came within ``grace`` days; the negative control
    ``nc_trigger`` at ``nc_share * trial_p0(age)`` whatever the treatment. The emitters are called ``outcome_after``
    and ``nc_after`` days after the anchor's midnight (so the events fall after the grace period, inside the harm
    window: see ``outcome_days``)."""

    trigger: str
    rr: float
    grace: int
    nc_trigger: str
    nc_share: float
    anchor: str
    outcome_after: int
    nc_after: int
    outcome_days: tuple[int, int]
    nc_days: tuple[int, int]


TRIALS: dict[str, Trial] = {
    "LV-ABX-005": Trial("TR-CDIFF", 2.0, 3, "TR-FALL-FRACTURE", 0.5, "acute sinusitis J01.9 at a visit",
                        4, 4, (7, 32), (6, 32)),
    "LV-ABX-003": Trial("TR-CDIFF", 1.5, 3, "TR-FALL-FRACTURE", 0.5,
                        "common cold / upper respiratory infection (J06.9, J00) at a visit", 1, 2, (4, 29), (4, 30)),
    "LV-ABX-004": Trial("TR-CDIFF", 2.5, 3, "TR-FALL-FRACTURE", 0.5, "acute bronchitis (J20.9, J40) at a visit",
                        1, 2, (4, 29), (4, 30)),
}
"""pattern -> its planted target trial (true causal risk ratio of the intervention within the grace period)."""


def p0(frailty: np.ndarray) -> np.ndarray:
    """Baseline 30-day risk: 3 % for the fittest, 25 % for the frailest."""
    return P0_INTERCEPT + P0_SLOPE * np.asarray(frailty)


def draw(rng: np.random.Generator, frailty: np.ndarray, planted: np.ndarray, rr: float) -> tuple[np.ndarray, np.ndarray]:
    """(happens, excess) per candidate; ``excess`` marks events that only the low-value care caused."""
    base = p0(frailty)
    u = rng.random(len(base))
    happens = u < np.where(planted, np.minimum(1.0, rr * base), base)
    return happens, happens & (u >= base)


def cdiff(b: ChunkBuilder, p: np.ndarray, index_time: np.ndarray) -> np.ndarray:
    """C. difficile infection 3-28 days after the index, usually admitted to medicine. Returns the event times."""
    rng, pop = b.rng, b.pop
    d = index_time // MIN_PER_DAY + rng.integers(3, 29, len(p))
    t = d * MIN_PER_DAY + clock_time(rng, len(p), 8, 20)
    admit = rng.random(len(p)) < 0.6
    enc = b.encounter(
        p,
        t,
        np.where(admit, rng.integers(3, 8, len(p)) * MIN_PER_DAY, 30),
        np.where(admit, "inpatient", "primary_care"),
        np.where(admit, hospital_unit(pop.hospital[p], "MED"), pop.listing_unit[p]),
    )
    c.dx(b, p, enc, t + 20, "A04.7")
    c.lab(b, p, enc, t + 25, c.CRP, np.round(rng.uniform(20, 150, len(p))), "mg/L")
    return t + 20


def fall_fracture(b: ChunkBuilder, p: np.ndarray, index_time: np.ndarray) -> np.ndarray:
    """Hip fracture after a fall: emergency visit, then a surgical admission."""
    rng, pop = b.rng, b.pop
    d = index_time // MIN_PER_DAY + rng.integers(2, 29, len(p))
    t = d * MIN_PER_DAY + clock_time(rng, len(p), 6, 21)
    ed = b.encounter(p, t, 240, "emergency", hospital_unit(pop.hospital[p], "AKUT"))
    c.dx(b, p, ed, t + 30, "S72.0")
    c.dx(b, p, ed, t + 30, "W19")
    ward = b.encounter(p, t + 240, rng.integers(4, 11, len(p)) * MIN_PER_DAY, "inpatient", hospital_unit(pop.hospital[p], "KIR"))
    c.dx(b, p, ward, t + 300, "S72.0")
    c.proc(b, p, ward, t + 24 * 60, "NFB49", 45000.0)  # (u) hip fracture surgery
    return t + 30


def hai(b: ChunkBuilder, p: np.ndarray, enc: np.ndarray, admitted: np.ndarray, index_time: np.ndarray) -> np.ndarray:
    """Sepsis or transfusion-related infection in the same stay, more than 48 h after admission."""
    rng = b.rng
    t = np.maximum(index_time + rng.integers(6 * 60, 10 * MIN_PER_DAY, len(p)), admitted + 49 * 60)
    code = np.where(rng.random(len(p)) < 0.7, "A41.9", "T80.2")
    c.dx(b, p, enc, t, code)
    b.extend(enc, t + rng.integers(2, 6, len(p)) * MIN_PER_DAY)
    return t


EMITTERS = {"TR-CDIFF": cdiff, "TR-FALL-FRACTURE": fall_fracture}


def _ed(b: ChunkBuilder, p: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = uniform_days(b.rng, lo, hi)
    t = d * MIN_PER_DAY + clock_time(b.rng, len(p), 0, 22.5)
    enc = b.encounter(p, t, b.rng.integers(120, 360, len(p)), "emergency", hospital_unit(b.pop.hospital[p], "AKUT"))
    return d, t, enc


def background(b: ChunkBuilder) -> None:
    """AKI with creatinine doubling, GI bleeding, hypoglycaemia and antidotes, unrelated to any pattern."""
    pop, rng = b.pop, b.rng
    n = len(pop)
    f = pop.frailty
    lo, hi = np.full(n, PERIOD_START + 10), pop.last_day - 2
    ok = hi >= lo
    renal = pop.comorb[:, [COMORBIDITY_CODES.index(k) for k in ("I10", "E11.9", "I50.9", "N18.3")]].any(1)
    p = np.flatnonzero(ok & renal & (rng.random(n) < 0.01 + 0.1 * f))
    d, t, enc = _ed(b, p, lo[p], hi[p])
    pre = (d - rng.integers(3, 8, len(p))) * MIN_PER_DAY + clock_time(rng, len(p))
    pc = b.encounter(p, pre, 25, "primary_care", pop.listing_unit[p])
    c.dx(b, p, pc, pre + 5, "R53")
    c.lab(b, p, pc, pre + 10, c.CREATININE, pop.creatinine[p], "µmol/L")
    c.dx(b, p, enc, t + 40, "N17.9")
    c.lab(b, p, enc, t + 30, c.CREATININE, np.round(pop.creatinine[p] * rng.uniform(2.1, 3.0, len(p))), "µmol/L")
    b.adverse(p, t + 40, "TR-AKI")

    p = np.flatnonzero(ok & ~no_hb(b) & (rng.random(n) < 0.005 + 0.04 * f))
    _, t, enc = _ed(b, p, lo[p], hi[p])
    c.dx(b, p, enc, t + 30, "K92.2")
    c.hb(b, p, enc, t + 20, rng.uniform(80, 115, len(p)))
    b.adverse(p, t + 30, "TR-BLEED")

    diabetic = pop.comorb[:, COMORBIDITY_CODES.index("E11.9")]
    p = np.flatnonzero(ok & diabetic & (rng.random(n) < 0.02 + 0.1 * f))
    _, t, enc = _ed(b, p, lo[p], hi[p])
    c.lab(b, p, enc, t + 10, c.GLUCOSE, np.round(rng.uniform(1.5, 2.7, len(p)), 1), "mmol/L")
    c.dx(b, p, enc, t + 30, "E16.0")
    b.adverse(p, t + 30, "TR-HYPO")

    p = np.flatnonzero(ok & (rng.random(n) < 0.003 + 0.02 * f))
    _, t, enc = _ed(b, p, lo[p], hi[p])
    which = rng.integers(0, 3, len(p))
    c.dx(b, p, enc, t + 15, np.array(["T40.2", "T42.4", "D68.3"])[which])
    c.drug(b, p, enc, t + 20, np.array(["V03AB15", "V03AB25", "B02BA01"])[which], 1)
    b.adverse(p, t + 20, "TR-ANTIDOTE")
