"""Performance of a risk model: discrimination, calibration, Brier, with bootstrap CIs and subgroups.

The calibration figures follow Van Calster et al. (BMC Med 2019): the
calibration *intercept* is the intercept of a logistic regression of y with
``logit(p)`` as an offset (calibration-in-the-large, 0 is ideal) and the
*slope* is the coefficient of ``logit(p)`` in a logistic regression of y on
it (1 is ideal; < 1 means over-fitted, too extreme risks). No Hosmer–Lemeshow
test. All CIs are percentile bootstrap intervals, over persons when person ids are given
(:func:`evaluate` ``groups``; training always gives them), else over rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from lowvalue.progress import steps

AGE_BANDS = [0, 18, 45, 65, 75, 85, 200]
AGE_LABELS = ["0-17", "18-44", "45-64", "65-74", "75-84", "85+"]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _newton_logistic(X: np.ndarray, y: np.ndarray, offset: np.ndarray, iters: int = 50) -> np.ndarray:
    beta = np.zeros(X.shape[1])
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(X @ beta + offset, -30, 30)))
        H = X.T @ (X * (p * (1 - p))[:, None]) + 1e-9 * np.eye(X.shape[1])
        step = np.linalg.solve(H, X.T @ (y - p))
        beta += step
        if np.abs(step).max() < 1e-9:
            break
    return beta


def calibration_intercept(y: np.ndarray, p: np.ndarray) -> float:
    """Calibration-in-the-large: intercept of logit P(y) = a + 1·logit(p) (offset). 0 is ideal."""
    lp = _logit(p)
    return float(_newton_logistic(np.ones((len(y), 1)), np.asarray(y, float), lp)[0])


def calibration_slope(y: np.ndarray, p: np.ndarray) -> float:
    """Slope b of logit P(y) = a + b·logit(p). 1 is ideal."""
    lp = _logit(p)
    X = np.column_stack([np.ones_like(lp), lp])
    return float(_newton_logistic(X, np.asarray(y, float), np.zeros_like(lp))[1])


def scaled_brier(y: np.ndarray, p: np.ndarray) -> float:
    """1 − Brier / Brier of the event rate (the 'null' model); 0 = no better than the rate, 1 = perfect."""
    y = np.asarray(y, float)
    null = float(np.mean((y - y.mean()) ** 2))
    return float(1 - np.mean((np.asarray(p) - y) ** 2) / null) if null > 0 else float("nan")


def auroc(y: np.ndarray, p: np.ndarray) -> float:
    """Mann–Whitney AUROC with mid-ranks for ties (same value as sklearn's, ~50× faster inside a bootstrap)."""
    y = np.asarray(y, bool)
    order = np.argsort(p, kind="mergesort")
    ps = np.asarray(p)[order]
    ranks = np.empty(len(p))
    _, start, counts = np.unique(ps, return_index=True, return_counts=True)
    mid = start + (counts + 1) / 2
    ranks[order] = np.repeat(mid, counts)
    n1 = y.sum()
    n0 = len(y) - n1
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def auprc(y: np.ndarray, p: np.ndarray) -> float:
    """Average precision (step-wise area under the precision-recall curve), as sklearn computes it."""
    y = np.asarray(y, float)
    order = np.argsort(-np.asarray(p), kind="mergesort")
    ps, ys = np.asarray(p)[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(ps)), len(ps) - 1]  # last row of each distinct threshold
    tp = np.cumsum(ys)[last]
    precision = tp / (last + 1)
    recall = tp / y.sum()
    return float(np.sum(np.diff(np.r_[0, recall]) * precision))


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "auroc": auroc,
    "auprc": auprc,
    "brier": lambda y, p: float(np.mean((np.asarray(p) - y) ** 2)),
    "scaled_brier": scaled_brier,
    "calibration_intercept": calibration_intercept,
    "calibration_slope": calibration_slope,
    "mean_predicted": lambda y, p: float(np.mean(p)),
    "event_rate": lambda y, p: float(np.mean(y)),
}


