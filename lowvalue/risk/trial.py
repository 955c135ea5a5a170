"""The emulated target trial's table per anchored rule: one row per eligible anchor, built by the engine.

The anchors, their baseline eligibility, the intervention within the grace period
(:func:`lowvalue.engine.sql.compile_trial`) and the baseline features at time zero
(:func:`lowvalue.risk.features.compute`, strictly before the anchor) are computed
in DuckDB on the scanned extract, person partition by person partition as a scan
does: only the eligible anchors (a small table) come to pandas. The outcomes are
the scan's triggers in each harm window measured from time zero; death comes from
``persons.death_date`` (a competing event: a trigger counts only on or before the
day of death).

Why from the extract and not from the scan's results: the results hold the rule's
*interventions*; a trial needs the people with the anchor condition who did not
get one, which only the extract holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lowvalue.errors import InputError
from lowvalue.risk.results import Results

COLUMNS = ["trial_id", "rule_id", "person_id", "anchor_time", "treated", "treatment_time", "age", "sex", "setting",
           "unit"]


@dataclass
class Trials:
    """Eligible anchors per rule (with baseline features and death date), and how to read an outcome off them."""

    anchors: pd.DataFrame
    results: Results
    grace: dict[str, float] = field(default_factory=dict)
    _excluded: dict[tuple[str, int], int] = field(default_factory=dict)

    def grace_days(self, rule_id: str) -> float:
        return self.grace[rule_id]

    def treated_anchors(self, rule_id: str) -> int:
        """Eligible anchors treated within the grace period, followed or not (what an estimated total scales to)."""
        a = self.anchors
        return int(a.loc[a.rule_id == rule_id, "treated"].sum())

    def excluded(self, rule_id: str, k: int) -> int:
        return self._excluded.get((rule_id, k), 0)

    def outcome(self, rule_id: str, k: int) -> pd.DataFrame:
        """The rule's anchors with outcome ``k`` (its harms, then its negative controls): ``outcome`` (0/1, a trigger
        in the window from time zero on or before death), ``died`` (in the window), ``t_event`` (days from time zero
        to the first of the outcome and death, NaN: neither), ``t_treat`` (days to the treatment), followed only."""
        rule = self.results.rules.rules[rule_id]
        assert rule.anchor is not None
        harm = ([*rule.harms, *rule.anchor.negative_controls])[k]
        w = harm.window
        t = self.anchors[self.anchors.rule_id == rule_id].copy()
        day0 = t.anchor_time.dt.normalize()
        lo, hi = w.int_bounds() if w.unit == "d" else (w.start, w.end)
        end = (day0 + pd.to_timedelta(hi, unit="D")) if w.unit == "d" else t.anchor_time + pd.to_timedelta(hi, unit="h")
        death = pd.to_datetime(t.death_date)
        trig = self.results.triggers
        trig = trig.loc[trig.trigger_id == harm.trigger, ["person_id", "time"]]
        m = t[["trial_id", "person_id", "anchor_time"]].merge(trig, on="person_id")
        off = ((m.time.dt.normalize() - m.anchor_time.dt.normalize()) / pd.Timedelta(days=1) if w.unit == "d"
               else (m.time - m.anchor_time) / pd.Timedelta(hours=1))
        m = m[[w.contains(float(o)) for o in off]] if len(m) else m
        first = m.groupby("trial_id").time.min().rename("outcome_time")
        t = t.merge(first, left_on="trial_id", right_index=True, how="left")
        t["outcome_time"] = pd.to_datetime(t.outcome_time)
        before_death = death.isna() | (t.outcome_time.dt.normalize() <= death)
        t["outcome"] = (t.outcome_time.notna() & before_death).astype(int)
        t.loc[t.outcome == 0, "outcome_time"] = pd.NaT
        t["died"] = (death.notna() & (death <= end.dt.normalize() if w.unit == "d" else death <= end)).astype(int)
        followed = (end <= (self.results.data_end.normalize() if w.unit == "d" else self.results.data_end)) | (t.died == 1)
        self._excluded[(rule_id, k)] = int((~followed).sum())
        t = t[followed].reset_index(drop=True)
        days = lambda x: (x - t.anchor_time) / pd.Timedelta(days=1)  # noqa: E731
        died_at = pd.to_datetime(t.death_date.where(t.died == 1))
        t["t_event"] = np.fmin(days(t.outcome_time).to_numpy(float), days(died_at).to_numpy(float))
        t["t_treat"] = days(t.treatment_time).to_numpy(float)
        return t


def trial_tables(results: Results, extract: Any, rule_ids: list[str], *, memory_limit: str | None = None) -> Trials:
    """Judge the anchors of ``rule_ids`` on ``extract`` (the extract the results were scanned from: a folder or an
    opened :class:`~lowvalue.data.extract.Extract`), keep the eligible ones, add their baseline features at time zero."""
    from lowvalue.data.extract import Extract, open_extract
    from lowvalue.engine import sql
    from lowvalue.engine.scan import person_partitions
    from lowvalue.risk import features as feats
    from lowvalue.workdir import private_workdir

    ext = extract if isinstance(extract, Extract) else open_extract(Path(extract), memory_limit=memory_limit)
    scanned = ((results.manifest.get("data") or {}).get("fingerprint"))
    if scanned and scanned != ext.fingerprint:
        raise InputError(str(extract), f"is not the extract these results were scanned from (fingerprint "
                                       f"{ext.fingerprint[:12]}, results say {scanned[:12]})")
    rs = results.rules
    rules = [rs.rules[r] for r in rule_ids]
    con = ext.con
    sql.prepare(con)
    sql.ensure_sets(con, sql.code_sets(rs, rules) + feats.code_sets(rs))
    con.register("lv_res_triggers", results.triggers[["person_id", "trigger_id", "time"]])
    cols = ", ".join(c for c in COLUMNS if c != "rule_id")
    con.execute("CREATE OR REPLACE TEMP TABLE lv_trials (trial_id VARCHAR, rule_id VARCHAR, person_id VARCHAR, "
                "anchor_time TIMESTAMP, treated BOOLEAN, treatment_time TIMESTAMP, age INTEGER, sex VARCHAR, "
                "setting VARCHAR, unit VARCHAR)")
    parts = person_partitions(con)
    ranges = sql.PersonRanges.of(con, parts)
    with private_workdir("partitions") as folder:  # the split extract is patient data: private, removed after
        if parts > 1:
            sql.split_persons(con, ranges, folder)
        for part in range(parts):
            sql.build_hits(con, part, ranges, folder if parts > 1 else None)
            for rule in rules:
                con.execute(f"INSERT INTO lv_trials SELECT trial_id, {sql.q(rule.id)}, {cols.replace('trial_id, ', '')} "
                            f"FROM ({sql.compile_trial(rule, rs, ordered=False)}) WHERE eligible")
            mine = (f"(SELECT trial_id AS candidate_id, rule_id, person_id, anchor_time AS index_time, age, sex, setting, "
                    f"unit, FALSE AS sensitive, treated AS specific FROM lv_trials "
                    f"WHERE {ranges.where('person_id', part)})")
            feats.compute(con, mine, "lv_res_triggers", rs, append=part > 0)
    sql.drop_hits(con)
    names = ", ".join(f"f.{c}" for c in feats.FEATURES if c not in ("age", "setting", "unit", "flag_specific",
                                                                     "flag_sensitive"))
    df = con.execute(f"""SELECT t.*, {names}, p.death_date FROM lv_trials t
                         JOIN lv_features f ON f.candidate_id = t.trial_id AND f.rule_id = t.rule_id
                         LEFT JOIN persons p ON p.person_id = t.person_id
                         ORDER BY t.rule_id, t.person_id, t.anchor_time, t.trial_id""").df()
    con.unregister("lv_res_triggers")
    ext.check_unchanged()  # the last read of the extract: a file changed meanwhile would mix two extracts
    grace = {}
    for rule in rules:
        g = rule.anchor.grace_period  # type: ignore[union-attr]
        grace[rule.id] = float(g.amount if g.unit == "d" else g.amount / 24)
    df["anchor_time"] = pd.to_datetime(df.anchor_time)
    df["treatment_time"] = pd.to_datetime(df.treatment_time)
    return Trials(df, results, grace)


def simulate(persons: int = 1500, rr: float = 2.0, grace_days: int = 3, seed: int = 0) -> pd.DataFrame:
    """A trial table with a known causal risk ratio ``rr``, for the recovery benchmark and its test.

    Confounding by indication: a severity score from age, comorbidity and frailty markers raises both the chance of
    treatment within the grace period and the baseline risk. Persons have one to three anchors sharing a person
    effect on risk (so the CIs must cluster). Outcomes fall after the grace period; deaths (independent of treatment)
    compete with them. ``p0 * rr`` stays below 1, so the marginal risk ratio is exactly ``rr``. A negative-control
    outcome (``nc_outcome``, ``t_nc_event``) has half the baseline risk whatever the treatment: the same confounding,
    a true risk ratio of 1.
    """
    rng = np.random.default_rng(seed)
    pid = np.repeat(np.arange(persons), rng.integers(1, 4, persons))
    n = len(pid)
    u = rng.normal(0, 0.7, persons)[pid]
    age = rng.uniform(18, 90, n).round()
    charlson = rng.poisson(0.2 + 0.04 * (age - 18))
    frailty = rng.poisson(0.1 + 0.02 * (age - 18))
    sex_male = (rng.random(n) < 0.5).astype(int)
    sev = -1.5 + 0.02 * (age - 50) + 0.35 * charlson + 0.45 * frailty
    treated = rng.random(n) < 1 / (1 + np.exp(-(0.3 + 1.2 * sev)))
    t_treat = np.where(treated, rng.integers(0, grace_days + 1, n) + rng.uniform(0, 0.5, n), np.nan)
    p0 = 0.01 + 0.2 / (1 + np.exp(-(sev + u - 0.5)))
    happens = rng.random(n) < p0 * np.where(treated, rr, 1.0)
    t_out = grace_days + 1 + rng.uniform(0, 27, n)
    dies = rng.random(n) < 0.03
    t_death = np.where(dies, rng.uniform(0, 30, n), np.nan)
    outcome = happens & ~(dies & (t_death < t_out))
    t_event = np.fmin(np.where(outcome, t_out, np.nan), t_death)
    start = pd.Timestamp("2023-01-01")
    anchor_time = start + pd.to_timedelta(rng.integers(0, 700, n), unit="D")
    t_nc = grace_days + 1 + rng.uniform(0, 27, n)  # drawn last: the other columns stay as they were before it
    nc = (rng.random(n) < 0.5 * p0) & ~(dies & (t_death < t_nc))
    t_nc_event = np.fmin(np.where(nc, t_nc, np.nan), t_death)
    return pd.DataFrame({
        "person_id": [f"p{i}" for i in pid], "anchor_time": anchor_time,
        "treated": treated, "t_treat": t_treat, "outcome": outcome.astype(int), "t_event": t_event,
        "nc_outcome": nc.astype(int), "t_nc_event": t_nc_event, "died": dies.astype(int), "age": age,
        "sex_male": sex_male, "charlson": charlson.astype(float),
        "frailty_markers": frailty.astype(float)})
