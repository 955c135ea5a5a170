"""Funnel plot control limits for proportions (Spiegelhalter 2005, Stat Med 24:1185).

Each unit is a point: its rate of flagged interventions among eligible ones (y) against its
eligible volume ``n`` (x). The target ``p0`` is the rule's overall rate. Under the null
hypothesis that every unit has rate ``p0``, a unit's count is Binomial(n, p0), and the
control limits at two-sided coverage ``1 − α`` are

* ``normal`` (default): ``p0 ± z·sqrt(p0(1 − p0)/n)``, clipped to [0, 1], with
  ``z = 1.96`` for 95 % and ``z = 3.09`` for 99.8 %;
* ``exact``: the binomial quantile with Spiegelhalter's interpolation: ``r_p`` is the smallest
  ``r`` with ``F(r) ≥ p``, ``α = (F(r_p) − p)/(F(r_p) − F(r_p − 1))`` and the limit is
  ``(r_p − α)/n``.

Points outside 95 % are "possible" outliers (1 in 20 units by chance), outside 99.8 %
"probable" (1 in 500 by chance). No over-dispersion correction is made; the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal

import numpy as np
import pandas as pd
from scipy import stats

LEVELS = (0.95, 0.998)
Method = Literal["normal", "exact"]


def z_of(level: float) -> float:
    """Two-sided normal quantile: 1.959964 for 0.95, 3.090232 for 0.998."""
    return float(stats.norm.ppf(1 - (1 - level) / 2))


def _exact(p0: float, n: np.ndarray, p: float) -> np.ndarray:
    n = np.asarray(n, float)
    r = stats.binom.ppf(p, n, p0)  # smallest r with F(r) >= p
    f_r = stats.binom.cdf(r, n, p0)
    f_r1 = stats.binom.cdf(r - 1, n, p0)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(f_r > f_r1, (f_r - p) / (f_r - f_r1), 0.0)
    return np.clip((r - alpha) / n, 0.0, 1.0)


def limits(p0: float, n: Iterable[float] | float, *, levels: tuple[float, ...] = LEVELS,
           method: Method = "normal") -> pd.DataFrame:
    """Control limits at each ``n``: columns ``n``, ``lo95``, ``hi95``, ``lo99.8``, ``hi99.8`` (named by level)."""
    if not 0 <= p0 <= 1:
        raise ValueError(f"p0 must be a proportion. Got {p0} instead.")
    n_arr = np.atleast_1d(np.asarray(n, float))
    out = pd.DataFrame({"n": n_arr})
    for level in levels:
        name = level_name(level)
        if method == "exact":
            lo, hi = _exact(p0, n_arr, (1 - level) / 2), _exact(p0, n_arr, 1 - (1 - level) / 2)
        elif method == "normal":
            half = z_of(level) * np.sqrt(p0 * (1 - p0) / n_arr)
            lo, hi = np.clip(p0 - half, 0, 1), np.clip(p0 + half, 0, 1)
        else:
            raise ValueError(f"method must be 'normal' or 'exact'. Got {method!r} instead.")
        out[f"lo{name}"], out[f"hi{name}"] = lo, hi
    return out


def level_name(level: float) -> str:
    """``0.95`` → ``"95"``, ``0.998`` → ``"99.8"``."""
    return f"{level * 100:g}"


@dataclass(frozen=True)
class Funnel:
    """A rule's funnel: target rate, per-unit positions and their classification."""

    p0: float
    units: pd.DataFrame  # unit, n, events, rate, lo95, hi95, lo99.8, hi99.8, position
    method: Method

    def curve(self, n_max: float, points: int = 200) -> pd.DataFrame:
        """Limits on a smooth grid of volumes from 1 to ``n_max``, for drawing."""
        grid = np.unique(np.round(np.geomspace(1, max(n_max, 2), points)))
        return limits(self.p0, grid, method=self.method)


def funnel(units: pd.DataFrame, *, n: str = "eligible", events: str = "flagged", method: Method = "normal",
           p0: float | None = None) -> Funnel:
    """Place units on a funnel. ``position`` is one of ``above 99.8``, ``above 95``, ``within``,
    ``below 95``, ``below 99.8`` (``no volume`` when ``n`` is 0)."""
    u = units.copy()
    total_n = float(u[n].sum())
    p0 = float(u[events].sum()) / total_n if p0 is None else p0
    if total_n == 0:
        p0 = 0.0
    nn = u[n].astype(float).to_numpy()
    safe = np.where(nn > 0, nn, 1.0)
    lim = limits(p0, safe, method=method)
    u["rate"] = np.where(nn > 0, u[events].astype(float) / safe, np.nan)
    for c in lim.columns[1:]:
        u[c] = lim[c].to_numpy()
    pos = np.full(len(u), "within", dtype=object)
    r = u["rate"].to_numpy()
    pos[r > u["hi95"].to_numpy()] = "above 95"
    pos[r > u["hi99.8"].to_numpy()] = "above 99.8"
    pos[r < u["lo95"].to_numpy()] = "below 95"
    pos[r < u["lo99.8"].to_numpy()] = "below 99.8"
    pos[nn == 0] = "no volume"
    u["position"] = pos
    return Funnel(p0=p0, units=u.reset_index(drop=True), method=method)
