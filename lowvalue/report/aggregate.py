"""Everything the report shows, aggregated from a results folder: the summary per rule, trends, unit variation.

Inputs are the scan's Parquet files (``denominators``, ``flags``, ``evaluability``,
``candidates`` for the data period, ``manifest.json``) plus, when present, the risk
layer's ``excess_risk.parquet``, reviewer ``verdicts.parquet`` (``flag_id``, ``verdict`` in
{confirmed, rejected}) and a model folder's ``metrics.json``. Nothing here formats or
suppresses: the tables keep true counts and carry suppression masks (``sup_*`` columns)
computed by :mod:`lowvalue.report.suppress`; the renderer shows :data:`~lowvalue.report.suppress.MARK` for them.

Units: by default a candidate belongs to the unit of its index encounter, the unit that performed the test or
prescribed the drug (``unit``); with ``attribution="listing"`` to the person's listing unit (``listing_unit``, which
scans carry from ``persons.listing_unit``; :data:`ATTRIBUTIONS`). Person-level counts (eligible persons, persons with at least one
flag) come from ``candidates.parquet``, as do the age and sex strata of the indirect standardisation
(:data:`AGE_BANDS`).
Person and flag ids never leave this module: every output is grouped by rule, unit or period.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import pandas as pd
from scipy import stats

from lowvalue.errors import InputError
from lowvalue.report.funnel import Dispersion, Funnel, Method, funnel
from lowvalue.report.suppress import Suppressor
from lowvalue.results import read_derived, read_manifest
from lowvalue.rules.library import RuleSet
from lowvalue.rules.overlay import rules_for_results
from lowvalue.rules.model import Rule

REQUIRED = ("denominators", "flags", "evaluability", "candidates")
AGE_BANDS = (18, 45, 65, 80)
"""Lower bounds of the age bands after the first (0–17, 18–44, 45–64, 65–79, 80+): the strata of the indirect
standardisation together with sex (unknown age or sex is a stratum of its own)."""
ATTRIBUTIONS = {"performing": "unit", "listing": "listing_unit"}
"""The units a candidate can be attributed to, and the candidates' column for each: the unit of its index encounter
(performing or prescribing) or the person's listing unit (the practice where the person is registered)."""
Attribution = Literal["performing", "listing"]
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
    precision_round: dict[str, Any] | None = None  # the sampled review round behind the precision column
    units: pd.DataFrame | None = None  # rule_id, unit (None: the whole rule), event and person counts, expected
    earlier: list["Earlier"] = field(default_factory=list)  # earlier scans given with --compare, newest first
    prices: dict[str, "Price"] | None = None
    attribution: Attribution = "performing"
    unit_months: pd.DataFrame | None = None  # rule_id, unit, month, eligible, flagged, flagged_specific by attribution

    @property
    def rule_ids(self) -> list[str]:
        """The do-not-do rules that were scanned, sorted."""
        scanned = set(self.manifest.get("rule_set", {}).get("rules", {})) or set(self.denominators.rule_id)
        scanned |= set(self.denominators.rule_id)
        return sorted(r for r in scanned if r in self.rules.rules and self.rules.rules[r].type == "rule")

    def rule(self, rule_id: str) -> Rule:
        return self.rules.rules[rule_id]


@dataclass
class Earlier:
    """An earlier scan given with ``report --compare``: its manifest, denominators and months (for the trends)."""

    path: Path
    manifest: dict[str, Any]
    denominators: pd.DataFrame
    months: list[str]
    unit_months: pd.DataFrame | None = None  # as Inputs.unit_months


def load_earlier(path: Path | str, attribution: Attribution = "performing") -> Earlier:
    """Read an earlier results folder for the trends (its months are those its denominators count)."""
    p = Path(path)
    manifest = read_manifest(p)
    if not (p / "denominators.parquet").is_file():
        raise InputError(str(p / "denominators.parquet"), "missing: --compare needs complete results folders")
    den = pd.read_parquet(p / "denominators.parquet")
    months = sorted(den.month.dropna().unique())
    if months:
        months = [str(m) for m in pd.period_range(months[0], months[-1], freq="M")]
    return Earlier(p, manifest, den, months, unit_months(p, den, attribution))


