"""Ordinary care that is not part of any pattern: chronic follow-up, acute visits and admissions.

It gives the extract its bulk and makes frailty observable (comorbidity codes at
every chronic visit, admissions more frequent for the frail). It writes no
antibiotic and no index code of any pattern except routine labs (haemoglobin,
creatinine, glucose): those are LV-PRE-015 index codes only before a low-risk
operation and LV-HOSP-028 ones only in a daily series within one stay, and
``patterns.RESERVED`` removes them (and other interfering codes) from the
persons whose episode could turn them into candidates.
"""

from __future__ import annotations

import numpy as np

from . import coding as c
from .builder import ChunkBuilder
from .clock import MIN_PER_DAY, PERIOD_START, clock_time, uniform_days
from .population import COMORBIDITIES, COMORBIDITY_CODES
from .region import HOSPITALS, VC_NAMES, hospital_unit

_LAB_CREAT = [COMORBIDITY_CODES.index(k) for k in ("I10", "E11.9", "I50.9", "N18.3")]
_DIABETES = COMORBIDITY_CODES.index("E11.9")


def no_hb(b: ChunkBuilder) -> np.ndarray:
    """Persons whose haemoglobin values belong to the transfusion and daily-Hb planters alone."""
    from .patterns import PATTERN_IDS

    return np.isin(b.pop.episode, [PATTERN_IDS.index("LV-HOSP-027"), PATTERN_IDS.index("LV-HOSP-028")])


def chronic_visits(b: ChunkBuilder) -> None:
    """Primary-care follow-up every 60-150 days for anyone with a comorbidity, coding all of them each time."""
    pop, rng = b.pop, b.rng
    idx = np.flatnonzero(pop.comorb.any(1))
    k = 20
    first = PERIOD_START + rng.integers(0, 61, len(idx))
    days = np.concatenate([first[:, None], first[:, None] + np.cumsum(rng.integers(60, 151, (len(idx), k - 1)), 1)], 1)
    keep = days <= pop.last_day[idx][:, None]
    p = np.repeat(idx, keep.sum(1))
    d = days[keep]
    t = d * MIN_PER_DAY + clock_time(rng, len(p))
    unit = np.where(rng.random(len(p)) < 0.9, pop.listing_unit[p], VC_NAMES[rng.integers(0, len(VC_NAMES), len(p))])
    enc = b.encounter(p, t, rng.integers(20, 41, len(p)), "primary_care", unit)
    for j, (code, _, _, atc) in enumerate(COMORBIDITIES):
        m = pop.comorb[p, j]
        c.dx(b, p[m], enc[m], t[m] + 2, code)
        if atc:
            c.drug(b, p[m], enc[m], t[m] + 15, atc, 90)
    m = pop.comorb[p][:, _LAB_CREAT].any(1)
    c.lab(b, p[m], enc[m], t[m] + 10, c.CREATININE, np.round(pop.creatinine[p[m]] * rng.uniform(0.9, 1.1, m.sum())), "µmol/L")
    m = pop.comorb[p, _DIABETES]
    c.lab(b, p[m], enc[m], t[m] + 10, c.GLUCOSE, np.round(rng.uniform(5.0, 11.0, m.sum()), 1), "mmol/L")
    m = (rng.random(len(p)) < 0.25) & ~no_hb(b)[p]
    c.hb(b, p[m], enc[m], t[m] + 10, rng.normal(135, 12, m.sum()).clip(95, 175))


