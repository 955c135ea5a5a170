"""Estimated excess of adverse-event triggers per rule: an emulated target trial within the rule's eligible candidates.

The risk model says *who* is at risk; it cannot say how much harm the
low-value intervention adds, because frail patients both get more low-value
care and have more adverse events (confounding by indication). This module
asks that second question with the target-trial frame (Hernán & Robins 2016):

- eligibility: the rule's eligible candidates (``eligible``) with complete follow-up;
- strategies: "low value" (``specific``) versus eligible but not specific;
- time zero: the index intervention, where eligibility and assignment meet
  (no immortal time);
- outcome: a linked adverse-event trigger (a coded marker, not reviewed harm) in the rule's harm window;
- contrast: risk ratio and risk difference (whole eligible population, ATE),
  and excess events per 1 000 low-value interventions (among the treated, ATT);
- analysis: a doubly robust estimator (AIPW in its weighted-outcome-regression
  form, which keeps risks inside (0, 1)), cross-fitted by person, with
  ridge-logistic propensity and outcome models on the pre-index features (never the flag columns, which *are* the treatment); IPW as a
  sensitivity analysis; person-cluster bootstrap CIs.

Everything produced is labelled an **adjusted association, not a causal
effect**: it is causal only under no unmeasured confounding, positivity,
consistency and correct outcome ascertainment, none of which the data can prove.
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
from lowvalue.risk.metrics import person_bootstrap
from lowvalue.risk.outcomes import harm_outcomes
from lowvalue.risk.results import Results, load_results

LABEL = "adjusted association, not a causal effect"
NUMERIC = ["age", "sex_male", "charlson", "chronic_conditions", "frailty_markers", "n_drugs_90d",
           "inpatient_stays_365d", "visits_365d", "prior_triggers_365d", "hb_last", "creatinine_last", "glucose_last"]
CATEGORICAL = ["setting", "unit"]
ASSUMPTIONS = [
    "No unmeasured confounding given the pre-index features (age, sex, comorbidity, chronic conditions, frailty "
    "markers, drugs, prior care use, prior triggers, recent labs, setting, unit, calendar time).",
    "Positivity: every eligible patient could have received either strategy (checked: propensity overlap).",
    "Consistency: 'low value' (the rule's specific tier) is one well-defined intervention.",
    "Outcome ascertainment is the same in both arms (coded triggers, not reviewed harm; detection bias possible).",
    "Complete follow-up: candidates whose window passes the end of data are excluded; deaths are not censored.",
    "Interventions of the same person are treated as separate trials; CIs bootstrap persons (clusters).",
]


@dataclass
class ExcessRisk:
    table: pd.DataFrame
    balance: pd.DataFrame
    stamp: dict[str, str] = field(default_factory=dict)
    """The scan the estimates come from (:func:`lowvalue.results.stamp`): written into every file."""

    def write(self, out: Path | str) -> Path:
        """``excess_risk.parquet``, ``excess_balance.parquet`` and a readable ``excess_risk.md`` in ``out``."""
        from lowvalue.results import write_table, write_text

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_table(self.table, out / "excess_risk.parquet", stamp_of=self.stamp)
        write_table(self.balance, out / "excess_balance.parquet", stamp_of=self.stamp)
        scan = ", ".join(f"{k.replace('_', ' ')} {v[:16]}" for k, v in self.stamp.items() if v)
        write_text(self.summary() + (f"\nFrom the scan with {scan}.\n" if scan else ""), out / "excess_risk.md")
        return out / "excess_risk.parquet"

    def summary(self) -> str:
        lines = ["# Estimated excess of adverse-event triggers per rule (adjusted association)", "",
                 f"**Every figure below is an {LABEL}.** Target-trial emulation within each rule's eligible "
                 "candidates: low value (specific) vs eligible not-specific, time zero = index, outcome = a linked "
                 "adverse-event trigger in the rule's window (a coded marker, not reviewed harm). AIPW with "
                 "cross-fitting; 95 % person-cluster bootstrap CIs.", "",
                 "| rule | outcome | n (low value / other) | crude RR | adjusted RR (AIPW) | adjusted RD | "
                 "excess per 1 000 low-value | est. total excess | E-value (CI) | max SMD before → after | overlap | cautions |",
                 "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        f = lambda r, k, d=2: (f"{r[k]:.{d}f} ({r[k + '_lo']:.{d}f}–{r[k + '_hi']:.{d}f})"  # noqa: E731
                               if pd.notna(r[k]) else "n/a")
        sup = Suppressor()
        n = lambda x: sup.label if sup.is_small(x) else f"{x}"  # noqa: E731 - a count as it may be shared
        for _, r in self.table.iterrows():
            small = [k for k in ("n_treated", "n_control", "events_treated", "events_control") if sup.is_small(r[k])]
            if not str(r["status"]).startswith("estimated") or small:
                why = r["status"] if not small else (f"suppressed: fewer than {sup.threshold} "
                                                     f"{'events' if any(k.startswith('events') for k in small) else 'people'}"
                                                     " in an arm")
                lines.append(f"| {r.rule_id} | {r.window} | {n(r.n_treated)} / {n(r.n_control)} | {why} |" + " |" * 8)
                continue
            lines.append(
                f"| {r.rule_id} | {r.window} | {r.n_treated} / {r.n_control} | {f(r, 'rr_crude')} | {f(r, 'rr')} | "
                f"{f(r, 'rd', 3)} | {f(r, 'excess_per_1000', 1)} | {f(r, 'total_excess', 0)} of {r.n_low_value_scanned} | "
                f"{r.e_value:.2f} ({r.e_value_ci:.2f}) | {r.max_smd_before:.2f} → {r.max_smd_after:.2f} | "
                f"{'POOR' if r.overlap_poor else 'ok'} ({r.overlap_outside:.0%} outside 0.05–0.95) | "
                f"{r.cautions or 'none'} |")
        lines += ["", "## Assumptions", *[f"- {a}" for a in ASSUMPTIONS], "",
                  "## Reading the table",
                  "- RR and RD contrast the whole eligible population under both strategies (ATE); 'excess per 1 000' "
                  "is among those who got the low-value intervention (ATT); 'est. total excess' multiplies it by "
                  "every low-value (specific) intervention in the scan, followed or not.",
                  "- E-value (VanderWeele & Ding 2017): the risk ratio an unmeasured confounder would need with both "
                  "strategy and outcome to explain the estimate away; in brackets for the CI limit nearest 1.",
                  "- SMD: standardised mean differences of the confounders, before and after weighting (< 0.1 is "
                  "usually called balanced). Overlap is POOR when more than 10 % of propensities fall outside "
                  "0.05–0.95: estimates there lean on extrapolation. A rule with any caution should not be read "
                  f"as more than a signal: too few events, poor overlap, or a max SMD above {SMD_LIMIT} after weighting.", ""]
        return "\n".join(lines)


# -- small numerics (numpy only: fast enough to refit inside every bootstrap replicate) -------------------------------
def _ridge_logistic(X: np.ndarray, y: np.ndarray, lam: float = 1.0, iters: int = 30,
                    free_last: bool = False, weights: np.ndarray | None = None) -> np.ndarray:
    """Newton–Raphson for a logistic regression with an L2 penalty on all but the intercept (and, with
    ``free_last``, the last column: the treatment, whose effect must not be shrunk towards the null)."""
    beta = np.zeros(X.shape[1])
    pen = np.full(X.shape[1], lam)
    pen[0] = 0.0
    if free_last:
        pen[-1] = 0.0
    sw = np.ones(len(y)) if weights is None else weights
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(X @ beta, -30, 30)))
        g = X.T @ (sw * (y - p)) - pen * beta
        H = X.T @ (X * (sw * p * (1 - p))[:, None]) + np.diag(pen + 1e-8)
        step = np.linalg.solve(H, g)
        beta += step
        if np.abs(step).max() < 1e-8:
            break
    return beta


SMD_LIMIT = 0.25
"""Largest standardised mean difference after weighting that still counts as balanced enough to report without a caution."""


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.clip(z, -30, 30)))


def e_value(rr: float) -> float:
    """E-value for a risk ratio: RR + sqrt(RR·(RR − 1)), with RR < 1 inverted first (VanderWeele & Ding 2017)."""
    if not np.isfinite(rr) or rr <= 0:
        return float("nan")
    rr = 1 / rr if rr < 1 else rr
    return float(rr + math.sqrt(rr * (rr - 1)))


def confounders(df: pd.DataFrame, start: pd.Timestamp) -> pd.DataFrame:
    """Numeric design of the pre-index confounders: missing labs get an indicator, rare levels pool into 'other'."""
    X = pd.DataFrame(index=df.index)
    for c in NUMERIC:
        v = pd.to_numeric(df[c], errors="coerce").astype(float)
        if v.isna().any():
            X[f"{c}_missing"] = v.isna().astype(float)
            v = v.fillna(v.median() if v.notna().any() else 0.0)
        X[c] = v
    X["age_sq"] = (X.age - 60.0) ** 2 / 100
    X["years_since_start"] = (df.index_time - start) / pd.Timedelta(days=365.25)
    for c in CATEGORICAL:
        v = df[c].astype(object).fillna("missing")
        counts = v.value_counts()
        v = v.where(v.map(counts) >= 50, "other")
        levels = sorted(v.unique())
        for lev in levels[1:]:
            X[f"{c}={lev}"] = (v == lev).astype(float)
    keep = [c for c in X.columns if X[c].std() > 0]
    return X[keep]


def _smd(X: np.ndarray, t: np.ndarray, w: np.ndarray) -> np.ndarray:
    def wstats(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ww = w[mask] / w[mask].sum()
        m = ww @ X[mask]
        v = ww @ (X[mask] - m) ** 2
        return m, v
    m1, v1 = wstats(t == 1)
    m0, v0 = wstats(t == 0)
    u1 = X[t == 1].var(0)
    u0 = X[t == 0].var(0)
    return (m1 - m0) / np.sqrt(np.maximum((u1 + u0) / 2, 1e-12))


def _folds(groups: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    uniq = np.unique(groups)
    assign = rng.permutation(len(uniq)) % k
    return assign[np.searchsorted(uniq, groups)]


def aipw(X: np.ndarray, t: np.ndarray, y: np.ndarray, groups: np.ndarray, *, folds: int = 5, seed: int = 0,
         clip: float = 0.025) -> dict[str, Any]:
    """Cross-fitted AIPW (ATE risks, RR, RD), its ATT risk difference, IPW, and the cross-fitted propensities."""
    rng = np.random.default_rng(seed)
    f = _folds(groups, folds, rng)
    Z = np.column_stack([np.ones(len(t)), (X - X.mean(0)) / np.where(X.std(0) > 0, X.std(0), 1)])
    e, mu1, mu0 = np.empty(len(t)), np.empty(len(t)), np.empty(len(t))
    for k in range(folds):
        tr, te = f != k, f == k
        if not te.any():
            continue
        g = _ridge_logistic(Z[tr], t[tr], lam=5.0)  # one propensity fit per fold, used in and out of it
        e_tr = np.clip(_sigmoid(Z[tr] @ g), clip, 1 - clip)
        e[te] = _sigmoid(Z[te] @ g)
        # Doubly robust by weighted outcome regression (Robins et al. 2007): each arm's logistic model is fitted
        # with inverse-propensity weights and a free intercept, so its weighted residuals sum to zero and the
        # standardised risk mean(mu_a) is consistent if either model is right. Unlike the plain AIPW sum it
        # stays inside (0, 1), which matters for a *ratio* with rare events.
        for arm, mu, w_tr in ((1, mu1, 1 / e_tr), (0, mu0, 1 / (1 - e_tr))):
            sel = t[tr] == arm
            b = _ridge_logistic(Z[tr][sel], y[tr][sel], weights=w_tr[sel] / w_tr[sel].mean())
            mu[te] = _sigmoid(Z[te] @ b)
    ec = np.clip(e, clip, 1 - clip)
    r1, r0 = float(np.mean(mu1)), max(float(np.mean(mu0)), 1e-6)
    n1 = t.sum()
    wa = (1 - t) * ec / (1 - ec)
    att_r0 = float(np.sum(t * mu0) / n1 + np.sum(wa * (y - mu0)) / np.sum(wa))
    att_r0 = min(max(att_r0, 0.0), 1.0)
    w = t / ec + (1 - t) / (1 - ec)
    ipw1 = float(np.sum(w * t * y) / np.sum(w * t))
    ipw0 = float(np.sum(w * (1 - t) * y) / np.sum(w * (1 - t)))
    return {"r1": r1, "r0": r0, "rr": r1 / r0, "rd": r1 - r0, "att_rd": float(y[t == 1].mean()) - att_r0,
            "rr_ipw": ipw1 / max(ipw0, 1e-6), "e": e, "w": w}


def _rule_estimate(df: pd.DataFrame, start: pd.Timestamp, *, folds: int, n_boot: int, seed: int
                   ) -> tuple[dict[str, Any], pd.DataFrame]:
    t = df.specific.astype(int).to_numpy()
    y = df.outcome.astype(float).to_numpy()
    Xdf = confounders(df, start)
    X = Xdf.to_numpy()
    groups = df.person_id.to_numpy()
    est = aipw(X, t, y, groups, folds=folds, seed=seed)
    crude1, crude0 = y[t == 1].mean(), y[t == 0].mean()
    row: dict[str, Any] = {"risk_low_value_crude": crude1, "risk_other_crude": crude0,
                           "rr_crude": crude1 / crude0 if crude0 > 0 else np.nan, "rd_crude": crude1 - crude0,
                           "risk_low_value_adjusted": est["r1"], "risk_other_adjusted": est["r0"],
                           "rr": est["rr"], "rd": est["rd"], "excess_per_1000": 1000 * est["att_rd"],
                           "rr_ipw": est["rr_ipw"]}
    # Person-cluster bootstrap: whole persons are resampled and the full cross-fitted analysis is redone.
    sample = person_bootstrap(groups, np.random.default_rng(seed + 1))
    boots: dict[str, list[float]] = {k: [] for k in ("rr_crude", "rd_crude", "rr", "rd", "excess_per_1000", "rr_ipw")}
    for b in steps(range(n_boot), "bootstrap"):
        idx, clusters = sample()
        tb, yb = t[idx], y[idx]
        if tb.min() == tb.max() or yb[tb == 0].sum() == 0:
            continue
        eb = aipw(X[idx], tb, yb, clusters, folds=folds, seed=seed + 2 + b)
        c1, c0 = yb[tb == 1].mean(), yb[tb == 0].mean()
        for k, v in (("rr_crude", c1 / c0), ("rd_crude", c1 - c0), ("rr", eb["rr"]), ("rd", eb["rd"]),
                     ("excess_per_1000", 1000 * eb["att_rd"]), ("rr_ipw", eb["rr_ipw"])):
            boots[k].append(v)
    for k, vals in boots.items():
        arr = np.asarray(vals, float)
        if k.startswith("rr"):  # percentile interval on the log scale is the same interval; keep it plain
            arr = arr[np.isfinite(arr) & (arr > 0)]
        row[f"{k}_lo"], row[f"{k}_hi"] = (np.quantile(arr, [0.025, 0.975]) if len(arr) >= 20 else (np.nan, np.nan))
    row["n_boot"] = len(boots["rr"])
    row["e_value"] = e_value(row["rr"])
    near = row["rr_lo"] if row["rr"] >= 1 else row["rr_hi"]
    row["e_value_ci"] = 1.0 if (row["rr_lo"] <= 1 <= row["rr_hi"]) else e_value(near)
    e = est["e"]
    row["overlap_outside"] = float(np.mean((e < 0.05) | (e > 0.95)))
    row["overlap_poor"] = bool(row["overlap_outside"] > 0.10)
    row["propensity_min_low_value"], row["propensity_max_other"] = float(e[t == 1].min()), float(e[t == 0].max())
    w = est["w"]
    row["ess_low_value"] = float(w[t == 1].sum() ** 2 / (w[t == 1] ** 2).sum())
    row["ess_other"] = float(w[t == 0].sum() ** 2 / (w[t == 0] ** 2).sum())
    before, after = _smd(X, t, np.ones(len(t))), _smd(X, t, w)
    row["max_smd_before"], row["max_smd_after"] = float(np.abs(before).max()), float(np.abs(after).max())
    balance = pd.DataFrame({"covariate": Xdf.columns, "smd_before": before, "smd_after": after})
    return row, balance


def excess_risk(results: Results | Path | str, *, rule_ids: list[str] | None = None, n_boot: int = 200,
                folds: int = 5, seed: int = 1, min_events: int = 5) -> ExcessRisk:
    """Per rule with linked harms: crude and AIPW-adjusted RR, RD, excess per 1 000 and total, with diagnostics."""
    from threadpoolctl import threadpool_limits

    results = results if isinstance(results, Results) else load_results(results)
    oc = harm_outcomes(results, rule_ids)
    feats = results.features.drop(columns=["rule_id"])
    rows, bal = [], []
    for rid in steps(rule_ids or results.harmful_rules(), "excess per rule"):
        df = oc.table[oc.table.rule_id == rid].merge(feats, on="candidate_id", how="left")
        df = df.sort_values(["index_time", "candidate_id"], kind="mergesort").reset_index(drop=True)
        n_scanned = int(results.candidates.loc[results.candidates.rule_id == rid, "specific"].sum())
        row: dict[str, Any] = {"rule_id": rid, "window": oc.windows.get(rid, ""), "label": LABEL, "n": len(df),
                               "n_treated": int(df.specific.sum()), "n_control": int((~df.specific).sum()),
                               "events_treated": int(df.outcome[df.specific].sum()),
                               "events_control": int(df.outcome[~df.specific].sum()),
                               "excluded_short_follow_up": oc.excluded.get(rid, 0), "n_low_value_scanned": n_scanned}
        if min(row["events_treated"] + row["events_control"], row["n_treated"], row["n_control"]) < min_events \
                or row["events_control"] == 0:
            row["status"] = f"not estimated: too few people or events in an arm (need ≥ {min_events}, control events > 0)"
            rows.append(row)
            continue
        with threadpool_limits(1):
            est, b = _rule_estimate(df, results.data_start, folds=folds, n_boot=n_boot, seed=seed)
        few = min(row["events_treated"], row["events_control"]) < 10
        row.update(est, status="estimated (imprecise: < 10 events in an arm)" if few else "estimated")
        row["cautions"] = "; ".join(
            c for c, bad in (("imprecise: < 10 events in an arm", few), ("poor overlap", row["overlap_poor"]),
                             (f"confounders not balanced after weighting (max SMD {row['max_smd_after']:.2f} > "
                              f"{SMD_LIMIT})", row["max_smd_after"] > SMD_LIMIT)) if bad)
        row["total_excess"] = row["excess_per_1000"] / 1000 * n_scanned
        row["total_excess_lo"] = row["excess_per_1000_lo"] / 1000 * n_scanned
        row["total_excess_hi"] = row["excess_per_1000_hi"] / 1000 * n_scanned
        rows.append(row)
        bal.append(b.assign(rule_id=rid))
    table = pd.DataFrame(rows)
    balance = pd.concat(bal, ignore_index=True) if bal else pd.DataFrame(columns=["rule_id", "covariate"])
    from lowvalue.results import stamp

    return ExcessRisk(table, balance[["rule_id"] + [c for c in balance.columns if c != "rule_id"]],
                      stamp(results.manifest))
