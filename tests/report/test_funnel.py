"""Funnel limits against a worked example computed by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from lowvalue.report.funnel import funnel, limits, z_of


def test_normal_limits_worked_example() -> None:
    # p0 = 0.2, n = 100: se = sqrt(0.2 · 0.8 / 100) = 0.04
    #   95 %:   0.2 ± 1.959964 · 0.04 = 0.121601 … 0.278399
    #   99.8 %: 0.2 ± 3.090232 · 0.04 = 0.076391 … 0.323609
    lim = limits(0.2, [100]).iloc[0]
    assert lim["lo95"] == pytest.approx(0.121601, abs=1e-6)
    assert lim["hi95"] == pytest.approx(0.278399, abs=1e-6)
    assert lim["lo99.8"] == pytest.approx(0.076391, abs=1e-6)
    assert lim["hi99.8"] == pytest.approx(0.323609, abs=1e-6)
    assert z_of(0.95) == pytest.approx(1.959964, abs=1e-6) and z_of(0.998) == pytest.approx(3.090232, abs=1e-6)


def test_normal_limits_are_clipped_and_narrow_with_volume() -> None:
    lim = limits(0.05, [4, 400])
    assert lim["lo99.8"].iloc[0] == 0.0  # 0.05 − 3.09·0.109 < 0
    assert (lim["hi95"].diff().dropna() < 0).all()


def _cdf(r: int, n: int, p: float) -> float:
    return sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(r + 1)) if r >= 0 else 0.0


def test_exact_limits_worked_example() -> None:
    # n = 20, p0 = 0.5, lower 95 % limit (p = 0.025), Spiegelhalter's interpolation:
    #   F(5) = 21700/2^20 = 0.020695, F(6) = 60460/2^20 = 0.057659 → r_p = 6
    #   α = (0.057659 − 0.025)/(0.057659 − 0.020695) = 0.883526
    #   limit = (6 − 0.883526)/20 = 0.255824
    assert _cdf(5, 20, 0.5) == pytest.approx(0.020695, abs=1e-6) and _cdf(6, 20, 0.5) == pytest.approx(0.057659, abs=1e-6)
    # upper 95 % limit (p = 0.975): F(13) = 1 − F(6) = 0.942341, F(14) = 1 − F(5) = 0.979305 → r_p = 14
    #   α = (0.979305 − 0.975)/(0.979305 − 0.942341) = 0.116469, limit = (14 − 0.116469)/20 = 0.694177
    lim = limits(0.5, [20], method="exact").iloc[0]
    assert lim["lo95"] == pytest.approx(0.255824, abs=1e-5)
    assert lim["hi95"] == pytest.approx(0.694177, abs=1e-5)


def test_exact_and_normal_agree_for_large_n() -> None:
    n = [5000]
    a, b = limits(0.3, n).iloc[0], limits(0.3, n, method="exact").iloc[0]
    for c in ("lo95", "hi95", "lo99.8", "hi99.8"):
        assert a[c] == pytest.approx(b[c], abs=2e-3)


def test_units_are_placed_against_the_limits() -> None:
    units = pd.DataFrame({"unit": ["high", "mid", "low", "slightly", "none"],
                          "eligible": [100, 100, 100, 100, 0], "flagged": [40, 20, 5, 29, 0]})
    f = funnel(units, p0=0.2)
    pos = dict(zip(f.units.unit, f.units.position))
    assert pos == {"high": "above 99.8", "mid": "within", "low": "below 99.8", "slightly": "above 95",
                   "none": "no volume"}
    assert funnel(units).p0 == pytest.approx(94 / 400)
