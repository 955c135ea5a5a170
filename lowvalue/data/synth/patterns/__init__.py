"""The planters of docs/patterns.md (one per rule in rules/) and who gets which.

Each person gets at most one pattern episode. That is the simplest way to rule
out cross-pattern interference (a planted URI diagnosis next to another
planter's antibiotic, a red-flag cancer from the transfusion planter...), and it
still gives thousands of instances per pattern at 100 000 persons because the
old-age patterns draw on the old and the others on everyone.

What is left is handled in three ways (docs/patterns.md, "Interference"):
planters avoid codes that are another rule's index or anchor (an opioid not on
LV-RX-023's list, a sore-throat code only after an antibiotic); where an index
event is another rule's index too, that rule gets its own truth row
(``record(..., "cross")``: diazepam for LV-RX-023, the PPI planter's NSAID for
LV-RX-025, the daily-Hb planter's transfusion for LV-HOSP-027); and
:data:`RESERVED` removes the background codes that could change a planted
instance's label from that pattern's persons before planting.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..clock import age_at, day
from ..population import Population
from . import antibiotics, drugs, hospital, imaging, laboratory, musculo, neuro, perioperative, prescribing, screening, sinus
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
    "LV-RX-002",
    "LV-ABX-005",
    "LV-ABX-006",
    "LV-IMG-007",
    "LV-SCR-009",
    "LV-SCR-010",
    "LV-LAB-012",
    "LV-PRE-014",
    "LV-PRE-015",
    "LV-IMG-016",
    "LV-IMG-017",
    "LV-IMG-018",
    "LV-PROC-019",
    "LV-PROC-020",
    "LV-IMG-021",
    "LV-RX-023",
    "LV-RX-024",
    "LV-RX-025",
    "LV-HOSP-028",
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
    "LV-RX-002": prescribing.plant_opioid,
    "LV-ABX-005": sinus.plant_sinus_antibiotic,
    "LV-ABX-006": sinus.plant_throat_antibiotic,
    "LV-IMG-007": sinus.plant_sinus_ct,
    "LV-SCR-009": laboratory.plant_cervix,
    "LV-SCR-010": laboratory.plant_colon,
    "LV-LAB-012": laboratory.plant_t3,
    "LV-PRE-014": perioperative.plant_cardiac_test,
    "LV-PRE-015": perioperative.plant_preop_labs,
    "LV-IMG-016": neuro.plant_syncope_ct,
    "LV-IMG-017": neuro.plant_headache_ct,
    "LV-IMG-018": neuro.plant_carotid,
    "LV-PROC-019": musculo.plant_knee,
    "LV-PROC-020": musculo.plant_vertebroplasty,
    "LV-IMG-021": musculo.plant_dxa,
    "LV-RX-023": prescribing.plant_avoid,
    "LV-RX-024": prescribing.plant_antipsychotic,
    "LV-RX-025": prescribing.plant_nsaid,
    "LV-HOSP-028": perioperative.plant_daily_hb,
}

PREOP_LABS = ("NPU28309", "NPU18016", "NPU01685", "NPU01682", "NPU02192", "NPU03429", "NPU03230")
_HEAD = (("diagnosis", ("R51", "R55", "R26", "G43", "G44")),)
RESERVED: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "LV-IMG-001": (("diagnosis", ("R53", "T14", "T40", "T42")),),
    "LV-PRE-013": (("lab", PREOP_LABS),),
    "LV-PRE-014": (("lab", PREOP_LABS), ("diagnosis", ("I20", "I21", "I22", "I23", "I24", "I25", "I34", "I35", "I36", "I37", "I47", "I48",
                                                       "I49", "I50", "J44", "R07", "R06.0", "R55"))),
    "LV-PRE-015": (("lab", PREOP_LABS), ("diagnosis", ("N18", "E10", "E11", "E12", "E13", "E14")), ("medication", ("B01AA", "B01AB", "B01AE", "B01AF"))),
    "LV-IMG-016": _HEAD,
    "LV-IMG-017": _HEAD,
    "LV-IMG-018": _HEAD,
    "LV-PROC-019": (("diagnosis", ("M17",)),),
    "LV-LAB-012": (("diagnosis", ("E01.8", "E02", "E03", "E89.0")), ("medication", ("H03AA01",))),
    "LV-RX-024": (("diagnosis", ("F00", "F01", "F02", "F03", "G30", "G31.0", "G31.1")),),
    "LV-RX-025": (("diagnosis", ("N18", "I50", "I11.0", "I13")),),
    "LV-RX-002": (("medication", ("N02BE01", "M01A")),),
    "LV-SCR-010": (("diagnosis", ("K92", "D50", "D62", "D63", "D64", "R19.4", "R19.5", "R10", "R63.4", "R93.3", "K57", "K50", "K51", "K52")),),
    "LV-ABX-005": (("diagnosis", ("J43", "J44")),),
}
"""Background codes removed from a pattern's persons before planting: routine labs that a low-risk operation
would turn into LV-PRE-015 candidates, anchors of a rule sharing the index codes (R55/R51 around head imaging),
and codes that would decide a planted instance's label (COPD, CKD, heart failure, dementia, hypothyroidism and
levothyroxine, paracetamol, GI bleeding...). Haemoglobin of the LV-HOSP-027/028 persons is left out by
``background.no_hb`` instead."""


def reserve(b) -> None:
    """Apply :data:`RESERVED` to a chunk's background care (call after background, before planting)."""
    rules = []
    for pattern, items in RESERVED.items():
        mask = b.pop.episode == PATTERN_IDS.index(pattern)
        for kind, prefixes in items:
            rules.append((mask, kind, prefixes))
    b.drop(rules)


