"""Estimated excess of adverse-event triggers per rule: the target trial the rule's question implies, emulated.

The risk model says *who* is at risk; it cannot say how much harm the low-value
intervention adds. That is a causal question with a comparison of *strategies*,
so this module emulates the trial the rule implies (Hernán & Robins 2016), built
by :mod:`lowvalue.risk.trial` from the rule's ``anchor``:

- eligibility: an anchor event (e.g. a viral or unspecified acute sinusitis diagnosis) of a person in the
  rule's population, with the anchor's exclusions judged on data up to time zero only;
- time zero: the anchor;
- strategies: "the rule's intervention within the grace period" versus "not within it";
- outcome: a linked adverse-event trigger (a coded marker, not reviewed harm) in the harm window from time zero;
  **death is a competing event**: a trigger counts only if it comes before death, so the estimand is the risk of a
  trigger while alive (a total effect, which includes any effect on survival);
- grace period without immortal time: **clone–censor–weight**. Every anchor is cloned into both arms; the
  "treat" clone is censored at the end of the grace period if untreated by then, the "do not treat" clone at
  the treatment if treated; an outcome or death before the deviation is observed in that arm. Censoring is
  inverse-probability weighted with models of the baseline covariates only: the trial table holds no covariates
  updated during the grace period, so the decision within it is *assumed* to depend on time-zero information only
  (no time-varying confounding inside the grace period; ``ASSUMPTIONS`` says when that fails);
- analysis: augmented IPCW (AIPW) per arm: the weights from a spline logistic model fitted on all anchors
  (:func:`censoring_model`; stabilised, truncated at ``CLIP``, the share reported), the outcome from LightGBM
  cross-fitted with folds by person; CIs from the efficient influence function summed within person (clustered
  sandwich);
- one estimand, the **ATE** among eligible anchors: risk ratio, risk difference and excess per 1 000 anchors all
  from the same two standardised risks; the estimated total multiplies that risk difference by the anchors
  that were treated within the grace period;
- diagnostics: SMD of every baseline covariate before and after weighting (balanced: < 0.1; after: between the
  analysed populations, each arm's uncensored clones with their weights, Austin & Stuart 2015), propensity
  overlap (share outside 0.05–0.95, a histogram in ``excess_overlap.parquet``), negative-control outcomes
  (``anchor.negative_controls``: a ratio away from 1 signals residual confounding), E-values.

Everything produced is labelled an **adjusted association, not a causal effect**: it is causal only under no
unmeasured confounding, positivity, consistency and correct outcome ascertainment, none of which the data can prove.
Rules with harms but no anchor are not estimated, with the reason (``no_trial`` or "no anchor defined").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lowvalue.progress import steps
from lowvalue.report.suppress import Suppressor
from lowvalue.risk.results import Results, load_results

LABEL = "adjusted association, not a causal effect"
ESTIMAND = ("ATE among eligible anchors: risk of a linked trigger before death in the window from time zero if "
            "everyone vs no one received the intervention within the grace period (clone-censor-weight, AIPW)")
NUMERIC = ["age", "sex_male", "charlson", "chronic_conditions", "frailty_markers", "n_drugs_90d",
           "inpatient_stays_365d", "visits_365d", "prior_triggers_365d", "hb_last", "creatinine_last", "glucose_last"]
CATEGORICAL = ["setting", "unit"]
ASSUMPTIONS = [
    "No unmeasured confounding given the baseline features at time zero (age, sex, comorbidity, chronic conditions, "
    "frailty markers, drugs, prior care use, prior triggers, recent labs, setting, unit, calendar time).",
    "The decision within the grace period depends on time-zero information only (censoring weights are baseline "
    "models; no time-varying confounding inside the grace period).",
    "Positivity: every eligible patient could have received either strategy (checked: propensity overlap).",
    "Consistency: 'the intervention within the grace period' is one well-defined strategy.",
    "Outcome ascertainment is the same in both arms (coded triggers, not reviewed harm; detection bias possible).",
    "Death is a competing event (a trigger counts only before death); anchors whose window passes the end of data "
    "are excluded unless the person died before it ends.",
    "Several anchors of one person are separate trials; CIs cluster them by person.",
    "The grace period, precisely: whether and when the intervention is given within the grace period depends only on "
    "what was known at time zero; the censoring weights model the baseline features only, because the trial table "
    "holds no covariates updated during the grace period. This fails when something between time zero and the "
    "intervention (or the end of the grace period) – worsening symptoms, a new test result or diagnosis, a repeat "
    "visit – both prompts the intervention and predicts the outcome: the weights then do not correct the censoring, "
    "and the estimate is biased (upwards when those who worsen are treated more often and are at higher risk anyway).",
    "Double robustness: the estimate is consistent if either the weights' model (logistic regression with cubic "
    "splines of age, calendar time and the other many-valued features, fitted on all anchors) or the outcome models "
    "(LightGBM, cross-fitted) are correctly specified; weights are truncated at 100 (a probability of following a "
    "strategy below 0.01) and the share truncated is reported.",
]
SMD_LIMIT = 0.1
"""Largest standardised mean difference after weighting that counts as balanced (the usual 0.1)."""
CLIP = 0.01
"""Censoring probabilities are bounded below by this (weights at most 100); overlap reports how many needed it."""


# -- numerics -----------------------------------------------------------------------------------------------------
def e_value(rr: float) -> float:
    """E-value for a risk ratio: RR + sqrt(RR·(RR − 1)), with RR < 1 inverted first (VanderWeele & Ding 2017)."""
    if not np.isfinite(rr) or rr <= 0:
        return float("nan")
    rr = 1 / rr if rr < 1 else rr
    return float(rr + math.sqrt(rr * (rr - 1)))


def confounders(df: pd.DataFrame, start: pd.Timestamp) -> pd.DataFrame:
    """Numeric design of the baseline confounders: missing labs get an indicator, rare levels pool into 'other'."""
    X = pd.DataFrame(index=df.index)
    for c in NUMERIC:
        if c not in df:
            continue
        v = pd.to_numeric(df[c], errors="coerce").astype(float)
        if v.isna().any():
            X[f"{c}_missing"] = v.isna().astype(float)
            v = v.fillna(v.median() if v.notna().any() else 0.0)
        X[c] = v
    X["years_since_start"] = (pd.to_datetime(df.anchor_time) - start) / pd.Timedelta(days=365.25)
    for c in CATEGORICAL:
        if c not in df:
            continue
        v = df[c].astype(object).fillna("missing")
        counts = v.value_counts()
        v = v.where(v.map(counts) >= 50, "other")
        for lev in sorted(v.unique())[1:]:
            X[f"{c}={lev}"] = (v == lev).astype(float)
    keep = [c for c in X.columns if X[c].std() > 0]
    return X[keep]


def _folds(groups: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    uniq, inv = np.unique(groups, return_inverse=True)
    return (rng.permutation(len(uniq)) % k)[inv]


def _classifier(seed: int) -> Any:
    from lightgbm import LGBMClassifier

    # the outcome models: shallow trees with large leaves, for a few thousand anchors and rare outcomes
    return LGBMClassifier(n_estimators=200, learning_rate=0.05, num_leaves=8, min_child_samples=20, subsample=0.8,
                          subsample_freq=1, reg_lambda=1.0, random_state=seed, n_jobs=1, verbose=-1)


def _fit_predict(X_tr: np.ndarray, y_tr: np.ndarray, X_te: np.ndarray, seed: int) -> np.ndarray:
    """P(y = 1 | x) for the held-out rows; a constant when the training labels are (too nearly) constant."""
    if len(y_tr) == 0:
        return np.full(len(X_te), 0.5)
    if y_tr.min() == y_tr.max() or min(y_tr.sum(), len(y_tr) - y_tr.sum()) < 5:
        return np.full(len(X_te), float(y_tr.mean()))
    return _classifier(seed).fit(X_tr, y_tr).predict_proba(X_te)[:, 1]


SPLINE_MIN_LEVELS = 10
"""A covariate with more distinct values than this (age, calendar time, labs, visit counts) enters the weights' model
as a cubic spline; the others (indicators, short counts) linearly."""


def censoring_model(X: np.ndarray) -> Any:
    """The weights' model, P(clone uncensored | baseline covariates): a ridge-penalised logistic regression with
    cubic B-splines (5 knots) of every many-valued covariate.

    Why not LightGBM as for the outcome: cross-fitted trees on a few thousand anchors are step functions of age,
    fitted out of fold, and left age, the strongest confounder, imbalanced after weighting (median max SMD 0.114 over
    20 seeds of the recovery benchmark, age the worst covariate in 11 of them). A smooth, low-dimensional
    parametric model fitted on all anchors balances the analysed population (median 0.06) and, being parametric,
    needs no cross-fitting; the flexible outcome models keep it, so the AIPW estimate stays doubly robust."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import SplineTransformer, StandardScaler

    many = [j for j in range(X.shape[1]) if len(np.unique(X[:, j])) > SPLINE_MIN_LEVELS]
    few = [j for j in range(X.shape[1]) if j not in many]
    design = ColumnTransformer([("spline", SplineTransformer(n_knots=5, degree=3, extrapolation="linear"), many),
                                ("linear", "passthrough", few)])
    return make_pipeline(design, StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))


