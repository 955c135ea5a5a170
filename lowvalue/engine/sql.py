"""Compile a rule to SQL and run it on DuckDB.

The semantics are those of ``docs/rule-language.md`` and of the reference
evaluator (:mod:`lowvalue.engine.reference`); a property test checks that this
engine and the reference agree on random timelines and random rules.

Shape of the generated query, one CTE per concept::

    cand        candidates: index events of persons in the population
    m_<i>       events matching condition i for each candidate (kind, codes, window, ...)
    h_<i>       whether condition i holds per candidate, with its evidence events
    final       candidates + one boolean per condition + eligible/sensitive/specific

Everything that differs between SQL engines is in :data:`DUCKDB` (a lookup table
of small renderers, as sqlglot does), so another dialect is another table.
"""

from __future__ import annotations

from typing import Callable

import duckdb
import pandas as pd

from lowvalue.data.schema import TABLES
from lowvalue.errors import RuleError
from lowvalue.rules.codes import ICD10_FAMILY, CodeEntry, ValueSet, unit_factor
from lowvalue.rules.library import RuleSet
from lowvalue.rules.model import Criterion, Rule, ValueTest
from lowvalue.rules.windows import Window

EVIDENCE_PER_CONDITION = 3

DUCKDB: dict[str, Callable[..., str]] = {
    "day_offset": lambda ev, idx: f"date_diff('day', {idx}.day, {ev}.day)",
    "us_offset": lambda ev, idx: f"({ev}.t_us - {idx}.t_us)",
    "epoch_us": lambda col: f"epoch_us({col})",
    "starts_with": lambda col, prefix: f"starts_with({col}, {prefix})",
    "evidence_list": lambda struct, order: f"list({struct} ORDER BY {order})",
    "list_head": lambda lst, n: f"list_slice({lst}, 1, {n})",
}


def q(text: str) -> str:
    """A SQL string literal."""
    return "'" + str(text).replace("'", "''") + "'"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def prepare(con: duckdb.DuckDBPyConnection) -> None:
    """Build ``lv_ev``: events with their encounter's setting and unit, plus one pseudo-event per encounter."""
    icd = ", ".join(q(s) for s in sorted(ICD10_FAMILY))
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE lv_ev AS
        SELECT e.rowid AS ev_id, e.person_id, e.encounter_id, e.time, CAST(e.time AS DATE) AS day,
               {DUCKDB['epoch_us']('e.time')} AS t_us, e.kind, e.system, e.code,
               CASE WHEN e.system IN ({icd}) THEN replace(upper(trim(e.code)), '.', '') ELSE upper(trim(e.code)) END AS code_norm,
               e.value, e.unit, e.days_supply, e.cost, c.setting, c.unit AS care_unit
        FROM events e LEFT JOIN encounters c ON c.encounter_id = e.encounter_id
        UNION ALL
        SELECT -1 - c.rowid, c.person_id, c.encounter_id, c.start_time, CAST(c.start_time AS DATE),
               {DUCKDB['epoch_us']('c.start_time')}, 'encounter', 'setting', c.setting, upper(trim(c.setting)),
               NULL, NULL, NULL, c.cost, c.setting, c.unit
        FROM encounters c
        """
    )


def match_sql(vs: ValueSet, alias: str) -> str:
    """A predicate: the event's (system, normalised code) is in the code set."""
    parts = []
    for system in vs.systems:
        entries: tuple[CodeEntry, ...] = vs.codes[system]
        exact = sorted({e.low for e in entries if e.kind == "exact"})
        ors = []
        if exact:
            ors.append(f"{alias}.code_norm IN ({', '.join(q(c) for c in exact)})")
        for e in sorted({e for e in entries if e.kind == "prefix"}, key=lambda e: e.low):
            ors.append(DUCKDB["starts_with"](f"{alias}.code_norm", q(e.low)))
        for e in sorted({e for e in entries if e.kind == "range"}, key=lambda e: e.low):
            ors.append(f"substr({alias}.code_norm, 1, {len(e.low)}) BETWEEN {q(e.low)} AND {q(e.high)}")
        if ors:
            parts.append(f"({alias}.system = {q(system)} AND ({' OR '.join(ors)}))")
    return "(" + " OR ".join(parts) + ")" if parts else "FALSE"