def episode_rates(pop: Population) -> np.ndarray:
    """Per person and pattern, the chance of one episode in the period (rows sum to at most 0.95)."""
    age = age_at(pop.birth, day("2023-07-01"))
    f = pop.frailty
    male = pop.sex == "M"
    r = np.zeros((len(pop), len(PATTERN_IDS)))
    r[:, 0] = 0.035 * (age >= 17)
    r[:, 1] = 0.035 * (age >= 2)  # LV-ABX-003 and -004: also their target trials' anchors (treated or not)
    r[:, 2] = 0.025 * (age >= 2)
    r[:, 3] = 0.30 * (male & (age >= 73))
    r[:, 4] = 0.30 * (age >= 73)
    r[:, 5] = 0.025 * (age >= 19)
    r[:, 6] = 0.02 * (1 + 4 * f) * (age >= 19)
    r[:, 7] = 0.035 * (age >= 17)
    r[:, 8] = 0.035 * (age >= 19)
    female = pop.sex == "F"
    new = {
        "LV-RX-002": 0.025 * (age >= 17),
        "LV-ABX-005": 0.12 * (age >= 17),  # also the target trial's anchors (treated or not): a larger cohort
        "LV-ABX-006": 0.03 * (age >= 2),
        "LV-IMG-007": 0.02 * (age >= 17),
        "LV-SCR-009": 0.25 * (female & (age >= 69)),
        "LV-SCR-010": 0.30 * (age >= 84),
        "LV-LAB-012": 0.025 * (age >= 17),
        "LV-PRE-014": 0.025 * (age >= 17),
        "LV-PRE-015": 0.025 * (age >= 0),
        "LV-IMG-016": 0.025 * (age >= 17),
        "LV-IMG-017": 0.025 * (age >= 17),
        "LV-IMG-018": 0.02 * (age >= 17),
        "LV-PROC-019": 0.03 * (age >= 48),
        "LV-PROC-020": 0.03 * (age >= 48),
        "LV-IMG-021": 0.04 * (age >= 48),
        "LV-RX-023": 0.12 * (age >= 73),
        "LV-RX-024": 0.06 * (age >= 63),
        "LV-RX-025": 0.06 * (age >= 63),
        "LV-HOSP-028": 0.02 * (1 + 2 * f) * (age >= 17),
    }
    for pattern, rate in new.items():
        r[:, PATTERN_IDS.index(pattern)] = rate
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
