"""The model card says what the run measured, per rule first, and what the code does (issue 14, item 5)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from lowvalue.risk.card import HEADLINE_MIN_EVENTS, POOLED_LABEL, render


def _section(card: str, title: str) -> str:
    start = card.index(f"## {title}")
    nxt = card.find("\n## ", start + 3)
    return card[start:nxt if nxt >= 0 else len(card)]


def test_headline_is_per_rule_and_the_pooled_figure_is_labelled(trained: Path) -> None:
    m = json.loads((trained / "metrics.json").read_text())
    card = (trained / "model_card.md").read_text()
    assert card == render(m, trained.name)
    head = _section(card, "Performance")
    rules = [r for r in m["subgroups"] if r["factor"] == "rule_id"]
    scored = [r for r in rules if "auroc" in r and r["events"] >= HEADLINE_MIN_EVENTS]
    assert scored, "the test region should give at least one rule enough events"
    first_pooled = head.index(POOLED_LABEL)
    for r in scored:  # every scored rule has its own row, with AUROC and calibration, before the pooled figure
        row = re.search(rf"^\| {re.escape(r['level'])} \|.*$", head, re.M)
        assert row and row.start() < first_pooled
        assert f"{r['auroc']['estimate']:.3f} ({r['auroc']['ci_low']:.3f} to" in row.group(0)
        assert f"{r['calibration_intercept']['estimate']:.3f}" in row.group(0)
        assert f"{r['calibration_slope']['estimate']:.3f}" in row.group(0)
    for r in rules:
        if r not in scored:  # named as too few, not silently dropped
            assert r["level"] in head[:first_pooled] and "too few" in head[:first_pooled]
    pooled_auc = f"| AUROC | {m['validation']['auroc']['estimate']:.3f}"
    assert head.index(pooled_auc) > first_pooled
    assert POOLED_LABEL == "pooled over rules (mixes between-rule differences in base rate)"
    # the pooled AUROC appears nowhere before the per-rule table
    assert card.index(f"{m['validation']['auroc']['estimate']:.3f}") > first_pooled


def test_card_statements_match_the_code(trained: Path) -> None:
    """Leakage exemptions, clustering and the decision curve are described as the code and tests do them."""
    from lowvalue.risk.card import LEAKAGE_EXEMPT
    from lowvalue.risk.features import FEATURES

    m = json.loads((trained / "metrics.json").read_text())
    card = (trained / "model_card.md").read_text()
    leak = re.search(r"^- Timing \(tested by `tests/risk/test_features_leakage.py`.*?\n- \*\*Exempt.*$", card, re.M | re.S)
    assert leak, "the card says what the leakage test covers"
    text = leak.group(0)
    assert set(LEAKAGE_EXEMPT) == {"flag_specific", "flag_sensitive"}
    held, exempt = text.split("**Exempt from the leakage test:**")
    for f in FEATURES:  # every feature is named either as held fixed or as exempt, never both
        assert (f"`{f}`" in held) != (f"`{f}`" in exempt.split(".")[0]), f
    assert "post-index" in exempt and "All strictly before the index time (tested)" not in card
    # clustering: the person bootstrap is said, and the old "not clustered" claim is gone
    assert "persons resampled" in m["validation"]["bootstrap"]
    assert all("persons resampled" in r["bootstrap"] for r in m["subgroups"] if "auroc" in r)
    assert "resamples whole persons" in card and "not clustered in the CIs" not in card
    assert "no decision-curve analysis yet" not in card
    # decision curve as review workload and yield
    dca = _section(card, "Review workload and yield")
    assert "not clinical net benefit" in dca and "flags reviewed per trigger found" in dca
    assert "Clinical utility" not in card
    r10 = next(r for r in m["decision_curve"] if r["threshold"] == 0.10)
    assert r10["n_reviewed"] == round(r10["share_acted_on"] * m["split"]["validation"]["n"])
    if r10["triggers_found"] >= 5:
        assert f"| 0.10 | {r10['n_reviewed']} | " in dca and f"{r10['reviews_per_trigger']:.1f} |" in dca
    assert "vårdskada " not in card.lower()


def test_workload_and_yield_by_hand() -> None:
    import numpy as np

    from lowvalue.risk.metrics import decision_curve

    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.2, 0.5, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05])
    (row,) = decision_curve(y, p, thresholds=(0.1,))
    assert (row["n_reviewed"], row["triggers_found"], row["share_of_triggers_found"]) == (3, 2, 1.0)
    assert row["reviews_per_trigger"] == 1.5 and row["reviews_per_trigger_all"] == 5.0


def test_subgroup_calibration_slopes_in_metrics_and_card(trained: Path) -> None:
    m = json.loads((trained / "metrics.json").read_text())
    card = (trained / "model_card.md").read_text()
    sub = _section(card, "Results by subgroup")
    assert "calibration slope (1 ideal)" in sub
    scored = [r for r in m["subgroups"] if "auroc" in r]
    assert {r["factor"] for r in scored} >= {"sex", "age_band", "rule_id"}
    for r in scored:
        s = r["calibration_slope"]
        assert s["ci_low"] <= s["estimate"] <= s["ci_high"] or np.isnan(s["ci_low"])
        if r["factor"] in ("sex", "age_band") and r["events"] >= 5 and r["n"] >= 5:
            row = re.search(rf"^\| {r['factor']} \| {re.escape(r['level'])} \|.*$", sub, re.M)
            assert row and f"{s['estimate']:.3f} ({s['ci_low']:.3f} to {s['ci_high']:.3f})" in row.group(0)


def test_card_lists_the_tripod_ai_items_not_yet_reported(trained: Path) -> None:
    card = (trained / "model_card.md").read_text()
    missing = _section(card, "TRIPOD+AI items not yet reported")
    for topic in ("2 abstract", "Sample-size justification", "Patient and public involvement", "PROBAST+AI",
                  "Participant flow", "Fairness", "Ethics approval", "External (geographic) validation"):
        assert topic in missing, topic
    assert card.index("TRIPOD+AI items not yet reported") > card.index("## Performance")
