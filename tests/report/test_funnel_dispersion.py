"""Over-dispersed units with no truly different unit stay inside the 99.8 % limits at the nominal rate (issue 17).

The synthetic region multiplies a rule's rate per unit (``lowvalue.data.synth.region.UNIT_MULTIPLIER``); here
the same idea is simulated at the count level: every unit's rate is the regional rate times a multiplier drawn
from one smooth distribution (ordinary variation between units, no planted outlier), and each unit's count is
binomial. Binomial limits then flag a large share of ordinary units; the over-dispersion-adjusted limits must not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lowvalue.report.funnel import funnel, overdispersion

P0 = 0.2
UNITS = 40
REPS = 150


def _region(rng: np.random.Generator) -> pd.DataFrame:
    n = np.round(rng.lognormal(mean=6.0, sigma=1.0, size=UNITS)).astype(int) + 30  # ~30 … several thousand events
    # ordinary variation between units, like UNIT_MULTIPLIER but with no planted outlier: normal around 1
    multiplier = np.clip(rng.normal(1.0, 0.25, size=UNITS), 0.05, None)
    p = np.clip(P0 * multiplier, 0, 1)
    return pd.DataFrame({"unit": [f"U{i:02d}" for i in range(UNITS)], "eligible": n, "flagged": rng.binomial(n, p)})


def _share_outside(dispersion: str) -> float:
    rng = np.random.default_rng(20260417)
    outside = 0
    for _ in range(REPS):
        f = funnel(_region(rng), dispersion=dispersion)  # type: ignore[arg-type]
        outside += int(f.units.position.isin(["above 99.8", "below 99.8"]).sum())
    return outside / (REPS * UNITS)


def test_additive_limits_keep_ordinary_units_inside_at_the_nominal_rate() -> None:
    share = _share_outside("additive")
    assert share <= 0.002 + 0.0005, share  # nominal 0.2 % (Monte Carlo error of 6 000 unit draws ≈ 0.06 %)


def test_binomial_limits_would_flag_ordinary_units() -> None:
    assert _share_outside("none") > 0.10  # the reason for the adjustment: the test above can fail


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