def _unit_column(candidates: Path, attribution: Attribution) -> str:
    """The candidates' column of the attribution; a results folder scanned before scans carried the listing unit,
    or from an extract without one, cannot be attributed to it (one line, exit 2)."""
    col = ATTRIBUTIONS[attribution]
    if col == "unit":
        return col
    with duckdb.connect() as con:
        names = {r[0] for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [candidates.as_posix()]).fetchall()}
        if col not in names:
            raise InputError(str(candidates), "listing unit not in these results: scan again "
                                              "(lowvalue scan DATA --out RESULTS) to attribute to it")
        known = con.execute(f"SELECT count({col}) FROM read_parquet(?)", [candidates.as_posix()]).fetchone()[0]
    if not known:
        raise InputError(str(candidates), "no candidate has a listing unit: the extract's persons.listing_unit is "
                                          "empty; use --attribution performing")
    return col


def unit_months(results: Path, denominators: pd.DataFrame, attribution: Attribution = "performing") -> pd.DataFrame:
    """Per rule, unit and month: eligible, flagged and low-value candidates, units as ``attribution`` says (the
    scan's denominators for the performing unit; counted from the candidates for the listing unit)."""
    cols = ["rule_id", "unit", "month", "eligible", "flagged", "flagged_specific"]
    if attribution == "performing":
        d = denominators[denominators.unit.notna() & denominators.month.notna()]
        return d[cols].reset_index(drop=True)
    cand = results / "candidates.parquet"
    col = _unit_column(cand, attribution)
    with duckdb.connect() as con:
        return con.execute(f"""
            SELECT rule_id, {col} AS unit, strftime(index_time, '%Y-%m') AS month,
                   count(*) FILTER (WHERE eligible) AS eligible,
                   count(*) FILTER (WHERE sensitive OR specific) AS flagged,
                   count(*) FILTER (WHERE specific) AS flagged_specific
            FROM read_parquet(?) WHERE {col} IS NOT NULL AND index_time IS NOT NULL
            GROUP BY ALL ORDER BY ALL""", [cand.as_posix()]).df()


def load(results: Path | str, *, model: Path | str | None = None, excess: Path | str | None = None,
         verdicts: Path | str | None = None, rules: RuleSet | Path | str | None = None,
         prices: Path | str | None = None, compare: list[Path | str] | tuple[Path | str, ...] = (),
         attribution: Attribution = "performing") -> Inputs:
    """Read a results folder. ``excess`` and ``verdicts`` default to files in it; absent files are fine;
    ``prices`` is a region's price list (:func:`load_prices`); ``attribution`` the units candidates count to
    (:data:`ATTRIBUTIONS`)."""
    if attribution not in ATTRIBUTIONS:
        raise InputError("--attribution", f"one of {', '.join(ATTRIBUTIONS)}, not {attribution!r}")
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
                 period=(pd.Timestamp(lo) if lo is not None else None, pd.Timestamp(hi) if hi is not None else None),
                 units=unit_counts(path / "candidates.parquet", attribution), attribution=attribution,
                 unit_months=unit_months(path, den, attribution))
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
        inp.verdicts = v[[c for c in v.columns if c in ("flag_id", "verdict") or c.startswith("round_")]]
    elif verdicts is not None:
        raise InputError(str(vd), "missing")
    if prices is not None:
        inp.prices = load_prices(prices)
    inp.earlier = sorted((load_earlier(c, attribution) for c in compare), key=lambda e: e.months[-1] if e.months else "",
                         reverse=True)
    if model is not None:
        mp = Path(model)
        mf = mp / "metrics.json" if mp.is_dir() else mp
        if not mf.is_file():
            raise InputError(str(mf), "missing: train a model with `lowvalue risk train RESULTS --out models/NAME`")
        inp.model_metrics, inp.model_path = json.loads(mf.read_text()), mp
    return inp


def _age_band_sql(col: str = "age") -> str:
    bounds = (0,) + AGE_BANDS
    parts = [f"WHEN {col} < {hi} THEN '{lo}-{hi - 1}'" for lo, hi in zip(bounds, bounds[1:])]
    return f"CASE WHEN {col} IS NULL THEN 'unknown' {' '.join(parts)} ELSE '{bounds[-1]}+' END"


