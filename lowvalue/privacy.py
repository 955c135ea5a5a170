"""Pseudonymisation of scan outputs with a keyed hash.

Results leave the secure environment more often than extracts do (to a review
group, to a report author). With a key, every person, encounter, flag and
candidate id in the outputs is replaced by HMAC-SHA256(key, id): stable across
runs with the same key, so reviews can be joined over time, but not reversible
or recomputable without the key. A plain hash would not do: personal identity
numbers are few enough to hash them all.
"""

from __future__ import annotations

import hashlib
import hmac
import os

import pandas as pd

KEY_ENV = "LOWVALUE_PSEUDONYM_KEY"
ID_COLUMNS = ("person_id", "encounter_id", "flag_id", "candidate_id", "trigger_event_id")
MIN_KEY_LENGTH = 16


def key_from_env() -> bytes:
    """The key from ``$LOWVALUE_PSEUDONYM_KEY`` (never from the command line, where it would show in process lists)."""
    from lowvalue.errors import LowvalueError

    key = os.environ.get(KEY_ENV, "")
    if len(key) < MIN_KEY_LENGTH:
        raise LowvalueError(f"pseudonymisation needs a secret key of at least {MIN_KEY_LENGTH} characters in ${KEY_ENV}")
    return key.encode()


def pseudonym(key: bytes, value: str) -> str:
    return "ps_" + hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:20]


def pseudonymise(df: pd.DataFrame, key: bytes) -> pd.DataFrame:
    """A copy of ``df`` with every identifier column replaced by its keyed pseudonym (nulls stay null)."""
    out = df.copy()
    for col in ID_COLUMNS:
        if col in out.columns:
            uniq = out[col].dropna().unique()
            mapping = {v: pseudonym(key, str(v)) for v in uniq}
            out[col] = out[col].map(mapping).where(out[col].notna(), None)
    return out
