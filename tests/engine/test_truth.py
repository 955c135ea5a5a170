"""The shipped rules find every planted low-value intervention in the bundled region, and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

import lowvalue
from lowvalue.engine.truth import compare_with_truth

REGION = Path(__file__).resolve().parents[2] / "examples" / "synthetic_data"


@pytest.fixture(scope="module")
def agreement():
    result = lowvalue.scan(REGION, codes=REGION / "region-codes", features=False)
    return compare_with_truth(result.flags, REGION / "truth")


def test_every_planted_pattern_has_a_rule_and_instances(agreement):
    assert set(agreement.rule_id) >= {"LV-IMG-001", "LV-ABX-003", "LV-ABX-004", "LV-SCR-008", "LV-RX-022",
                                      "LV-PRE-013", "LV-HOSP-027", "LV-LAB-011", "LV-RX-026"}
    assert (agreement.planted > 0).all()


def test_recall_and_precision_are_one(agreement):
    bad = agreement[(agreement.recall != 1.0) | (agreement.precision != 1.0)]
    assert bad.empty, bad.to_string()
