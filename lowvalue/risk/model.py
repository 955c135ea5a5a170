"""`AdverseEventRiskModel`: LightGBM with time-slice calibration, as a scikit-learn estimator.

Being a real estimator (``__init__`` only stores parameters, ``fit`` returns
self, learned state ends in ``_``) means ``clone``, ``get_params`` and
``sklearn.inspection`` work unchanged. Three choices follow the calibration
literature (Van Calster 2019): no ``is_unbalance``/``scale_pos_weight``, which
miscalibrate by design; the calibrator is fitted on a *later* time slice than
the booster, so it also corrects drift; Platt scaling by default, because
events are rare and isotonic steps on a small slice tie many risks together.
With Platt scaling the calibrated log-odds are ``a + b * raw``, so SHAP values
scaled by ``b`` still add up exactly, on the calibrated log-odds scale.
"""

from __future__ import annotations

import hashlib
import json
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.utils.validation import check_is_fitted

from lowvalue.errors import LowvalueError

CATEGORICAL = ("rule_id", "setting", "unit")
MODEL_FILE = "model.json"


class ParameterError(LowvalueError, ValueError):
    """A model parameter outside its allowed values (one message template for all of them)."""


def _check(cls: str, name: str, value: Any, ok: bool, constraint: str) -> None:
    if not ok:
        raise ParameterError(f"The {name!r} parameter of {cls} must be {constraint}. Got {value!r} instead.")


def _int(v: Any) -> bool:
    return isinstance(v, Integral) and not isinstance(v, bool)


