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
* ``additive`` (default in the report): a random-effects variance between units, τ², on the **logit scale**:
  the limits are the quantiles of a unit's count ``O ~ Binomial(m, expit(logit p0 + τ·U))`` (:func:`_mixture_limit`),
  for large counts about ``expit(logit p0 ± z·sqrt(σ_i² + τ²))`` with ``σ_i = s_i/(p0(1 − p0))`` the unit's
  standard error of the log-odds under the null hypothesis (delta method; ``1/sqrt(n p0(1 − p0))`` for a crude
  rate), but exact in the count, which the normal approximation on the log-odds is not for small units. Units differ
  multiplicatively in their odds (the synthetic region plants exactly that: ``logit p = α + ln(unit multiplier)``,
  ``lowvalue.data.synth.region``), so a normal random effect on the log-odds is the model that fits; an additive
  effect on the rate scale assumes a symmetric, normal spread of rates, which a log-normal spread of odds is not
  (skewed, heavier upper tail when p0 is small): with it about 0.5 % of ordinary units fell outside the 99.8 %
  limits (nominal 0.2 %), 1.3 % for rules with p0 = 5 %. Spiegelhalter (2005) recommends a variance-stabilising
  transformation before the random-effects adjustment for this reason. Unlike the multiplicative factor the
  random effect keeps the limits from shrinking to nothing for very large units. τ² is estimated from the units'
  empirical logits ``logit((O_i + ½)/(m_i + 1))`` (``m_i = E_i/p0``, the unit's volume at the target rate; the
  ½ keeps a unit with no event finite) as the value at which their winsorised random-effects z-scores
  ``(logit y_i − logit p0)/sqrt(σ_i² + τ²)`` have (corrected) second moment 1, 0 when the units are no more
  dispersed than binomial (see :func:`overdispersion`; Spiegelhalter's closed-form moment estimate from the
  winsorised φ is biased low when volumes differ);
* ``none``: binomial limits.

An adjusted limit uses Student's t instead of the normal: φ or τ² is estimated from the same ``I`` units, and a
plug-in estimate from a few dozen units would otherwise put about three times the nominal share of ordinary units
outside the 99.8 % limits (``tests/report/test_funnel_dispersion``). The multiplicative limits use ``I − 1`` degrees
of freedom; the additive ones draw the random effect ``U`` from a t with the degrees of freedom of the τ² estimate
(:func:`_logit_dispersion`), fewer than ``I − 1`` when units have few events.

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
from scipy.special import expit, logit

LEVELS = (0.95, 0.998)
Method = Literal["normal", "exact"]
Dispersion = Literal["additive", "multiplicative", "none"]
Scale = Literal["rate", "logit"]
WINSOR = 0.10
"""Share winsorised at each end of the z-scores before the over-dispersion is estimated."""
WINSOR_EFFICIENCY = 0.72
"""Efficiency of the second moment of z-scores winsorised at :data:`WINSOR` relative to the plain one, for normal
z-scores (its variance is 1.36–1.42 times larger for 20–100 units; simulated, 4 000 draws each): it scales the
degrees of freedom of τ² (:func:`_logit_dispersion`)."""


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
           se: Iterable[float] | None = None, df: float | None = None, scale: Scale = "rate") -> pd.DataFrame:
    """Control limits at each ``n``: columns ``n``, ``lo95``, ``hi95``, ``lo99.8``, ``hi99.8`` (named by level).

    ``phi`` (multiplicative) or ``tau2`` (additive) widen the limits for over-dispersion; ``se`` gives each
    point's own standard error (indirectly standardised rates) instead of ``sqrt(p0(1 − p0)/n)``. Either makes
    the limits normal ones (the exact binomial quantiles hold for an undispersed crude count only). With
    ``scale="logit"`` the limits are the quantiles of a unit's rate when its log-odds vary between units around
    ``logit p0`` with variance ``tau2`` (:func:`_mixture_limit`; ``n`` is then the unit's volume at the target
    rate, ``E/p0`` for a standardised count; ``se`` and ``phi`` are not used)."""
    if not 0 <= p0 <= 1:
        raise ValueError(f"p0 must be a proportion. Got {p0} instead.")
    n_arr = np.atleast_1d(np.asarray(n, float))
    out = pd.DataFrame({"n": n_arr})
    for level in levels:
        name = level_name(level)
        if scale == "logit" and 0 < p0 < 1:
            lo = _mixture_limit(p0, n_arr, tau2, df, (1 - level) / 2)
            hi = _mixture_limit(p0, n_arr, tau2, df, 1 - (1 - level) / 2)
        elif phi != 1.0 or tau2 > 0 or se is not None:
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


