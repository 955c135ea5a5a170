"""Named code sets: which codes, in which coding systems, make up a concept.

A rule never lists codes itself; it names a code set (``low_back_pain``), and
the code set lists codes per coding system, so one rule runs on Swedish
(ICD-10-SE, KVÅ, ATC, NPU) and international (ICD-10-CM, SNOMED CT, RxNorm,
LOINC) data alike.

Matching semantics, shared by every engine:

* codes are compared after :func:`normalize`: trimmed, upper case, and in the
  ICD family (ICD-10, ICD-9-CM, KSH97-P) without the dot (``M54.5`` and ``M545`` are the same code);
* ``M54*`` is a prefix; ``J00-J06`` is a range on the first characters (both
  ends the same length; only in :data:`RANGE_SYSTEMS`): it matches every code whose
  first three characters lie between ``J00`` and ``J06`` (ICD-9-CM: ``578-579``);
* in the ICD family every entry is also a prefix, because the
  classifications add digits below a category (``M54.5`` matches ``M54.50``);
  in every other system an entry without ``*`` is an exact code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

ICD_FAMILY = frozenset({"ICD-10-SE", "ICD-10-CM", "ICD-10", "ICD-9-CM", "KSH97-P"})
"""Diagnosis classifications written with or without a dot, whose entries are prefixes (subcodes add characters)."""
RANGE_SYSTEMS = ICD_FAMILY | {"KVÅ", "ATC"}
"""Classifications whose codes never hold a hyphen, so ``A-B`` can only mean a range. Elsewhere (a region's local
RIS or laboratory catalogue: ``DT-LRYGG``; LOINC: ``718-7``) a hyphen is part of the code."""
_RANGE = re.compile(r"^([A-Z0-9][A-Z0-9]*)-([A-Z0-9][A-Z0-9]*)$")


def normalize(system: str, code: str) -> str:
    """The form codes are compared in: trimmed, upper case, no dot in ICD-10 codes."""
    c = code.strip().upper()
    return c.replace(".", "") if system in ICD_FAMILY else c


@dataclass(frozen=True)
class CodeEntry:
    """One entry of a code set: an exact code, a prefix or a range."""

    kind: Literal["exact", "prefix", "range"]
    low: str
    high: str = ""

    @classmethod
    def parse(cls, system: str, text: str) -> "CodeEntry":
        raw = str(text).strip()
        if raw.endswith("*"):
            return cls("prefix", normalize(system, raw[:-1]))
        norm = normalize(system, raw)
        m = _RANGE.match(norm) if system in RANGE_SYSTEMS else None
        if m and len(m.group(1)) == len(m.group(2)):
            if m.group(1) > m.group(2):
                raise ValueError(f"range {raw!r} runs backwards")
            return cls("range", m.group(1), m.group(2))
        return cls("prefix" if system in ICD_FAMILY else "exact", norm)

    def matches(self, code_norm: str) -> bool:
        if self.kind == "exact":
            return code_norm == self.low
        if self.kind == "prefix":
            return code_norm.startswith(self.low)
        return self.low <= code_norm[: len(self.low)] <= self.high


@dataclass(frozen=True)
class Units:
    """How lab values of a code set are put on one scale before thresholds are applied.

    ``factors`` maps a unit as written in the data to the multiplier that brings
    it to ``canonical`` (``g/dL: 10`` for haemoglobin in g/L). A value whose unit
    is missing is taken to be in the canonical unit; a value in a unit not listed
    is not comparable and is ignored, never guessed.
    """

    canonical: str
    factors: dict[str, float] = field(default_factory=dict)

    def factor(self, unit: str | None) -> float | None:
        if unit is None or unit.strip() == "":
            return 1.0
        u = unit.strip().lower()
        if u == self.canonical.lower():
            return 1.0
        for name, f in self.factors.items():
            if name.lower() == u:
                return float(f)
        return None


def unit_factor(unit: str | None, vs: "ValueSet") -> float | None:
    """Multiplier from ``unit`` to the code set's canonical unit; a code set without units takes values as they are."""
    return 1.0 if vs.units is None else vs.units.factor(unit)


@dataclass(frozen=True)
class ValueSet:
    """A named concept: code entries per coding system, optional units, and provenance."""

    name: str
    codes: dict[str, tuple[CodeEntry, ...]]
    units: Units | None = None
    title: str = ""
    provenance: str = ""
    unverified: frozenset[str] = frozenset()
    source_file: str = ""
    regional: tuple[Any, ...] = ()
    """Entries a region's code overlay added (:class:`lowvalue.rules.overlay.OverlayEntry`), already in ``codes``."""

    @classmethod
    def inline(cls, name: str, codes: dict[str, list[str]]) -> "ValueSet":
        return cls(name=name, codes={s: tuple(CodeEntry.parse(s, c) for c in cs) for s, cs in codes.items()})

    def matches(self, system: str, code: str) -> bool:
        entries = self.codes.get(system)
        if not entries:
            return False
        norm = normalize(system, code)
        return any(e.matches(norm) for e in entries)

    @property
    def systems(self) -> list[str]:
        return sorted(self.codes)
