"""The model card says what the run measured, per rule first, and what the code does (issue 14, item 5)."""

from __future__ import annotations

import json
import re
from pathlib import Path

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
