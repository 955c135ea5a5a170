"""From judged candidates to the scan's output rows, in any SQL dialect: candidates, flags, triggers, the
waterfall's counts and the denominators.

A compiled rule (:func:`lowvalue.engine.sql.compile_rule`) has one boolean column per condition, so two rules'
judged rows have different columns. :func:`rows_sql` turns them into one shape shared by every rule (rule id,
whether it is a trigger, tier, the first failed specific condition, cost with the rule's default, how many
waterfall steps the candidate passes, evidence), which

* lets an engine judge many rules in one query (a ``UNION ALL`` of :func:`rows_sql`; Spark plans a query in
  about a second, so one plan for all rules instead of one per rule is what makes a Spark scan affordable), and
* makes every output table one SELECT over that shape (:func:`candidates_sql`, :func:`flags_sql`,
  :func:`triggers_sql`, :func:`step_counts_sql`, :func:`denominators_sql`), the same text on every engine up to
  the dialect table (``d``: :data:`~lowvalue.engine.sql.DUCKDB` or :data:`~lowvalue.engine.sql.SPARK`).
"""

from __future__ import annotations

from typing import Iterable

import pandas as pd

from lowvalue.engine.sql import DUCKDB, Dialect
from lowvalue.rules.model import Rule

TIERS = {"specific": "low value", "sensitive": "likely low value"}

FLAG_COLUMNS = ["flag_id", "rule_id", "variant", "tier", "person_id", "encounter_id", "index_time", "unit",
                "listing_unit", "setting", "index_system", "index_code", "cost", "evidence"]
CANDIDATE_COLUMNS = ["candidate_id", "rule_id", "person_id", "encounter_id", "index_time", "unit", "listing_unit",
                     "setting", "index_system", "index_code", "age", "sex", "eligible", "sensitive", "specific",
                     "first_failed"]
"""``unit`` is the index encounter's (the unit that performed or prescribed), ``listing_unit`` the person's
(``persons.listing_unit``, NULL when the extract has none): the report attributes to either (``--attribution``)."""
TRIGGER_COLUMNS = ["trigger_event_id", "trigger_id", "variant", "person_id", "encounter_id", "time", "unit", "setting",
                   "system", "code", "evidence"]
TYPES = {"index_time": "TIMESTAMP", "time": "TIMESTAMP", "eligible": "BOOLEAN", "sensitive": "BOOLEAN",
         "specific": "BOOLEAN", "age": "BIGINT", "cost": "DOUBLE"}
"""Column types of the engine-held output tables (VARCHAR unless listed): an empty table has them too."""
ORDER = {"candidates": ["rule_id", "person_id", "index_time", "candidate_id"],
         "flags": ["rule_id", "person_id", "index_time", "flag_id"],
         "triggers": ["trigger_id", "person_id", "time", "trigger_event_id"],
         "features": ["rule_id", "candidate_id"]}
"""File order of the large output tables: on content only, so the files do not depend on the engine or on the
person partitions."""


def steps(rule: Rule) -> list[tuple[str, str | None]]:
    """The waterfall's steps: all candidates, then each eligibility condition, then each specific-only one."""
    return [("candidates", None)] + [("eligibility", n) for n in rule.conditions_of("eligibility")] + [
        ("specific", n) for n in rule.conditions_of("specific") if n not in rule.eligibility]


def rows_sql(rule: Rule, judged: str, d: Dialect = DUCKDB) -> str:
    """SELECT the judged candidates of ``rule`` (the relation ``judged``: compile_rule's rows) in the shape every
    rule shares (see the module docstring). ``steps`` is how many of the waterfall's condition steps the candidate
    passes in order (the waterfall counts the candidates with ``steps >= i``)."""
    q, ident = d["str"], d["ident"]
    cond = lambda name: ident(f"cond__{name}")  # noqa: E731
    text = d["type"]("string")
    trigger = rule.type == "trigger"
    failed = " ".join(f"WHEN NOT {cond(n)} THEN {q(n)}" for n in rule.conditions_of("specific"))
    names = [n for _, n in steps(rule)[1:]]
    passed = (f"CASE {' '.join(f'WHEN NOT {cond(n)} THEN {i}' for i, n in enumerate(names))} ELSE {len(names)} END"
              if names and not trigger else str(len(names)))
    cost = f"coalesce(cost, {d['number'](rule.cost.amount)})" if rule.cost is not None and not trigger else "cost"
    return f"""SELECT candidate_id, {q(rule.id)} AS rule_id, {'TRUE' if trigger else 'FALSE'} AS is_trigger,
       CASE WHEN specific THEN {q('specific')} ELSE {q('sensitive')} END AS variant,
       person_id, encounter_id, index_time, unit, listing_unit, setting, index_system, index_code,
       CAST(age AS BIGINT) AS age, sex,
       eligible, sensitive, specific,
       {f'CASE {failed} END' if failed and not trigger else f'CAST(NULL AS {text})'} AS first_failed,
       CAST({cost} AS DOUBLE) AS cost, CAST({passed} AS INTEGER) AS steps, evidence
FROM {judged} j"""


def batch_sql(parts: Iterable[str]) -> str:
    """One query over several rules' :func:`rows_sql`."""
    return "\nUNION ALL\n".join(f"SELECT * FROM ({p}) r{i}" for i, p in enumerate(parts))


