"""Funnel plot control limits for proportions (Spiegelhalter 2005, Stat Med 24:1185; Spiegelhalter, Qual Saf
Health Care 2005;14:347 for over-dispersion).

Each unit is a point: its rate of flagged interventions among eligible ones (y) against its
eligible volume ``n`` (x). The target ``p0`` is the rule's overall rate. Under the null
hypothesis that every unit has rate ``p0``, a unit's count is Binomial(n, p0), and the
control limits at two-sided coverage ``1 − α`` are

* ``normal`` (default): ``p0 ± z·sqrt(p0(1 − p0)/n)``, clipped to [0, 1], with
  ``z = 1.96`` for 95 % and ``z = 3.09`` for 99.8 %;
* ``exact``: the binomial quantile with Spiegelhalter's interpolation: ``r_p`` is the smallest
  ``r`` with ``F(r) ≥ p``, ``α = (F(r_p) − p)/(F(r_p) − F(r_p − 1))`` and the limit is
  ``(r_p − α)/n``.

Real units differ for reasons no model captures (coding habits, patient mix beyond age and sex), so with
many events per unit nearly every unit would fall outside binomial limits. :func:`funnel` therefore
estimates the over-dispersion from the units themselves (``dispersion``):

* ``z_i = (y_i − p0)/s_i``, winsorised at the 10th and 90th percentiles (so that true outliers do not widen
  the limits), ``φ = Σ z_i² / (I·c)``, where ``c = 0.679`` is the second moment of a standard normal winsorised
  the same way (a consistency correction: Spiegelhalter's uncorrected winsorised φ is biased low by a third);
* ``multiplicative``: limits ``p0 ± z·sqrt(φ)·s``, when ``φ > 1``;
* ``additive`` (default in the report): a random-effects variance between units, τ², limits
  ``p0 ± z·sqrt(s² + τ²)``; unlike the multiplicative one it keeps the limits from shrinking to nothing for
  very large units. Spiegelhalter's moment estimate ``τ² = (Iφ − (I − 1)) / (Σ w_i − Σ w_i²/Σ w_i)`` from the
  winsorised φ is biased low when volumes differ (see :func:`overdispersion`), so τ² is the value at which the
  winsorised random-effects z-scores ``(y_i − p0)/sqrt(s_i² + τ²)`` have (corrected) second moment 1 (0 when
  the units are no more dispersed than binomial);
* ``none``: binomial limits.

An adjusted limit uses Student's t with ``I − 1`` degrees of freedom instead of the normal quantile: φ or τ² is
estimated from the same ``I`` units, and a plug-in estimate from a few dozen units would otherwise put about
three times the nominal share of ordinary units outside the 99.8 % limits (``tests/report/test_funnel_dispersion``).

Indirect standardisation: with ``expected`` (``E_i``, the unit's count expected at the rule's overall rate
in each age and sex stratum) and ``variance`` (``V_i = Σ p_s(1 − p_s)``), a unit's standardised rate is
``y_i = p0·O_i/E_i`` with standard error ``s_i = p0·sqrt(V_i)/E_i``; without them ``E_i = n_i p0`` and the
formulas reduce to the crude binomial ones.

Points outside 95 % are "possible" outliers (1 in 20 units by chance), outside 99.8 %
"probable" (1 in 500 by chance).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal

import numpy as np
import pandas as pd
from scipy import stats

LEVELS = (0.95, 0.998)
Method = Literal["normal", "exact"]
Dispersion = Literal["additive", "multiplicative", "none"]
WINSOR = 0.10
"""Share winsorised at each end of the z-scores before the over-dispersion is estimated."""


def z_of(level: float, df: float | None = None) -> float:
    """Two-sided normal quantile: 1.959964 for 0.95, 3.090232 for 0.998 (Student's t with ``df`` degrees of
    freedom when given: the over-dispersion is estimated from ``df + 1`` units)."""
    if df is not None:
        return float(stats.t.ppf(1 - (1 - level) / 2, df))
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
           method: Method = "normal", phi: float = 1.0, tau2: float = 0.0,
           se: Iterable[float] | None = None, df: float | None = None) -> pd.DataFrame:
    """Control limits at each ``n``: columns ``n``, ``lo95``, ``hi95``, ``lo99.8``, ``hi99.8`` (named by level).

    ``phi`` (multiplicative) or ``tau2`` (additive) widen the limits for over-dispersion; ``se`` gives each
    point's own standard error (indirectly standardised rates) instead of ``sqrt(p0(1 − p0)/n)``. Either makes
    the limits normal ones (the exact binomial quantiles hold for an undispersed crude count only)."""
    if not 0 <= p0 <= 1:
        raise ValueError(f"p0 must be a proportion. Got {p0} instead.")
    n_arr = np.atleast_1d(np.asarray(n, float))
    out = pd.DataFrame({"n": n_arr})
    for level in levels:
        name = level_name(level)
        if phi != 1.0 or tau2 > 0 or se is not None:
            s0 = np.sqrt(p0 * (1 - p0) / n_arr) if se is None else np.atleast_1d(np.asarray(se, float))
            half = z_of(level, df) * np.sqrt(phi * s0**2 + tau2)
            lo, hi = np.clip(p0 - half, 0, 1), np.clip(p0 + half, 0, 1)
        elif method == "exact":
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
    units: pd.DataFrame  # unit, n, events, rate, se, z, lo95, hi95, lo99.8, hi99.8, position
    method: Method
    dispersion: Dispersion = "none"
    phi: float = 1.0  # winsorised over-dispersion factor (estimated whatever ``dispersion`` is)
    tau2: float = 0.0  # additive between-unit variance (on the rate scale) when ``dispersion`` is additive
    standardised: bool = False
    df: float | None = None  # degrees of freedom of the over-dispersion estimate (units − 1) when adjusted

    def curve(self, n_max: float, points: int = 200) -> pd.DataFrame:
        """Limits on a smooth grid of volumes from 1 to ``n_max``, for drawing (crude binomial spread at each
        volume, widened as the units' positions are)."""
        grid = np.unique(np.round(np.geomspace(1, max(n_max, 2), points)))
        return limits(self.p0, grid, method=self.method, **self._widen())

    def _widen(self) -> dict[str, float]:
        if self.dispersion == "multiplicative":
            return {"phi": max(self.phi, 1.0), "df": self.df}
        if self.dispersion == "additive":
            return {"tau2": self.tau2, "df": self.df}
        return {}


def _winsorised_second_moment(winsor: float) -> float:
    """E[Z_w²] for a standard normal winsorised at its ``winsor`` and ``1 − winsor`` quantiles (0.679 at 10 %):
    dividing by it makes the winsorised φ consistent (without it, 10 % winsorising shrinks φ by a third and the
    limits flag about ten times the nominal share of ordinary units)."""
    if winsor <= 0:
        return 1.0
    c = float(stats.norm.ppf(1 - winsor))
    return float((2 * stats.norm.cdf(c) - 1) - 2 * c * stats.norm.pdf(c) + 2 * c**2 * winsor)


def overdispersion(z: np.ndarray, se: np.ndarray, winsor: float = WINSOR) -> tuple[float, float]:
    """``(φ, τ²)`` from the units' z-scores and standard errors (module doc), z winsorised at ``winsor``.

    φ: the consistency-corrected mean of the winsorised z². τ²: the value at which the winsorised z-scores of the
    random-effects model, ``(y_i − p0)/sqrt(s_i² + τ²)``, have the corrected second moment 1. Winsorising the plain
    z-scores instead (Spiegelhalter's moment estimate) under-estimates τ² whenever volumes differ: the plain z are
    then a mixture of spreads, which winsorising trims more than a normal."""
    z, se = np.asarray(z, float), np.asarray(se, float)
    ok = np.isfinite(z) & np.isfinite(se) & (se > 0)
    z, se = z[ok], se[ok]
    k = len(z)
    if k < 2:
        return 1.0, 0.0
    c = _winsorised_second_moment(winsor)

    def moment(x: np.ndarray) -> float:
        lo, hi = np.quantile(x, [winsor, 1 - winsor]) if winsor > 0 else (-np.inf, np.inf)
        return float(np.mean(np.clip(x, lo, hi) ** 2)) / c

    phi = moment(z)
    d = z * se  # y_i − p0
    gap = lambda t2: moment(d / np.sqrt(se**2 + t2)) - 1.0  # noqa: E731 - decreasing in τ²
    if gap(0.0) <= 0:
        return phi, 0.0
    top = float(np.max(d**2)) + float(np.max(se**2))
    while gap(top) > 0:
        top *= 4
    from scipy.optimize import brentq

    return phi, float(brentq(gap, 0.0, top, xtol=1e-12 * max(top, 1e-12)))


def funnel(units: pd.DataFrame, *, n: str = "eligible", events: str = "flagged", method: Method = "normal",
           p0: float | None = None, dispersion: Dispersion = "none", expected: str | None = None,
           variance: str | None = None) -> Funnel:
    """Place units on a funnel. ``position`` is one of ``above 99.8``, ``above 95``, ``within``,
    ``below 95``, ``below 99.8`` (``no volume`` when ``n`` is 0).

    ``expected``/``variance`` name columns for indirect standardisation, ``dispersion`` the over-dispersion
    adjustment (module doc); ``rate`` is then the standardised rate."""
    u = units.copy()
    total_n = float(u[n].sum())
    p0 = float(u[events].sum()) / total_n if p0 is None else p0
    if total_n == 0:
        p0 = 0.0
    nn = u[n].astype(float).to_numpy()
    safe = np.where(nn > 0, nn, 1.0)
    obs = u[events].astype(float).to_numpy()
    if expected is not None:
        e = u[expected].astype(float).to_numpy()
        v = u[variance].astype(float).to_numpy() if variance else e * (1 - p0)
        e_safe = np.where(e > 0, e, np.nan)
        rate = np.where(nn > 0, p0 * obs / e_safe, np.nan)
        se = p0 * np.sqrt(v) / e_safe
    else:
        rate = np.where(nn > 0, obs / safe, np.nan)
        se = np.sqrt(p0 * (1 - p0) / safe)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (rate - p0) / se, np.nan)
    phi, tau2 = overdispersion(z[nn > 0], se[nn > 0]) if (nn > 0).sum() >= 2 else (1.0, 0.0)
    k = int(((nn > 0) & np.isfinite(z)).sum())
    f = Funnel(p0=p0, units=u, method=method, dispersion=dispersion, phi=phi,
               tau2=tau2 if dispersion == "additive" else 0.0, standardised=expected is not None,
               df=float(k - 1) if dispersion != "none" and k >= 2 else None)
    own_se = se if (expected is not None or dispersion != "none") else None
    lim = limits(p0, safe, method=method, se=np.where(np.isfinite(se), se, 0.0) if own_se is not None else None,
                 **f._widen())
    u["rate"], u["se"], u["z"] = rate, se, z
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
    return Funnel(p0=p0, units=u.reset_index(drop=True), method=method, dispersion=dispersion, phi=phi,
                  tau2=f.tau2, standardised=f.standardised, df=f.df)
