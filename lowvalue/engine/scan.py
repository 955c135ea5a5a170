"""Run a rule set over an extract: flags, candidates, denominators, waterfall, triggers, manifest.

This is the one place that turns per-rule candidate tables into the scan's
outputs, so the CLI, the Python API and the tests all see the same thing.
Output rows are sorted on content, never on arrival order, so the same input
and rules give byte-identical Parquet files.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import duckdb
import pandas as pd

from lowvalue import __version__
from lowvalue.engine import sql
from lowvalue.engine.coverage import Coverage
from lowvalue.engine.evaluability import check as check_evaluable
from lowvalue.errors import LowvalueError
from lowvalue.rules.library import RuleSet, load_library
from lowvalue.rules.model import Rule

TIERS = {"specific": "low value", "sensitive": "likely low value"}

FLAG_COLUMNS = ["flag_id", "rule_id", "variant", "tier", "person_id", "encounter_id", "index_time", "unit", "setting",
                "index_system", "index_code", "cost", "evidence"]
CANDIDATE_COLUMNS = ["candidate_id", "rule_id", "person_id", "encounter_id", "index_time", "unit", "setting",
                     "index_system", "index_code", "age", "sex", "eligible", "sensitive", "specific", "first_failed"]
EMPTY_TYPES = {"index_time": "datetime64[us]", "time": "datetime64[us]", "eligible": bool, "sensitive": bool,
               "specific": bool, "age": "int64", "cost": "float64"}
"""Column types of an empty table, as a table with rows has them (so readers and SQL see the same schema)."""
TRIGGER_COLUMNS = ["trigger_event_id", "trigger_id", "variant", "person_id", "encounter_id", "time", "unit", "setting",
                   "system", "code", "evidence"]


@dataclass
class ScanResult:
    """The tables a scan produces, as pandas DataFrames, plus its manifest."""

    flags: pd.DataFrame
    candidates: pd.DataFrame
    denominators: pd.DataFrame
    waterfall: pd.DataFrame
    triggers: pd.DataFrame
    evaluability: pd.DataFrame
    features: pd.DataFrame = field(default_factory=pd.DataFrame)
    codeset_coverage: pd.DataFrame = field(default_factory=pd.DataFrame)
    orphan_codes: pd.DataFrame = field(default_factory=pd.DataFrame)
    manifest: dict[str, Any] = field(default_factory=dict)
    rules: RuleSet | None = None

    TABLES = ("flags", "candidates", "denominators", "waterfall", "triggers", "evaluability", "features",
              "codeset_coverage", "orphan_codes")

    def write(self, out: Path | str) -> Path:
        """Write the results folder ``out`` whole (:func:`lowvalue.results.writing`): it replaces an earlier one."""
        from lowvalue.results import writing

        with writing(out) as tmp:
            self.write_into(tmp)
        return Path(out)

    def write_into(self, folder: Path) -> Path:
        """Every table as Parquet, the code overlay the scan used, and last the manifest that says it is complete."""
        from lowvalue.results import MANIFEST, write_table, write_text

        folder.mkdir(parents=True, exist_ok=True)
        for name in self.TABLES:
            write_table(getattr(self, name), folder / f"{name}.parquet")
        if self.rules is not None and self.rules.overlay is not None:
            from lowvalue.rules.overlay import snapshot

            snapshot(self.rules.overlay, folder)
        manifest = {**self.manifest, "tables": list(self.TABLES), "complete": True}
        write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n", folder / MANIFEST)
        return folder

    def pseudonymised(self, key: bytes) -> "ScanResult":
        """A copy whose person, encounter, flag and candidate ids are keyed hashes (see :mod:`lowvalue.privacy`)."""
        from lowvalue.privacy import pseudonymise

        tables = {name: pseudonymise(getattr(self, name), key) for name in self.TABLES}
        manifest = {**self.manifest, "pseudonymised": "HMAC-SHA256 of ids with a secret key (lowvalue.privacy)"}
        return ScanResult(**tables, manifest=manifest, rules=self.rules)

    def summary(self) -> pd.DataFrame:
        """One row per rule: evaluability, candidates, eligible, flags by tier; triggers: events found."""
        rows = []
        for rid, ev in self.evaluability.set_index("rule_id").iterrows():
            if ev["type"] == "trigger":
                rows.append({"rule_id": rid, "status": ev["status"], "candidates": None, "eligible": None,
                             "low_value": None, "likely_low_value": None,
                             "trigger_events": int((self.triggers.trigger_id == rid).sum())})
                continue
            c = self.candidates[self.candidates.rule_id == rid]
            f = self.flags[self.flags.rule_id == rid]
            rows.append({"rule_id": rid, "status": ev["status"], "candidates": len(c), "eligible": int(c.eligible.sum()),
                         "low_value": int((f.variant == "specific").sum()),
                         "likely_low_value": int((f.variant == "sensitive").sum()), "trigger_events": None})
        return pd.DataFrame(rows).astype({k: "Int64" for k in ("candidates", "eligible", "low_value",
                                                                "likely_low_value", "trigger_events")})


def _first_failed(df: pd.DataFrame, rule: Rule) -> pd.Series:
    order = rule.conditions_of("specific")
    out = pd.Series([None] * len(df), index=df.index, dtype=object)
    for name in reversed(order):
        out = out.where(df[f"cond__{name}"].astype(bool), name)
    return out


def _waterfall(df: pd.DataFrame, rule: Rule) -> list[dict[str, Any]]:
    rows = [{"rule_id": rule.id, "step": 0, "stage": "candidates", "condition": None, "remaining": len(df)}]
    mask = pd.Series(True, index=df.index)
    for stage, names in (("eligibility", rule.conditions_of("eligibility")),
                         ("specific", [n for n in rule.conditions_of("specific") if n not in rule.eligibility])):
        for name in names:
            mask &= df[f"cond__{name}"].astype(bool)
            rows.append({"rule_id": rule.id, "step": len(rows), "stage": stage, "condition": name,
                         "remaining": int(mask.sum())})
    rows.append({"rule_id": rule.id, "step": len(rows), "stage": "flagged", "condition": None,
                 "remaining": int((df.sensitive | df.specific).sum()) if len(df) else 0})
    return rows


def _flags(df: pd.DataFrame, rule: Rule) -> pd.DataFrame:
    f = df[df.sensitive | df.specific].copy()
    f["rule_id"] = rule.id
    f["flag_id"] = f["candidate_id"]
    f["variant"] = f["specific"].map({True: "specific", False: "sensitive"})
    f["tier"] = f["variant"].map(TIERS)
    if rule.cost is not None:
        f["cost"] = f["cost"].fillna(rule.cost.amount)
    f["evidence"] = [json.dumps(list(e), ensure_ascii=False, default=str) for e in f["evidence"]]
    return f


def _denominators(con: duckdb.DuckDBPyConnection, candidates: pd.DataFrame) -> pd.DataFrame:
    con.register("_lv_cands", candidates)
    try:
        return con.execute("""
            SELECT rule_id, unit, strftime(index_time, '%Y-%m') AS month,
                   count(*) AS candidates, count(*) FILTER (WHERE eligible) AS eligible,
                   count(DISTINCT person_id) FILTER (WHERE eligible) AS eligible_persons,
                   count(*) FILTER (WHERE sensitive OR specific) AS flagged,
                   count(*) FILTER (WHERE specific) AS flagged_specific
            FROM _lv_cands GROUP BY GROUPING SETS ((rule_id), (rule_id, unit), (rule_id, unit, month))
            ORDER BY rule_id, unit NULLS FIRST, month NULLS FIRST
        """).df()
    finally:
        con.unregister("_lv_cands")


def _period(con: duckdb.DuckDBPyConnection) -> dict[str, str | None]:
    """First and last time in the validated extract: where follow-up ends, for the risk layer (never re-read later)."""
    lo, hi = con.execute("""SELECT min(t), max(t) FROM (SELECT time AS t FROM events UNION ALL
                            SELECT start_time FROM encounters UNION ALL SELECT end_time FROM encounters)""").fetchone()
    return {"start": lo.isoformat() if lo else None, "end": hi.isoformat() if hi else None}


def _versions(engine: str = "duckdb") -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "lowvalue": __version__}
    for pkg in ("duckdb", "pandas", "pyarrow", "pydantic") + (("pyspark",) if engine == "spark" else ()):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:  # pragma: no cover
            pass
    return out


Judge = Callable[[Any, list[Rule], RuleSet, Callable[[str, float], None]], dict[str, pd.DataFrame]]
"""``judge(extract, rules, rule_set, done)`` → judged candidates per rule id; calls ``done(rule_id, seconds)`` per rule."""


def _judge_duckdb(extract: Any, rules: list[Rule], rs: RuleSet, done: Callable[[str, float], None]
                  ) -> dict[str, pd.DataFrame]:
    out = {}
    for rule in rules:
        t0 = time.perf_counter()
        out[rule.id] = sql.evaluate(extract.con, rule, rs)
        done(rule.id, time.perf_counter() - t0)
    return out


def _judge_spark(extract: Any, rules: list[Rule], rs: RuleSet, done: Callable[[str, float], None]
                 ) -> dict[str, pd.DataFrame]:
    from lowvalue.engine import spark

    return spark.judge(extract, rules, rs, done)


ENGINES: dict[str, Judge] = {"duckdb": _judge_duckdb, "spark": _judge_spark}
"""Where the rules run. Everything else of a scan (evaluability, denominators, features) runs on the extract's DuckDB."""