def convert_sql(vs: ValueSet, value: str, unit: str) -> str:
    """``value`` (in ``unit``) on the code set's canonical scale; NULL when the unit is not convertible."""
    if vs.units is None:
        return value
    u = f"lower(trim({unit}))"
    whens = [f"WHEN {unit} IS NULL OR trim({unit}) = '' OR {u} = {q(vs.units.canonical.lower())} THEN {value}"]
    whens += [f"WHEN {u} = {q(name.lower())} THEN {value} * {float(f)!r}" for name, f in vs.units.factors.items()]
    return f"(CASE {' '.join(whens)} ELSE NULL END)"


def value_sql(vs: ValueSet, alias: str) -> str:
    """The event's value on the code set's canonical scale; NULL when not usable."""
    return convert_sql(vs, f"{alias}.value", f"{alias}.unit")


def window_sql(w: Window, ev: str, idx: str) -> str:
    if w.unit == "d":
        off, lo, hi = DUCKDB["day_offset"](ev, idx), w.start, w.end
    else:
        off, lo, hi = DUCKDB["us_offset"](ev, idx), w.start * 3_600_000_000, w.end * 3_600_000_000
    return f"{off} {'>=' if w.start_inclusive else '>'} {lo} AND {off} {'<=' if w.end_inclusive else '<'} {hi}"


def _threshold(t: ValueTest, vs: ValueSet, alias: str = "m") -> str:
    """What values are compared with, on ``vs``'s canonical scale.

    A ``threshold`` is written in ``t.unit`` (canonical when omitted) and converted like a value; ``index_ratio``
    multiplies the index event's own value, converted with the same code set so both sides share one scale.
    """
    if t.index_ratio is not None:
        return f"({float(t.index_ratio)!r} * {convert_sql(vs, f'{alias}.index_value', f'{alias}.index_unit')})"
    factor = unit_factor(t.unit, vs) if t.unit is not None else 1.0
    if factor is None:
        raise RuleError(vs.source_file or vs.name, f"threshold unit {t.unit!r} cannot be converted to code set {vs.name!r}")
    return repr(float(t.threshold) * factor)  # type: ignore[arg-type]


def _population(rule: Rule) -> list[str]:
    p, where = rule.population, []
    if p.age_min is not None:
        where.append(f"age >= {int(p.age_min)}")
    if p.age_max is not None:
        where.append(f"age <= {int(p.age_max)}")
    if p.sex:
        where.append(f"sex IN ({', '.join(q(s) for s in p.sex)})")
    return where


def _candidates(rule: Rule, rs: RuleSet) -> str:
    vs = rs.valueset(rule.index.codes)
    where = [f"e.kind = {q(rule.index.kind)}", match_sql(vs, "e")]
    if rule.index.settings:
        where.append(f"e.setting IN ({', '.join(q(s) for s in rule.index.settings)})")
    if rule.index.value is not None:
        where.append(f"{value_sql(vs, 'e')} {rule.index.value.op} {_threshold(rule.index.value, vs)}")
    age = ("year(e.day) - year(p.birth_date) - CASE WHEN month(e.day) < month(p.birth_date) OR "
           "(month(e.day) = month(p.birth_date) AND day(e.day) < day(p.birth_date)) THEN 1 ELSE 0 END")
    pop = _population(rule)
    return f"""cand AS (
  SELECT * FROM (
    SELECT e.ev_id AS cand_id, e.person_id, e.encounter_id, e.time AS index_time, e.day, e.t_us,
           e.system AS index_system, e.code AS index_code, e.value AS index_value, e.unit AS index_unit,
           e.days_supply AS index_days_supply, e.setting, e.care_unit, e.cost,
           {age} AS age, p.sex
    FROM lv_ev e JOIN persons p ON p.person_id = e.person_id
    WHERE {' AND '.join(where)}
  ) {('WHERE ' + ' AND '.join(pop)) if pop else ''}
)"""


def _evidence(name: str, role: str) -> str:
    struct = (f"{{'condition': {q(name)}, 'role': {q(role)}, 'time': strftime(m.time, '%Y-%m-%dT%H:%M:%S'), "
              f"'system': m.system, 'code': m.code, 'value': m.value, 'unit': m.unit}}")
    lst = DUCKDB["evidence_list"](struct, "m.time DESC, m.system, m.code, m.ev_id")
    return DUCKDB["list_head"](lst, EVIDENCE_PER_CONDITION)