def _censoring_probability(X: np.ndarray, uncensored: np.ndarray) -> np.ndarray:
    """P(uncensored | X) from :func:`censoring_model` fitted on all anchors; the arm's share when (nearly) constant."""
    c = uncensored.astype(int)
    if min(c.sum(), len(c) - c.sum()) < 5:
        return np.full(len(c), max(float(c.mean()), CLIP))
    return censoring_model(X).fit(X, c).predict_proba(X)[:, 1]


@dataclass
class Clones:
    """The clone–censor design of a trial table: per anchor, whether each arm's clone stays uncensored."""

    c1: np.ndarray
    """The 'intervention within the grace period' clone is uncensored: treated, or outcome/death before the grace
    period ended while untreated."""
    c0: np.ndarray
    """The 'not within it' clone is uncensored: untreated, or outcome/death before the treatment."""


def clones(treated: np.ndarray, t_treat: np.ndarray, t_event: np.ndarray, grace_days: float) -> Clones:
    """Clone–censor: ``t_treat`` and ``t_event`` are days from time zero (NaN: none); ``t_event`` is the first of the
    outcome and death. An event on a grace day counts as before the grace period's end (day windows are whole days)."""
    ev = ~np.isnan(t_event)
    c1 = treated | (ev & (np.floor(t_event) <= grace_days))
    c0 = ~treated | (ev & (t_event < np.where(np.isnan(t_treat), np.inf, t_treat)))
    return Clones(c1.astype(bool), c0.astype(bool))


