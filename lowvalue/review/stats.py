"""What a sampled review round estimates: PPV and NPV with Wilson 95 % intervals, and agreement (Cohen's kappa).

Only sampled rounds (:mod:`lowvalue.review.sampling`) feed these figures:
verdicts from the ordinary, risk-ordered queue estimate nothing about a rule.

Estimands (per rule × tier of one round):

* **PPV** (positive predictive value, the report's "reviewer-confirmed precision"): the share of the rule's flags
  in that tier that reviewers judge to be low-value care, among flags judged either way. "Unsure" and cases
  still waiting for a second review or an adjudication are counted and left out (assumed missing at random
  within their stratum).
* **NPV** (negative predictive value): among the sampled eligible candidates that no tier flagged, the share
  judged *not* low-value care (a confirmed unflagged case is one the rule missed).
* The **final label** of a case: its one review; with double review the two reviewers' verdict when they agree,
  otherwise the adjudicator's (pending until there is one).
* **Weighting**: in a stratified round each judged case weighs frame size / judged cases of its stratum, so the
  estimate refers to the whole frame; the interval is Wilson's with Kish's effective sample size
  ``(Σw)² / Σw²`` (exactly Wilson's interval for a simple random sample, where all weights are equal).
* **Cohen's kappa** between the two reviewers of double-reviewed cases (first review of each slot's reviewer, as
  last changed before any adjudication; categories confirmed / rejected / unsure), with the large-sample standard
  error ``sqrt(po (1 − po) / (n (1 − pe)²))`` (Cohen 1960) and a normal 95 % interval clipped to [−1, 1].
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from lowvalue.review.sampling import describe_design, latest_round, round_row
from lowvalue.review.store import UNFLAGGED, VERDICTS, Store

Z95 = 1.959963984540054
TIER_ORDER = {"specific": 0, "sensitive": 1, "all": 2, UNFLAGGED: 3}
MIN_SAMPLED = 10  # judged sampled cases below which a rule is not ranked on its PPV (the report marks it)


def wilson(successes: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for a proportion ``successes / n`` (n may be an effective, non-integer size)."""
    if n <= 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(max(p * (1 - p) / n + z * z / (4 * n * n), 0.0))
    return (max(0.0, centre - half), min(1.0, centre + half))


def weighted_proportion(y: pd.Series, weight: pd.Series) -> tuple[float, float, float, float]:
    """A weighted proportion of ``y`` (0/1) with a Wilson 95 % interval on Kish's effective size: (p, lcl, ucl, n_eff)."""
    if len(y) == 0 or float(weight.sum()) <= 0:
        return (math.nan, math.nan, math.nan, 0.0)
    w = weight.astype(float)
    p = float((w * y).sum() / w.sum())
    n_eff = float(w.sum() ** 2 / (w * w).sum())
    lo, hi = wilson(p * n_eff, n_eff)
    return (p, lo, hi, n_eff)


def cohen_kappa(a: pd.Series, b: pd.Series) -> tuple[float, float, float, int]:
    """Cohen's kappa of two raters' labels with a normal 95 % interval: (kappa, lcl, ucl, n)."""
    n = len(a)
    if n == 0:
        return (math.nan, math.nan, math.nan, 0)
    cats = list(VERDICTS)
    a, b = pd.Categorical(a, categories=cats), pd.Categorical(b, categories=cats)
    po = float(np.mean(np.asarray(a) == np.asarray(b)))
    pa = pd.Series(a).value_counts(normalize=True).reindex(cats, fill_value=0)
    pb = pd.Series(b).value_counts(normalize=True).reindex(cats, fill_value=0)
    pe = float((pa * pb).sum())
    if pe >= 1:
        return (math.nan, math.nan, math.nan, n)  # both raters used one and the same category: kappa undefined
    k = (po - pe) / (1 - pe)
    se = math.sqrt(po * (1 - po) / (n * (1 - pe) ** 2))
    return (k, max(-1.0, k - Z95 * se), min(1.0, k + Z95 * se), n)