def scan(
    data: Any,
    rules: RuleSet | Path | str | None = None,
    *,
    codes: Path | str | None = None,
    only: list[str] | None = None,
    quarantine_dir: Path | None = None,
    extract_end: Any = None,
    progress: Any = None,
    features: bool = True,
    engine: str = "duckdb",
    memory_limit: str | None = None,
) -> ScanResult:
    """Scan an extract (folder, mapping of DataFrames, or an opened :class:`~lowvalue.data.extract.Extract`).

    ``rules`` is a loaded :class:`RuleSet`, a library folder, or None for the
    shipped library; ``codes`` a region's code overlay folder (:mod:`lowvalue.rules.overlay`),
    applied to it; ``only`` picks rule ids. ``progress`` is an optional
    callable ``progress(rule_id, seconds)`` called after each rule. With
    ``features`` the pre-index features of every candidate are computed too
    (:mod:`lowvalue.risk.features`) for the eligible ones, which the risk layer compares.
    ``engine`` (a key of :data:`ENGINES`) is where the rules are judged; the outputs are the same.
    ``extract_end`` (a date) is the last day the extract covers: later dates are quarantined as implausible.
    """
    from lowvalue.data.extract import Extract, open_extract

    if engine not in ENGINES:
        raise LowvalueError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    from lowvalue.rules.overlay import apply_overlay, load_overlay

    rs = rules if isinstance(rules, RuleSet) else load_library(rules)
    rs = (apply_overlay(rs, load_overlay(codes)) if codes else rs).select(only)
    extract = (data if isinstance(data, Extract)
               else open_extract(data, quarantine_dir=quarantine_dir, extract_end=extract_end, memory_limit=memory_limit))
    con = extract.con
    sql.prepare(con)

    started = time.perf_counter()
    ordered = sorted(rs.rules.values(), key=lambda r: (r.type != "trigger", r.id))
    cov = Coverage.of(con, rs)
    settings = {r[0] for r in con.execute("SELECT DISTINCT setting FROM encounters").fetchall()}
    evaluable = [{"rule_id": r.id, "type": r.type, **check_evaluable(cov, r, settings)} for r in ordered]
    runnable = [r for r, v in zip(ordered, evaluable) if v["status"] != "not_evaluable"]
    timing: dict[str, float] = {}

    def done(rule_id: str, seconds: float) -> None:
        timing[rule_id] = round(seconds, 3)
        if progress:
            progress(rule_id, timing[rule_id])

    judged = ENGINES[engine](extract, runnable, rs, done)
    cand_parts, flag_parts, trig_parts, fall = [], [], [], []
    for rule in runnable:
        df = judged[rule.id]
        if rule.type == "trigger":
            t = _flags(df, rule).rename(columns={"rule_id": "trigger_id", "flag_id": "trigger_event_id",
                                                 "index_time": "time", "index_system": "system", "index_code": "code"})
            trig_parts.append(t[TRIGGER_COLUMNS])
            continue
        df["rule_id"] = rule.id
        df["first_failed"] = _first_failed(df, rule)
        cand_parts.append(df[CANDIDATE_COLUMNS])
        flag_parts.append(_flags(df, rule)[FLAG_COLUMNS])
        fall += _waterfall(df, rule)

    def cat(parts: list[pd.DataFrame], cols: list[str], sort: list[str]) -> pd.DataFrame:
        parts = [p for p in parts if len(p)]
        df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
            {c: pd.Series([], dtype=EMPTY_TYPES.get(c, object)) for c in cols})  # well-formed when nothing is found
        return df[cols].sort_values(sort, kind="mergesort").reset_index(drop=True)

    candidates = cat(cand_parts, CANDIDATE_COLUMNS, ["rule_id", "person_id", "index_time", "candidate_id"])
    flags = cat(flag_parts, FLAG_COLUMNS, ["rule_id", "person_id", "index_time", "flag_id"])
    triggers = cat(trig_parts, TRIGGER_COLUMNS, ["trigger_id", "person_id", "time", "trigger_event_id"])
    result = ScanResult(
        flags=flags,
        candidates=candidates,
        denominators=_denominators(con, candidates),
        waterfall=pd.DataFrame(fall, columns=["rule_id", "step", "stage", "condition", "remaining"]),
        triggers=triggers,
        evaluability=pd.DataFrame(evaluable),
        codeset_coverage=cov.table(ordered),
        orphan_codes=cov.orphans(ordered),
        rules=rs,
    )
    if features and len(candidates):
        from lowvalue.risk.features import compute

        t0 = time.perf_counter()
        result.features = compute(con, candidates[candidates.eligible], triggers, rs)
        timing["(features)"] = round(time.perf_counter() - t0, 3)
    result.manifest = {
        "lowvalue_version": __version__,
        "engine": engine,
        "rule_set": {"digest": rs.digest, "rules": {r.id: str(r.version) for r in rs.rules.values()},
                     "codes_overlay": rs.overlay.manifest() if rs.overlay is not None else None},
        "data": {"fingerprint": extract.fingerprint, "sources": extract.sources, "period": _period(con),
                 "counts": {k: vars(v) for k, v in extract.counts.items()},
                 "warnings": list(getattr(extract, "warnings", []))},
        "versions": _versions(engine),
        "timing_seconds": {"total": round(time.perf_counter() - started, 3), "per_rule": timing},
        "rows": {name: len(getattr(result, name)) for name in ScanResult.TABLES},
    }
    return result
