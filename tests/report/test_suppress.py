"""Small-count suppression: in the aggregates, in derived rates, in trends, on funnels and in the HTML."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from lowvalue.report import aggregate
from lowvalue.report.render import build_html
from lowvalue.report.suppress import MARK, MISSING, Suppressor

from .conftest import SMALL


def test_small_counts_and_threshold() -> None:
    sup = Suppressor(5)
    assert sup.label == MARK == "–" and Suppressor(11).label == MARK  # the mark never claims "<5"
    assert sup.footnote("sv") == "– undertryckt: färre än 5" and sup.footnote("en") == "– suppressed: fewer than 5"
    assert [sup.is_small(n) for n in (0, 1, 4, 5, 12, None, float("nan"))] == [False, True, True, False, False,
                                                                                False, False]
    assert sup.mask(pd.Series([0, 3, 7])).tolist() == [False, True, False]
    assert Suppressor(11).mask(pd.Series([10, 11])).tolist() == [True, False]
    with pytest.raises(ValueError):
        Suppressor(0)


def test_a_single_suppressed_part_takes_the_smallest_other_with_it() -> None:
    sup = Suppressor(5)
    parts = pd.Series([40, 3, 9, 0, 12])
    m = sup.protect_total(parts, sup.mask(parts))
    assert m.tolist() == [False, True, True, False, False]  # 3 alone could be recovered from the total
    two = pd.Series([40, 3, 2, 9])
    assert sup.protect_total(two, sup.mask(two)).tolist() == [False, True, True, False]


def test_summary_masks_counts_rates_and_costs(tiny_results: Path, ruleset) -> None:
    sup = Suppressor(5)
    s = aggregate.summary(aggregate.load(tiny_results, rules=ruleset), sup).set_index("rule_id")
    abx, img = s.loc["LV-ABX-003"], s.loc["LV-IMG-001"]
    # LV-ABX-003: eligible 159, flagged 89, specific 46 → nothing small
    assert (abx.eligible, abx.flagged, abx.low_value, abx.likely_low_value) == (159, 89, 46, 43)
    assert not (abx.sup_eligible or abx.sup_rate or abx.sup_cost or abx.sup_low_value)
    assert abx.rate_per_1000 == pytest.approx(1000 * 46 / 159)
    # LV-IMG-001: eligible 6, flagged 4 (3 low value, 1 likely): counts, rate and cost suppressed
    assert img.eligible == 6 and not img.sup_eligible
    assert img.sup_low_value and img.sup_likely_low_value and img.sup_rate and img.sup_cost
    assert s.loc["LV-ABX-003", "excess_status"] == "absent" and s.precision.isna().all()


def test_trend_and_funnel_hide_small_counts(tiny_results: Path, ruleset) -> None:
    sup = Suppressor(5)
    inp = aggregate.load(tiny_results, rules=ruleset)
    t, period = aggregate.trend(inp, sup, "LV-ABX-003")
    shown = t[~t.sup_flagged]
    assert not shown.flagged.isin(SMALL).any()
    assert not t[~t.sup_rate].flagged_specific.isin(SMALL).any()
    uv = aggregate.unit_variation(inp, sup, "LV-ABX-003")
    u = uv.funnel.units.set_index("unit")
    assert "VC-C" not in u.index  # 3 eligible: not drawn at all
    assert "VC-B" not in u.index and uv.hidden == 2  # 6 eligible, but the smallest other part of the total
    assert u.loc["VC-E", "banded"]  # 2 low value among 30 eligible: volume only
    drawn = u[~u.banded]
    assert not drawn.low_value.isin(SMALL).any() and not drawn.eligible.isin(SMALL).any()
    assert set(uv.outside.unit) <= set(drawn.index)


def _cells(html: str) -> list[tuple[str, str, str]]:
    return re.findall(r'<td class="([^"]*)" data-sort="([^"]*)">(.*?)</td>', html)


@pytest.mark.parametrize("lang", ["en", "sv"])
def test_no_count_below_the_threshold_in_the_html(tiny_results: Path, ruleset, lang: str) -> None:
    html = build_html(aggregate.load(tiny_results, rules=ruleset), lang=lang, min_count=5)
    counts = [(sort, text) for cls, sort, text in _cells(html) if "count" in cls.split()]
    assert counts, "the summary table has count cells"
    for sort, text in counts:
        assert text in (MARK, MISSING) or int(re.sub(r"\D", "", text)) == 0 or int(re.sub(r"\D", "", text)) >= 5, text
        assert sort == "" or int(sort) == 0 or int(sort) >= 5, sort
    # the suppressed rule shows the mark for its tiers and its rate; its cost is not priced (no sourced price)
    # grand totals would give suppressed parts away by subtraction: they sum the published parts, marked ≥
    assert re.search(r'class="key"><b>≥\s46<', html), re.findall(r'class="key"><b>[^<]*', html)
    row = re.search(r"LV-IMG-001</a></td>(.*?)</tr>", html, re.S).group(1)
    assert row.count(f">{MARK}<") >= 3
    assert not re.search(r">\s*[34]00\s*<", row)
    # no person or flag id anywhere
    flags = pd.read_parquet(tiny_results / "flags.parquet")
    assert "PERSON" not in html and "flag0000" not in html and not any(f in html for f in flags.flag_id)


def test_a_larger_threshold_suppresses_more(tiny_results: Path, ruleset) -> None:
    html = build_html(aggregate.load(tiny_results, rules=ruleset), lang="en", min_count=50)
    for cls, sort, text in _cells(html):
        if "count" in cls.split():
            assert text in (MARK, MISSING) or int(text.replace(",", "")) in (0,) or int(text.replace(",", "")) >= 50
    assert "Counts below 50" in html


def test_suppress_table_primary_secondary_and_derived() -> None:
    from lowvalue.report.suppress import suppress_table

    t = pd.DataFrame({"rule": ["A", "A", "A", "B", "B"], "unit": ["u1", "u2", "u3", "u1", "u2"],
                      "flagged": [3, 8, 40, 0, 12], "eligible": [30, 20, 90, 6, None], "rate": [0.1, 0.4, 0.44, 0.0, None]})
    out = suppress_table(t, ["flagged", "eligible"], {"rate": ["flagged", "eligible"]}, totals=["rule"])
    assert out.flagged.tolist() == [MARK, MARK, 40, 0, 12]  # 3 primary; 8 secondary (the smallest other part)
    assert out.eligible.tolist() == [30, 20, 90, 6, MISSING]
    assert out.rate.tolist() == [MARK, MARK, 0.44, 0.0, MISSING]
    assert t.flagged.tolist() == [3, 8, 40, 0, 12]  # the input is left alone
    whole = suppress_table(pd.DataFrame({"n": [2, 50, 60]}), ["n"], totals=[None])
    assert whole.n.tolist() == [MARK, MARK, 60]  # 2, and the smallest other part


def test_indirect_standardisation_expects_the_strata_rates(tmp_path: Path) -> None:
    # one rule, two units, two strata: stratum rates 0.5 (women 80+) and 0.1 (men 18–44)
    rows = []
    for unit, sex, age, n, k in [("U1", "F", 85, 10, 5), ("U1", "M", 30, 10, 1), ("U2", "F", 85, 10, 5),
                                 ("U2", "M", 30, 30, 3)]:
        rows += [{"candidate_id": f"{unit}{sex}{i}", "rule_id": "R", "person_id": f"P{unit}{sex}{i % 3}", "unit": unit,
                  "index_time": pd.Timestamp("2024-01-01"), "age": age, "sex": sex, "eligible": True,
                  "sensitive": i < k, "specific": i < k} for i in range(n)]
    pd.DataFrame(rows).to_parquet(tmp_path / "candidates.parquet")
    u = aggregate.unit_counts(tmp_path / "candidates.parquet").set_index("unit", drop=False)
    assert u.loc["U1", "expected"] == pytest.approx(10 * 0.5 + 10 * 0.1)
    assert u.loc["U2", "expected"] == pytest.approx(10 * 0.5 + 30 * 0.1)
    assert u.loc["U2", "variance"] == pytest.approx(10 * 0.25 + 30 * 0.09)
    assert u.loc["U1", "eligible_persons"] == 6 and u.loc["U1", "flagged_persons"] == 3 + 1
    overall = u[u.unit.isna()].iloc[0]
    assert overall.eligible == 60 and overall.expected == pytest.approx(overall.low_value)


def test_wilson_matches_scipy() -> None:
    from scipy.stats import binomtest

    for k, n in [(0, 10), (3, 7), (46, 159), (20, 20)]:
        lo, hi = aggregate.wilson(k, n)
        ci = binomtest(k, n).proportion_ci(method="wilson")
        assert (float(lo), float(hi)) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_person_counts_do_not_give_a_suppressed_tier_away(example_results: Path, ruleset) -> None:
    # LV-SCR-010 (issue 17): one intervention per person, low value 8 and likely 3 → both tiers hidden; the persons
    # with a low-value flag (also 8) would give them away beside the persons flagged in either tier (11)
    inp = aggregate.load(example_results, rules=ruleset)
    s = aggregate.summary(inp, Suppressor()).set_index("rule_id").loc["LV-SCR-010"]
    assert s.sup_low_value and s.sup_likely_low_value and s.low_value_persons == s.low_value >= 5
    html = build_html(inp, lang="sv", only=["LV-SCR-010"])
    line = re.search(r'id="persons-LV-SCR-010">([^<]*)<', html).group(1)
    assert line.startswith(f"Personer: {MARK} av ") and f", {MARK} per 1 000" in line, line
