"""Coding systems, the codes the generator writes, and one-line event writers.

Background care draws only from the "safe" lists here: none of them is an index
code of a pattern, and the few that are pattern exclusions (COPD ``J44.9``,
heart failure ``I50.9``, CKD ``N18.3``) are checked against every planted
instance before it is labelled low value (see ``patterns.common``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .builder import ChunkBuilder

ICD, KVA, ATC, NPU = "ICD-10-SE", "KVÅ", "ATC", "NPU"

HB = "NPU02319"  # haemoglobin, g/L
CREATININE = "NPU18016"  # µmol/L
GLUCOSE = "NPU22089"  # mmol/L (u)
CRP = "NPU19748"  # mg/L
PSA = "NPU08669"  # µg/L (u)
VITAMIN_D = "NPU10267"  # nmol/L (u)

# Acute primary-care / digital / emergency diagnoses and an optional drug for each.
ACUTE_DX: tuple[tuple[str, str], ...] = (
    ("K59.0", "A06AD11"),
    ("H10.9", ""),
    ("M25.5", "N02BE01"),
    ("R51", "N02BE01"),
    ("L30.9", "D07AC01"),
    ("R42", ""),
    ("M79.1", "N02BE01"),
    ("Z00.0", ""),
    ("R10.4", ""),
    ("Z76.0", ""),
    ("T14.0", ""),
    ("F41.9", ""),
)
INPATIENT_DX: tuple[str, ...] = ("R55", "E86", "R53", "R10.4", "I95.1", "E87.1", "R26.8", "Z03.9")
BACKGROUND_PROCEDURES: tuple[str, ...] = ("DG017", "XS100")  # (u) placeholders, outside every pattern code set


def dx(b: ChunkBuilder, person, enc, time, code: Any) -> None:
    b.event(person, enc, time, "diagnosis", ICD, code)


def drug(b: ChunkBuilder, person, enc, time, code: Any, days: Any) -> None:
    b.event(person, enc, time, "medication", ATC, code, days_supply=days)


def proc(b: ChunkBuilder, person, enc, time, code: Any, cost: Any = np.nan) -> None:
    b.event(person, enc, time, "procedure", KVA, code, cost=cost)


def lab(b: ChunkBuilder, person, enc, time, code: Any, value, unit: Any) -> None:
    b.event(person, enc, time, "lab", NPU, code, value=value, unit=unit)


def hb(b: ChunkBuilder, person, enc, time, g_per_l) -> None:
    """Haemoglobin; about 10 % of values are written in g/dL to exercise unit conversion."""
    g_per_l = np.asarray(g_per_l, dtype=float)
    in_dl = b.rng.random(len(np.atleast_1d(person))) < 0.10
    value = np.where(in_dl, np.round(g_per_l / 10.0, 1), np.round(g_per_l))
    lab(b, person, enc, time, HB, value, np.where(in_dl, "g/dL", "g/L"))
