"""Excess risk recovers the planted risk ratios on the session region (fixed seed); the crude one is biased up."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from click.testing import CliRunner

from lowvalue.cli import main
from lowvalue.risk.excess import LABEL, e_value


def test_e_value() -> None:
    assert abs(e_value(2.0) - (2 + 2 ** 0.5)) < 1e-12
    assert e_value(0.5) == e_value(2.0)


def test_adjusted_ci_covers_truth_and_crude_is_biased(results: Path, region: Path) -> None:
    out = CliRunner().invoke(main, ["risk", "excess", str(results), "--n-boot", "100", "--seed", "1"])
    assert out.exit_code == 0, out.output
    assert LABEL in out.output
    t = pd.read_parquet(results / "excess_risk.parquet").set_index("rule_id")
    truth = json.loads((region / "truth" / "effects.json").read_text())["patterns"]
    covered, ratios = {}, []
    for rid, spec in truth.items():
        r = t.loc[rid]
        assert r.status.startswith("estimated") and r.label == LABEL
        assert r.e_value >= 1 and r.total_excess_lo <= r.total_excess <= r.total_excess_hi
        assert ("not balanced" in r.cautions) == (r.max_smd_after > 0.25) and ("imprecise" in r.cautions) == ("imprecise" in r.status)
        ratios.append((r.rr_crude / spec["true_risk_ratio"], r.rr / spec["true_risk_ratio"]))
        if min(r.events_treated, r.events_control) >= 10:  # fewer control events: the CI is noise, not a test
            covered[rid] = bool(r.rr_lo <= spec["true_risk_ratio"] <= r.rr_hi)
    assert len(covered) >= 2 and all(covered.values()), (covered, t[["rr_crude", "rr", "rr_lo", "rr_hi"]].to_dict())
    # frailty confounding pushes the crude ratio above the truth on average; the adjusted one is less biased
    crude, adjusted = (float(np.exp(np.mean(np.log([x[i] for x in ratios])))) for i in (0, 1))
    assert crude > 1.1 and adjusted < crude, (crude, adjusted)
    bal = pd.read_parquet(results / "excess_balance.parquet")
    assert {"covariate", "smd_before", "smd_after"} <= set(bal.columns) and "age" in set(bal.covariate)
    assert (results / "excess_risk.md").read_text().count("adjusted association, not a causal effect") >= 1
