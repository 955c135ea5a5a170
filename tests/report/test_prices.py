"""Sourced costs (issue 17, item 3): only a price with a source and year is multiplied and summed; the rules'
illustrative amounts are shown as not priced."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from lowvalue.cli import main
from lowvalue.errors import InputError
from lowvalue.report import aggregate
from lowvalue.report.render import build_html
from lowvalue.report.suppress import Suppressor

FEW = ["LV-ABX-003", "LV-ABX-004", "LV-HOSP-028"]
PRICES = ("rule_id,amount,currency,source,year,note\n"
          "LV-ABX-003,100,SEK,EXEMPEL – påhittat pris för test,2026,not a real price\n"
          "LV-HOSP-028,250,SEK,EXEMPEL – påhittad prislista,2025,\n")


def test_without_prices_nothing_is_summed(example_results: Path, ruleset) -> None:
    inp = aggregate.load(example_results, rules=ruleset)
    s = aggregate.summary(inp, Suppressor())
    assert not s.priced.any() and s.cost.isna().all()  # every shipped cost block is "illustrative", unsourced
    html = build_html(inp, lang="sv", only=FEW)
    assert re.search(r'id="key-cost"><b>ej prissatt</b>', html)
    assert "SEK kostnad" not in html and "illustrativt och saknar källa" in html


def test_a_price_list_costs_its_rules_only(example_results: Path, tmp_path: Path, ruleset) -> None:
    (tmp_path / "prices.csv").write_text(PRICES, encoding="utf-8")
    inp = aggregate.load(example_results, rules=ruleset, prices=tmp_path / "prices.csv")
    s = aggregate.summary(inp, Suppressor()).set_index("rule_id")
    assert s.loc["LV-ABX-003", "cost"] == 100 * s.loc["LV-ABX-003", "flagged"]
    assert pd_isna(s.loc["LV-ABX-004", "cost"]) and not s.loc["LV-ABX-004", "priced"]
    html = build_html(inp, lang="en", only=FEW)
    total = 100 * s.loc["LV-ABX-003", "flagged"] + 250 * s.loc["LV-HOSP-028", "flagged"]
    assert f"<b>{total:,.0f} SEK</b>" in html and "2 of 3 rules with a sourced price" in html
    assert "EXEMPEL – påhittat pris för test (2026)" in html  # the source, made-up label and all, beside the cost
    assert 'id="chart-cost"' in html and "data:image/png" in html.split('id="chart-cost"')[1][:200]


@pytest.mark.parametrize("text, message", [
    ("rule_id,amount,currency,year\nLV-ABX-003,100,SEK,2026\n", "missing source"),
    ("rule_id,amount,currency,source,year\nLV-ABX-003,100,SEK,,2026\n", "needs a rule_id"),
    ("rule_id,amount,currency,source,year\nLV-ABX-003,cheap,SEK,KPP,2026\n", "amount must be a number"),
    ("rule_id,amount,currency,source,year\nLV-ABX-003,1,SEK,KPP,2026\nLV-ABX-003,2,SEK,KPP,2026\n", "priced twice"),
])
def test_a_bad_price_list_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "p.csv").write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        aggregate.load_prices(tmp_path / "p.csv")


def test_cli_prices(example_results: Path, tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("rule_id,amount\nX,1\n", encoding="utf-8")
    res = CliRunner().invoke(main, ["report", str(example_results), "--out", str(tmp_path / "r.html"),
                                    "--rule", "LV-ABX-003", "--prices", str(tmp_path / "bad.csv")])
    assert res.exit_code == 2 and "price list needs columns" in res.output and "Traceback" not in res.output


def pd_isna(x: object) -> bool:
    return x != x  # NaN
