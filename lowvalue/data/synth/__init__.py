"""Synthetic Swedish region with planted low-value care and known adverse-event effects.

``generate(persons, seed, out)`` writes a canonical extract (see
``lowvalue.data.schema``) plus ``truth/`` (interventions, adverse events,
effects.json) that the scan engine never reads. The planted patterns and
effects follow docs/patterns.md.
"""

from __future__ import annotations

from .generator import GENERATOR_VERSION, generate
from .patterns import PATTERN_IDS
from .summary import SynthSummary

__all__ = ["generate", "SynthSummary", "PATTERN_IDS", "GENERATOR_VERSION"]
