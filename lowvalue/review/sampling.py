"""Review rounds with a sampling design: the review app as the instrument of a chart-review validation study.

Why: a queue sorted by risk measures precision on the highest-risk flags only.
A validation study of coded quality indicators (as in Badgery-Parker's and
Chalmers' validations of low-value-care indicators, or OHDSI's phenotype
evaluation) reviews a *random* sample per rule and tier (or one stratified by
unit and period), with two blinded reviewers, and a sample of eligible
candidates that were not flagged, so that precision (PPV), what the rule misses
(NPV) and agreement (kappa) can be estimated with their uncertainty.

:func:`draw_round` draws such a sample reproducibly from a results folder
(same results, design and seed → same cases, same order, same assignments) and
stores the round, the frame sizes per stratum (for weighting back to the frame),
the cases in a random order and the assignments, all append-only.
:func:`case_state` tells, for one reviewer, what a case of a round may show
(blinding) and whether it waits for an adjudication.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from lowvalue.errors import LowvalueError
from lowvalue.review.store import UNFLAGGED, Store, _clean, _stamp

TIERS = ("specific", "sensitive")
STRATA = ("unit", "period")
DESIGNS = ("random", "stratified")


@dataclass(frozen=True)
class RoundSummary:
    round_id: int
    design: str
    seed: int
    cases: int
    frame: pd.DataFrame  # rule_id, tier, frame_n, sample_n (summed over strata)

    def describe(self, lang: str = "en") -> str:
        """The round and its frame and sample per rule × tier, in ``lang`` (the catalogue's ``cli`` texts)."""
        from lowvalue.messages import messages

        w = messages("cli", lang)
        kind, _, by = self.design.partition(" by ")  # "random", "stratified by unit, period"
        design = w.get(f"design_{kind}", kind) + (w["design_by"].format(
            strata=", ".join(w.get(f"stratum_{s}", s) for s in by.split(", "))) if by else "")
        lines = [w["round_head"].format(round_id=self.round_id, cases=self.cases, seed=self.seed, design=design),
                 f"{w['col_rule_id']:<14}{w['col_tier']:<30}{w['col_frame']:>8}{w['col_sample']:>8}"]
        lines += [f"{r.rule_id:<14}{w.get(f'variant_{r.tier}', r.tier):<30}{r.frame_n:>8}{r.sample_n:>8}"
                  for r in self.frame.itertuples()]
        return "\n".join(lines)


def _period(t: pd.Series) -> pd.Series:
    """The calendar quarter of each index time ("2024-Q3"): the period stratum."""
    ts = pd.to_datetime(t)
    return ts.dt.year.astype(str) + "-Q" + ts.dt.quarter.astype(str)


def _frame(results: Path, tiers: Sequence[str], unflagged: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The sampling frame: every flag of the chosen tiers, and (when asked) every eligible candidate no tier flagged."""
    flags = pd.read_parquet(results / "flags.parquet", columns=["flag_id", "rule_id", "variant", "unit", "index_time"])
    flags = flags[flags.variant.isin(tiers)].rename(columns={"variant": "tier"})
    cand = pd.DataFrame()
    if unflagged:
        cand = pd.read_parquet(results / "candidates.parquet")
        cand = cand[cand.eligible & ~cand.sensitive & ~cand.specific & ~cand.candidate_id.isin(flags.flag_id)]
    frame = pd.concat([flags, cand.rename(columns={"candidate_id": "flag_id"}).assign(tier=UNFLAGGED)[
        ["flag_id", "rule_id", "tier", "unit", "index_time"]] if len(cand) else None], ignore_index=True)
    return frame, cand


def _allocate(sizes: pd.Series, n: int) -> pd.Series:
    """Proportional allocation of ``n`` over strata of ``sizes`` (largest remainder; never more than a stratum holds)."""
    n = min(n, int(sizes.sum()))
    exact = sizes / sizes.sum() * n
    alloc = np.floor(exact).astype(int)
    order = (exact - alloc).sort_values(ascending=False, kind="stable").index
    for k in order[: n - int(alloc.sum())]:
        alloc[k] += 1
    return alloc.clip(upper=sizes)


def draw_round(store: Store, results: Path | str, *, per_rule: int, seed: int, tiers: Sequence[str] = TIERS,
               unflagged: int = 0, strata: Sequence[str] = (), reviewers: Sequence[str] = (),
               reviewers_per_case: int = 1, blinded: bool = True, rules: Sequence[str] = (),
               actor: str = "cli") -> RoundSummary:
    """Draw a sampled round from ``results`` into the review store and return what was drawn.

    Per rule × tier (``tiers``; "specific" is the report's "low value", "sensitive" its "likely low value") up to
    ``per_rule`` flags, and per rule up to ``unflagged`` eligible candidates that no tier flagged. Without
    ``strata`` the sample is simple random within each rule × tier; with ``strata`` (``unit``, ``period``: the
    calendar quarter) it is stratified with proportional allocation, and the frame size of every stratum is kept
    so the statistics can weight each case back to its stratum (:mod:`lowvalue.review.stats`). The cases get one
    random order (the queue of the round); with ``reviewers`` each case is assigned to ``reviewers_per_case`` of
    them in turn (2: double review). ``rules`` limits the round to those rule ids. Reproducible: the frame is sorted by id before ``seed`` is used.
    """
    results = Path(results)
    bad = [t for t in tiers if t not in TIERS]
    if bad or not tiers:
        raise LowvalueError(f"--tier must be among {', '.join(TIERS)}. Got {', '.join(bad) or 'none'} instead.")
    if [s for s in strata if s not in STRATA]:
        raise LowvalueError(f"--strata must be among {', '.join(STRATA)}. Got {', '.join(strata)} instead.")
    if per_rule < 1 or unflagged < 0:
        raise LowvalueError("--per-rule must be at least 1 and --unflagged at least 0")
    if reviewers_per_case not in (1, 2):
        raise LowvalueError("--reviewers-per-case must be 1 or 2")
    if len(set(reviewers)) < (reviewers_per_case if reviewers else 0) or len(set(reviewers)) != len(reviewers):
        raise LowvalueError(f"double review needs at least two distinct reviewers; got {', '.join(reviewers)}")
    for r in reviewers:
        if store.role(r) is None:
            raise LowvalueError(f"no enabled user {r!r} in {store.path}; add them with `lowvalue review add-user`")
    if reviewers_per_case == 2 and not reviewers:
        raise LowvalueError("double review needs --reviewers A,B (each case is assigned to two of them)")
    loaded = store.meta("results_path")
    if loaded != str(results.resolve()):
        store.load_results(results)  # the frame is these results: their flags must be in the store
    frame, cand = _frame(results, tiers, unflagged)
    if rules:
        unknown = sorted(set(rules) - set(frame.rule_id))
        if unknown:
            raise LowvalueError(f"--rule {', '.join(unknown)}: no such rule in the frame of {results}")
        frame = frame[frame.rule_id.isin(rules)]
    frame["stratum"] = "all"
    if strata:
        parts = [frame.unit.fillna("–").astype(str) if s == "unit" else _period(frame.index_time) for s in strata]
        frame["stratum"] = parts[0].str.cat(parts[1:], sep=" | ") if len(parts) > 1 else parts[0]
    frame = frame.sort_values(["rule_id", "tier", "stratum", "flag_id"]).reset_index(drop=True)
    rng = np.random.default_rng(seed)
    picked, sizes = [], []
    for (rule, tier), g in frame.groupby(["rule_id", "tier"], sort=True):
        n = unflagged if tier == UNFLAGGED else per_rule
        counts = g.groupby("stratum").size()
        alloc = _allocate(counts, n)
        for stratum, size in counts.items():
            k = int(alloc[stratum])
            rows = g[g.stratum == stratum]
            if k:
                picked.append(rows.iloc[np.sort(rng.choice(len(rows), size=k, replace=False))])
            sizes.append((rule, tier, stratum, int(size), k))
    sample = pd.concat(picked, ignore_index=True) if picked else frame.iloc[:0]
    sample["position"] = rng.permutation(len(sample)) + 1
    sample = sample.sort_values("position").reset_index(drop=True)
    design = "stratified" if strata else "random"
    frame_meta = {"results_path": str(results.resolve()), "rules": sorted(rules), "rule_set_digest": store.meta("rule_set_digest") or "",
                  "data_fingerprint": store.meta("data_fingerprint") or "", "tiers": list(tiers),
                  "unflagged_frame": "eligible candidates flagged by no tier"}
    key = store.secret("pseudonym").encode()
    from lowvalue.privacy import pseudonym

    con = store.con
    with con:
        if len(cand):  # unflagged candidates become reviewable cases (no evidence: nothing was found)
            c = cand[cand.candidate_id.isin(sample.flag_id)]
            con.executemany(
                "INSERT INTO flags (flag_id, rule_id, variant, tier, unit, setting, index_time, index_system, "
                "index_code, patient_ref, first_loaded, last_loaded) VALUES (?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(flag_id) DO NOTHING",
                [[r["candidate_id"], r["rule_id"], UNFLAGGED, _clean(r.get("unit")), _clean(r.get("setting")),
                  pd.Timestamp(r["index_time"]).strftime("%Y-%m-%dT%H:%M:%S"), _clean(r.get("index_system")),
                  _clean(r.get("index_code")), pseudonym(key, str(r["person_id"])), _stamp(), _stamp()]
                 for r in c.to_dict("records")])
        cur = con.execute(
            "INSERT INTO rounds (created_at, created_by, design, strata, seed, per_rule, unflagged, tiers, "
            "reviewers_per_case, blinded, frame) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [_stamp(), actor, design, ",".join(strata), seed, per_rule, unflagged, ",".join(tiers),
             reviewers_per_case if reviewers else 1, int(blinded), json.dumps(frame_meta, sort_keys=True)])
        rid = int(cur.lastrowid)  # type: ignore[arg-type]
        con.executemany("INSERT INTO round_strata VALUES (?, ?, ?, ?, ?, ?)", [[rid, *s] for s in sizes])
        con.executemany("INSERT INTO round_cases VALUES (?, ?, ?, ?, ?, ?)",
                        [[rid, r.flag_id, r.rule_id, r.tier, r.stratum, int(r.position)] for r in sample.itertuples()])
        if reviewers:
            k = len(reviewers)
            con.executemany("INSERT INTO assignments VALUES (?, ?, ?, ?)",
                            [[rid, r.flag_id, reviewers[(i + j) % k], j + 1] for i, r in enumerate(sample.itertuples())
                             for j in range(reviewers_per_case)])
    store.audit(actor, "draw_round", str(rid), f"design={design} seed={seed} cases={len(sample)}")
    per = pd.DataFrame(sizes, columns=["rule_id", "tier", "stratum", "frame_n", "sample_n"])
    per = per.groupby(["rule_id", "tier"], as_index=False)[["frame_n", "sample_n"]].sum()
    return RoundSummary(rid, design + (f" by {', '.join(strata)}" if strata else ""), seed, len(sample), per)


# -- a round as reviewers see it ---------------------------------------------------------------------------------------

def round_row(store: Store, round_id: int) -> Any:
    row = store.con.execute("SELECT * FROM rounds WHERE round_id = ?", [round_id]).fetchone()
    if row is None:
        raise LowvalueError(f"no review round {round_id} in {store.path}")
    return row


def rounds(store: Store) -> list[Any]:
    """Every round, newest first, with its number of cases."""
    return store.con.execute("SELECT r.*, (SELECT count(*) FROM round_cases c WHERE c.round_id = r.round_id) AS cases "
                             "FROM rounds r ORDER BY round_id DESC").fetchall()


def latest_round(store: Store) -> int | None:
    row = store.con.execute("SELECT max(round_id) FROM rounds").fetchone()
    return row[0] if row and row[0] is not None else None


def describe_design(row: Any, lang: str = "en") -> str:
    """A round's design in words, as the statistics and the report name it."""
    strata = row["strata"].replace(",", ", ")
    if lang == "sv":
        design = (f"urval stratifierat efter {strata.replace('unit', 'enhet').replace('period', 'kvartal')}" if strata
                  else "obundet slumpmässigt urval")
        return f"granskningsomgång {row['round_id']} ({design}, frö {row['seed']})"
    design = f"sample stratified by {strata.replace('period', 'quarter')}" if strata else "simple random sample"
    return f"review round {row['round_id']} ({design}, seed {row['seed']})"


@dataclass(frozen=True)
class CaseState:
    """What one user may see and do on one case of a round."""

    in_round: bool
    assigned: tuple[str, ...]  # the reviewers assigned, in slot order (empty: anyone may review)
    answered: tuple[str, ...]  # assigned (or any) reviewers with a review verdict
    mine: str | None  # this user's latest review verdict
    may_review: bool
    all_answered: bool
    needs_adjudication: bool  # two reviews that disagree and no adjudication yet
    adjudicated: str | None
    blinded: bool  # tier and risk hidden from this user


def case_state(store: Store, round_id: int, flag_id: str, user: str) -> CaseState:
    r = round_row(store, round_id)
    in_round = store.con.execute("SELECT 1 FROM round_cases WHERE round_id = ? AND flag_id = ?",
                                 [round_id, flag_id]).fetchone() is not None
    assigned = tuple(a[0] for a in store.con.execute(
        "SELECT reviewer FROM assignments WHERE round_id = ? AND flag_id = ? ORDER BY slot", [round_id, flag_id]))
    latest = dict(store.con.execute(
        "SELECT reviewer, verdict FROM verdicts WHERE id IN (SELECT max(id) FROM verdicts WHERE round_id = ? AND "
        "flag_id = ? AND stage = 'review' GROUP BY reviewer)", [round_id, flag_id]).fetchall())
    adj = store.con.execute("SELECT verdict FROM verdicts WHERE round_id = ? AND flag_id = ? AND stage = 'adjudication' "
                            "ORDER BY id DESC LIMIT 1", [round_id, flag_id]).fetchone()
    need = r["reviewers_per_case"]
    answered = tuple(a for a in (assigned or tuple(latest)) if a in latest)
    all_answered = len(answered) >= need
    disagree = all_answered and need == 2 and len({latest[a] for a in answered[:2]}) > 1
    may_review = in_round and (user in assigned if assigned else (not latest or user in latest))
    mine = latest.get(user)
    return CaseState(in_round, assigned, answered, mine, may_review, all_answered, disagree and adj is None,
                     adj[0] if adj else None, bool(r["blinded"]) and mine is None)


def next_in_round(store: Store, round_id: int, user: str, after: str | None = None) -> str | None:
    """The first case of the round, in its order, that ``user`` may review and has not answered (one query)."""
    row = store.con.execute(
        "SELECT c.flag_id FROM round_cases c WHERE c.round_id = ?1 AND c.flag_id IS NOT ?3 "
        "AND (EXISTS (SELECT 1 FROM assignments a WHERE a.round_id = ?1 AND a.flag_id = c.flag_id AND a.reviewer = ?2) "
        "     OR NOT EXISTS (SELECT 1 FROM assignments a WHERE a.round_id = ?1 AND a.flag_id = c.flag_id)) "
        "AND NOT EXISTS (SELECT 1 FROM verdicts v WHERE v.round_id = ?1 AND v.flag_id = c.flag_id AND v.reviewer = ?2 "
        "                AND v.stage = 'review') ORDER BY c.position LIMIT 1", [round_id, user, after]).fetchone()
    return row[0] if row else None


def open_blinded_round(store: Store, flag_id: str, user: str) -> int | None:
    """A blinded round in which ``user`` still has to review ``flag_id`` (the ordinary case page sends them there,
    so the ordinary views do not unblind them)."""
    row = store.con.execute(
        "SELECT c.round_id FROM round_cases c JOIN rounds r USING (round_id) WHERE c.flag_id = ?1 AND r.blinded = 1 "
        "AND (EXISTS (SELECT 1 FROM assignments a WHERE a.round_id = c.round_id AND a.flag_id = c.flag_id "
        "AND a.reviewer = ?2) OR NOT EXISTS (SELECT 1 FROM assignments a WHERE a.round_id = c.round_id "
        "AND a.flag_id = c.flag_id)) AND NOT EXISTS (SELECT 1 FROM verdicts v WHERE v.round_id = c.round_id "
        "AND v.flag_id = c.flag_id AND v.reviewer = ?2 AND v.stage = 'review') ORDER BY c.round_id LIMIT 1",
        [flag_id, user]).fetchone()
    return row[0] if row else None


def round_queue(store: Store, round_id: int, user: str, *, adjudication: bool = False) -> list[dict[str, Any]]:
    """The round's cases for ``user`` in the round's random order: those assigned to them (all when nobody is
    assigned), each with their own status only; with ``adjudication``, the cases whose two reviews disagree
    (and those already adjudicated). One query, so a queue of a thousand cases stays fast."""
    r = round_row(store, round_id)
    assigned_any = store.con.execute("SELECT 1 FROM assignments WHERE round_id = ? LIMIT 1", [round_id]).fetchone()
    slot = ("(SELECT v.verdict FROM verdicts v JOIN assignments a ON a.round_id = v.round_id AND a.flag_id = v.flag_id "
            "AND a.reviewer = v.reviewer WHERE v.round_id = ?1 AND v.flag_id = c.flag_id AND v.stage = 'review' "
            "AND a.slot = {} ORDER BY v.id DESC LIMIT 1)")
    rows = store.con.execute(
        "SELECT c.flag_id, c.rule_id, c.tier, c.position, f.unit, substr(f.index_time, 1, 7) AS month, "
        "f.risk_percentile, (SELECT v.verdict FROM verdicts v WHERE v.round_id = ?1 AND v.flag_id = c.flag_id AND "
        "v.reviewer = ?2 AND v.stage = 'review' ORDER BY v.id DESC LIMIT 1) AS mine, "
        "(SELECT v.verdict FROM verdicts v WHERE v.round_id = ?1 AND v.flag_id = c.flag_id AND "
        f"v.stage = 'adjudication' ORDER BY v.id DESC LIMIT 1) AS adjudicated, {slot.format(1)} AS first, "
        f"{slot.format(2)} AS second FROM round_cases c JOIN flags f USING (flag_id) WHERE c.round_id = ?1 "
        + ("" if adjudication or not assigned_any else
           "AND EXISTS (SELECT 1 FROM assignments a WHERE a.round_id = c.round_id AND a.flag_id = c.flag_id "
           "AND a.reviewer = ?2) ") + "ORDER BY c.position", [round_id, user]).fetchall()
    out = []
    for row in rows:
        d = dict(row)
        disagree = r["reviewers_per_case"] == 2 and d["first"] and d["second"] and d["first"] != d["second"]
        d["needs_adjudication"] = bool(disagree) and d["adjudicated"] is None
        if adjudication and not disagree:
            continue
        d["blinded"] = bool(r["blinded"]) and d["mine"] is None and not adjudication
        out.append(d)
    return out


def sample_round(db: Path | str, results: Path | str, **design: Any) -> RoundSummary:
    """:func:`draw_round` on the review database at ``db`` (created and loaded from ``results`` when new): the one
    call ``lowvalue demo`` makes to end with a sampled round."""
    with Store.open(db, create=True) as st:
        return draw_round(st, results, **design)