def _criterion(i: int, name: str, role: str, crit: Criterion, rs: RuleSet) -> list[str]:
    """CTEs m_i (matching events) and h_i (holds + evidence) for one criterion."""
    vs = rs.valueset(crit.codes)
    on = ["e.person_id = c.person_id", f"e.kind = {q(crit.kind)}", match_sql(vs, "e")]
    if crit.same_encounter:
        on.append("e.encounter_id = c.encounter_id")
    ctes = []
    if crit.coverage is not None:
        lo, hi = crit.window.int_bounds()
        off = DUCKDB["day_offset"]("e", "c")
        supply = "greatest(coalesce(e.days_supply, 1), 1)"
        ctes.append(f"""m_{i} AS (
  SELECT c.cand_id, e.ev_id, e.time, e.system, e.code, e.value, e.unit,
         range(greatest({off}, {lo}), least({off} + {supply} - 1, {hi}) + 1) AS days
  FROM cand c JOIN lv_ev e ON {' AND '.join(on)}
  WHERE {off} <= {hi} AND {off} + {supply} - 1 >= {lo}
)""")
        ctes.append(f"""h_{i} AS (
  SELECT m.cand_id, length(list_distinct(flatten(list(m.days)))) >= {crit.coverage.min_days} AS holds,
         {_evidence(name, role)} AS evidence
  FROM m_{i} m GROUP BY m.cand_id
)""")
        return ctes
    where = [window_sql(crit.window, "e", "c")]
    join_first = ""
    if crit.first_in is not None:
        n = crit.first_in.amount
        ctes.append(f"""f_{i} AS (
  SELECT person_id, day,
         lag(day) OVER (PARTITION BY person_id ORDER BY day) IS NULL
         OR date_diff('day', lag(day) OVER (PARTITION BY person_id ORDER BY day), day) > {n} AS first_ok
  FROM (SELECT DISTINCT e.person_id, e.day FROM lv_ev e WHERE e.kind = {q(crit.kind)} AND {match_sql(vs, 'e')})
)""")
        join_first = f" JOIN f_{i} f ON f.person_id = e.person_id AND f.day = e.day AND f.first_ok"
    ctes.append(f"""m_{i} AS (
  SELECT c.cand_id, c.index_value, c.index_unit, e.ev_id, e.time, e.system, e.code, e.value, e.unit, {value_sql(vs, 'e')} AS v
  FROM cand c JOIN lv_ev e ON {' AND '.join(on)}{join_first}
  WHERE {' AND '.join(where)}
)""")
    t = crit.value
    if t is None:
        ctes.append(f"""h_{i} AS (
  SELECT m.cand_id, count(*) >= {crit.at_least} AS holds, {_evidence(name, role)} AS evidence
  FROM m_{i} m GROUP BY m.cand_id
)""")
    elif t.of == "any":
        thr = _threshold(t, vs)
        ctes.append(f"""h_{i} AS (
  SELECT m.cand_id, count(*) >= {crit.at_least} AS holds, {_evidence(name, role)} AS evidence
  FROM m_{i} m WHERE m.v IS NOT NULL AND m.v {t.op} {thr} GROUP BY m.cand_id
)""")
    else:
        thr = _threshold(t, vs)
        ctes.append(f"""h_{i} AS (
  SELECT m.cand_id, coalesce(bool_or(m.v {t.op} {thr}), false) AS holds, {_evidence(name, role)} AS evidence
  FROM (SELECT *, max(time) OVER (PARTITION BY cand_id) AS t_last FROM m_{i} WHERE v IS NOT NULL) m
  WHERE m.time = m.t_last GROUP BY m.cand_id
)""")
    return ctes