def _review_pairs(store: Store, round_id: int) -> pd.DataFrame:
    """Per case of the round: the latest review verdict of each assigned slot, and the latest adjudication."""
    q = """
    WITH rv AS (SELECT flag_id, reviewer, verdict FROM verdicts WHERE id IN (
        SELECT max(id) FROM verdicts WHERE round_id = ?1 AND stage = 'review' GROUP BY flag_id, reviewer)),
    adj AS (SELECT flag_id, verdict FROM verdicts WHERE id IN (
        SELECT max(id) FROM verdicts WHERE round_id = ?1 AND stage = 'adjudication' GROUP BY flag_id))
    SELECT c.flag_id, c.rule_id, c.tier, c.stratum,
        (SELECT rv.verdict FROM rv JOIN assignments a ON a.flag_id = rv.flag_id AND a.reviewer = rv.reviewer
         WHERE a.round_id = ?1 AND a.flag_id = c.flag_id AND a.slot = 1) AS first,
        (SELECT rv.verdict FROM rv JOIN assignments a ON a.flag_id = rv.flag_id AND a.reviewer = rv.reviewer
         WHERE a.round_id = ?1 AND a.flag_id = c.flag_id AND a.slot = 2) AS second,
        (SELECT v.verdict FROM verdicts v WHERE v.round_id = ?1 AND v.flag_id = c.flag_id AND v.stage = 'review'
         ORDER BY v.id DESC LIMIT 1) AS anyone,
        (SELECT count(*) FROM assignments a WHERE a.round_id = ?1 AND a.flag_id = c.flag_id) AS n_assigned,
        (SELECT verdict FROM adj WHERE adj.flag_id = c.flag_id) AS adjudicated
    FROM round_cases c WHERE c.round_id = ?1 ORDER BY c.flag_id"""
    d = pd.read_sql_query(q, store.con, params=[round_id])
    frame = pd.read_sql_query("SELECT rule_id, tier, stratum, frame_n FROM round_strata WHERE round_id = ?",
                              store.con, params=[round_id])
    return d.merge(frame, on=["rule_id", "tier", "stratum"], how="left")


def _final(d: pd.DataFrame) -> pd.Series:
    """The final label of each case (None while pending)."""
    single = np.where(d.n_assigned >= 1, d["first"], d["anyone"])
    agree = d["first"].notna() & (d["first"] == d["second"])
    double = np.where(agree, d["first"], np.where(d["first"].notna() & d["second"].notna(), d.adjudicated, None))
    return pd.Series(np.where(d.n_assigned >= 2, double, single), index=d.index).where(lambda s: s.notna(), None)


def round_labels(store: Store, round_id: int | None = None) -> pd.DataFrame:
    """The final label of every judged flag (not unflagged candidates) of a sampled round, with its design columns:
    flag_id, rule_id, round_id, round_design (English words), round_strata and round_seed (so a report can name the
    design in its own language), round_tier, round_stratum, round_frame_n, round_verdict. Empty without rounds."""
    cols = ["flag_id", "rule_id", "round_id", "round_design", "round_strata", "round_seed", "round_tier", "round_stratum",
            "round_frame_n", "round_verdict"]
    round_id = round_id if round_id is not None else latest_round(store)
    if round_id is None:
        return pd.DataFrame(columns=cols)
    row = round_row(store, round_id)
    d = _review_pairs(store, round_id)
    d["round_verdict"] = _final(d)
    d = d[d.round_verdict.notna() & (d.tier != UNFLAGGED)]
    return pd.DataFrame({"flag_id": d.flag_id, "rule_id": d.rule_id, "round_id": round_id, "round_design": describe_design(row),
                         "round_strata": row["strata"], "round_seed": row["seed"], "round_tier": d.tier, "round_stratum": d.stratum, "round_frame_n": d.frame_n.astype("int64"),
                         "round_verdict": d.round_verdict})[cols].reset_index(drop=True)


def ppv_by_rule(labels: pd.DataFrame) -> pd.DataFrame:
    """Per rule, over its flag tiers: judged n, confirmed, rejected, unsure, PPV with its Wilson 95 % interval,
    weighted back to the frame by (tier, stratum). ``labels``: :func:`round_labels` rows (or the same columns read
    back from ``verdicts.parquet``). Used by the report's precision (:mod:`lowvalue.report.aggregate`)."""
    out = []
    for rule, g in labels.groupby("rule_id", sort=True):
        judged = g[g.round_verdict.isin(["confirmed", "rejected"])]
        d_h = judged.groupby(["round_tier", "round_stratum"]).flag_id.transform("size")
        p, lo, hi, n_eff = weighted_proportion((judged.round_verdict == "confirmed").astype(int),
                                               judged.round_frame_n / d_h)
        out.append({"rule_id": rule, "judged": len(judged), "confirmed": int((g.round_verdict == "confirmed").sum()),
                    "rejected": int((g.round_verdict == "rejected").sum()),
                    "unsure": int((g.round_verdict == "unsure").sum()), "ppv": p, "ppv_lcl": lo, "ppv_ucl": hi,
                    "n_eff": n_eff})
    return pd.DataFrame(out, columns=["rule_id", "judged", "confirmed", "rejected", "unsure", "ppv", "ppv_lcl",
                                      "ppv_ucl", "n_eff"])


