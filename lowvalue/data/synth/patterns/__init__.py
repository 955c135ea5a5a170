"""The nine planters of docs/patterns.md and who gets which.

Each person gets at most one pattern episode. That is the simplest way to rule
out cross-pattern interference (a planted URI diagnosis next to another
planter's antibiotic, an NSAID from the PPI planter, a red-flag cancer from the
transfusion planter...), and it still gives thousands of instances per pattern
at 100 000 persons because the age-75 patterns draw on the old and the others on
everyone.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..clock import age_at, day
from ..population import Population
from . import antibiotics, drugs, hospital, imaging, screening
from .common import Chunk

PATTERN_IDS: tuple[str, ...] = (
    "LV-IMG-001",
    "LV-ABX-003",
    "LV-ABX-004",
    "LV-SCR-008",
    "LV-RX-022",
    "LV-PRE-013",
    "LV-HOSP-027",
    "LV-LAB-011",
    "LV-RX-026",
)

PLANTERS: dict[str, Callable[[Chunk, np.ndarray], None]] = {
    "LV-IMG-001": imaging.plant,
    "LV-ABX-003": lambda ck, p: antibiotics.plant(ck, p, "LV-ABX-003"),
    "LV-ABX-004": lambda ck, p: antibiotics.plant(ck, p, "LV-ABX-004"),
    "LV-SCR-008": screening.plant_psa,
    "LV-RX-022": drugs.plant_benzo,
    "LV-PRE-013": hospital.plant_preop,
    "LV-HOSP-027": hospital.plant_transfusion,
    "LV-LAB-011": screening.plant_vitamin_d,
    "LV-RX-026": drugs.plant_ppi,
}


def episode_rates(pop: Population) -> np.ndarray:
    """Per person and pattern, the chance of one episode in the period (rows sum to at most 0.95)."""
    age = age_at(pop.birth, day("2023-07-01"))
    f = pop.frailty
    male = pop.sex == "M"
    r = np.zeros((len(pop), len(PATTERN_IDS)))
    r[:, 0] = 0.035 * (age >= 17)
    r[:, 1] = 0.035 * (age >= 2)
    r[:, 2] = 0.025 * (age >= 2)
    r[:, 3] = 0.30 * (male & (age >= 73))
    r[:, 4] = 0.30 * (age >= 73)
    r[:, 5] = 0.025 * (age >= 19)
    r[:, 6] = 0.02 * (1 + 4 * f) * (age >= 19)
    r[:, 7] = 0.035 * (age >= 17)
    r[:, 8] = 0.035 * (age >= 19)
    total = r.sum(1, keepdims=True)
    return np.where(total > 0.95, r * 0.95 / np.maximum(total, 1e-9), r)


def assign(pop: Population, rng: np.random.Generator) -> None:
    """Set ``pop.episode`` (index into PATTERN_IDS, -1 for none) before background care is generated."""
    r = episode_rates(pop)
    cum = np.cumsum(r, 1)
    u = rng.random(len(pop))[:, None]
    k = (u >= cum).sum(1)
    pop.episode = np.where(k < len(PATTERN_IDS), k, -1)


def plant_all(ck: Chunk) -> None:
    """Run every planter on the persons assigned to it."""
    for k, pattern in enumerate(PATTERN_IDS):
        PLANTERS[pattern](ck, np.flatnonzero(ck.b.pop.episode == k))