def compile_rule(rule: Rule, rs: RuleSet) -> str:
    """The SQL that judges every candidate of ``rule``: one row per candidate."""
    ctes = [_candidates(rule, rs)]
    cols, joins, evid = [], [], []
    for i, (name, cond) in enumerate(rule.conditions.items()):
        col = ident(f"cond__{name}")
        if cond.index_setting is not None:
            cols.append(f"coalesce(c.setting IN ({', '.join(q(s) for s in cond.index_setting)}), false) AS {col}")
            continue
        crit = cond.criterion
        assert crit is not None
        ctes += _criterion(i, name, cond.role, crit, rs)
        joins.append(f"LEFT JOIN h_{i} ON h_{i}.cand_id = c.cand_id")
        holds = f"coalesce(h_{i}.holds, false)"
        cols.append(f"{'NOT ' if cond.role == 'exclude' else ''}{holds} AS {col}")
        evid.append(f"coalesce(h_{i}.evidence, [])")

    def tier(names: list[str]) -> str:
        return " AND ".join(ident(f"cond__{n}") for n in names) or "TRUE"

    evidence = "[]" if not evid else (evid[0] if len(evid) == 1 else "flatten([" + ", ".join(evid) + "])")
    body = f"""SELECT c.cand_id, c.person_id, c.encounter_id, c.index_time, c.index_system, c.index_code,
       c.index_value, c.index_unit, c.index_days_supply, c.setting, c.care_unit AS unit, c.cost, c.age, c.sex,
       {', '.join(cols + [f'{evidence} AS evidence']) if cols else f'{evidence} AS evidence'}
FROM cand c {' '.join(joins)}"""
    key = ("concat_ws('|', person_id, coalesce(encounter_id, ''), strftime(index_time, '%Y-%m-%dT%H:%M:%S.%f'), "
           "index_system, index_code, coalesce(CAST(index_value AS VARCHAR), ''), coalesce(index_unit, ''), "
           "coalesce(CAST(index_days_supply AS VARCHAR), ''))")
    return f"""WITH {', '.join(ctes)},
judged AS ({body})
SELECT substr(md5({q(rule.id)} || '|' || {key}), 1, 16) AS candidate_id, *, {tier(rule.conditions_of('eligibility'))} AS eligible,
       {tier(rule.conditions_of('sensitive'))} AS sensitive,
       {tier(rule.conditions_of('specific'))} AS specific
FROM judged
ORDER BY person_id, index_time, index_system, index_code, encounter_id, index_value, cand_id"""


def evaluate(con: duckdb.DuckDBPyConnection, rule: Rule, rs: RuleSet) -> pd.DataFrame:
    """Judge every candidate of ``rule`` on the extract in ``con`` (after :func:`prepare`)."""
    return con.execute(compile_rule(rule, rs)).df()


def load_frames(con: duckdb.DuckDBPyConnection, persons: pd.DataFrame, encounters: pd.DataFrame,
                events: pd.DataFrame) -> None:
    """Create the canonical tables in ``con`` from pandas frames (for tests and small data; no validation)."""
    for name, df in (("persons", persons), ("encounters", encounters), ("events", events)):
        con.register(f"_lv_{name}", df)
        cols = [
            (f"CAST({ident(f.name)} AS {DUCKDB_TYPES[str(f.type)]})" if f.name in df.columns
             else f"CAST(NULL AS {DUCKDB_TYPES[str(f.type)]})") + f" AS {ident(f.name)}"
            for f in TABLES[name].schema
        ]
        con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT {', '.join(cols)} FROM _lv_{name}")
        con.unregister(f"_lv_{name}")


DUCKDB_TYPES = {"string": "VARCHAR", "date32[day]": "DATE", "timestamp[us]": "TIMESTAMP", "double": "DOUBLE",
                "int32": "INTEGER"}


CANDIDATE_KEY = ["person_id", "encounter_id", "index_time", "index_system", "index_code", "index_value", "index_unit",
                 "index_days_supply"]


def evaluate_frames(persons: pd.DataFrame, encounters: pd.DataFrame, events: pd.DataFrame, rule: Rule,
                    rs: RuleSet) -> pd.DataFrame:
    """Evaluate one rule on pandas frames; same columns and order as the reference evaluator."""
    con = duckdb.connect()
    try:
        load_frames(con, persons, encounters, events)
        prepare(con)
        df = evaluate(con, rule, rs)
    finally:
        con.close()
    conds = [f"cond__{n}" for n in rule.conditions]
    return df[CANDIDATE_KEY + ["eligible", "sensitive", "specific"] + conds].reset_index(drop=True)