def person_bootstrap(groups: Any, rng: np.random.Generator) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    """A sampler of bootstrap replicates that resample whole persons (clusters).

    Each call returns the row indices of one replicate (a drawn person's rows together, in their original order)
    and, per row, the replicate's cluster number (a person drawn twice is two clusters), which cross-fitting needs.
    """
    _, inv = np.unique(np.asarray(groups), return_inverse=True)
    order = np.argsort(inv, kind="stable")
    starts = np.searchsorted(inv[order], np.arange(inv.max() + 2))
    sizes = np.diff(starts)

    def sample() -> tuple[np.ndarray, np.ndarray]:
        pick = rng.integers(0, len(sizes), len(sizes))
        return (order[np.repeat(starts[pick], sizes[pick]) + _ranges(sizes[pick])],
                np.repeat(np.arange(len(pick)), sizes[pick]))

    return sample


def _ranges(sizes: np.ndarray) -> np.ndarray:
    """0..s-1 for every s in ``sizes``, concatenated."""
    ends = np.cumsum(sizes)
    return np.arange(ends[-1] if len(ends) else 0) - np.repeat(ends - sizes, sizes)


def evaluate(y: Any, p: Any, *, groups: Any = None, n_boot: int = 200, seed: int = 0, alpha: float = 0.05
             ) -> dict[str, Any]:
    """Every metric with a percentile bootstrap CI: ``{name: {"estimate", "ci_low", "ci_high"}, "n", "events"}``.

    With ``groups`` (person ids) the bootstrap resamples whole persons: one person's interventions share a
    frailty and an outcome history, so resampling rows would make the intervals too narrow."""
    y, p = np.asarray(y, int), np.asarray(p, float)
    out: dict[str, Any] = {"n": int(len(y)), "events": int(y.sum())}
    if groups is not None:
        out["persons"] = int(len(np.unique(np.asarray(groups))))
    out["bootstrap"] = f"{n_boot} replicates, {'persons' if groups is not None else 'rows'} resampled"
    if len(y) == 0 or y.min() == y.max():
        out["note"] = "needs both events and non-events"
        return out
    rng = np.random.default_rng(seed)
    persons = person_bootstrap(groups, rng) if groups is not None else None
    boots = {k: [] for k in METRICS}
    for _ in steps(range(n_boot), f"bootstrap ({len(y):,} rows)"):
        i = persons()[0] if persons else rng.integers(0, len(y), len(y))
        if y[i].min() == y[i].max():
            continue
        for k, f in METRICS.items():
            boots[k].append(f(y[i], p[i]))
    for k, f in METRICS.items():
        b = np.asarray(boots[k])
        lo, hi = (np.quantile(b, [alpha / 2, 1 - alpha / 2]) if len(b) else (np.nan, np.nan))
        out[k] = {"estimate": round(f(y, p), 5), "ci_low": round(float(lo), 5), "ci_high": round(float(hi), 5)}
    return out


DECISION_THRESHOLDS = (0.02, 0.05, 0.10, 0.15, 0.20, 0.30)


def decision_curve(y: Any, p: Any, thresholds: tuple[float, ...] = DECISION_THRESHOLDS) -> list[dict[str, float]]:
    """Review workload and yield of reviewing the flags at or above each risk threshold, with net benefit.

    Per threshold: ``n_reviewed`` and ``share_acted_on`` (flags reviewed), ``triggers_found`` and
    ``share_of_triggers_found`` (of all triggers among the flags), ``reviews_per_trigger`` (flags to review per
    trigger found, 1/PPV) and ``reviews_per_trigger_all`` (the same when every flag is reviewed). The net benefit
    (Vickers & Elkin 2006) is kept for completeness: here it weighs a *review* that finds a coded trigger against a
    needless review, not a clinical benefit to a patient, because nothing is done to the patient at the threshold."""
    y, p = np.asarray(y, int), np.asarray(p, float)
    n, prev = len(y), float(np.mean(y)) if len(y) else 0.0
    total = int(y.sum())
    rows = []
    for pt in thresholds:
        act = p >= pt
        odds = pt / (1 - pt)
        tp, fp = int(np.sum(act & (y == 1))), int(np.sum(act & (y == 0)))
        rows.append({"threshold": pt, "net_benefit_model": round((tp - fp * odds) / n, 5) if n else float("nan"),
                     "net_benefit_all": round(prev - (1 - prev) * odds, 5),
                     "share_acted_on": round(float(act.mean()), 4),
                     "n_reviewed": tp + fp, "triggers_found": tp,
                     "share_of_triggers_found": round(tp / total, 4) if total else float("nan"),
                     "reviews_per_trigger": round((tp + fp) / tp, 2) if tp else float("nan"),
                     "reviews_per_trigger_all": round(n / total, 2) if total else float("nan")})
    return rows