def ccw_aipw(X: np.ndarray, y: np.ndarray, cl: Clones, groups: np.ndarray, *, folds: int = 5, seed: int = 0
             ) -> dict[str, Any]:
    """Augmented IPCW risk per arm and their contrasts, with person-clustered influence-function CIs.

    For arm a: psi_a = mean[m_a(X) + w_a (Y - m_a(X))] with w_a = C_a / p_a(X) normalised to mean 1 over all anchors
    (the stabilised, Hajek form: each arm's weights sum to the trial's size whatever the model's calibration),
    p_a = P(C_a = 1 | X) from :func:`censoring_model` (bounded below by ``CLIP``: truncated weights, the share of
    weighted clones truncated reported) and m_a = E[Y | X, C_a = 1] from LightGBM fitted on the other folds' persons
    (cross-fitting). The influence values are summed within person before squaring, so repeated
    anchors of one person count as one cluster.
    """
    rng = np.random.default_rng(seed)
    f = _folds(groups, folds, rng)
    n = len(y)
    p = {1: _censoring_probability(X, cl.c1), 0: _censoring_probability(X, cl.c0)}
    m = {1: np.empty(n), 0: np.empty(n)}
    for k in range(folds):
        tr, te = f != k, f == k
        if not te.any():
            continue
        for a, c in ((1, cl.c1), (0, cl.c0)):
            sel = tr & c
            m[a][te] = _fit_predict(X[sel], y[sel].astype(int), X[te], seed + 10 * k + 5 + a)
    out: dict[str, Any] = {"p1": p[1], "p0": p[0]}
    phi = {}
    for a, c in ((1, cl.c1), (0, cl.c0)):
        w = np.where(c, 1 / np.clip(p[a], CLIP, 1.0), 0.0)
        w *= n / w.sum()
        score = m[a] + w * (y - m[a])
        psi = float(np.mean(score))
        out[f"r{a}"], phi[a], out[f"w{a}"] = psi, score - psi, w
    uniq, inv = np.unique(groups, return_inverse=True)

    def se(values: np.ndarray) -> float:
        return float(math.sqrt(np.sum(np.bincount(inv, weights=values) ** 2)) / n)

    r1, r0 = out["r1"], out["r0"]
    out["rd"], out["rd_se"] = r1 - r0, se(phi[1] - phi[0])
    if r1 > 0 and r0 > 0:
        out["rr"], out["log_rr_se"] = r1 / r0, se(phi[1] / r1 - phi[0] / r0)
    else:
        out["rr"], out["log_rr_se"] = float("nan"), float("nan")
    out["clipped"] = float(np.mean((cl.c1 & (p[1] < CLIP)) | (cl.c0 & (p[0] < CLIP))))
    return out