def evidence_json(col: str, d: Dialect = DUCKDB) -> str:
    """SQL rendering a list of evidence structs as the JSON text ``json.dumps(list, ensure_ascii=False)`` gives
    (key order, ``", "``/``": "`` separators, a double as Python's ``repr``): one line a reviewer can read, the
    same bytes on every engine."""
    def s(field: str) -> str:
        return f"coalesce({d['json_value'](f'x.{field}')}, 'null')"

    obj = (f"""'{{"condition": ' || {s('condition')} || ', "role": ' || {s('role')} || ', "time": ' || {s('time')} """
           f"""|| ', "system": ' || {s('system')} || ', "code": ' || {s('code')} """
           f"""|| ', "value": ' || coalesce({d['text']('x.value', 'double')}, 'null') || ', "unit": ' || {s('unit')} """
           f"""|| '}}'""")
    return f"'[' || {d['list_join'](d['list_map'](col, 'x', obj), repr(', '))} || ']'"


def candidates_sql(rows: str, d: Dialect = DUCKDB) -> str:
    """The ``candidates`` rows (:data:`CANDIDATE_COLUMNS`) of the relation ``rows`` (:func:`rows_sql`)."""
    return f"SELECT {', '.join(CANDIDATE_COLUMNS)} FROM {rows} WHERE NOT is_trigger"


def flags_sql(rows: str, d: Dialect = DUCKDB) -> str:
    """The ``flags`` rows (:data:`FLAG_COLUMNS`): flagged candidates of the rules, with their evidence as JSON."""
    q = d["str"]
    return f"""SELECT candidate_id AS flag_id, rule_id, variant,
       CASE WHEN specific THEN {q(TIERS['specific'])} ELSE {q(TIERS['sensitive'])} END AS tier,
       person_id, encounter_id, index_time, unit, listing_unit, setting, index_system, index_code, cost,
       {evidence_json('evidence', d)} AS evidence
FROM {rows} WHERE NOT is_trigger AND (sensitive OR specific)"""


def triggers_sql(rows: str, d: Dialect = DUCKDB) -> str:
    """The ``triggers`` rows (:data:`TRIGGER_COLUMNS`): the events that set off a trigger rule."""
    return f"""SELECT candidate_id AS trigger_event_id, rule_id AS trigger_id, variant, person_id, encounter_id,
       index_time AS time, unit, setting, index_system AS system, index_code AS code,
       {evidence_json('evidence', d)} AS evidence
FROM {rows} WHERE is_trigger AND (sensitive OR specific)"""


def step_counts_sql(rows: str) -> str:
    """Per rule and number of steps passed: candidates and flagged ones (a few rows per rule, for the waterfall)."""
    return f"""SELECT rule_id, steps, count(*) AS n, count(CASE WHEN sensitive OR specific THEN 1 END) AS flagged
FROM {rows} WHERE NOT is_trigger GROUP BY rule_id, steps"""


def step_counts(rule: Rule, counts: Iterable[tuple[int, int, int]]) -> list[int]:
    """The waterfall's ``remaining`` of ``rule`` from :func:`step_counts_sql` rows ``(steps, n, flagged)``: after
    each step, the candidates that passed at least that many; last, the flagged ones."""
    by = list(counts)
    return [sum(n for k, n, _ in by if k >= i) for i in range(len(steps(rule)))] + [sum(f for *_, f in by)]


def waterfall(rules: list[Rule], counts: dict[str, list[int]]) -> pd.DataFrame:
    """``waterfall``: per rule (not triggers) and step, how many candidates remain (see :func:`steps`)."""
    out = []
    for rule in rules:
        if rule.type == "trigger":
            continue
        named, n = steps(rule) + [("flagged", None)], counts.get(rule.id) or [0] * (len(steps(rule)) + 1)
        out += [{"rule_id": rule.id, "step": i, "stage": stage, "condition": name, "remaining": int(k)}
                for i, ((stage, name), k) in enumerate(zip(named, n))]
    return pd.DataFrame(out, columns=["rule_id", "step", "stage", "condition", "remaining"])


def denominators_sql(candidates: str, d: Dialect = DUCKDB) -> str:
    """``denominators``: candidates, eligible, eligible persons and flags per rule, rule and unit, and rule, unit
    and month.

    The candidates are counted once per (rule, unit, month) and the three levels summed from those counts; only the
    eligible candidates' persons (a few per cent of the rows: LV-PRE-015 makes millions of candidates, 0.4 % of them
    eligible) go on to the distinct count. Grouping every candidate three times with a distinct count took 2.4 s
    of a 1 000 000-person scan; the result is the same."""
    month = d["strftime"]("index_time", "%Y-%m")
    counts = ("candidates", "eligible", "flagged", "flagged_specific")
    return f"""
        WITH g AS (
          SELECT rule_id, unit, {month} AS month, count(*) AS candidates, count(*) FILTER (WHERE eligible) AS eligible,
                 count(*) FILTER (WHERE sensitive OR specific) AS flagged,
                 count(*) FILTER (WHERE specific) AS flagged_specific, CAST(NULL AS {d['type']('string')}) AS person_id
          FROM {candidates} GROUP BY rule_id, unit, {month}
          UNION ALL
          SELECT DISTINCT rule_id, unit, {month}, 0, 0, 0, 0, person_id FROM {candidates} WHERE eligible)
        SELECT rule_id, unit, month, {', '.join(f'CAST(sum({c}) AS BIGINT) AS {c}' for c in counts[:2])},
               count(DISTINCT person_id) AS eligible_persons,
               {', '.join(f'CAST(sum({c}) AS BIGINT) AS {c}' for c in counts[2:])}
        FROM g GROUP BY GROUPING SETS ((rule_id), (rule_id, unit), (rule_id, unit, month))
        ORDER BY rule_id, unit NULLS FIRST, month NULLS FIRST"""


def ordered(table: str, name: str, d: Dialect = DUCKDB) -> str:
    """SELECT every row of ``table`` in the file order of output ``name`` (:data:`ORDER`)."""
    return f"SELECT * FROM {table} ORDER BY {d['order_by'](ORDER[name])}"
