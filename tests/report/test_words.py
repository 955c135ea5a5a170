"""Words that match what is measured (issue 14, item 3), and a rank that leaves out estimates with a caution.

A trigger is a coded marker that selects records for review; a *vårdskada* is avoidable harm found by that review
(Patientsäkerhetslagen 2010:659, 1 kap. 5 §). No Swedish text of the report, the review app or a case explanation
may call a trigger or the excess estimate one. The report's note defining the two is the one place the word may stand.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lowvalue.report import aggregate
from lowvalue.report.i18n import STRINGS
from lowvalue.report.render import build_html
from lowvalue.results import read_manifest, stamp, write_table

FEW = ["LV-ABX-003", "LV-ABX-004", "LV-HOSP-028"]
CAUTION = "imprecise: < 10 events in an arm"


def harm_words(text: str) -> list[str]:
    """Every 'vårdskad…' in a Swedish text, outside the report's own definition of a trigger."""
    text = text.replace(STRINGS["sv"]["trigger_note"], "").lower()
    return [text[max(0, i - 60):i + 30] for i in range(len(text)) if text.startswith("vårdskad", i)]


def _excess(tmp_path: Path, results: Path, cautions: list[str | None], name: str = "excess.parquet") -> Path:
    """Two estimated rules: LV-ABX-003 with the larger total, LV-ABX-004 with the smaller one."""
    t = pd.DataFrame({"rule_id": ["LV-ABX-003", "LV-ABX-004"], "status": ["estimated", "estimated"],
                      "label": "adjusted association, not a causal effect", "n_treated": [60, 40],
                      "n_control": [70, 50], "events_treated": [30, 20], "events_control": [12, 11],
                      "total_excess": [120.0, 12.4], "total_excess_lo": [40.0, 3.1], "total_excess_hi": [200.0, 21.9],
                      "excess_per_1000": [470.0, 90.0], "cautions": cautions})
    return write_table(t, tmp_path / name, stamp_of=stamp(read_manifest(results)))


def test_no_swedish_catalogue_string_calls_a_trigger_a_vardskada(ruleset) -> None:
    from lowvalue.review.i18n import STRINGS as REVIEW
    from lowvalue.risk.explain import MISSING, NAMES, WORDS

    texts = {f"report {k}": v for k, v in STRINGS["sv"].items()}
    texts |= {f"review {k}": v for k, v in REVIEW["sv"].items()}
    texts |= {f"explain {k}": str(v) for d in (NAMES, MISSING, WORDS) for k, v in d["sv"].items()}
    import lowvalue.review

    for package in (lowvalue.review, aggregate):
        texts |= {f"template {p.name}": p.read_text() for p in (Path(package.__file__).parent / "templates").glob("*.j2")}
    # rule titles and rationales are shown on the report, the case page and in the explanation
    texts |= {f"rule {r.id}": f"{r.title.sv} {r.rationale.sv}" for r in ruleset.rules.values() if r.type == "rule"}
    texts |= {f"trigger title {r.id}": r.title.sv for r in ruleset.rules.values() if r.type == "trigger"}
    bad = {k: harm_words(v) for k, v in texts.items() if harm_words(v)}
    assert not bad, bad


def test_swedish_report_never_says_vardskada(example_results: Path, tmp_path: Path, ruleset) -> None:
    for excess in (None, _excess(tmp_path, example_results, [CAUTION, None])):  # every rule's own text: above
        inp = aggregate.load(example_results, excess=excess, rules=ruleset)
        html = build_html(inp, lang="sv", only=FEW)
        assert "skademarkör" in html and not harm_words(html), harm_words(html)[:3]
    assert "Skattat överskott av skademarkörer" in html and "justerat samband" in html and 'id="trigger-note"' in html
    en = build_html(inp, lang="en", only=FEW)
    assert "Estimated excess of adverse-event triggers" in en and "adverse events (95" not in en


def test_rank_leaves_out_totals_with_a_caution(example_results: Path, tmp_path: Path, ruleset) -> None:
    sup = aggregate.Suppressor()
    clean = aggregate.summary(aggregate.load(example_results, excess=_excess(tmp_path, example_results, [None, ""]),
                                             rules=ruleset), sup).set_index("rule_id")
    assert clean.loc["LV-ABX-003", "score_harm"] == pytest.approx(1.0)  # the largest total, no caution: counted
    assert clean.loc["LV-ABX-003", "harm_source"] == "estimate" and clean.loc["LV-ABX-003", "excess_caution"] == ""
    cautious = aggregate.summary(aggregate.load(example_results, excess=_excess(tmp_path, example_results,
                                                                                [CAUTION, None], "c.parquet"),
                                                rules=ruleset), sup).set_index("rule_id")
    a, b = cautious.loc["LV-ABX-003"], cautious.loc["LV-ABX-004"]
    assert a.excess_caution == CAUTION and a.harm_source == "caution"
    assert a.score_harm == pytest.approx(0.5)  # as a linked trigger that is not estimated: 120 is not used ...
    assert b.score_harm == pytest.approx(1.0)  # ... so it does not scale the others down either
    assert cautious.loc["LV-HOSP-028", "score_harm"] == 0.5 and cautious.loc["LV-HOSP-028", "harm_source"] == "not estimated"
    no_trigger = cautious[cautious.harms == ""]
    assert len(no_trigger) and (no_trigger.score_harm == 0).all() and (no_trigger.harm_source == "no linked trigger").all()
    assert a.score < clean.loc["LV-ABX-003", "score"]


def test_rank_formula_is_on_the_report_in_both_languages(example_results: Path, tmp_path: Path, ruleset) -> None:
    inp = aggregate.load(example_results, excess=_excess(tmp_path, example_results, [CAUTION, None]), rules=ruleset)
    en = build_html(inp, lang="en", only=FEW, weights=aggregate.Weights(0.5, 0.3, 0.1))
    recipe = en.split('id="rank-recipe">')[1].split("</p>")[0]
    assert "(0.50 × volume + 0.30 × triggers + 0.10 × confidence) / 0.90" in recipe
    assert "without a caution only" in recipe and "adjusted association, not harm caused" in recipe
    sv = build_html(inp, lang="sv", only=FEW)
    recipe = sv.split('id="rank-recipe">')[1].split("</p>")[0]
    assert "(0,40 × volym + 0,40 × skademarkörer + 0,20 × säkerhet) / 1,00" in recipe
    assert "bara för skattningar utan förbehåll" in recipe and "inte skador som åtgärden har orsakat" in recipe
    assert sv.count(recipe) == 2  # under the table and in the methods appendix
