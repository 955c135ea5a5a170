"""Small-count suppression: what the report may show of a count, and of anything derived from one.

The rule, applied everywhere (tables, charts, derived rates and costs):

* a count ``n`` with ``0 < n < threshold`` is *small* and is shown as ``"<threshold"`` (``"<5"``);
  a true zero is shown (it identifies no one);
* a derived figure (rate, cost, precision) is suppressed when any count it is computed from is
  small: a rate whose numerator or denominator is suppressed is suppressed too;
* *secondary* suppression: when parts of a published total are shown (units of a rule, months
  of a rule, the two tiers of a rule), a single suppressed part could be recovered by
  subtraction, so the smallest other non-zero part is suppressed as well
  (:func:`protect_total`).

The functions work on plain numbers and pandas objects and return masks; formatting a
suppressed value is the renderer's job (:meth:`Suppressor.label`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd

from lowvalue.report import DEFAULT_MIN_COUNT


@dataclass(frozen=True)
class Suppressor:
    """Suppression with one threshold: counts ``1 … threshold-1`` are hidden."""

    threshold: int = DEFAULT_MIN_COUNT

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError(f"min count must be at least 1. Got {self.threshold} instead.")

    @property
    def label(self) -> str:
        """How a suppressed value is shown: ``"<5"``."""
        return f"<{self.threshold}"

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
