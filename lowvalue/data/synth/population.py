"""Persons of the region: age, sex, home, chronic comorbidities, latent frailty and death.

Frailty is the confounder of the whole data set. It is driven by age and by the
comorbidities that background care codes (so an analyst can adjust for it from
the data), plus a latent part nobody can observe. It raises both the chance an
intervention is low value and the baseline adverse-event risk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import region
from .clock import PERIOD_END, PERIOD_START, add_years, age_at, day

# Age bands at 2022-01-01 and their shares: 25 % aged 65+, 12 % aged 75+ (an old, rural-ish region).
AGE_BANDS: tuple[tuple[int, int, float], ...] = (
    (0, 18, 0.19),
    (18, 45, 0.29),
    (45, 65, 0.27),
    (65, 75, 0.13),
    (75, 85, 0.09),
    (85, 101, 0.03),
)

# Chronic comorbidity: (ICD-10-SE code, intercept and slope per decade around age 70, maintenance drug or "").
# Drugs avoid every code set of docs/patterns.md (no anticoagulant, aspirin, NSAID, steroid, PPI, antibiotic).
COMORBIDITIES: tuple[tuple[str, float, float, str], ...] = (
    ("I10", -0.2, 0.5, "C09AA05"),
    ("E11.9", -1.9, 0.3, "A10BA02"),
    ("I50.9", -3.0, 0.6, "C03CA01"),
    ("J44.9", -2.7, 0.3, "R03AK06"),
    ("F03", -4.0, 0.9, "N06DA02"),
    ("N18.3", -2.6, 0.6, ""),
    ("I48.9", -2.4, 0.6, "C07AB02"),
    ("F32.9", -2.5, 0.0, "N06AB06"),
    ("E03.9", -2.6, 0.1, "H03AA01"),
    ("M17.1", -2.2, 0.4, "N02BE01"),
)
COMORBIDITY_CODES = tuple(c[0] for c in COMORBIDITIES)

# frailty = sigmoid(F0 + F_AGE*(age-60) + F_COMORB*n_comorbidities + F_LATENT*z), z ~ N(0,1) unobserved
FRAILTY = {"intercept": -3.2, "age_per_year_from_60": 0.05, "per_comorbidity": 0.55, "latent_sd": 0.4}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class Population:
    """One chunk of persons as parallel arrays (index = local person number)."""

    offset: int
    birth: np.ndarray
    sex: np.ndarray
    municipality: np.ndarray
    listing_unit: np.ndarray
    hospital: np.ndarray
    comorb: np.ndarray
    frailty: np.ndarray
    death: np.ndarray  # day number, -1 if alive at the end
    creatinine: np.ndarray  # personal baseline, µmol/L
    episode: np.ndarray  # index into the pattern list, -1 for none (set by patterns.assign)

    def __len__(self) -> int:
        return len(self.birth)

    @property
    def last_day(self) -> np.ndarray:
        """Last day an event may fall on: the data end, or the day before death."""
        return np.where(self.death >= 0, np.minimum(self.death - 1, PERIOD_END), PERIOD_END)

    def age_on(self, when: np.ndarray | int) -> np.ndarray:
        return age_at(self.birth, when)


def make_population(rng: np.random.Generator, n: int, offset: int) -> Population:
    """Draw ``n`` persons. ``offset`` is the global number of the first (for ids)."""
    band = rng.choice(len(AGE_BANDS), n, p=[b[2] for b in AGE_BANDS])
    lo = np.array([b[0] for b in AGE_BANDS])[band]
    hi = np.array([b[1] for b in AGE_BANDS])[band]
    age0 = lo + (rng.random(n) * (hi - lo)).astype(np.int64)
    # birth date: age0 full years before 2022-01-01 minus a uniform day of the year
    birth = add_years(np.full(n, PERIOD_START - 1), -age0) - rng.integers(0, 365, n)
    bdt = birth.astype("M8[D]")
    feb29 = (bdt - bdt.astype("M8[M]").astype("M8[D]")).astype(int) == 28
    feb29 &= (bdt.astype("M8[M]") - bdt.astype("M8[Y]").astype("M8[M]")).astype(int) == 1
    birth = birth - feb29  # never born on 29 February: anniversaries stay unambiguous
    sex = rng.choice(np.array(["F", "M", "U"]), n, p=[0.4995, 0.4995, 0.001])
    muni = rng.choice(len(region.MUNICIPALITIES), n, p=region.MUNI_WEIGHTS)
    municipality = region.MUNI_CODES[muni]
    listing = np.empty(n, dtype=object)
    for code in np.unique(municipality):
        rows = np.flatnonzero(municipality == code)
        vcs = region.VC_NAMES[region.VC_MUNICIPALITY == code]
        listing[rows] = vcs[rng.integers(0, len(vcs), len(rows))]
    hospital = region.MUNI_HOSPITAL[muni].copy()
    hospital[rng.random(n) < 0.2] = 0  # a fifth of specialised care goes to the central hospital anyway

    age_mid = age_at(birth, day("2023-07-01")).astype(float)
    z = rng.standard_normal(n)
    comorb = np.zeros((n, len(COMORBIDITIES)), dtype=bool)
    for k, (_, a, b, _) in enumerate(COMORBIDITIES):
        p = _sigmoid(a + b * (age_mid - 70) / 10 + 0.5 * z)
        comorb[:, k] = (rng.random(n) < p) & (age_mid >= 18)
    lin = (
        FRAILTY["intercept"]
        + FRAILTY["age_per_year_from_60"] * (age_mid - 60)
        + FRAILTY["per_comorbidity"] * comorb.sum(1)
        + FRAILTY["latent_sd"] * z
    )
    frailty = _sigmoid(lin)
    p_death = _sigmoid(-9.0 + 0.085 * age_mid + 2.0 * frailty)
    dies = rng.random(n) < p_death
    death = np.where(dies, rng.integers(PERIOD_START + 30, PERIOD_END + 1, n), -1)
    ckd = comorb[:, COMORBIDITY_CODES.index("N18.3")]
    creat = np.where(sex == "M", 85.0, 70.0) * rng.uniform(0.85, 1.15, n) * np.where(ckd, 1.8, 1.0)
    return Population(
        offset=offset,
        birth=birth.astype(np.int64),
        sex=sex,
        municipality=municipality,
        listing_unit=listing.astype(str),
        hospital=hospital,
        comorb=comorb,
        frailty=frailty,
        death=death.astype(np.int64),
        creatinine=np.round(creat),
        episode=np.full(n, -1, dtype=np.int64),
    )
