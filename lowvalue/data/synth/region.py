"""The fictional region: municipalities, primary-care units and three hospitals, modelled on Värmland.

Each unit carries a fixed propensity multiplier (on the odds that an eligible
intervention is low value), so unit-level variation is part of the ground
truth and a report ranking units has a right answer. The multipliers are
constants rather than seeded so documentation and tests can name them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Municipality:
    code: str
    name: str
    population: int
    hospital: str


MUNICIPALITIES: tuple[Municipality, ...] = (
    Municipality("1780", "Karlstad", 95000, "CSK"),
    Municipality("1784", "Arvika", 26000, "ARV"),
    Municipality("1781", "Kristinehamn", 24500, "CSK"),
    Municipality("1761", "Hammarö", 16500, "CSK"),
    Municipality("1785", "Säffle", 15500, "ARV"),
    Municipality("1766", "Sunne", 13000, "TOR"),
    Municipality("1715", "Kil", 12000, "CSK"),
    Municipality("1737", "Torsby", 11500, "TOR"),
    Municipality("1763", "Forshaga", 11500, "CSK"),
    Municipality("1783", "Hagfors", 11500, "TOR"),
    Municipality("1782", "Filipstad", 10500, "CSK"),
    Municipality("1765", "Årjäng", 10000, "ARV"),
    Municipality("1764", "Grums", 9000, "CSK"),
    Municipality("1730", "Eda", 8500, "ARV"),
    Municipality("1760", "Storfors", 4000, "CSK"),
    Municipality("1762", "Munkfors", 3600, "CSK"),
)

# Primary-care units (vårdcentraler): (name, municipality code, propensity multiplier).
VARDCENTRALER: tuple[tuple[str, str, float], ...] = (
    ("VC-Kronoparken", "1780", 3.0),
    ("VC-Gripen", "1780", 1.0),
    ("VC-Herrhagen", "1780", 0.5),
    ("VC-Våxnäs", "1780", 1.5),
    ("VC-Hertig-Knut", "1780", 1.0),
    ("VC-Centrum", "1780", 2.0),
    ("VC-Skoghall", "1761", 0.7),
    ("VC-Kil", "1715", 1.0),
    ("VC-Forshaga", "1763", 1.5),
    ("VC-Grums", "1764", 2.5),
    ("VC-Munkfors", "1762", 1.0),
    ("VC-Storfors", "1760", 0.5),
    ("VC-Kristinehamn", "1781", 1.0),
    ("VC-Bröte", "1781", 3.0),
    ("VC-Filipstad", "1782", 2.0),
    ("VC-Säffle", "1785", 0.7),
    ("VC-Arvika-Öster", "1784", 1.0),
    ("VC-Arvika-Väster", "1784", 0.5),
    ("VC-Eda", "1730", 1.5),
    ("VC-Årjäng", "1765", 1.0),
    ("VC-Sunne", "1766", 0.7),
    ("VC-Torsby", "1737", 1.0),
    ("VC-Hagfors", "1783", 2.0),
)

# Hospital units: (name, hospital, department, multiplier). Every hospital has an emergency (AKUT),
# a medicine (MED) and a surgery (KIR) unit.
HOSPITAL_UNITS: tuple[tuple[str, str, str, float], ...] = (
    ("CSK-AKUT", "CSK", "AKUT", 1.0),
    ("CSK-MED", "CSK", "MED", 1.0),
    ("CSK-KIR", "CSK", "KIR", 1.5),
    ("ARV-AKUT", "ARV", "AKUT", 1.0),
    ("ARV-MED", "ARV", "MED", 2.5),
    ("ARV-KIR", "ARV", "KIR", 0.8),
    ("TOR-AKUT", "TOR", "AKUT", 1.0),
    ("TOR-MED", "TOR", "MED", 0.6),
    ("TOR-KIR", "TOR", "KIR", 3.0),
)
HOSPITALS: tuple[str, ...] = ("CSK", "ARV", "TOR")

UNIT_MULTIPLIER: dict[str, float] = {n: m for n, _, m in VARDCENTRALER} | {n: m for n, _, _, m in HOSPITAL_UNITS}

# Encounter cost in SEK by setting (inpatient per started day).
SETTING_COST: dict[str, float] = {
    "primary_care": 1800.0,
    "outpatient": 3200.0,
    "emergency": 4500.0,
    "inpatient": 9500.0,
    "digital": 600.0,
    "home": 1500.0,
}

VC_NAMES = np.array([v[0] for v in VARDCENTRALER])
VC_MUNICIPALITY = np.array([v[1] for v in VARDCENTRALER])
MUNI_CODES = np.array([m.code for m in MUNICIPALITIES])
MUNI_WEIGHTS = np.array([m.population for m in MUNICIPALITIES], dtype=float) / sum(m.population for m in MUNICIPALITIES)
MUNI_HOSPITAL = np.array([HOSPITALS.index(m.hospital) for m in MUNICIPALITIES])


def hospital_unit(hospital: np.ndarray, department: str) -> np.ndarray:
    """Unit name of a department at each hospital index (0 CSK, 1 ARV, 2 TOR)."""
    names = np.array([f"{h}-{department}" for h in HOSPITALS])
    return names[np.asarray(hospital)]


def multiplier(units: np.ndarray) -> np.ndarray:
    """Propensity multiplier of each unit name."""
    return np.array([UNIT_MULTIPLIER[u] for u in units.tolist()], dtype=float)
