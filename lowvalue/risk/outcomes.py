"""The outcome both the risk model and the excess-risk analysis share.

For a candidate of a rule with linked harms the outcome is "one of the rule's
harm triggers happened within its window after the index". A candidate whose
window runs past the end of the data has not been followed long enough: a 0
there would be an unobserved outcome counted as "no harm", biasing risks
down, so such candidates are excluded and *counted*, never silently kept.
Deaths inside the window cannot be seen in scan results and are not censored
(a known limit, stated in the model card).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lowvalue.risk.results import Results


@dataclass
class Outcomes:
    """One row per followed candidate (``outcome`` 0/1) and the exclusion counts per rule."""

    table: pd.DataFrame
    excluded: dict[str, int] = field(default_factory=dict)
    windows: dict[str, str] = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        """Per rule: followed candidates, events, event rate, excluded for short follow-up, window."""
        g = self.table.groupby("rule_id").outcome.agg(["size", "sum"]).rename(columns={"size": "followed",
                                                                                       "sum": "events"})
        g["event_rate"] = g.events / g.followed
        g["excluded_short_follow_up"] = pd.Series(self.excluded)
        g["window"] = pd.Series(self.windows)
        return g.reset_index()


def _harm_table(results: Results, rule_ids: list[str], horizon_days: int | None) -> pd.DataFrame:
    rows = []
    for rid in rule_ids:
        for h in results.rules.rules[rid].harms:
            w = h.window
            lo, hi = w.start if w.start_inclusive else w.start + 1, w.end if w.end_inclusive else w.end - 1
            if w.unit == "h":  # hour windows keep their exact bounds; inclusivity is applied on float offsets
                lo, hi = w.start, w.end
            if horizon_days is not None and w.unit == "d":
                hi = horizon_days
            rows.append({"rule_id": rid, "trigger_id": h.trigger, "unit_h": w.unit == "h", "lo": lo, "hi": hi,
                         "lo_incl": w.start_inclusive or w.unit == "d", "hi_incl": w.end_inclusive or w.unit == "d",
                         "window": f"{h.trigger} in [{lo}{w.unit}, {hi}{w.unit}]"})
    return pd.DataFrame(rows)


def harm_outcomes(results: Results, rule_ids: list[str] | None = None, *, horizon_days: int | None = None,
                  eligible_only: bool = True) -> Outcomes:
    """Binary harm outcome per candidate, by vectorised merges (no per-row Python).

    ``horizon_days`` replaces the end of every day-unit harm window (the
    model's ``--horizon``); None keeps each rule's own window (the excess-risk
    analysis). With ``eligible_only`` only the rule's eligible candidates are
    kept: the population of the emulated trial and of the risk model.
    """
    rule_ids = results.harmful_rules() if rule_ids is None else rule_ids
    harms = _harm_table(results, rule_ids, horizon_days)
    cols = ["candidate_id", "rule_id", "person_id", "index_time", "eligible", "specific", "sensitive"]
    cand = results.candidates.loc[results.candidates.rule_id.isin(rule_ids), cols]
    if eligible_only:
        cand = cand[cand.eligible]
    if harms.empty or cand.empty:
        return Outcomes(pd.DataFrame(columns=cols + ["outcome"]), {r: 0 for r in rule_ids})

    # Follow-up is complete when every harm window of the rule ends on or before the last day (hour) of data.
    ch = cand.merge(harms, on="rule_id")
    end_day = results.data_end.normalize()
    window_end = np.where(ch.unit_h, ch.index_time + pd.to_timedelta(ch.hi, unit="h"),
                          ch.index_time.dt.normalize() + pd.to_timedelta(ch.hi, unit="D"))
    ch["complete"] = np.where(ch.unit_h, window_end <= results.data_end, window_end <= end_day)
    complete = ch.groupby("candidate_id").complete.all()

    trig = results.triggers[["person_id", "trigger_id", "time"]]
    m = ch.merge(trig, on=["person_id", "trigger_id"])
    off = np.where(m.unit_h, (m.time - m.index_time) / pd.Timedelta(hours=1),
                   (m.time.dt.normalize() - m.index_time.dt.normalize()) / pd.Timedelta(days=1))
    inside = np.where(m.lo_incl, off >= m.lo, off > m.lo) & np.where(m.hi_incl, off <= m.hi, off < m.hi)
    hit = set(m.loc[inside, "candidate_id"])

    out = cand.copy()
    out["outcome"] = out.candidate_id.isin(hit).astype(int)
    out["followed"] = out.candidate_id.map(complete).fillna(False).astype(bool)
    excluded = out[~out.followed].groupby("rule_id").size().reindex(rule_ids, fill_value=0).astype(int).to_dict()
    windows = harms.groupby("rule_id").window.agg("; ".join).to_dict()
    table = out[out.followed].drop(columns="followed").reset_index(drop=True)
    return Outcomes(table, excluded, windows)