def age_band(age: pd.Series) -> pd.Series:
    return pd.cut(age, AGE_BANDS, right=False, labels=AGE_LABELS).astype(str)


def subgroups(frame: pd.DataFrame, y: np.ndarray, p: np.ndarray, *, n_boot: int = 100, seed: int = 0,
              min_n: int = 50) -> list[dict[str, Any]]:
    """Metrics by sex, age band and unit (and by rule); groups under ``min_n`` rows are reported but not scored."""
    f = frame.reset_index(drop=True).assign(_y=np.asarray(y), _p=np.asarray(p))
    f["sex"] = np.where(f.sex_male == 1, "M", "F")
    f["age_band"] = age_band(f.age)
    rows = []
    for factor in ("sex", "age_band", "unit", "rule_id"):
        if factor not in f:
            continue
        for level, g in f.groupby(factor, sort=True, observed=True):
            row: dict[str, Any] = {"factor": factor, "level": str(level), "n": int(len(g)), "events": int(g._y.sum())}
            if len(g) >= min_n and 0 < g._y.sum() < len(g):
                m = evaluate(g._y.to_numpy(), g._p.to_numpy(), n_boot=n_boot, seed=seed,
                             groups=g.person_id.to_numpy() if "person_id" in g else None)
                for k in ("auroc", "brier", "calibration_intercept", "calibration_slope", "mean_predicted",
                          "event_rate"):
                    row[k] = m[k]
                row["bootstrap"] = m["bootstrap"]
            else:
                row["note"] = f"too few rows or no events (n < {min_n} or events 0)"
            rows.append(row)
    return rows


def calibration_plot(y: Any, p: Any, path: Path | str, *, bins: int = 10, title: str = "Calibration") -> Path:
    """Observed vs predicted risk in quantile bins with Wilson 95 % intervals, plus a predicted-risk histogram."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y, p = np.asarray(y, float), np.asarray(p, float)
    q = pd.qcut(pd.Series(p).rank(method="first"), min(bins, max(1, len(p) // 20)), labels=False)
    g = pd.DataFrame({"y": y, "p": p, "q": q}).groupby("q").agg(p=("p", "mean"), o=("y", "mean"), n=("y", "size"))
    z = 1.96
    centre = (g.o + z * z / (2 * g.n)) / (1 + z * z / g.n)
    half = z * np.sqrt(g.o * (1 - g.o) / g.n + z * z / (4 * g.n ** 2)) / (1 + z * z / g.n)
    fig, (ax, axh) = plt.subplots(2, 1, figsize=(5.5, 6), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    top = float(max(g.p.max(), (centre + half).max(), 0.05)) * 1.1
    ax.plot([0, top], [0, top], ls="--", color="grey", lw=1, label="ideal")
    yerr = np.clip([g.o - (centre - half), (centre + half) - g.o], 0, None)  # Wilson bounds; clip rounding below 0
    ax.errorbar(g.p, g.o, yerr=yerr, fmt="o-", color="C0", capsize=3,
                label="observed (95 % CI)")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_ylabel("observed event rate")
    ax.set_title(title)
    ax.legend(loc="upper left")
    axh.hist(p, bins=40, range=(0, top), color="C0", alpha=0.6)
    axh.set_xlabel("predicted risk (calibrated)")
    axh.set_ylabel("n")
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return Path(path)