def unit_counts(candidates: Path, attribution: Attribution = "performing") -> pd.DataFrame:
    """Per rule and unit (``unit`` None: the rule overall; units as ``attribution`` says), among eligible
    candidates: events and persons eligible,
    flagged (either tier) and low value (specific tier), and the low-value count expected from the rule's rates
    in each age band × sex stratum (``expected``) with its binomial variance (``variance``).

    Person ids are counted here and go no further."""
    with duckdb.connect() as con:
        names = {r[0] for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [candidates.as_posix()]).fetchall()}
        age = _age_band_sql() if "age" in names else "'unknown'"
        col = _unit_column(candidates, attribution)
        sex = "coalesce(CAST(sex AS VARCHAR), 'unknown')" if "sex" in names else "'unknown'"
        return con.execute(f"""
            WITH c AS (SELECT rule_id, {col} AS unit, person_id, (sensitive OR specific) AS flagged, specific,
                              {age} AS age_band, {sex} AS sex
                       FROM read_parquet(?) WHERE eligible),
                 strata AS (SELECT rule_id, age_band, sex, avg(CAST(specific AS DOUBLE)) AS p FROM c GROUP BY ALL)
            SELECT rule_id, unit, count(*) AS eligible, count(DISTINCT person_id) AS eligible_persons,
                   count(*) FILTER (WHERE flagged) AS flagged,
                   count(DISTINCT person_id) FILTER (WHERE flagged) AS flagged_persons,
                   count(*) FILTER (WHERE specific) AS low_value,
                   count(DISTINCT person_id) FILTER (WHERE specific) AS low_value_persons,
                   sum(p) AS expected, sum(p * (1 - p)) AS variance
            FROM c JOIN strata USING (rule_id, age_band, sex)
            GROUP BY GROUPING SETS ((rule_id), (rule_id, unit))
            ORDER BY rule_id, unit NULLS FIRST""", [candidates.as_posix()]).df()