def _real(v: Any) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _platt(raw: np.ndarray, y: np.ndarray, iters: int = 50) -> tuple[float, float]:
    """Unpenalised logistic regression of y on the raw score by Newton's method (deterministic, no solver options)."""
    X = np.column_stack([np.ones_like(raw), raw])
    beta = np.zeros(2)
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(X @ beta)))
        H = X.T @ (X * (p * (1 - p))[:, None]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(H, X.T @ (y - p))
        beta += step
        if np.abs(step).max() < 1e-10:
            break
    return float(beta[0]), float(beta[1])


class AdverseEventRiskModel(ClassifierMixin, BaseEstimator):
    """Predict an adverse event after an index intervention from pre-index features.

    Parameters
    ----------
    n_estimators, learning_rate, num_leaves, min_child_samples, reg_lambda, colsample_bytree
        LightGBM settings; conservative defaults because events are rare.
    calibration : {"sigmoid", "isotonic"}
        Platt scaling (default) or isotonic regression, fitted on the calibration slice.
    calibration_fraction : float in (0, 0.5]
        The latest share of the training rows (by ``time``) held out to calibrate.
    random_state : int
        Seed for LightGBM's column sampling; same seed and data give an identical model file.
    n_jobs : int
        LightGBM threads; 1 (default) keeps the model byte-identical across machines.

    Examples
    --------
    >>> m = AdverseEventRiskModel(n_estimators=10).fit(X, y, time=t)  # doctest: +SKIP
    >>> m.predict_proba(X)[:, 1]  # calibrated risk  # doctest: +SKIP
    """

    def __init__(self, n_estimators: int = 300, learning_rate: float = 0.03, num_leaves: int = 15,
                 min_child_samples: int = 40, reg_lambda: float = 1.0, colsample_bytree: float = 0.8,
                 calibration: str = "sigmoid", calibration_fraction: float = 0.25, random_state: int = 1,
                 n_jobs: int = 1):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.reg_lambda = reg_lambda
        self.colsample_bytree = colsample_bytree
        self.calibration = calibration
        self.calibration_fraction = calibration_fraction
        self.random_state = random_state
        self.n_jobs = n_jobs

    # -- validation -----------------------------------------------------------------------------------------------
    def _check_params(self) -> None:
        c = type(self).__name__
        p = self.get_params()
        _check(c, "n_estimators", p["n_estimators"], _int(p["n_estimators"]) and p["n_estimators"] >= 1,
               "an int in the range [1, inf)")
        _check(c, "learning_rate", p["learning_rate"], _real(p["learning_rate"]) and 0 < p["learning_rate"] <= 1,
               "a float in the range (0, 1]")
        _check(c, "num_leaves", p["num_leaves"], _int(p["num_leaves"]) and 2 <= p["num_leaves"] <= 131072,
               "an int in the range [2, 131072]")
        _check(c, "min_child_samples", p["min_child_samples"],
               _int(p["min_child_samples"]) and p["min_child_samples"] >= 1, "an int in the range [1, inf)")
        _check(c, "reg_lambda", p["reg_lambda"], _real(p["reg_lambda"]) and p["reg_lambda"] >= 0,
               "a float in the range [0, inf)")
        _check(c, "colsample_bytree", p["colsample_bytree"],
               _real(p["colsample_bytree"]) and 0 < p["colsample_bytree"] <= 1, "a float in the range (0, 1]")
        _check(c, "calibration", p["calibration"], p["calibration"] in ("sigmoid", "isotonic"),
               "a str among {'sigmoid', 'isotonic'}")
        _check(c, "calibration_fraction", p["calibration_fraction"],
               _real(p["calibration_fraction"]) and 0 < p["calibration_fraction"] <= 0.5, "a float in the range (0, 0.5]")
        _check(c, "random_state", p["random_state"], _int(p["random_state"]) and p["random_state"] >= 0,
               "an int in the range [0, 2**31)")
        _check(c, "n_jobs", p["n_jobs"], _int(p["n_jobs"]) and p["n_jobs"] >= 1, "an int in the range [1, inf)")

    # -- data -----------------------------------------------------------------------------------------------------
    def _frame(self, X: pd.DataFrame, fitting: bool = False) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"X must be a pandas DataFrame with named feature columns. Got {type(X).__name__} instead.")
        if fitting:
            self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
            self.n_features_in_ = len(self.feature_names_in_)
            self.categories_ = {c: sorted(X[c].dropna().astype(str).unique()) for c in X.columns if c in CATEGORICAL}
        missing = [c for c in self.feature_names_in_ if c not in X.columns]
        if missing:
            raise ValueError(f"X lacks the feature columns {missing} the model was fitted with.")
        out = pd.DataFrame(index=X.index)
        for c in self.feature_names_in_:
            if c in self.categories_:
                out[c] = pd.Categorical(X[c].astype(object).where(X[c].notna(), None), categories=self.categories_[c])
            else:
                out[c] = pd.to_numeric(X[c], errors="coerce").astype(float)
        return out

    def _lgb_params(self) -> dict[str, Any]:
        return {"objective": "binary", "n_estimators": self.n_estimators, "learning_rate": self.learning_rate,
                "num_leaves": self.num_leaves, "min_child_samples": self.min_child_samples,
                "reg_lambda": self.reg_lambda, "colsample_bytree": self.colsample_bytree,
                "random_state": self.random_state, "n_jobs": self.n_jobs, "deterministic": True,
                "force_row_wise": True, "verbose": -1, "max_cat_to_onehot": 8, "cat_smooth": 20.0}

    # -- fit / predict --------------------------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y: Any, time: Any = None) -> "AdverseEventRiskModel":
        """Fit the booster on the earlier rows and the calibrator on the latest ``calibration_fraction`` (by ``time``).

        Without ``time`` the row order is taken as time order. Returns self.
        """
        self._check_params()
        Xf = self._frame(X, fitting=True)
        y = np.asarray(y).astype(int)
        if set(np.unique(y)) - {0, 1}:
            raise ValueError("y must be binary 0/1 (adverse event within the horizon).")
        order = np.argsort(np.asarray(time), kind="mergesort") if time is not None else np.arange(len(y))
        n_cal = max(1, int(round(len(y) * self.calibration_fraction)))
        fit_idx, cal_idx = order[:-n_cal], order[-n_cal:]
        if len(np.unique(y[fit_idx])) < 2 or len(np.unique(y[cal_idx])) < 2:
            raise ValueError("Both the training and the calibration slice need events and non-events; "
                             "use a longer data period or a smaller calibration_fraction.")
        self.classes_ = np.array([0, 1])
        self.booster_ = lgb.LGBMClassifier(**self._lgb_params()).fit(Xf.iloc[fit_idx], y[fit_idx]).booster_
        raw = self.booster_.predict(Xf.iloc[cal_idx], raw_score=True)
        if self.calibration == "sigmoid":
            self.platt_ = _platt(raw, y[cal_idx])
        else:
            self.isotonic_ = IsotonicRegression(out_of_bounds="clip", y_min=1e-6, y_max=1 - 1e-6).fit(raw, y[cal_idx])
        self.n_train_, self.n_calibration_ = len(fit_idx), len(cal_idx)
        if time is not None:
            t = pd.to_datetime(pd.Series(np.asarray(time)))
            self.calibration_period_ = (str(t.iloc[cal_idx].min()), str(t.iloc[cal_idx].max()))
            self.train_period_ = (str(t.iloc[fit_idx].min()), str(t.iloc[fit_idx].max()))
        return self

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:
        """The booster's raw log-odds (before calibration)."""
        check_is_fitted(self, "booster_")
        return self.booster_.predict(self._frame(X), raw_score=True)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities, shape (n, 2)."""
        raw = self.decision_function(X)
        if self.calibration == "sigmoid":
            a, b = self.platt_
            p = 1 / (1 + np.exp(-(a + b * raw)))
        else:
            p = self.isotonic_.predict(raw)
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def contributions(self, X: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, str]:
        """Exact TreeSHAP (path-dependent) contributions per feature, base value per row, and the scale.

        LightGBM's ``pred_contrib`` gives log-odds SHAP values of the raw
        booster whose last column is the expected value. With Platt scaling
        they are multiplied by the slope (and the base shifted), so they sum
        to the *calibrated* log-odds; with isotonic calibration they stay on
        the raw booster's log-odds.
        """
        check_is_fitted(self, "booster_")
        c = self.booster_.predict(self._frame(X), pred_contrib=True)
        phi, base = c[:, :-1], c[:, -1]
        scale = "log-odds of the raw booster (isotonic calibration is not additive)"
        if self.calibration == "sigmoid":
            a, b = self.platt_
            phi, base, scale = phi * b, a + b * base, "calibrated log-odds"
        return pd.DataFrame(phi, columns=list(self.feature_names_in_), index=X.index), base, scale

    # -- persistence ----------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Everything needed to predict, as JSON-able data (no pickle: loading a model must not run code)."""
        check_is_fitted(self, "booster_")
        d: dict[str, Any] = {"format": "lowvalue-risk-model/1", "class": type(self).__name__,
                             "params": self.get_params(), "features": list(self.feature_names_in_),
                             "categories": self.categories_, "n_train": self.n_train_,
                             "n_calibration": self.n_calibration_,
                             "train_period": getattr(self, "train_period_", None),
                             "calibration_period": getattr(self, "calibration_period_", None),
                             "booster": self.booster_.model_to_string()}
        if self.calibration == "sigmoid":
            d["platt"] = list(self.platt_)
        else:
            d["isotonic"] = {"x": self.isotonic_.X_thresholds_.tolist(), "y": self.isotonic_.y_thresholds_.tolist()}
        return d

    def save(self, path: Path | str) -> Path:
        """Write the model as sorted JSON: same seed and data give byte-identical files."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), sort_keys=True, indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: Path | str) -> "AdverseEventRiskModel":
        path = Path(path)
        if path.is_dir():
            path = path / MODEL_FILE
        d = json.loads(path.read_text())
        m = cls(**d["params"])
        m.feature_names_in_ = np.asarray(d["features"], dtype=object)
        m.n_features_in_ = len(d["features"])
        m.categories_ = d["categories"]
        m.classes_ = np.array([0, 1])
        m.booster_ = lgb.Booster(model_str=d["booster"])
        m.n_train_, m.n_calibration_ = d["n_train"], d["n_calibration"]
        if d.get("train_period"):
            m.train_period_, m.calibration_period_ = tuple(d["train_period"]), tuple(d["calibration_period"])
        if "platt" in d:
            m.platt_ = tuple(d["platt"])
        else:
            iso = IsotonicRegression(out_of_bounds="clip")
            iso.fit(np.asarray(d["isotonic"]["x"]), np.asarray(d["isotonic"]["y"]))
            m.isotonic_ = iso
        return m


def file_digest(path: Path | str) -> str:
    """SHA-256 of a saved model file (recorded in the model card)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
