"""Train, validate and document the adverse-event risk model; score flags with it.

The population is every *eligible* candidate of a rule with linked harms (the
people in whom the low-value intervention was a live question), the outcome
is a linked harm trigger within the horizon, and the split is by time:
booster on the earliest period, calibrator on the middle slice, validation on
the latest period, which is the minimum TRIPOD+AI asks for. The shipped model
is the one that was validated (it is not refitted on all data afterwards), so
the reported figures describe exactly the file that scores.
"""

from __future__ import annotations

import warnings

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lowvalue.errors import LowvalueError
from lowvalue.results import write_derived
from lowvalue.risk import card
from lowvalue.risk.features import FEATURES
from lowvalue.risk.metrics import calibration_plot, decision_curve, evaluate, subgroups
from lowvalue.risk.model import MODEL_FILE, AdverseEventRiskModel, file_digest
from lowvalue.risk.outcomes import harm_outcomes
from lowvalue.risk.results import Results, load_results

MODEL_FEATURES = ["rule_id"] + FEATURES


@dataclass
class TrainingRun:
    out: Path
    model: AdverseEventRiskModel
    metrics: dict[str, Any]


def design(results: Results, horizon_days: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Eligible followed candidates of rules with harms, joined to their features and outcome."""
    oc = harm_outcomes(results, horizon_days=horizon_days)
    feats = results.features.drop(columns=["rule_id"])
    df = oc.table[["candidate_id", "rule_id", "person_id", "index_time", "outcome"]].merge(
        feats, on="candidate_id", how="left", validate="one_to_one")
    df = df.sort_values(["index_time", "candidate_id"], kind="mergesort").reset_index(drop=True)
    info = {"excluded_short_follow_up": oc.excluded, "windows": oc.windows,
            "per_rule": oc.summary().to_dict(orient="records")}
    return df, info


def _beeswarm(model: AdverseEventRiskModel, X: pd.DataFrame, path: Path, seed: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shap

    Xs = X.sample(min(len(X), 2000), random_state=seed) if len(X) > 2000 else X
    phi, _, scale = model.contributions(Xs)
    shown = Xs.copy()
    for c in shown.columns:
        if not pd.api.types.is_numeric_dtype(shown[c]):
            shown[c] = pd.Categorical(shown[c]).codes
    plt.figure()
    with warnings.catch_warnings():  # shap seeds numpy's global RNG for its jitter; the warning is about that, not us
        warnings.simplefilter("ignore", FutureWarning)
        shap.summary_plot(phi.to_numpy(), shown.astype(float), show=False, max_display=15)
    plt.title(f"SHAP values ({scale}); validation period", fontsize=9)
    plt.tight_layout()
    plt.savefig(path, dpi=100, metadata={"Software": None})
    plt.close("all")
    return path


def train(results_path: Path | str, out: Path | str, *, horizon_days: int = 30, seed: int = 1,
          validation_fraction: float = 0.25, n_boot: int = 200, model: AdverseEventRiskModel | None = None,
          plots: bool = True) -> TrainingRun:
    """Fit on the earlier period, validate on the latest ``validation_fraction`` (by index time) and write:

    ``model.json``, ``features.json``, ``metrics.json``, ``calibration.png``,
    ``shap_beeswarm.png`` and ``model_card.md`` into ``out``.
    """
    results = load_results(results_path)
    df, info = design(results, horizon_days)
    if len(df) < 200 or df.outcome.sum() < 20:
        raise LowvalueError(f"too little data to train: {len(df)} followed eligible candidates with "
                            f"{int(df.outcome.sum())} events (need at least 200 and 20).")
    cutoff = df.index_time.quantile(1 - validation_fraction)
    dev, val = df[df.index_time < cutoff], df[df.index_time >= cutoff]
    m = model if model is not None else AdverseEventRiskModel(random_state=seed)
    if model is None:
        m.set_params(random_state=seed)
    m.fit(dev[MODEL_FEATURES], dev.outcome.to_numpy(), time=dev.index_time.to_numpy())
    p_val = m.predict_proba(val[MODEL_FEATURES])[:, 1]

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    m.save(out / MODEL_FILE)
    (out / "features.json").write_text(json.dumps({
        "features": MODEL_FEATURES, "categorical": [c for c in MODEL_FEATURES if c in m.categories_],
        "timing": "every feature uses only events strictly before the index time (lowvalue/risk/features.py)",
        "outcome": f"any linked harm trigger within [1d, {horizon_days}d] after the index (rule harm windows, end = horizon)",
    }, indent=1) + "\n")
    metrics: dict[str, Any] = {
        "horizon_days": horizon_days, "seed": seed,
        "population": "eligible candidates of rules with linked harms, with complete follow-up",
        "data": {"start": str(results.data_start), "end": str(results.data_end), "end_source": results.data_end_source,
                 "n": int(len(df)), "events": int(df.outcome.sum()), "event_rate": round(float(df.outcome.mean()), 5),
                 "persons": int(df.person_id.nunique()), **info},
        "split": {"train": {"n": int(m.n_train_), "period": list(m.train_period_)},
                  "calibration": {"n": int(m.n_calibration_), "period": list(m.calibration_period_),
                                  "method": m.calibration},
                  "validation": {"n": int(len(val)), "events": int(val.outcome.sum()),
                                 "period": [str(val.index_time.min()), str(val.index_time.max())]}},
        "validation": evaluate(val.outcome.to_numpy(), p_val, groups=val.person_id.to_numpy(), n_boot=n_boot, seed=seed),
        "decision_curve": decision_curve(val.outcome.to_numpy(), p_val),
        "subgroups": subgroups(val, val.outcome.to_numpy(), p_val, n_boot=max(50, n_boot // 4), seed=seed),
        "missing_values": {c: int(df[c].isna().sum()) for c in MODEL_FEATURES if df[c].isna().any()},
        "params": m.get_params(),
        "model_sha256": file_digest(out / MODEL_FILE),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, default=str) + "\n")
    if plots:
        calibration_plot(val.outcome, p_val, out / "calibration.png",
                         title=f"Calibration, temporal validation (n={len(val)}, {horizon_days}-day horizon)")
        _beeswarm(m, val[MODEL_FEATURES], out / "shap_beeswarm.png", seed)
    (out / "model_card.md").write_text(card.render(metrics, out.name, plots))
    return TrainingRun(out, m, metrics)


def score(results_path: Path | str, model_dir: Path | str) -> Path:
    """Add calibrated ``risk`` and ``risk_percentile`` to every flag; writes ``RESULTS/flags_scored.parquet``.

    ``flags.parquet`` itself is left untouched (scan outputs are immutable and
    byte-reproducible). Flags of rules without linked harms get no risk (NaN)
    and ``risk_note`` says why. The percentile is the flag's rank among the
    scored flags *of the same rule* in these results (0–100).
    """
    results = load_results(results_path)
    m = AdverseEventRiskModel.load(model_dir)
    flags = results.flags.copy()
    feats = results.features.drop(columns=["rule_id"]).rename(columns={"candidate_id": "flag_id"})
    X = flags[["flag_id", "rule_id"]].merge(feats, on="flag_id", how="left")
    known = set(m.categories_.get("rule_id", []))
    ok = X.rule_id.isin(known).to_numpy() & X.age.notna().to_numpy()
    risk = np.full(len(flags), np.nan)
    if ok.any():
        risk[ok] = m.predict_proba(X.loc[ok, list(m.feature_names_in_)])[:, 1]
    flags["risk"] = risk
    flags["risk_percentile"] = (flags.groupby("rule_id").risk.rank(pct=True) * 100).round(1)
    flags["risk_note"] = np.where(ok, "", "rule has no linked harm in the model")
    flags["risk_model"] = file_digest(Path(model_dir) / MODEL_FILE if Path(model_dir).is_dir() else model_dir)[:12]
    return write_derived(flags, results.path, "flags_scored.parquet")
