"""Counts below 5, and figures built on them, stay out of every artefact meant to be shared."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd

from lowvalue.risk.card import render
from lowvalue.risk.excess import ExcessRisk

METRICS = json.loads((Path(__file__).resolve().parents[2] / "models" / "synthetic-region-100k" / "metrics.json").read_text())


def _row(**kw: object) -> dict:
    base = {"rule_id": "LV-RX-022", "window": "TR-FALL-FRACTURE in [1d, 30d]", "status": "estimated",
            "n_treated": 40, "n_control": 30, "events_treated": 3, "events_control": 12, "rr_crude": 1.9,
            "rr_crude_lo": 1.1, "rr_crude_hi": 3.3, "rr": 1.77, "rr_lo": 1.01, "rr_hi": 3.1, "rd": 0.02, "rd_lo": 0.0,
            "rd_hi": 0.04, "excess_per_1000": 21.4, "excess_per_1000_lo": 1.0, "excess_per_1000_hi": 40.0,
            "total_excess": 9.0, "total_excess_lo": 1.0, "total_excess_hi": 17.0, "n_low_value_scanned": 44,
            "e_value": 2.9, "e_value_ci": 1.1, "max_smd_before": 0.4, "max_smd_after": 0.08, "overlap_poor": False,
            "overlap_outside": 0.01, "cautions": ""}
    return {**base, **kw}


def test_excess_risk_md_hides_estimates_from_fewer_than_5_events_in_an_arm() -> None:
    md = ExcessRisk(pd.DataFrame([_row()]), pd.DataFrame()).summary()
    line = next(l for l in md.splitlines() if l.startswith("| LV-RX-022"))
    assert "suppressed: fewer than 5 events in an arm" in line and "1.77" not in line and "21.4" not in line
    md = ExcessRisk(pd.DataFrame([_row(events_treated=7, n_control=4)]), pd.DataFrame()).summary()
    line = next(l for l in md.splitlines() if l.startswith("| LV-RX-022"))
    assert "40 / –" in line and "suppressed: fewer than 5 people in an arm" in line  # the suppression mark
    md = ExcessRisk(pd.DataFrame([_row(events_treated=7)]), pd.DataFrame()).summary()
    assert "1.77 (1.01–3.10)" in md  # enough events in both arms: shown


def test_model_card_shows_small_counts_as_the_suppression_mark() -> None:
    m = copy.deepcopy(METRICS)
    m["data"]["per_rule"][0].update(events=3, event_rate=3 / 2905, excluded_short_follow_up=2)
    m["subgroups"][0].update(events=4)
    card = render(m, "test", plots=False)
    row = next(l for l in card.splitlines() if l.startswith(f"| {m['data']['per_rule'][0]['rule_id']} |"))
    assert "| – | – | – |" in row and "– suppressed: fewer than 5" in card
    sub = m["subgroups"][0]
    row = next(l for l in card.splitlines() if l.startswith(f"| {sub['factor']} | {sub['level']} | {sub['n']} |"))
    events, *figures, note = [c.strip() for c in row.strip("|").split("|")[3:]]
    assert events == "–" and figures and all(f == "–" for f in figures), row  # no figure of a small subgroup
    assert note == "fewer than 5 events: not shown"