def round_stats(store: Store, round_id: int | None = None) -> pd.DataFrame:
    """Per rule × tier of a sampled round (default the latest): frame and sample sizes, judged cases, PPV (flag
    tiers, and "all" over both flag tiers weighted by the frame) or NPV (unflagged) with Wilson 95 % intervals,
    unsure and pending counts, and Cohen's kappa with its interval. Columns named in :data:`STATS_COLUMNS`."""
    round_id = round_id if round_id is not None else latest_round(store)
    if round_id is None:
        from lowvalue.errors import LowvalueError

        raise LowvalueError(f"{store.path}: no sampled review round; draw one with `lowvalue review sample RESULTS`")
    row = round_row(store, round_id)
    d = _review_pairs(store, round_id)
    d["final"] = _final(d)
    frame = pd.read_sql_query("SELECT rule_id, tier, sum(frame_n) AS frame_n, sum(sample_n) AS sampled "
                              "FROM round_strata WHERE round_id = ? GROUP BY 1, 2", store.con, params=[round_id])
    rows = []
    groups = [(k, g) for k, g in d.groupby(["rule_id", "tier"], sort=True)]
    for rule, g in d[d.tier != UNFLAGGED].groupby("rule_id", sort=True):
        if g.tier.nunique() > 1:
            groups.append(((rule, "all"), g))
    for (rule, tier), g in groups:
        judged = g[g.final.isin(["confirmed", "rejected"])]
        d_h = judged.groupby(["tier", "stratum"]).flag_id.transform("size")
        success = (judged.final == ("rejected" if tier == UNFLAGGED else "confirmed")).astype(int)
        p, lo, hi, n_eff = weighted_proportion(success, judged.frame_n / d_h)
        pairs = g[g["first"].notna() & g["second"].notna()]
        k, klo, khi, kn = cohen_kappa(pairs["first"], pairs["second"])
        fr = frame[(frame.rule_id == rule) & ((frame.tier == tier) if tier != "all" else (frame.tier != UNFLAGGED))]
        est = "npv" if tier == UNFLAGGED else "ppv"
        rows.append({"round_id": round_id, "design": describe_design(row), "strata": row["strata"], "seed": row["seed"],
                     "rule_id": rule, "tier": tier,
                     "frame_n": int(fr.frame_n.sum()), "sampled": int(fr.sampled.sum()), "judged": len(judged),
                     "confirmed": int((g.final == "confirmed").sum()), "rejected": int((g.final == "rejected").sum()),
                     "unsure": int((g.final == "unsure").sum()), "pending": int(g.final.isna().sum()),
                     "estimand": est, "estimate": p, "lcl": lo, "ucl": hi, "n_eff": n_eff,
                     "kappa": k, "kappa_lcl": klo, "kappa_ucl": khi, "kappa_n": kn})
    out = pd.DataFrame(rows, columns=STATS_COLUMNS)
    out["_o"] = out.tier.map(TIER_ORDER)
    return out.sort_values(["rule_id", "_o"]).drop(columns="_o").reset_index(drop=True)


STATS_COLUMNS = ["round_id", "design", "strata", "seed", "rule_id", "tier", "frame_n", "sampled", "judged", "confirmed", "rejected",
                 "unsure", "pending", "estimand", "estimate", "lcl", "ucl", "n_eff", "kappa", "kappa_lcl", "kappa_ucl",
                 "kappa_n"]


STATS_TIER_KEYS = {"specific": "tier_low_value", "sensitive": "tier_likely_low_value", "all": "stats_all",
                   UNFLAGGED: "stats_unflagged"}
"""A statistics row's tier → its name in the catalogue's ``cli`` namespace."""


def format_stats(stats: pd.DataFrame, lang: str = "en") -> str:
    """The statistics as a plain-text table headed by the round and its design (for ``lowvalue review stats``), in
    ``lang`` (the catalogue's ``cli`` texts)."""
    from lowvalue.messages import messages
    from lowvalue.report.i18n import Numbers

    nums, w = Numbers(lang), messages("cli", lang)  # type: ignore[arg-type]
    if stats.empty:
        return w["stats_none"]

    def ci(p: Any, lo: Any, hi: Any) -> str:
        return "–" if pd.isna(p) else f"{nums.num(p, 2)} ({nums.num(lo, 2)}–{nums.num(hi, 2)})"

    first = stats.iloc[0]
    head = f"{describe_design(dict(round_id=first.round_id, strata=first.strata, seed=first.seed), lang)}; {w['stats_head']}"
    lines = [head, f"{w['col_rule_id']:<13}{w['col_tier']:<22}{w['col_frame']:>6}{w['col_sample']:>7}{w['stats_judged']:>8}"
                   f"{w['stats_unsure']:>8}{w['stats_pending']:>8}  {w['stats_estimate']:<26}{w['stats_kappa']}"]
    for r in stats.itertuples():
        kap = "–" if pd.isna(r.kappa) else f"{ci(r.kappa, r.kappa_lcl, r.kappa_ucl)}, n={r.kappa_n}"
        est = f"{r.estimand.upper()} {ci(r.estimate, r.lcl, r.ucl)}"
        lines.append(f"{r.rule_id:<13}{w[STATS_TIER_KEYS[r.tier]]:<22}{r.frame_n:>6}{r.sampled:>7}{r.judged:>8}"
                     f"{r.unsure:>8}{r.pending:>8}  {est:<26}{kap}")
    return "\n".join(lines)