def wilson(k: Any, n: Any, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of the proportion ``k/n`` (NaN where ``n`` is 0): it stays inside [0, 1] and keeps
    its coverage for small counts and rates near 0 or 1, where the Wald interval does not."""
    k, n = np.asarray(k, float), np.asarray(n, float)
    z = float(stats.norm.ppf(1 - (1 - level) / 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    ok = n > 0
    return np.where(ok, centre - half, np.nan), np.where(ok, centre + half, np.nan)


@dataclass(frozen=True)
class Price:
    """A unit price with its source: the only kind of cost the report multiplies and sums."""

    amount: float
    currency: str
    source: str
    year: int
    note: str = ""


PRICE_COLUMNS = ("rule_id", "amount", "currency", "source", "year")
"""Required columns of a ``report --prices`` file (``note`` is optional); see docs/report.md."""


def load_prices(path: Path | str) -> dict[str, Price]:
    """A region's price list (CSV, UTF-8, comma-separated, one row per rule): ``rule_id, amount, currency, source,
    year[, note]``. Every row must name its source and year; a rule not in the list keeps the rule's own cost only
    if that cost is sourced."""
    p = Path(path)
    try:
        t = pd.read_csv(p, dtype=str, keep_default_na=False, encoding="utf-8")
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise InputError(str(p), f"not a readable UTF-8 CSV price list ({err.__class__.__name__})") from err
    missing = [c for c in PRICE_COLUMNS if c not in t.columns]
    if missing:
        raise InputError(str(p), f"price list needs columns {', '.join(PRICE_COLUMNS)}; missing {', '.join(missing)}")
    out: dict[str, Price] = {}
    for i, r in enumerate(t.itertuples(index=False), start=2):
        where = f"{p}:{i}"
        try:
            amount, year = float(r.amount), int(r.year)
        except ValueError as err:
            raise InputError(where, f"amount must be a number and year a whole year ({r.amount!r}, {r.year!r})") from err
        if not r.source.strip() or amount < 0 or not 1900 <= year <= 2100 or not r.rule_id.strip():
            raise InputError(where, "every price needs a rule_id, a non-negative amount, a source and a year")
        if r.rule_id in out:
            raise InputError(where, f"rule {r.rule_id} priced twice")
        out[r.rule_id.strip()] = Price(amount, r.currency.strip() or "SEK", r.source.strip(), year,
                                       getattr(r, "note", "").strip())
    return out


def rule_price(inp: "Inputs", rule_id: str) -> Price | None:
    """The price a rule's flags are costed at: the region's list first, else the rule's own cost when it cites a
    source and year; None (not priced) otherwise. Costs recorded in the extract are not used: their source is
    unknown to the report."""
    if inp.prices and rule_id in inp.prices:
        return inp.prices[rule_id]
    c = inp.rule(rule_id).cost
    if c is not None and c.source and c.year:
        return Price(c.amount, c.currency, c.source, c.year, c.note or "")
    return None


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
    lo, hi = wilson(s.low_value, s.eligible)
    s["rate_lo"], s["rate_hi"] = 1000 * lo, 1000 * hi
    # persons: eligible, with at least one flag (either tier), with at least one low-value flag
    u = inp.units[inp.units.unit.isna()].set_index("rule_id") if inp.units is not None else pd.DataFrame()
    for c in ("eligible_persons", "flagged_persons", "low_value_persons"):
        s[c] = u[c].reindex(s.index).fillna(0).astype("int64") if c in u else 0
    s["person_rate"] = np.where(s.eligible_persons > 0, 1000 * s.low_value_persons
                                / s.eligible_persons.where(s.eligible_persons > 0, 1), np.nan)
    plo, phi = wilson(s.low_value_persons, s.eligible_persons)
    s["person_rate_lo"], s["person_rate_hi"] = 1000 * plo, 1000 * phi
    # cost: flagged interventions × a sourced unit price; without one the rule is not priced (never a guess)
    prices = {r: rule_price(inp, r) for r in s.index}
    s["priced"] = [prices[r] is not None for r in s.index]
    s["unit_price"] = [prices[r].amount if prices[r] else np.nan for r in s.index]
    s["cost"] = np.where(s.priced, s.flagged * s.unit_price.fillna(0), np.nan)
    s["currency"] = [prices[r].currency if prices[r] else "SEK" for r in s.index]
    s["price_source"] = [f"{prices[r].source} ({prices[r].year})" if prices[r] else "" for r in s.index]
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
    ex = inp.excess
    if "primary" in ex:  # one row per rule and outcome: the rule's first linked trigger is its headline
        ex = ex[ex.primary == True]  # noqa: E712
    ex = ex.drop_duplicates("rule_id").set_index("rule_id")
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
    """Reviewer-confirmed precision = the PPV of a sampled review round (``round_*`` columns of verdicts.parquet,
    :func:`lowvalue.review.stats.ppv_by_rule`: weighted back to the frame, Wilson 95 % CI). Verdicts from the
    ordinary, risk-ordered queue estimate nothing and are not counted; the round and design are kept
    (``precision_round``) for the report's methods."""
    s["confirmed"], s["rejected"] = 0, 0
    s["precision"], s["precision_lcl"], s["precision_ucl"] = np.nan, np.nan, np.nan
    if inp.verdicts is None or "round_verdict" not in inp.verdicts:
        return
    from lowvalue.review.stats import MIN_SAMPLED, ppv_by_rule

    v = inp.verdicts[inp.verdicts.round_verdict.notna()].merge(inp.flags[["flag_id", "rule_id"]], on="flag_id")
    if v.empty:
        return
    p = ppv_by_rule(v).set_index("rule_id").reindex(s.index)
    for k in ("confirmed", "rejected"):
        s[k] = p[k].fillna(0).astype("int64")
    s["precision"], s["precision_lcl"], s["precision_ucl"] = p.ppv, p.ppv_lcl, p.ppv_ucl
    first = v.iloc[0]
    inp.precision_round = {"round_id": int(first.round_id), "strata": str(first.get("round_strata", "") or ""),
                           "seed": first.get("round_seed", "?")}


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
    * confidence: the lower 95 % limit of the sampled reviewer-confirmed precision when at least ``min count``
      and :data:`lowvalue.review.stats.MIN_SAMPLED` sampled flags are judged (fewer: marked, not ranked on it), otherwise
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
    from lowvalue.review.stats import MIN_SAMPLED

    reviewed = s.confirmed + s.rejected
    use_prec = (reviewed >= max(sup.threshold, MIN_SAMPLED)) & s.precision_lcl.notna()
    conf[use_prec] = s.precision_lcl[use_prec]  # the lower confidence limit: five of five is not certainty
    s["confidence_source"] = np.select([use_prec, reviewed > 0], ["precision (lower 95 % limit)",
                                       "specific share (too few sampled reviews)"], "specific share")
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
    for c in ("eligible_persons", "flagged_persons", "low_value_persons"):
        s["sup_" + c] = small(c)
    # persons with a low-value flag can equal the low-value count (one intervention each), and beside the persons
    # flagged in either tier they would give the other tier away: hidden whenever either tier is
    s["sup_low_value_persons"] = s.sup_low_value_persons | s.sup_low_value | s.sup_likely_low_value
    s["sup_person_rate"] = s.sup_low_value_persons | s.sup_eligible_persons
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


def _signature(manifest: dict[str, Any], rule_id: str) -> tuple[str, str, str | None]:
    """What a rule's counts depend on besides the data: its version, the region's code overlay, and the rule's own
    digest (its definition and code sets as resolved, :func:`lowvalue.rules.library.rule_digest`; None for a scan
    older than the per-rule digests, which then breaks on the version and overlay only)."""
    rs = manifest.get("rule_set", {})
    digest = (rs.get("rule_digests") or {}).get(rule_id)
    return (str(rs.get("rules", {}).get(rule_id, "")), str((rs.get("codes_overlay") or {}).get("digest", "")),
            str(digest) if digest is not None else None)


def _changed(a: tuple[str, str, str | None], b: tuple[str, str, str | None]) -> bool:
    """Whether the rule changed between two scans' signatures (an unknown digest matches any)."""
    return a[:2] != b[:2] or (a[2] is not None and b[2] is not None and a[2] != b[2])


def _monthly(inp: Inputs, rule_id: str, unit: str | None = None) -> pd.DataFrame:
    """Month by month: eligible, flagged, flagged_specific, the scan each month comes from and its ``segment``
    (a new segment starts where the rule's version, its digest or the code overlay changed). The current scan
    covers its own months; an earlier scan (``--compare``) only the months no later scan covers."""
    cols = ["eligible", "flagged", "flagged_specific"]
    def counts(den: pd.DataFrame, by_unit: pd.DataFrame | None) -> pd.DataFrame:
        if unit is None:  # the rule's own series does not depend on the attribution
            return den[(den.rule_id == rule_id) & den.unit.notna() & den.month.notna()]
        assert by_unit is not None
        return by_unit[(by_unit.rule_id == rule_id) & (by_unit.unit == unit)]

    scans = [(counts(inp.denominators, inp.unit_months), _all_months(inp), _signature(inp.manifest, rule_id))]
    scans += [(counts(e.denominators, e.unit_months), e.months, _signature(e.manifest, rule_id)) for e in inp.earlier]
    parts, covered = [], set()
    for d, months, sig in scans:
        own = [m for m in months if m not in covered]
        covered |= set(own)
        base = pd.DataFrame({"month": own}).merge(d.groupby("month")[cols].sum(), left_on="month", right_index=True,
                                                  how="left").fillna(0)
        parts.append(base.assign(signature=[sig] * len(base)))
    out = pd.concat(parts, ignore_index=True).sort_values("month", kind="mergesort").reset_index(drop=True)
    sigs = out.signature.tolist()
    out["segment"] = np.cumsum([False] * bool(sigs) + [_changed(a, b) for a, b in zip(sigs, sigs[1:])]).astype("int64")
    return out.drop(columns="signature")


def trend(inp: Inputs, sup: Suppressor, rule_id: str, unit: str | None = None) -> tuple[pd.DataFrame, str]:
    """Flagged interventions and eligible ones per period for one rule, with masks and p-chart limits.

    Months when the monthly series would be mostly suppressed, else quarters, else years
    (the finest period with at most 25 % of points suppressed). Periods without candidates are 0.
    With earlier scans (``--compare``) the series runs over them too; a period never mixes months from before and
    after a change of the rule or the code overlay (``segment``; ``break`` marks the first period after one), and
    each segment has its own centre line and limits. ``unit``: the same for one unit's candidates.
    """
    base = _monthly(inp, rule_id, unit)
    chosen = None
    for period in PERIODS:
        t = base.assign(period=_period_key(base.month, period)).groupby(["segment", "period"], sort=True)[
            ["eligible", "flagged", "flagged_specific"]].sum().astype("int64").reset_index()
        t = t.sort_values(["period", "segment"], kind="mergesort").reset_index(drop=True)
        t["break"] = t.segment.ne(t.segment.shift()) & (t.index > 0)
        t["sup_flagged"] = sup.protect_total(t.flagged, sup.mask(t.flagged))
        t["sup_eligible"] = sup.protect_total(t.eligible, sup.mask(t.eligible))
        t["sup_specific"] = sup.protect_total(t.flagged_specific, sup.mask(t.flagged_specific))
        t["sup_rate"] = t.sup_specific | t.sup_eligible
        t["rate_per_1000"] = np.where(t.eligible > 0, 1000 * t.flagged_specific / t.eligible.where(t.eligible > 0, 1),
                                      np.nan)
        # p-chart: centre line the rule's rate over the segment, 3-sigma limits at each period's volume
        seg = t.groupby("segment")[["flagged_specific", "eligible"]].transform("sum")
        pbar = (seg.flagged_specific / seg.eligible.where(seg.eligible > 0)).astype(float)
        half = 3 * np.sqrt(pbar * (1 - pbar) / t.eligible.where(t.eligible > 0))
        t["centre"], t["lcl"], t["ucl"] = 1000 * pbar, 1000 * np.clip(pbar - half, 0, 1), 1000 * np.clip(pbar + half, 0, 1)
        chosen = (t, period)
        nonzero = (t.flagged > 0).sum()
        if nonzero == 0 or t.sup_flagged.sum() / nonzero <= MAX_SUPPRESSED_SHARE:
            break
    assert chosen is not None
    return chosen


def trend_signal(t: pd.DataFrame) -> str:
    """The p-chart's verdict on the latest period with a shown rate: ``above``/``below`` its 3-sigma limits,
    ``within``, or ``none`` (no shown rate)."""
    shown = t[~t.sup_rate & t.rate_per_1000.notna()]
    if shown.empty:
        return "none"
    last = shown.iloc[-1]
    return "above" if last.rate_per_1000 > last.ucl else "below" if last.rate_per_1000 < last.lcl else "within"


# -- unit variation --------------------------------------------------------------------------------------------------
@dataclass
class UnitVariation:
    """A rule's units on a funnel, after suppression.

    The funnel is of the specific tier ("low value") among eligible candidates, indirectly standardised by age
    and sex (``rate`` = p0 × observed/expected) with limits widened for over-dispersion (``dispersion``).
    ``shown`` units are drawn; among them ``banded`` ones have a suppressed low-value count and are drawn as a
    tick below the axis at their volume; ``hidden`` counts the units left out because their eligible
    volume (events or persons) is suppressed (they are not drawn at all, and are named nowhere).
    """

    funnel: Funnel
    hidden: int
    outside: pd.DataFrame  # unsuppressed units outside the 95 % limits (see :func:`unit_variation`)
    units: int = 0  # units with eligible candidates, shown or not


def unit_variation(inp: Inputs, sup: Suppressor, rule_id: str, method: Method = "normal",
                   dispersion: Dispersion = "additive") -> UnitVariation:
    assert inp.units is not None
    u = inp.units[(inp.units.rule_id == rule_id) & inp.units.unit.notna()]
    u = u[u.eligible > 0].sort_values("unit").reset_index(drop=True)
    tot = inp.units[(inp.units.rule_id == rule_id) & inp.units.unit.isna()]
    p0 = float(tot.low_value.iloc[0] / tot.eligible.iloc[0]) if len(tot) and tot.eligible.iloc[0] > 0 else None
    hidden = sup.protect_total(u.eligible, sup.mask(u.eligible) | sup.mask(u.eligible_persons))
    sup_flag = sup.protect_total(u.low_value, sup.mask(u.low_value) | hidden)
    u["hidden"], u["banded"] = hidden, sup_flag & ~hidden
    f = funnel(u, events="low_value", p0=p0, method=method, dispersion=dispersion, expected="expected",
               variance="variance")
    units = f.units
    units["oe"] = units.low_value / units.expected.where(units.expected > 0)
    lo, hi = wilson(units.low_value, units.eligible)
    units["crude"], units["crude_lo"], units["crude_hi"] = units.low_value / units.eligible, lo, hi
    units.loc[units.banded | units.hidden, "position"] = "suppressed"
    shown = units[~units.hidden].reset_index(drop=True)
    outside = shown[shown.position.str.startswith(("above", "below"))][
        ["unit", "eligible", "eligible_persons", "low_value", "low_value_persons", "crude", "crude_lo", "crude_hi",
         "oe", "rate", "position"]]
    return UnitVariation(Funnel(p0=f.p0, units=shown, method=method, dispersion=f.dispersion, phi=f.phi, tau2=f.tau2,
                                standardised=f.standardised, df=f.df), int(hidden.sum()),
                         outside.sort_values("rate", ascending=False).reset_index(drop=True), len(units))
