"""Over-dispersed units with no truly different unit stay inside the 99.8 % limits at the nominal rate (issue 17).

The synthetic region multiplies a rule's odds per unit (``lowvalue.data.synth.region.UNIT_MULTIPLIER``,
``logit p = α + ln(multiplier)``); here the same idea is simulated at the count level: every unit's odds are the
regional odds times a log-normal multiplier (ordinary variation between units, no planted outlier), and each
unit's count is binomial. Binomial limits then flag a large share of ordinary units; the over-dispersion-adjusted
limits must not, at a low rate (5 %, where a log-normal spread is most skewed) and a moderate one (20 %). With the
earlier additive random effect on the rate scale these regions put 1.3 % and 0.4 % of units outside (nominal
0.2 %): over 6 000 simulated units per case that fails the bound below.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scipy.special import expit, logit

from lowvalue.report.funnel import funnel, overdispersion

P0 = 0.2
UNITS = 40
REPS = 150


SIGMA = 0.3
"""Standard deviation of the log multipliers (odds ratios between ordinary units of about 0.55 to 1.8)."""


def _region(rng: np.random.Generator, p0: float = P0, outlier: float = 1.0) -> pd.DataFrame:
    n = np.round(rng.lognormal(mean=6.0, sigma=1.0, size=UNITS)).astype(int) + 30  # ~30 … several thousand events
    # ordinary variation between units, like UNIT_MULTIPLIER: a log-normal odds multiplier; with ``outlier`` the
    # odds of unit U00 (given at least 1 500 events) are that many times the region's instead
    log_multiplier = rng.normal(0.0, SIGMA, size=UNITS)
    if outlier != 1.0:
        log_multiplier[0], n[0] = np.log(outlier), max(n[0], 1500)
    p = expit(logit(p0) + log_multiplier)
    return pd.DataFrame({"unit": [f"U{i:02d}" for i in range(UNITS)], "eligible": n, "flagged": rng.binomial(n, p)})


def _share_outside(dispersion: str, p0: float = P0, reps: int = REPS) -> float:
    rng = np.random.default_rng(20260417)
    outside = 0
    for _ in range(reps):
        f = funnel(_region(rng, p0), dispersion=dispersion)  # type: ignore[arg-type]
        outside += int(f.units.position.isin(["above 99.8", "below 99.8"]).sum())
    return outside / (reps * UNITS)


@pytest.mark.parametrize("p0", [0.05, P0])
def test_additive_limits_keep_ordinary_units_inside_at_the_nominal_rate(p0: float) -> None:
    share = _share_outside("additive", p0)
    assert share <= 0.002 + 0.0005, share  # nominal 0.2 % (Monte Carlo error of 6 000 unit draws ≈ 0.06 %)


def test_binomial_limits_would_flag_ordinary_units() -> None:
    assert _share_outside("none", reps=20) > 0.10  # the reason for the adjustment: the test above can fail


def test_a_planted_outlier_unit_is_still_found() -> None:
    # one large unit with six times the region's odds, among ordinary units spread as above: above the 99.8 % limit,
    # which lies about exp(3.5 τ) ≈ 3 times the odds out for a large unit (τ ≈ 0.3, t on about 20 degrees of freedom)
    rng = np.random.default_rng(11)
    found = [funnel(_region(rng, outlier=6.0), dispersion="additive").units.position[0] == "above 99.8"
             for _ in range(20)]
    assert sum(found) >= 19, found


def test_multiplicative_limits_are_wider_than_binomial() -> None:
    units = _region(np.random.default_rng(3))
    a, b = funnel(units, dispersion="multiplicative").units, funnel(units, dispersion="none").units
    assert (a["hi99.8"] >= b["hi99.8"] - 1e-12).all() and (a["hi99.8"] > b["hi99.8"]).any()


def test_overdispersion_of_binomial_units_is_about_one() -> None:
    rng = np.random.default_rng(5)
    n = rng.integers(100, 2000, size=400)
    y = rng.binomial(n, P0) / n
    se = np.sqrt(P0 * (1 - P0) / n)
    phi, tau2 = overdispersion((y - P0) / se, se, winsor=0.0)
    assert phi == pytest.approx(1.0, abs=0.2) and tau2 < 1e-4


def test_standardised_rates_use_observed_over_expected() -> None:
    # unit A: 30 observed where its age and sex mix expects 30 → standardised rate = p0, whatever its crude rate
    units = pd.DataFrame({"unit": ["A", "B"], "eligible": [100, 100], "flagged": [30, 10],
                          "expected": [30.0, 10.0], "variance": [21.0, 9.0]})
    f = funnel(units, p0=0.2, expected="expected", variance="variance")
    assert f.standardised and f.units.rate.tolist() == pytest.approx([0.2, 0.2])
    assert f.units.position.tolist() == ["within", "within"]