def acute_visits(b: ChunkBuilder) -> None:
    """Short-lived complaints in primary care, digital care, emergency and outpatient clinics."""
    pop, rng = b.pop, b.rng
    years = (pop.last_day - PERIOD_START + 1) / 365.25
    n = rng.poisson((0.5 + 1.5 * pop.frailty) * years)
    p = np.repeat(np.arange(len(pop)), n)
    d = uniform_days(rng, np.full(len(p), PERIOD_START), pop.last_day[p])
    setting = rng.choice(np.array(["primary_care", "digital", "emergency", "outpatient"]), len(p), p=[0.6, 0.2, 0.15, 0.05])
    hours = np.where(setting == "emergency", clock_time(rng, len(p), 0, 23.0), clock_time(rng, len(p)))
    t = d * MIN_PER_DAY + hours
    unit = np.where(
        setting == "emergency",
        hospital_unit(pop.hospital[p], "AKUT"),
        np.where(setting == "outpatient", hospital_unit(pop.hospital[p], "MED"), pop.listing_unit[p]),
    )
    enc = b.encounter(p, t, np.where(setting == "emergency", rng.integers(90, 360, len(p)), rng.integers(15, 40, len(p))), setting, unit)
    pick = rng.integers(0, len(c.ACUTE_DX), len(p))
    codes = np.array([a for a, _ in c.ACUTE_DX])[pick]
    drugs = np.array([x for _, x in c.ACUTE_DX])[pick]
    c.dx(b, p, enc, t + 5, codes)
    m = (drugs != "") & (rng.random(len(p)) < 0.5)
    c.drug(b, p[m], enc[m], t[m] + 12, drugs[m], 30)
    m = rng.random(len(p)) < 0.25
    c.lab(b, p[m], enc[m], t[m] + 8, c.CRP, np.round(rng.lognormal(1.5, 0.9, m.sum()), 0), "mg/L")
    m = (rng.random(len(p)) < 0.10) & ~no_hb(b)[p]
    c.hb(b, p[m], enc[m], t[m] + 8, rng.normal(135, 12, m.sum()).clip(95, 175))
    m = setting == "emergency"
    m &= rng.random(len(p)) < 0.5
    c.proc(b, p[m], enc[m], t[m] + 20, c.BACKGROUND_PROCEDURES[0])


def stay(b: ChunkBuilder, p: np.ndarray, d: np.ndarray, department: np.ndarray | str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An emergency visit followed by an admission; returns (arrival minute, inpatient encounter, discharge minute)."""
    pop, rng = b.pop, b.rng
    t = d * MIN_PER_DAY + clock_time(rng, len(p), 0, 22.0)
    ed_minutes = rng.integers(120, 360, len(p))
    ed = b.encounter(p, t, ed_minutes, "emergency", hospital_unit(pop.hospital[p], "AKUT"))
    code = np.array(c.INPATIENT_DX)[rng.integers(0, len(c.INPATIENT_DX), len(p))]
    c.dx(b, p, ed, t + 30, code)
    start = t + ed_minutes
    los = rng.integers(1, 11, len(p)) * MIN_PER_DAY + rng.integers(-300, 300, len(p))
    dept = np.broadcast_to(np.asarray(department), p.shape)
    unit = np.char.add(np.char.add(np.array(HOSPITALS)[pop.hospital[p]], "-"), dept.astype(str))
    enc = b.encounter(p, start, los, "inpatient", unit)
    c.dx(b, p, enc, start + 60, code)
    c.lab(b, p, enc, start + 90, c.CREATININE, np.round(pop.creatinine[p] * rng.uniform(0.9, 1.3, len(p))), "µmol/L")
    c.lab(b, p, enc, start + 90, c.CRP, np.round(rng.lognormal(2.5, 1.0, len(p))), "mg/L")
    m = ~no_hb(b)[p]
    c.hb(b, p[m], enc[m], start[m] + 90, rng.normal(125, 15, m.sum()).clip(85, 170))
    c.proc(b, p, enc, start + 120, c.BACKGROUND_PROCEDURES[1])
    return t, enc, start + los


def admissions(b: ChunkBuilder) -> None:
    """Admissions for the frail, and 30-day readmissions (a background adverse event)."""
    pop, rng = b.pop, b.rng
    last = pop.last_day - 14
    years = np.clip(last - PERIOD_START + 1, 0, None) / 365.25
    n = rng.poisson((0.02 + 0.4 * pop.frailty) * years)
    p = np.repeat(np.arange(len(pop)), n)
    d = uniform_days(rng, np.full(len(p), PERIOD_START), last[p])
    dept = np.where(rng.random(len(p)) < 0.7, "MED", "KIR")
    _, _, discharge = stay(b, p, d, dept)
    again = rng.random(len(p)) < 0.1 + 0.3 * pop.frailty[p]
    d2 = discharge // MIN_PER_DAY + rng.integers(2, 29, len(p))
    again &= d2 <= last[p]
    arrival, _, _ = stay(b, p[again], d2[again], dept[again])
    b.adverse(p[again], arrival, "TR-READMIT")
