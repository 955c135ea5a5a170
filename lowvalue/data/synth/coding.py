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

HB = "NPU28309"  # B-haemoglobin, g/L (the code Swedish laboratories report; rules/valuesets/haemoglobin.yaml)
CREATININE = "NPU18016"  # µmol/L
GLUCOSE = "NPU22089"  # P(capillary blood)-glucose, mmol/L: the bedside value
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
BACKGROUND_PROCEDURES: tuple[str, ...] = ("AD041", "UDH02")  # tympanometry, rhinopharyngoscopy: outside every pattern code set

RIS, CLINPHYS, LOCAL_LAB = "LOKAL-RIS", "LOKAL-KLINFYS", "LOKAL-LAB"
LOCAL_CODES: dict[str, tuple[str, str, str]] = {
    # The region's own catalogues (fictional, like the region): radiology (RIS), clinical physiology and laboratory
    # codes for interventions that have no public KVÅ or NPU code. code -> (system, text, library code set).
    # `lowvalue synth` writes them as the region's code overlay (region-codes/), as a real region's analyst would.
    "RTG-LRYGG": (RIS, "Slätröntgen ländrygg", "lumbar_spine_imaging"),
    "DT-LRYGG": (RIS, "DT ländrygg", "lumbar_spine_imaging"),
    "MR-LRYGG": (RIS, "MR ländrygg", "lumbar_spine_imaging"),
    "DT-BIHALOR": (RIS, "DT bihålor", "ct_sinus"),
    "DT-HJARNA": (RIS, "DT hjärna", "head_ct_or_mri"),
    "MR-HJARNA": (RIS, "MR hjärna", "head_ct_or_mri"),
    "UL-HALSKARL": (RIS, "Ultraljud halskärl (duplex)", "carotid_imaging"),
    "DT-ANGIO-HALS": (RIS, "DT-angiografi halskärl", "carotid_imaging"),
    "MR-ANGIO-HALS": (RIS, "MR-angiografi halskärl", "carotid_imaging"),
    "DXA": (RIS, "Bentäthetsmätning (DXA)", "dxa_scan"),
    "VERTEBROPLASTIK": (RIS, "Perkutan vertebroplastik", "vertebral_augmentation"),
    "KYFOPLASTIK": (RIS, "Perkutan kyfoplastik", "vertebral_augmentation"),
    "RTG-THORAX": (RIS, "Lungröntgen", "chest_xray"),
    "VILO-EKG": (CLINPHYS, "Vilo-EKG", "preop_cardiac_test"),
    "EKO": (CLINPHYS, "Ekokardiografi", "preop_cardiac_test"),
    "ARBETSPROV": (CLINPHYS, "Arbetsprov (cykelergometri)", "preop_cardiac_test"),
    "STREP-A": (LOCAL_LAB, "Snabbtest Streptokocker grupp A (svalg)", "group_a_strep_test"),
    "SVALGODLING": (LOCAL_LAB, "Odling svalg, betahemolytiska streptokocker", "group_a_strep_test"),
    "CX-CYTOLOGI": (LOCAL_LAB, "Cellprov cervix, cytologi", "cervical_screening_test"),
    "CX-HPV": (LOCAL_LAB, "HPV-test, cellprov cervix", "cervical_screening_test"),
}


def system_of(code: Any, default: str) -> Any:
    """The coding system of each code: the region's local catalogue for :data:`LOCAL_CODES`, else ``default``."""
    codes = np.asarray(code, dtype=object)
    if codes.ndim == 0:
        return LOCAL_CODES[str(codes)][0] if str(codes) in LOCAL_CODES else default
    return np.array([LOCAL_CODES[c][0] if c in LOCAL_CODES else default for c in codes], dtype=object)


def dx(b: ChunkBuilder, person, enc, time, code: Any) -> None:
    b.event(person, enc, time, "diagnosis", ICD, code)


def drug(b: ChunkBuilder, person, enc, time, code: Any, days: Any) -> None:
    b.event(person, enc, time, "medication", ATC, code, days_supply=days)


def proc(b: ChunkBuilder, person, enc, time, code: Any, cost: Any = np.nan) -> None:
    b.event(person, enc, time, "procedure", system_of(code, KVA), code, cost=cost)


def lab(b: ChunkBuilder, person, enc, time, code: Any, value, unit: Any) -> None:
    b.event(person, enc, time, "lab", system_of(code, NPU), code, value=value, unit=unit)


def hb(b: ChunkBuilder, person, enc, time, g_per_l) -> None:
    """Haemoglobin; about 10 % of values are written in g/dL to exercise unit conversion."""
    g_per_l = np.asarray(g_per_l, dtype=float)
    in_dl = b.rng.random(len(np.atleast_1d(person))) < 0.10
    value = np.where(in_dl, np.round(g_per_l / 10.0, 1), np.round(g_per_l))
    lab(b, person, enc, time, HB, value, np.where(in_dl, "g/dL", "g/L"))