_EDGES = np.concatenate([[0.0], expit(np.linspace(-14.0, 14.0, 60)), [1.0]])
NODES, WEIGHTS = expit((logit(_EDGES[1:-1])[1:] + logit(_EDGES[1:-1])[:-1]) / 2), np.diff(_EDGES)[1:-1]
"""Probabilities at which the random effect's distribution is evaluated in :func:`_mixture_limit`, and their
weights: cells even on the logit of the probability, so the tails down to 1e-6 (what the 99.8 % limits are made
of) are resolved as finely as the middle; equal-probability nodes would cut them off. The two outermost cells'
mass goes to their neighbours."""
WEIGHTS = WEIGHTS / WEIGHTS.sum()


def _mixture_limit(p0: float, n: np.ndarray, tau2: float, df: float | None, p: float) -> np.ndarray:
    """The ``p`` quantile of a unit's rate ``O/n`` when ``O ~ Binomial(n, expit(logit p0 + τ·U))``, interpolated
    between counts as Spiegelhalter's exact limits are (:func:`_exact`).

    ``U`` is standard normal, or Student's t with ``df`` degrees of freedom when τ² was estimated from ``df + 1``
    units (the uncertainty of the estimate widens the tails, as the t quantile did for the normal limits); the
    mixture is integrated over :data:`NODES`. Exact in the count, so a small
    unit with no event is not "below" limits that a normal approximation on the log-odds (a logit of 0 is
    −∞) would put above zero. τ² = 0 gives the exact binomial limits."""
    n = np.maximum(np.round(np.asarray(n, float)), 1.0)
    u = stats.t.ppf(NODES, df) if df is not None and df > 0 else stats.norm.ppf(NODES)
    pk, w = expit(logit(p0) + np.sqrt(max(tau2, 0.0)) * u), WEIGHTS  # the success probability at each node

    def cdf(r: np.ndarray) -> np.ndarray:
        return stats.binom.cdf(r[:, None], n[:, None], pk[None, :]) @ w

    lo, hi = np.full(len(n), -1.0), n.copy()  # F(lo) < p <= F(hi); F(n) = 1
    while (hi - lo > 1).any():  # bisection on the count: the smallest r with F(r) >= p
        mid = np.floor((lo + hi) / 2)
        ok = cdf(mid) >= p
        hi, lo = np.where(ok, mid, hi), np.where(ok, lo, mid)
    f_r, f_r1 = cdf(hi), cdf(hi - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(f_r > f_r1, (f_r - p) / (f_r - f_r1), 0.0)
    return np.clip((hi - alpha) / n, 0.0, 1.0)


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
    tau2: float = 0.0  # additive between-unit variance of the log-odds when ``dispersion`` is additive
    standardised: bool = False
    df: float | None = None  # degrees of freedom of the over-dispersion estimate when adjusted (see funnel())

    def curve(self, n_max: float, points: int = 200) -> pd.DataFrame:
        """Limits on a smooth grid of volumes from 1 to ``n_max``, for drawing (crude binomial spread at each
        volume, widened as the units' positions are)."""
        grid = np.unique(np.round(np.geomspace(1, max(n_max, 2), points)))
        return limits(self.p0, grid, method=self.method, **self._widen())

    def _widen(self) -> dict[str, float]:
        if self.dispersion == "multiplicative":
            return {"phi": max(self.phi, 1.0), "df": self.df}
        if self.dispersion == "additive":
            return {"tau2": self.tau2, "df": self.df, "scale": "logit"}
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
    at = (k - 1) * np.array([winsor, 1 - winsor])  # np.quantile's default (linear) positions, without its overhead
    below, frac = np.floor(at).astype(int), at - np.floor(at)

    def moment(x: np.ndarray) -> float:
        if winsor > 0:
            v = np.sort(x)
            lo, hi = v[below] + frac * (v[np.minimum(below + 1, k - 1)] - v[below])
            x = np.clip(x, lo, hi)
        return float(np.mean(x**2)) / c

    phi = moment(z)
    d = z * se  # y_i − p0
    gap = lambda t2: moment(d / np.sqrt(se**2 + t2)) - 1.0  # noqa: E731 - decreasing in τ²
    if gap(0.0) <= 0:
        return phi, 0.0
    top = float(np.max(d**2)) + float(np.max(se**2))
    while gap(top) > 0:
        top *= 4
    from scipy.optimize import brentq

    return phi, float(brentq(gap, 0.0, top, xtol=1e-12 * max(top, 1e-12), rtol=1e-8))


def _logit_dispersion(obs: np.ndarray, expected: np.ndarray, se: np.ndarray, p0: float,
                      used: np.ndarray) -> tuple[float, float | None]:
    """The between-unit variance τ² of the log-odds and the degrees of freedom of its estimate.

    τ² from the units' empirical logits with their standard errors under the null hypothesis,
    ``σ_i = s_i/(p0(1 − p0))`` (delta method; module doc); 0 when ``p0`` is 0 or 1 (no odds to vary) or fewer
    than two units have volume. The degrees of freedom are those of a scaled χ² with the estimate's variance,
    ``2τ⁴/Var(τ̂²)``: with the large-sample variance of the maximum-likelihood estimate,
    ``Var(τ̂²) = 2/Σ(σ_i² + τ²)⁻²``, they are ``Σ(τ²/(σ_i² + τ²))²``, the number of units weighted by how much of
    each unit's spread is between-unit (a unit with few events says little about τ²), times
    :data:`WINSOR_EFFICIENCY` (at most units − 1). With units − 1 instead, the t limits left about 1.5 times
    the nominal share of ordinary units outside the 99.8 % limits; a jackknife variance was thrown by the very
    outliers the limits are for."""
    if not 0 < p0 < 1:
        return 0.0, None
    sigma = se / (p0 * (1 - p0))
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.where(expected > 0, expected / p0, np.nan)  # the unit's volume at the target rate
        z = (logit((obs + 0.5) / (m + 1)) - logit(p0)) / sigma
    keep = used & np.isfinite(z) & np.isfinite(sigma) & (sigma > 0)
    z, sigma = z[keep], sigma[keep]
    k = len(z)
    if k < 2:
        return 0.0, None
    tau2 = overdispersion(z, sigma)[1]
    if tau2 <= 0:
        return 0.0, float(k - 1)
    info = float(np.sum((tau2 / (sigma**2 + tau2)) ** 2))
    return tau2, float(min(max(WINSOR_EFFICIENCY * info, 1.0), k - 1))


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
    phi = overdispersion(z[nn > 0], se[nn > 0])[0] if (nn > 0).sum() >= 2 else 1.0
    k = int(((nn > 0) & np.isfinite(z)).sum())
    df = float(k - 1) if dispersion != "none" and k >= 2 else None
    tau2 = 0.0
    if dispersion == "additive":
        tau2, df = _logit_dispersion(obs, e if expected is not None else nn * p0, se, p0, nn > 0)
    f = Funnel(p0=p0, units=u, method=method, dispersion=dispersion, phi=phi, tau2=tau2,
               standardised=expected is not None, df=df)
    if dispersion == "additive":  # limits at the unit's volume at the target rate (E/p0 when standardised)
        m = e / p0 if expected is not None and 0 < p0 < 1 else safe
        lim = limits(p0, np.where(np.isfinite(m) & (m > 0), m, 1.0), method=method, **f._widen())
    else:
        own_se = se if (expected is not None or dispersion != "none") else None
        lim = limits(p0, safe, method=method, se=own_se, **f._widen())
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
