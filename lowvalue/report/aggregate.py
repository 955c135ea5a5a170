"""Everything the report shows, aggregated from a results folder: the summary per rule, trends, unit variation.

Inputs are the scan's Parquet files (``denominators``, ``flags``, ``evaluability``,
``candidates`` for the data period, ``manifest.json``) plus, when present, the risk
layer's ``excess_risk.parquet``, reviewer ``verdicts.parquet`` (``flag_id``, ``verdict`` in
{confirmed, rejected}) and a model folder's ``metrics.json``. Nothing here formats or
suppresses: the tables keep true counts and carry suppression masks (``sup_*`` columns)
computed by :mod:`lowvalue.report.suppress`; the renderer shows ``"<5"`` for them.
Person and flag ids never leave this module: every output is grouped by rule, unit or period.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from lowvalue.errors import InputError
from lowvalue.report.funnel import Funnel, Method, funnel
from lowvalue.report.suppress import Suppressor
from lowvalue.results import read_derived, read_manifest
from lowvalue.rules.library import RuleSet
from lowvalue.rules.overlay import rules_for_results
from lowvalue.rules.model import Rule

REQUIRED = ("denominators", "flags", "evaluability", "candidates")
PERIODS = ("month", "quarter", "year")
MAX_SUPPRESSED_SHARE = 0.25
"""A trend falls back from months to quarters to years while more than this share of its points is suppressed."""


@dataclass(frozen=True)
class Weights:
    """Weights of the suggested rank; they are printed in the report next to the rank."""

    volume: float = 0.4
    harm: float = 0.4
    confidence: float = 0.2

    @classmethod
    def parse(cls, text: str) -> "Weights":
        """``"volume=0.5,harm=0.3,confidence=0.2"`` (missing names keep their default)."""
        kw: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, _, value = part.partition("=")
            if name.strip() not in ("volume", "harm", "confidence"):
                raise ValueError(f"unknown weight {name.strip()!r}; use volume, harm, confidence")
            kw[name.strip()] = float(value)
        return cls(**kw)


@dataclass
class Inputs:
    """The files a report is built from (person-level tables are reduced to counts on load)."""

    path: Path
    rules: RuleSet
    manifest: dict[str, Any]
    denominators: pd.DataFrame
    flags: pd.DataFrame  # rule_id, flag_id, variant, cost only (ids are used for joins with verdicts, never shown)
    evaluability: pd.DataFrame
    period: tuple[pd.Timestamp | None, pd.Timestamp | None]
    excess: pd.DataFrame | None = None
    excess_path: Path | None = None
    verdicts: pd.DataFrame | None = None
    model_metrics: dict[str, Any] | None = None
    model_path: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def rule_ids(self) -> list[str]:
        """The do-not-do rules that were scanned, sorted."""
        scanned = set(self.manifest.get("rule_set", {}).get("rules", {})) or set(self.denominators.rule_id)
        scanned |= set(self.denominators.rule_id)
        return sorted(r for r in scanned if r in self.rules.rules and self.rules.rules[r].type == "rule")

    def rule(self, rule_id: str) -> Rule:
        return self.rules.rules[rule_id]


def load(results: Path | str, *, model: Path | str | None = None, excess: Path | str | None = None,
         verdicts: Path | str | None = None, rules: RuleSet | Path | str | None = None) -> Inputs:
    """Read a results folder. ``excess`` and ``verdicts`` default to files in it; absent files are fine."""
    path = Path(results)
    manifest = read_manifest(path)
    for name in REQUIRED:
        if not (path / f"{name}.parquet").is_file():
            raise InputError(str(path / f"{name}.parquet"), "missing: run `lowvalue scan DATA --out RESULTS` first")
    rs = rules if isinstance(rules, RuleSet) else rules_for_results(path, manifest, library=rules)
    den = pd.read_parquet(path / "denominators.parquet")
    flags = pd.read_parquet(path / "flags.parquet", columns=["flag_id", "rule_id", "variant", "cost"])
    ev = pd.read_parquet(path / "evaluability.parquet")
    with duckdb.connect() as con:
        lo, hi = con.execute("SELECT min(index_time), max(index_time) FROM read_parquet(?)",
                             [(path / "candidates.parquet").as_posix()]).fetchone()
    inp = Inputs(path=path, rules=rs, manifest=manifest, denominators=den, flags=flags, evaluability=ev,
                 period=(pd.Timestamp(lo) if lo is not None else None, pd.Timestamp(hi) if hi is not None else None))
    ex = Path(excess) if excess is not None else path / "excess_risk.parquet"
    if ex.is_file():
        inp.excess, inp.excess_path = read_derived(ex, path, made_by="lowvalue risk excess RESULTS"), ex
    elif excess is not None:
        raise InputError(str(ex), "missing: run `lowvalue risk excess RESULTS` first, or leave out --excess")
    vd = Path(verdicts) if verdicts is not None else path / "verdicts.parquet"
    if vd.is_file():
        v = read_derived(vd, path, made_by="lowvalue review export --db REVIEW_DB")
        if not {"flag_id", "verdict"} <= set(v.columns):
            raise InputError(str(vd), "needs columns flag_id and verdict (confirmed/rejected)")
        inp.verdicts = v[["flag_id", "verdict"]]
    elif verdicts is not None:
        raise InputError(str(vd), "missing")
    if model is not None:
        mp = Path(model)
        mf = mp / "metrics.json" if mp.is_dir() else mp
        if not mf.is_file():
            raise InputError(str(mf), "missing: train a model with `lowvalue risk train RESULTS --out models/NAME`")
        inp.model_metrics, inp.model_path = json.loads(mf.read_text()), mp
    return inp


# -- the summary table -----------------------------------------------------------------------------------------------
def _rule_totals(inp: Inputs) -> pd.DataFrame:
    d = inp.denominators
    tot = d[d.unit.isna() & d.month.isna()].set_index("rule_id")
    cols = ["candidates", "eligible", "eligible_persons", "flagged", "flagged_specific"]
    out = pd.DataFrame(index=pd.Index(inp.rule_ids, name="rule_id"))
    for c in cols:
        out[c] = tot[c].reindex(out.index).fillna(0).astype("int64") if c in tot else 0
    return out


def summary(inp: Inputs, sup: Suppressor, weights: Weights = Weights(), lang: str = "en") -> pd.DataFrame:
    """One row per scanned rule: counts, rate, cost, excess of triggers, precision, rank components, suppression masks."""
    s = _rule_totals(inp)
    s["title"] = [getattr(inp.rule(r).title, lang) for r in s.index]
    s["low_value"] = s.flagged_specific
    s["likely_low_value"] = s.flagged - s.flagged_specific
    # the rate is of the specific tier: in most rules every eligible candidate is at least "likely low value"
    s["rate_per_1000"] = np.where(s.eligible > 0, 1000 * s.low_value / s.eligible.where(s.eligible > 0, 1), np.nan)
    # cost: the cost recorded on each flag, or the rule's illustrative unit cost where the data have none
    unit_cost = pd.Series({r: (inp.rule(r).cost.amount if inp.rule(r).cost else np.nan) for r in s.index}, dtype=float)
    f = inp.flags.assign(cost=inp.flags.cost.astype(float).fillna(inp.flags.rule_id.map(unit_cost)))
    s["cost"] = f.groupby("rule_id").cost.sum(min_count=1).reindex(s.index)
    s.loc[s.flagged == 0, "cost"] = 0.0
    s["currency"] = [inp.rule(r).cost.currency if inp.rule(r).cost else "SEK" for r in s.index]
    ev = inp.evaluability.drop_duplicates("rule_id").set_index("rule_id")
    s["evaluability"] = ev.status.reindex(s.index).fillna("evaluable")
    s["evaluability_reason"] = ev.reason.reindex(s.index).fillna("")
    s["harms"] = [", ".join(h.trigger for h in inp.rule(r).harms) for r in s.index]
    _add_excess(s, inp)
    _add_precision(s, inp)
    _add_rank(s, weights, sup)
    _mask_summary(s, sup)
    return s.reset_index()


def _add_excess(s: pd.DataFrame, inp: Inputs) -> None:
    cols = ["excess_per_1000", "excess_per_1000_lo", "excess_per_1000_hi", "total_excess", "total_excess_lo",
            "total_excess_hi", "rr", "rr_lo", "rr_hi", "n_treated", "n_control", "events_treated", "events_control"]
    for c in cols:
        s[c] = np.nan
    s["excess_status"] = "absent"  # no excess_risk file at all
    s["excess_caution"] = ""
    if inp.excess is None:
        return
    ex = inp.excess.drop_duplicates("rule_id").set_index("rule_id")
    s["excess_status"] = "no harm linked"
    for r in s.index:
        if r not in ex.index:
            if inp.rule(r).harms:
                s.loc[r, "excess_status"] = "not estimated"
            continue
        row = ex.loc[r]
        status = str(row.get("status", "estimated"))
        s.loc[r, "excess_status"] = "estimated" if status.startswith("estimated") else "not estimated"
        s.loc[r, "excess_note"] = status
        s.loc[r, "excess_caution"] = _caution(row, status)
        for c in cols:
            if c in row.index and pd.notna(row[c]):
                s.loc[r, c] = float(row[c])


def _caution(row: pd.Series, status: str) -> str:
    """The estimate's cautions as ``risk excess`` wrote them ('' for none). A missing value is none, not "nan";
    a file without the ``cautions`` column still marks an imprecise estimate in its status."""
    c = row.get("cautions")
    if isinstance(c, str) and c.strip():
        return c.strip()
    if status.startswith("estimated (") and "cautions" not in row.index:
        return status[len("estimated ("):].rstrip(")")
    return ""


def _add_precision(s: pd.DataFrame, inp: Inputs) -> None:
    s["confirmed"], s["rejected"] = 0, 0
    s["precision"] = np.nan
    if inp.verdicts is None:
        return
    v = inp.verdicts.merge(inp.flags[["flag_id", "rule_id"]], on="flag_id", how="inner")
    v["verdict"] = v.verdict.astype(str).str.lower()
    counts = v.groupby(["rule_id", "verdict"]).size().unstack(fill_value=0)
    for k in ("confirmed", "rejected"):
        s[k] = counts[k].reindex(s.index).fillna(0).astype("int64") if k in counts else 0
    reviewed = s.confirmed + s.rejected
    s["precision"] = np.where(reviewed > 0, s.confirmed / reviewed.where(reviewed > 0, 1), np.nan)


def _scaled_log(x: pd.Series) -> pd.Series:
    x = x.astype(float).clip(lower=0).fillna(0)
    top = math.log1p(float(x.max())) if len(x) else 0.0
    return np.log1p(x) / top if top > 0 else x * 0


def _add_rank(s: pd.DataFrame, w: Weights, sup: Suppressor) -> None:
    """Suggested rank: weighted mean of three scores in [0, 1] (the report prints this recipe, ``rank_recipe``).

    * volume: log(1 + flagged) / log(1 + largest flagged among the rules);
    * triggers: log(1 + estimated total excess of adverse-event triggers) scaled the same way, over the
      estimates that carry no caution only. An estimate with a caution (few events, poor overlap, imbalance)
      is a signal, not a figure to rank by: its rule gets the neutral 0.5 of a linked trigger that is not
      estimated; 0 without a linked trigger. ``harm_source`` says which applied;
    * confidence: reviewer-confirmed precision when at least ``min count`` flags are reviewed, otherwise
      the share of flags in the specific tier ("low value"), halved for rules whose evaluability is limited
      and 0 for rules that are not evaluable.
    """
    s["score_volume"] = _scaled_log(s.flagged)
    est = (s.excess_status == "estimated") & s.total_excess.notna()
    usable = est & (s.excess_caution == "")
    harm = pd.Series(np.where(s.harms != "", 0.5, 0.0), index=s.index)
    if usable.any():
        harm[usable] = _scaled_log(s.total_excess.where(usable, 0))[usable]
    s["score_harm"] = harm
    s["harm_source"] = np.select([usable, est, s.harms != ""], ["estimate", "caution", "not estimated"],
                                 "no linked trigger")
    share = np.where(s.flagged > 0, s.flagged_specific / s.flagged.where(s.flagged > 0, 1), 0.0)
    factor = s.evaluability.map({"evaluable": 1.0, "limited": 0.5, "not_evaluable": 0.0}).fillna(1.0)
    conf = pd.Series(share * factor, index=s.index)
    reviewed = s.confirmed + s.rejected
    use_prec = reviewed >= sup.threshold
    conf[use_prec] = s.precision[use_prec]
    s["confidence_source"] = np.where(use_prec, "precision", "specific share")
    s["score_confidence"] = conf
    total = w.volume + w.harm + w.confidence
    s["score"] = (w.volume * s.score_volume + w.harm * s.score_harm + w.confidence * s.score_confidence) / (total or 1)
    s["rank"] = s.score.rank(ascending=False, method="min").astype("int64")


def _mask_summary(s: pd.DataFrame, sup: Suppressor) -> None:
    small = lambda c: sup.mask(s[c])  # noqa: E731
    s["sup_eligible"] = small("eligible")
    s["sup_flagged"] = small("flagged")
    # the tiers add up to the flagged total, which the cost reveals: protect them together
    lv, llv = small("low_value"), small("likely_low_value")
    for r in s.index:
        parts = pd.Series([s.at[r, "low_value"], s.at[r, "likely_low_value"]])
        m = sup.protect_total(parts, pd.Series([lv[r], llv[r]]))
        lv[r], llv[r] = bool(m[0]), bool(m[1])
    s["sup_low_value"], s["sup_likely_low_value"] = lv, llv
    s["sup_rate"] = s.sup_low_value | s.sup_eligible
    s["sup_cost"] = s.sup_flagged
    # an estimate from fewer than the threshold of people or of events in an arm could be worked back to them
    s["sup_excess"] = (small("n_treated") | small("n_control") | small("events_treated") | small("events_control")
                       if "n_treated" in s else False)
    reviewed = s.confirmed + s.rejected
    s["reviewed"] = reviewed
    s["sup_precision"] = sup.mask(reviewed) | small("confirmed") | small("rejected")


# -- trends ----------------------------------------------------------------------------------------------------------
def _period_key(month: pd.Series, period: str) -> pd.Series:
    ts = pd.to_datetime(month + "-01")
    if period == "month":
        return month
    if period == "quarter":
        return ts.dt.year.astype(str) + "-Q" + ts.dt.quarter.astype(str)
    return ts.dt.year.astype(str)


def _all_months(inp: Inputs) -> list[str]:
    lo, hi = inp.period
    months = inp.denominators.month.dropna()
    if lo is None or hi is None:
        return sorted(months.unique())
    return [str(p) for p in pd.period_range(lo.to_period("M"), hi.to_period("M"), freq="M")]


def trend(inp: Inputs, sup: Suppressor, rule_id: str) -> tuple[pd.DataFrame, str]:
    """Flagged interventions and eligible ones per period for one rule, with masks.

    Months when the monthly series would be mostly suppressed, else quarters, else years
    (the finest period with at most 25 % of points suppressed). Periods without candidates are 0.
    """
    d = inp.denominators
    m = d[(d.rule_id == rule_id) & d.unit.notna() & d.month.notna()]
    base = pd.DataFrame({"month": _all_months(inp)})
    monthly = m.groupby("month")[["eligible", "flagged", "flagged_specific"]].sum()
    base = base.merge(monthly, left_on="month", right_index=True, how="left").fillna(0)
    chosen = None
    for period in PERIODS:
        t = base.assign(period=_period_key(base.month, period)).groupby("period", sort=True)[
            ["eligible", "flagged", "flagged_specific"]].sum().astype("int64").reset_index()
        t["sup_flagged"] = sup.protect_total(t.flagged, sup.mask(t.flagged))
        t["sup_eligible"] = sup.protect_total(t.eligible, sup.mask(t.eligible))
        t["sup_specific"] = sup.protect_total(t.flagged_specific, sup.mask(t.flagged_specific))
        t["sup_rate"] = t.sup_specific | t.sup_eligible
        t["rate_per_1000"] = np.where(t.eligible > 0, 1000 * t.flagged_specific / t.eligible.where(t.eligible > 0, 1),
                                      np.nan)
        chosen = (t, period)
        nonzero = (t.flagged > 0).sum()
        if nonzero == 0 or t.sup_flagged.sum() / nonzero <= MAX_SUPPRESSED_SHARE:
            break
    assert chosen is not None
    return chosen


# -- unit variation --------------------------------------------------------------------------------------------------
@dataclass
class UnitVariation:
    """A rule's units on a funnel, after suppression.

    The funnel is of the specific tier ("low value") among eligible candidates.
    ``shown`` units are drawn; among them ``banded`` ones have a suppressed low-value count and are drawn as a
    band from rate 0 to ``(threshold − 1)/n``; ``hidden`` counts the units left out because their eligible
    volume is suppressed (they are not drawn at all, and are named nowhere).
    """

    funnel: Funnel
    hidden: int
    outside: pd.DataFrame  # unit, eligible, flagged_specific, rate, position: unsuppressed units outside 95 % limits


def unit_variation(inp: Inputs, sup: Suppressor, rule_id: str, method: Method = "normal") -> UnitVariation:
    d = inp.denominators
    u = d[(d.rule_id == rule_id) & d.unit.notna() & d.month.isna()][["unit", "eligible", "flagged_specific"]]
    u = u[u.eligible > 0].sort_values("unit").reset_index(drop=True)  # units with candidates but none eligible
    tot = _rule_totals(inp).loc[rule_id] if rule_id in inp.rule_ids else None
    p0 = float(tot.flagged_specific / tot.eligible) if tot is not None and tot.eligible > 0 else None
    hidden = sup.protect_total(u.eligible, sup.mask(u.eligible))
    sup_flag = sup.protect_total(u.flagged_specific, sup.mask(u.flagged_specific) | hidden)
    u["hidden"], u["banded"] = hidden, sup_flag & ~hidden
    f = funnel(u, events="flagged_specific", p0=p0, method=method)
    units = f.units
    units.loc[units.banded | units.hidden, "position"] = "suppressed"
    shown = units[~units.hidden].reset_index(drop=True)
    outside = shown[shown.position.str.startswith(("above", "below"))][["unit", "eligible", "flagged_specific", "rate",
                                                                       "position"]]
    return UnitVariation(Funnel(p0=f.p0, units=shown, method=method), int(hidden.sum()),
                         outside.sort_values("rate", ascending=False).reset_index(drop=True))
