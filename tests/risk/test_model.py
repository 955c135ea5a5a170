"""Risk model: calibration output, determinism, parameter validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from lowvalue.risk.model import AdverseEventRiskModel, ParameterError
from lowvalue.risk.train import MODEL_FEATURES, design, train
from lowvalue.risk.results import load_results


def test_training_writes_sane_calibration_and_card(trained: Path) -> None:
    m = json.loads((trained / "metrics.json").read_text())
    v = m["validation"]
    assert 0.55 < v["auroc"]["estimate"] < 1
    assert abs(v["calibration_intercept"]["estimate"]) < 0.7
    assert 0.4 < v["calibration_slope"]["estimate"] < 2.0
    assert v["calibration_slope"]["ci_low"] <= v["calibration_slope"]["estimate"] <= v["calibration_slope"]["ci_high"]
    assert abs(v["mean_predicted"]["estimate"] - v["event_rate"]["estimate"]) < 0.05
    assert {s["factor"] for s in m["subgroups"]} >= {"sex", "age_band", "unit"}
    assert m["split"]["train"]["period"][1] <= m["split"]["calibration"]["period"][0] <= m["split"]["validation"]["period"][0]
    for f in ("model.json", "features.json", "calibration.png", "shap_beeswarm.png", "model_card.md"):
        assert (trained / f).stat().st_size > 0
    card = (trained / "model_card.md").read_text()
    dca = {r["threshold"]: r for r in m["decision_curve"]}
    assert dca[0.02]["share_acted_on"] >= dca[0.3]["share_acted_on"]
    assert dca[0.02]["net_benefit_all"] > dca[0.3]["net_benefit_all"]  # review-all pays more for a needless review at 0.3
    for needle in ("Intended use", "Out of scope", "AUROC", "calibration slope", "TRIPOD+AI", "Known limits", "age_band",
                   "decision curve"):
        assert needle in card


def test_same_seed_same_model_bytes(results: Path, tmp_path: Path) -> None:
    a = train(results, tmp_path / "a", seed=7, n_boot=0, plots=False)
    b = train(results, tmp_path / "b", seed=7, n_boot=0, plots=False)
    train(results, tmp_path / "c", seed=8, n_boot=0, plots=False)
    assert (tmp_path / "a/model.json").read_bytes() == (tmp_path / "b/model.json").read_bytes()
    assert (tmp_path / "a/model.json").read_bytes() != (tmp_path / "c/model.json").read_bytes()
    df, _ = design(load_results(results), 30)
    np.testing.assert_array_equal(a.model.predict_proba(df[MODEL_FEATURES]), b.model.predict_proba(df[MODEL_FEATURES]))
    loaded = AdverseEventRiskModel.load(tmp_path / "a")
    np.testing.assert_allclose(loaded.predict_proba(df[MODEL_FEATURES]), a.model.predict_proba(df[MODEL_FEATURES]))


def test_estimator_contract_and_shap_additivity(results: Path) -> None:
    df, _ = design(load_results(results), 30)
    m = AdverseEventRiskModel(n_estimators=30)
    assert clone(m).get_params() == m.get_params()
    assert m.fit(df[MODEL_FEATURES], df.outcome, time=df.index_time) is m
    assert hasattr(m, "booster_") and m.n_features_in_ == len(MODEL_FEATURES)
    phi, base, scale = m.contributions(df[MODEL_FEATURES].head(50))
    p = m.predict_proba(df[MODEL_FEATURES].head(50))[:, 1]
    np.testing.assert_allclose(1 / (1 + np.exp(-(phi.sum(axis=1).to_numpy() + base))), p, rtol=1e-6)
    assert scale == "calibrated log-odds"


@pytest.mark.parametrize("name, value, constraint", [
    ("learning_rate", 2.0, "a float in the range (0, 1]"),
    ("calibration", "platt", "a str among {'sigmoid', 'isotonic'}"),
    ("n_estimators", 0, "an int in the range [1, inf)"),
])
def test_parameter_validation_message(name: str, value: object, constraint: str) -> None:
    X = pd.DataFrame({"age": np.arange(100.0)})
    with pytest.raises(ParameterError) as err:
        AdverseEventRiskModel(**{name: value}).fit(X, np.arange(100) % 2)
    assert str(err.value) == (f"The {name!r} parameter of AdverseEventRiskModel must be {constraint}. "
                              f"Got {value!r} instead.")


def test_person_bootstrap_is_wider_when_persons_repeat() -> None:
    """Five interventions per person are not five independent observations: the person bootstrap must say so."""
    from lowvalue.risk.metrics import evaluate

    rng = np.random.default_rng(0)
    p = rng.uniform(0.02, 0.4, 300)
    y = (rng.random(300) < p).astype(int)
    rows = evaluate(np.repeat(y, 5), np.repeat(p, 5), n_boot=200, seed=1)
    persons = evaluate(np.repeat(y, 5), np.repeat(p, 5), groups=np.repeat(np.arange(300), 5), n_boot=200, seed=1)
    width = lambda m: m["auroc"]["ci_high"] - m["auroc"]["ci_low"]  # noqa: E731
    assert persons["persons"] == 300 and "persons resampled" in persons["bootstrap"]
    assert rows["auroc"]["estimate"] == persons["auroc"]["estimate"]
    assert width(persons) > 1.8 * width(rows)


def test_net_benefit_by_hand() -> None:
    from lowvalue.risk.metrics import decision_curve

    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.2, 0.5, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05])
    (row,) = decision_curve(y, p, thresholds=(0.1,))
    # acts on 3: TP 2, FP 1 -> (2 - 1 * 0.1/0.9) / 10; all: 0.2 - 0.8 * 0.1/0.9
    assert row["net_benefit_model"] == round((2 - 1 / 9) / 10, 5)
    assert row["net_benefit_all"] == round(0.2 - 0.8 / 9, 5) and row["share_acted_on"] == 0.3