def crude(y: np.ndarray, t: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """Risk among the treated within the grace period vs the others, as observed: the naive comparison, with
    person-clustered delta-method CIs (it ignores confounding and the grace period's immortal time)."""
    n, n1 = len(y), t.sum()
    r1, r0 = y[t].mean(), y[~t].mean()
    phi1 = np.where(t, (y - r1) * n / n1, 0.0)
    phi0 = np.where(~t, (y - r0) * n / (n - n1), 0.0)
    _, inv = np.unique(groups, return_inverse=True)
    se = lambda v: float(math.sqrt(np.sum(np.bincount(inv, weights=v) ** 2)) / n)  # noqa: E731
    out = {"risk_treated_crude": float(r1), "risk_control_crude": float(r0), "rd_crude": float(r1 - r0)}
    if r1 > 0 and r0 > 0:
        rr, s = r1 / r0, se(phi1 / r1 - phi0 / r0)
        out.update(rr_crude=float(rr), rr_crude_lo=float(rr * math.exp(-1.96 * s)), rr_crude_hi=float(rr * math.exp(1.96 * s)))
    else:
        out.update(rr_crude=float("nan"), rr_crude_lo=float("nan"), rr_crude_hi=float("nan"))
    return out


def smd(X: np.ndarray, a: np.ndarray, b: np.ndarray, wa: np.ndarray | None = None, wb: np.ndarray | None = None
        ) -> np.ndarray:
    """Standardised mean differences of the columns of X between rows ``a`` and ``b`` (weighted means; the
    unweighted pooled SD of the two groups as the scale, so weighting cannot shrink the yardstick)."""
    wa = np.ones(a.sum()) if wa is None else wa
    wb = np.ones(b.sum()) if wb is None else wb
    ma = (wa / wa.sum()) @ X[a]
    mb = (wb / wb.sum()) @ X[b]
    sd = np.sqrt(np.maximum((X[a].var(0) + X[b].var(0)) / 2, 1e-12))
    return (ma - mb) / sd


def estimate(df: pd.DataFrame, X: np.ndarray, grace_days: float, *, outcome: str = "outcome",
             event_time: str = "t_event", folds: int = 5, seed: int = 1) -> dict[str, Any]:
    """The trial's analysis on one outcome: crude, CCW-AIPW (RR, RD, excess per 1 000 from the same ATE), E-values,
    balance and overlap. ``df`` has ``person_id``, ``treated``, ``t_treat``, ``outcome`` (0/1) and ``event_time``."""
    t = df.treated.to_numpy(bool)
    y = df[outcome].to_numpy(float)
    groups = df.person_id.to_numpy()
    cl = clones(t, df.t_treat.to_numpy(float), df[event_time].to_numpy(float), grace_days)
    est = ccw_aipw(X, y, cl, groups, folds=folds, seed=seed)
    row: dict[str, Any] = crude(y, t, groups)
    z = 1.959963984540054
    rd, s = est["rd"], est["rd_se"]
    row.update(risk_treated=est["r1"], risk_control=est["r0"], rd=rd, rd_lo=rd - z * s, rd_hi=rd + z * s)
    rr, ls = est["rr"], est["log_rr_se"]
    row.update(rr=rr, rr_lo=rr * math.exp(-z * ls) if np.isfinite(ls) else float("nan"),
               rr_hi=rr * math.exp(z * ls) if np.isfinite(ls) else float("nan"))
    row.update(excess_per_1000=1000 * rd, excess_per_1000_lo=1000 * row["rd_lo"], excess_per_1000_hi=1000 * row["rd_hi"])
    row["e_value"] = e_value(rr)
    near = row["rr_lo"] if rr >= 1 else row["rr_hi"]
    row["e_value_ci"] = 1.0 if (row["rr_lo"] <= 1 <= row["rr_hi"]) else e_value(near)
    e = est["p1"]  # P(uncensored in the treat arm | X): the propensity of the strategy, early events aside
    row["overlap_outside"] = float(np.mean((e < 0.05) | (e > 0.95)))
    row["overlap_poor"] = bool(row["overlap_outside"] > 0.10)
    row["weights_clipped"] = est["clipped"]
    w1, w0 = est["w1"][cl.c1], est["w0"][cl.c0]
    row["ess_treated"] = float(w1.sum() ** 2 / (w1 ** 2).sum())
    row["ess_control"] = float(w0.sum() ** 2 / (w0 ** 2).sum())
    before = smd(X, t, ~t)
    after = smd(X, cl.c1, cl.c0, w1, w0)
    row["max_smd_before"], row["max_smd_after"] = float(np.abs(before).max()), float(np.abs(after).max())
    return {"row": row, "smd_before": before, "smd_after": after, "propensity": e}


# -- the per-rule table -----------------------------------------------------------------------------------------------
@dataclass
class ExcessRisk:
    table: pd.DataFrame
    balance: pd.DataFrame
    stamp: dict[str, str] = field(default_factory=dict)
    """The scan the estimates come from (:func:`lowvalue.results.stamp`): written into every file."""
    overlap: pd.DataFrame = field(default_factory=pd.DataFrame)

    def write(self, out: Path | str) -> Path:
        """``excess_risk.parquet``, ``excess_balance.parquet``, ``excess_overlap.parquet`` and ``excess_risk.md``."""
        from lowvalue.results import write_table, write_text

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_table(self.table, out / "excess_risk.parquet", stamp_of=self.stamp)
        write_table(self.balance, out / "excess_balance.parquet", stamp_of=self.stamp)
        write_table(self.overlap, out / "excess_overlap.parquet", stamp_of=self.stamp)
        scan = ", ".join(f"{k.replace('_', ' ')} {v[:16]}" for k, v in self.stamp.items() if v)
        write_text(self.summary() + (f"\nFrom the scan with {scan}.\n" if scan else ""), out / "excess_risk.md")
        return out / "excess_risk.parquet"

    def summary(self) -> str:
        lines = ["# Estimated excess of adverse-event triggers per rule (adjusted association)", "",
                 f"**Every figure below is an {LABEL}.** An emulated target trial per rule: eligible anchors (the "
                 "rule's anchor condition, exclusions up to time zero), the intervention within the grace period vs "
                 "not, outcome = a linked adverse-event trigger (a coded marker, not reviewed harm) before death in "
                 "the window from time zero. Clone-censor-weight with AIPW (weights from a spline logistic model, "
                 "cross-fitted LightGBM outcome models); 95 % CIs clustered by person.", "", f"Estimand: {ESTIMAND}.", "",
                 "| rule | outcome | n (treated / not) | crude RR | adjusted RR | adjusted RD | "
                 "excess per 1 000 anchors | est. total excess | E-value (CI) | max SMD before → after | overlap | cautions |",
                 "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        f = lambda r, k, d=2: (f"{r[k]:.{d}f} ({r[k + '_lo']:.{d}f}–{r[k + '_hi']:.{d}f})"  # noqa: E731
                               if k in r and pd.notna(r[k]) else "n/a")
        trunc = lambda r: (f"; {r['weights_clipped']:.1%} of weights truncated"  # noqa: E731
                           if pd.notna(r.get("weights_clipped")) else "")  # results written before it was reported
        sup = Suppressor()
        n = lambda x: "–" if pd.isna(x) else sup.label if sup.is_small(x) else f"{int(x)}"  # noqa: E731
        for _, r in self.table.iterrows():
            counts = [r.get(k) for k in ("n_treated", "n_control", "events_treated", "events_control")]
            small = [k for k, v in zip(("n_treated", "n_control", "events_treated", "events_control"), counts)
                     if pd.notna(v) and sup.is_small(v)]
            if not str(r["status"]).startswith("estimated") or small:
                why = r["status"] if not small else (f"suppressed: fewer than {sup.threshold} "
                                                     f"{'events' if any(k.startswith('events') for k in small) else 'people'}"
                                                     " in an arm")
                lines.append(f"| {r.rule_id} | {r.window} | {n(r.get('n_treated'))} / {n(r.get('n_control'))} | {why} |"
                             + " |" * 8)
                continue
            lines.append(
                f"| {r.rule_id} | {r.window} | {int(r.n_treated)} / {int(r.n_control)} | {f(r, 'rr_crude')} | {f(r, 'rr')} | "
                f"{f(r, 'rd', 3)} | {f(r, 'excess_per_1000', 1)} | {f(r, 'total_excess', 0)} of {int(r.n_low_value_scanned)} | "
                f"{r.e_value:.2f} ({r.e_value_ci:.2f}) | {r.max_smd_before:.2f} → {r.max_smd_after:.2f} | "
                f"{'POOR' if r.overlap_poor else 'ok'} ({r.overlap_outside:.0%} outside 0.05–0.95{trunc(r)}) | "
                f"{r.cautions or 'none'} |")
        lines += ["", "## Assumptions", *[f"- {a}" for a in ASSUMPTIONS], "",
                  "## Reading the table",
                  "- RR, RD and 'excess per 1 000 anchors' are one contrast (ATE among eligible anchors); 'est. total "
                  "excess' multiplies that RD by the anchors treated within the grace period in the scan "
                  "(followed or not), i.e. assumes the effect among the treated equals the average one.",
                  "- The crude RR compares the treated within the grace period with the others as observed: "
                  "confounded by indication and, with a grace period, by immortal time.",
                  "- E-value (VanderWeele & Ding 2017): the risk ratio an unmeasured confounder would need with both "
                  "strategy and outcome to explain the estimate away; in brackets for the CI limit nearest 1.",
                  f"- SMD: standardised mean differences of the baseline covariates, before and after weighting "
                  f"(balanced below {SMD_LIMIT}). Overlap is POOR when more than 10 % of propensities fall outside "
                  "0.05–0.95 (histogram in excess_overlap.parquet); a weight is truncated at 100 when the modelled "
                  "probability of following the arm's strategy is below 0.01. Negative-control outcomes, where the "
                  "rule names them, should show no association; one that does points to residual confounding. A "
                  "rule with any caution should not be read as more than a signal.", ""]
        return "\n".join(lines)


NOT_ESTIMATED = {
    "needs_extract": "not estimated: the trial needs the scanned extract (risk excess RESULTS --extract DATA)",
    "no_anchors": "not estimated: no eligible anchors (people with the anchor condition) in the extract",
    "no_comparators": ("not emulated: no untreated comparators with the anchor condition (everyone eligible got the "
                       "intervention within the grace period)"),
    "too_few": "not estimated: too few people or events in an arm (need ≥ {min_events})",
    "no_anchor": "not emulated: the rule defines no anchor (eligibility event), so its target trial is not specified",
}
"""The fixed reasons a row has no estimate (its ``status``, English in the files), by a code the CLI prints in the
summaries' language (:func:`lowvalue.risk.commands.excess_lines`). A rule's own ``no_trial`` reason is not here."""


def _not_estimated(rid: str, rule: Any, window: str) -> dict[str, Any]:
    if rule.no_trial is not None:
        why = f"not emulated: {rule.no_trial.reason.en}"
    else:
        why = NOT_ESTIMATED["no_anchor"]
    return {"rule_id": rid, "window": window, "label": LABEL, "estimand": ESTIMAND, "status": why, "cautions": ""}


def excess_risk(results: Results | Path | str, extract: Any = None, *, rule_ids: list[str] | None = None,
                folds: int = 5, seed: int = 1, min_events: int = 5, memory_limit: str | None = None) -> ExcessRisk:
    """Per rule with linked harms: the emulated target trial's crude and CCW-AIPW RR, RD, excess per 1 000 and total,
    with diagnostics; one row per rule and harm (the rule's first harm first). ``extract`` is the scanned extract
    (folder or opened): the trial's anchors are judged on it by the engine (:mod:`lowvalue.risk.trial`); without
    it every anchored rule says so instead of a figure."""
    from threadpoolctl import threadpool_limits

    from lowvalue.results import stamp
    from lowvalue.risk.trial import trial_tables

    results = results if isinstance(results, Results) else load_results(results)
    ids = rule_ids or results.harmful_rules()
    rules = {rid: results.rules.rules[rid] for rid in ids}
    anchored = [rid for rid, r in rules.items() if r.anchor is not None]
    trials = trial_tables(results, extract, anchored, memory_limit=memory_limit) if extract is not None and anchored else None
    rows, bal, ovl = [], [], []
    for rid, rule in steps(list(rules.items()), "excess per rule"):
        outcomes = [(h.trigger, h.window, False) for h in rule.harms]
        if rule.anchor is not None:
            outcomes += [(h.trigger, h.window, True) for h in rule.anchor.negative_controls]
        for k, (trig, window, negative) in enumerate(outcomes):
            label = f"{trig} in {window} from time zero" + (" (negative control)" if negative else "")
            if rule.anchor is None:
                rows.append({**_not_estimated(rid, rule, label), "primary": k == 0})
                continue
            base = {"rule_id": rid, "window": label, "label": LABEL, "estimand": ESTIMAND, "primary": k == 0,
                    "negative_control": negative, "trigger_id": trig, "cautions": ""}
            if trials is None:
                rows.append({**base, "status": NOT_ESTIMATED["needs_extract"]})
                continue
            t = trials.outcome(rid, k)
            n_scanned = trials.treated_anchors(rid)
            row = {**base, "n": len(t), "n_treated": int(t.treated.sum()), "n_control": int((~t.treated).sum()),
                   "events_treated": int(t.outcome[t.treated].sum()), "events_control": int(t.outcome[~t.treated].sum()),
                   "deaths_treated": int(t.died[t.treated].sum()), "deaths_control": int(t.died[~t.treated].sum()),
                   "excluded_short_follow_up": trials.excluded(rid, k), "n_low_value_scanned": n_scanned}
            if row["n"] == 0:
                row["status"] = NOT_ESTIMATED["no_anchors"]
                rows.append(row)
                continue
            if row["n_control"] == 0:
                row["status"] = NOT_ESTIMATED["no_comparators"]
                rows.append(row)
                continue
            if min(row["events_treated"], row["events_control"], row["n_treated"], row["n_control"]) < min_events:
                row["status"] = NOT_ESTIMATED["too_few"].format(min_events=min_events)
                rows.append(row)
                continue
            Xdf = confounders(t, results.data_start)
            with threadpool_limits(1):
                res = estimate(t, Xdf.to_numpy(float), trials.grace_days(rid), folds=folds, seed=seed)
            row.update(res["row"])
            few = min(row["events_treated"], row["events_control"]) < 10
            row["status"] = "estimated (imprecise: < 10 events in an arm)" if few else "estimated"
            nc_bad = negative and not (row["rr_lo"] <= 1 <= row["rr_hi"])
            row["cautions"] = "; ".join(c for c, bad in (
                ("imprecise: < 10 events in an arm", few), ("poor overlap", row["overlap_poor"]),
                (f"confounders not balanced after weighting (max SMD {row['max_smd_after']:.2f} ≥ {SMD_LIMIT})",
                 row["max_smd_after"] >= SMD_LIMIT),
                ("negative-control outcome associated: residual confounding likely", nc_bad)) if bad)
            row["total_excess"] = row["rd"] * n_scanned
            row["total_excess_lo"], row["total_excess_hi"] = row["rd_lo"] * n_scanned, row["rd_hi"] * n_scanned
            rows.append(row)
            bal.append(pd.DataFrame({"rule_id": rid, "outcome": label, "covariate": Xdf.columns,
                                     "smd_before": res["smd_before"], "smd_after": res["smd_after"]}))
            bins = np.linspace(0, 1, 11)
            for arm, sel in (("treated", t.treated.to_numpy(bool)), ("not treated", ~t.treated.to_numpy(bool))):
                h, _ = np.histogram(res["propensity"][sel], bins=bins)
                small = (h > 0) & (h < Suppressor().threshold)  # a count below 5 is not shared
                ovl.append(pd.DataFrame({"rule_id": rid, "outcome": label, "arm": arm, "propensity_from": bins[:-1],
                                         "propensity_to": bins[1:], "n": np.where(small, np.nan, h),
                                         "n_suppressed": small}))
    # negative controls inform the primary row's cautions
    table = pd.DataFrame(rows)
    if "negative_control" in table:
        for rid in table.rule_id.unique():
            nc = table[(table.rule_id == rid) & (table.negative_control == True) & table.cautions.str.contains("negative-control")]  # noqa: E712
            if len(nc):
                prim = (table.rule_id == rid) & (table.primary == True)  # noqa: E712
                table.loc[prim, "cautions"] = table.loc[prim, "cautions"].map(
                    lambda c: "; ".join(x for x in (c, "a negative-control outcome is associated: residual confounding likely") if x))
    balance = pd.concat(bal, ignore_index=True) if bal else pd.DataFrame(columns=["rule_id", "outcome", "covariate",
                                                                                  "smd_before", "smd_after"])
    overlap = pd.concat(ovl, ignore_index=True) if ovl else pd.DataFrame(columns=["rule_id", "outcome", "arm",
                                                                                  "propensity_from", "propensity_to", "n"])
    return ExcessRisk(table, balance, stamp(results.manifest), overlap)
