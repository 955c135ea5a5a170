"""Small-count suppression: what the report may show of a count, and of anything derived from one.

The rule, applied everywhere (tables, charts, derived rates and costs):

* a count ``n`` with ``0 < n < threshold`` is *small* and is shown as :data:`MARK` (``"–"``), explained once
  per table or file by the footnote :func:`footnote` ("– undertryckt: färre än 5"); a true zero is shown (it
  identifies no one). The mark is the same for a primary and a secondary suppression, so it never claims that
  the hidden value is small (a secondarily suppressed 8 is not "<5"). A missing value is :data:`MISSING`
  (``".."``), never the mark;
* a derived figure (rate, cost, precision) is suppressed when any count it is computed from is
  small: a rate whose numerator or denominator is suppressed is suppressed too;
* *secondary* suppression: when parts of a published total are shown (units of a rule, months
  of a rule, the two tiers of a rule), a single suppressed part could be recovered by
  subtraction, so the smallest other non-zero part is suppressed as well
  (:func:`protect_total`).

The functions work on plain numbers and pandas objects and return masks; :func:`suppress_table` applies
primary, secondary and derived suppression to a whole table and returns it as shareable text (the report's
side files and the CSV/Excel exports use it, so a suppressed cell looks the same everywhere).

Public names (used by other packages; keep them stable): :data:`MARK`, :data:`MISSING`, :data:`DEFAULT_MIN_COUNT`,
:func:`footnote`, :class:`Suppressor`, :func:`suppress_table`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd

from lowvalue.report import DEFAULT_MIN_COUNT
MARK = "–"
"""How a suppressed cell is shown, everywhere (HTML, PDF, Markdown, CSV, Excel)."""
MISSING = ".."
"""How a missing (not computed, not applicable) value is shown: never the suppression mark."""
_FOOTNOTES = {"sv": "{mark} undertryckt: färre än {t}", "en": "{mark} suppressed: fewer than {t}"}
_MISSING_NOTES = {"sv": "{missing} uppgift saknas", "en": "{missing} not available"}


def footnote(lang: str = "sv", threshold: int = DEFAULT_MIN_COUNT, *, missing: bool = False) -> str:
    """The footnote that explains :data:`MARK` (and, with ``missing``, :data:`MISSING`) in ``lang``."""
    if lang not in _FOOTNOTES:
        raise ValueError(f"language must be one of {', '.join(_FOOTNOTES)}. Got {lang!r} instead.")
    note = _FOOTNOTES[lang].format(mark=MARK, t=threshold)
    return note + ("; " + _MISSING_NOTES[lang].format(missing=MISSING) if missing else "")


@dataclass(frozen=True)
class Suppressor:
    """Suppression with one threshold: counts ``1 … threshold-1`` are hidden."""

    threshold: int = DEFAULT_MIN_COUNT

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError(f"min count must be at least 1. Got {self.threshold} instead.")

    @property
    def label(self) -> str:
        """How a suppressed value is shown: :data:`MARK` (whatever the threshold; the footnote names it)."""
        return MARK

    def footnote(self, lang: str = "sv", *, missing: bool = False) -> str:
        """:func:`footnote` at this threshold."""
        return footnote(lang, self.threshold, missing=missing)

    def is_small(self, n: float | int | None) -> bool:
        """True for a count that must not be shown (missing counts are not small: they are missing)."""
        if n is None or (isinstance(n, float) and np.isnan(n)) or n is pd.NA:
            return False
        return 0 < float(n) < self.threshold

    def mask(self, counts: pd.Series | Iterable[float]) -> pd.Series:
        """Boolean mask of small counts."""
        s = pd.Series(counts, dtype="float64") if not isinstance(counts, pd.Series) else counts.astype("float64")
        return (s > 0) & (s < self.threshold)

    def derived_mask(self, *counts: pd.Series) -> pd.Series:
        """A derived figure is suppressed when any of the counts it comes from is small."""
        out = self.mask(counts[0])
        for c in counts[1:]:
            out = out | self.mask(c)
        return out

    def protect_total(self, parts: pd.Series, suppressed: pd.Series) -> pd.Series:
        """Secondary suppression of the parts of one published total (see module doc).

        ``parts`` are the counts that add up to the total, ``suppressed`` the primary mask.
        Returns the widened mask: if exactly one part is suppressed, the smallest other
        non-zero, not yet suppressed part is suppressed too.
        """
        out = suppressed.copy().astype(bool)
        if int(out.sum()) == 1:
            others = parts[(~out) & (parts.astype("float64") > 0)]
            if len(others):
                out.loc[others.astype("float64").idxmin()] = True
        return out

    def protect_groups(self, frame: pd.DataFrame, by: str | list[str], count: str, mask: str) -> pd.Series:
        """:meth:`protect_total` within each group of ``frame`` (e.g. the units of each rule)."""
        out = frame[mask].astype(bool).copy()
        for _, g in frame.groupby(by, sort=False, dropna=False):
            out.loc[g.index] = self.protect_total(g[count], g[mask].astype(bool))
        return out


def suppress_table(frame: pd.DataFrame, counts: Iterable[str], derived: dict[str, Iterable[str]] | None = None, *,
                   totals: Iterable[str | list[str]] = (), threshold: int = DEFAULT_MIN_COUNT) -> pd.DataFrame:
    """A copy of ``frame`` safe to share: small counts and everything computed from them replaced by :data:`MARK`.

    * ``counts``: count columns; values ``1 … threshold − 1`` are suppressed (primary);
    * ``totals``: for each entry (``None`` for the whole table, or a column or list of columns to group by) the
      rows are parts of a published total, so each count column gets :meth:`Suppressor.protect_total` within
      the group (secondary);
    * ``derived``: ``{column: [count columns it is computed from]}``; the column is suppressed where any of them is.

    Other columns are left as they are. Suppressed cells become :data:`MARK`, missing values :data:`MISSING`, so
    the result has ``object`` columns where anything was replaced.
    """
    sup = Suppressor(threshold)
    counts = list(counts)
    out = frame.copy()
    masks = {c: sup.mask(frame[c].fillna(0)) for c in counts}
    for by in totals:
        for c in counts:
            if by is None:
                masks[c] = sup.protect_total(frame[c].fillna(0), masks[c])
            else:
                tmp = frame.assign(_lv_mask=masks[c], _lv_count=frame[c].fillna(0))
                masks[c] = sup.protect_groups(tmp, by, "_lv_count", "_lv_mask")
    for col, sources in (derived or {}).items():
        m = pd.Series(False, index=frame.index)
        for c in sources:
            m = m | (masks[c] if c in masks else sup.mask(frame[c].fillna(0)))
        masks[col] = m
    for col, m in masks.items():
        if m.any() or frame[col].isna().any():
            out[col] = frame[col].astype(object).where(~m, MARK).where(frame[col].notna() | m, MISSING)
    return out
