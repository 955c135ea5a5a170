"""Calendar arithmetic on plain integers, so whole chunks are handled as numpy arrays.

Dates are ``int64`` days since 1970-01-01 and timestamps ``int64`` minutes since
1970-01-01 00:00. Minutes are fine-grained enough for the hour windows in
docs/patterns.md (``24h`` vs ``25h``) and keep the arithmetic exact.
"""

from __future__ import annotations

import numpy as np

MIN_PER_DAY = 1440
_EPOCH = np.datetime64("1970-01-01", "D")


def day(iso: str) -> int:
    """Day number of an ISO date string."""
    return int((np.datetime64(iso, "D") - _EPOCH).astype(np.int64))


PERIOD_START = day("2022-01-01")
PERIOD_END = day("2024-12-31")
INDEX_FIRST = day("2022-07-01")
"""Planted index events start half a year into the data so short look-back windows have data behind them."""
FOLLOW_UP_DAYS = 35
"""Index events stop this many days before the data end or death, so the 30-day adverse-event horizon is observed."""


def add_years(days: np.ndarray, years: np.ndarray | int) -> np.ndarray:
    """The anniversary ``years`` after each date (births on 29 February are never generated)."""
    dt = np.asarray(days, dtype=np.int64).astype("M8[D]")
    y = dt.astype("M8[Y]")
    month = dt.astype("M8[M]") - y.astype("M8[M]")
    dom = dt - dt.astype("M8[M]").astype("M8[D]")
    shifted = (y + np.asarray(years).astype("m8[Y]")).astype("M8[M]") + month
    return (shifted.astype("M8[D]") + dom).astype(np.int64)


def age_at(birth: np.ndarray, when: np.ndarray | int) -> np.ndarray:
    """Age in completed years on day ``when``."""
    b = np.asarray(birth, dtype=np.int64).astype("M8[D]")
    w = np.broadcast_to(np.asarray(when, dtype=np.int64), b.shape).astype("M8[D]")
    years = w.astype("M8[Y]").astype(np.int64) - b.astype("M8[Y]").astype(np.int64)
    return years - (add_years(birth, years) > w.astype(np.int64))


def clock_time(rng: np.random.Generator, n: int, first_hour: float = 8.0, last_hour: float = 16.5) -> np.ndarray:
    """Minutes after midnight, uniform between two hours (scheduled care happens in office hours)."""
    return rng.integers(int(first_hour * 60), int(last_hour * 60) + 1, n).astype(np.int64)


def uniform_days(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """One day uniformly in ``[lo, hi]`` per row (``hi >= lo`` is the caller's job)."""
    lo = np.asarray(lo, dtype=np.int64)
    span = np.asarray(hi, dtype=np.int64) - lo + 1
    return lo + (rng.random(lo.shape) * span).astype(np.int64)
