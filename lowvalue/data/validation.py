"""Type, check and split each table into accepted rows and quarantined rows, all in DuckDB SQL.

For each table, in the order persons, encounters, events (children are checked
against the *accepted* parents):

1. **stage**: every source row with its ``source_row``, each canonical column
   parsed to its canonical type, and the row-level problems (types, missing
   values, allowed values, impossible values within the row);
2. **problems**: the rows with at least one problem, row-level or across rows
   (duplicates, referential integrity, dates outside the person's life), with
   all their reason codes separated by ``;`` and a readable reason text;
3. the accepted table (canonical columns, names, order and types, source order)
   and the quarantine (``source_row``, ``reason_code``, ``reason``, then the
   source's columns exactly as read).

Reason codes (stable, snake_case; ``:col`` names the column):

=================================  ==============================================================
``missing:<col>``                  a value the schema marks non-nullable is empty
``bad_date:<col>``                 not a date (``2025-03-01``, ``20250301``, ``2025/03/01``)
``bad_timestamp:<col>``            not a timestamp (see :func:`timestamp_sql`)
``non_numeric:<col>``              not a (finite) number; for integer columns not a whole number
``unknown_sex``                    sex not F/M/U (K, kvinna, female, male, man, unknown, okänd accepted)
``unknown_setting``                setting not one of ``schema.SETTINGS``
``unknown_kind``                   kind not one of ``schema.EVENT_KINDS``
``negative_cost``                  cost < 0
``days_supply_out_of_range``       days_supply < 0 or > 3650
``unknown_present_on_admission``   present_on_admission not Y/N/U/W (yes/no/ja/nej accepted)
``end_before_start``               encounter end_time < start_time
``death_before_birth``             person death_date < birth_date
``duplicate_key``                  a person/encounter whose key an earlier source row already has
``duplicate_row``                  an event equal in every column to an earlier one
``unknown_person``                 person_id not among the accepted persons
``unknown_encounter``              encounter_id given but not among the accepted encounters
``encounter_of_other_person``      the event's encounter belongs to another person
``before_birth``                   encounter start / event time on a date before the birth date
``after_death``                    encounter start / event time on a date after the death date
=================================  ==============================================================

Which columns must be present in the source comes from ``Table.required``
(checked by the readers); which *values* must be non-empty comes from the Arrow
field's ``nullable`` flag.

Duplicate keys are decided over all source rows with a key, valid or not (the
first row by ``source_row`` is the one kept, so a later valid row never replaces
an earlier invalid one); exact duplicate events are decided among the events
without row-level problems (a duplicate of an invalid event has the same problem
anyway).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from lowvalue.data.readers import RawTable, quote_ident, quote_literal
from lowvalue.data.schema import EVENT_KINDS, SETTINGS, Table

IDENTIFIERS = ("person_id", "encounter_id")
"""Columns whose values never appear in reason texts, logs or summaries."""

REASON_CODES: dict[str, str] = {
    "missing:<col>": "a required value is empty",
    "bad_date:<col>": "not a date",
    "bad_timestamp:<col>": "not a timestamp",
    "non_numeric:<col>": "not a number",
    "unknown_sex": "sex not F/M/U",
    "unknown_setting": "setting not in SETTINGS",
    "unknown_kind": "kind not in EVENT_KINDS",
    "negative_cost": "negative cost",
    "days_supply_out_of_range": "days_supply negative or above 3650",
    "unknown_present_on_admission": "present_on_admission not Y/N/U/W",
    "end_before_start": "end_time before start_time",
    "death_before_birth": "death_date before birth_date",
    "duplicate_key": "key already used by an earlier row",
    "duplicate_row": "exact duplicate of an earlier event",
    "unknown_person": "person not among the accepted persons",
    "unknown_encounter": "encounter not among the accepted encounters",
    "encounter_of_other_person": "encounter belongs to another person",
    "before_birth": "dated before the person's birth",
    "after_death": "dated after the person's death",
}

MAX_DAYS_SUPPLY = 3650

_SEX_F = ("F", "K", "KVINNA", "FEMALE", "WOMAN")
_SEX_M = ("M", "MAN", "MALE")
_SEX_U = ("U", "UNKNOWN", "OKÄND", "OKAND")


@dataclass
class Outcome:
    """What validation did to one table."""

    read: int
    accepted: int
    quarantined: int
    reasons: dict[str, int]
    quarantine_file: Path | None


# --------------------------------------------------------------------------- parsing (SQL builders)


def _in(values) -> str:
    return "(" + ", ".join(quote_literal(v) for v in values) + ")"


def number_sql(s: str) -> str:
    """DOUBLE from text: ``12.5``, ``12,5`` (decimal comma), ``1 234,5`` (space/NBSP thousands); finite only."""
    compact = f"regexp_replace({s}, '[ \u00a0\u202f'']', '', 'g')"
    comma = (
        f"CASE WHEN strpos({compact}, '.') = 0 AND length({compact}) - length(replace({compact}, ',', '')) = 1 "
        f"THEN replace({compact}, ',', '.') ELSE {compact} END"
    )
    parsed = f"COALESCE(TRY_CAST({s} AS DOUBLE), TRY_CAST({comma} AS DOUBLE))"
    return f"(CASE WHEN isfinite({parsed}) THEN {parsed} END)"


def date_sql(s: str) -> str:
    """DATE from text: ISO ``2025-03-01`` (a trailing time is dropped), ``20250301``, ``2025/03/01``."""
    return (
        f"(CASE WHEN regexp_full_match({s}, '\\d{{8}}') THEN CAST(try_strptime({s}, '%Y%m%d') AS DATE) "
        f"ELSE TRY_CAST({s} AS DATE) END)"
    )


_TZ_RE = r"^(\d{4}[-/]\d{1,2}[-/]\d{1,2}[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)\s*(Z|z|[+-]\d{2}(?::?\d{2})?)$"


def timestamp_sql(s: str) -> str:
    """TIMESTAMP (UTC, zone dropped) from text.

    Accepted: ``2025-03-01 14:05[:SS[.ffffff]]``, ``2025-03-01T14:05:00``, the same with ``Z`` or an
    offset ``+01:00``/``+0100``/``+01`` (converted to UTC, then the zone is dropped: the canonical
    TIMESTAMP is zone-less and, for such values, in UTC), ``20250301 1405[SS]``, ``202503011405``,
    ``2025/03/01 14:05``, or a bare date (midnight). Values without an offset are kept as they are
    (local time of the source).
    """
    tz = quote_literal(_TZ_RE)
    off = f"regexp_extract({s}, {tz}, 2)"
    base = f"TRY_CAST(replace(regexp_extract({s}, {tz}, 1), '/', '-') AS TIMESTAMP)"
    minutes = (
        f"(CASE WHEN upper({off}) = 'Z' THEN 0 ELSE "
        f"(CASE WHEN left({off}, 1) = '-' THEN -1 ELSE 1 END) * "
        f"(CAST(substr({off}, 2, 2) AS INTEGER) * 60 + "
        f"COALESCE(TRY_CAST(right(replace({off}, ':', ''), 2) AS INTEGER) * (length(replace({off}, ':', '')) = 5)::INTEGER, 0)) END)"
    )
    compact = "['%Y%m%d', '%Y%m%d %H%M', '%Y%m%d%H%M', '%Y%m%d %H%M%S', '%Y%m%d%H%M%S', '%Y%m%dT%H%M', '%Y%m%dT%H%M%S']"
    return (
        f"(CASE WHEN {s} IS NULL THEN NULL "
        f"WHEN regexp_full_match({s}, '\\d{{8}}([ T]?\\d{{4}}(\\d{{2}})?)?') THEN try_strptime({s}, {compact}) "
        f"WHEN regexp_matches({s}, {tz}) THEN {base} - to_minutes({minutes}) "
        f"WHEN strpos({s}, '/') > 0 THEN TRY_CAST(replace({s}, '/', '-') AS TIMESTAMP) "
        f"ELSE TRY_CAST({s} AS TIMESTAMP) END)"
    )


def _text(ident: str, raw_type: str) -> str:
    """Trimmed text of a raw value (``ident``: its quoted column), NULL if empty."""
    expr = ident if raw_type == "VARCHAR" else f"CAST({ident} AS VARCHAR)"
    return f"NULLIF(trim({expr}), '')"


_NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                  "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE")


def _typed(col: str, arrow_type: pa.DataType, ident: str, raw_type: str, s: str) -> tuple[str, str | None]:
    """(SQL for the canonical value, failure code or None) for one column.

    ``ident`` is the raw value (as read), ``s`` its trimmed text (NULL if empty).
    """
    rt = raw_type.upper()
    if pa.types.is_date32(arrow_type):
        if rt == "DATE":
            return ident, None
        if rt.startswith("TIMESTAMP"):
            return f"CAST({ident} AS DATE)", None
        return date_sql(s), f"bad_date:{col}"
    if pa.types.is_timestamp(arrow_type):
        if rt in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"):
            return f"({ident} AT TIME ZONE 'UTC')", None
        if rt.startswith("TIMESTAMP") or rt == "DATE":
            return f"CAST({ident} AS TIMESTAMP)", None
        return timestamp_sql(s), f"bad_timestamp:{col}"
    if pa.types.is_floating(arrow_type):
        if rt in _NUMERIC_TYPES or rt.startswith("DECIMAL"):
            return f"(CASE WHEN isfinite(CAST({ident} AS DOUBLE)) THEN CAST({ident} AS DOUBLE) END)", f"non_numeric:{col}"
        return number_sql(s), f"non_numeric:{col}"
    if pa.types.is_integer(arrow_type):
        d = (f"CAST({ident} AS DOUBLE)" if (rt in _NUMERIC_TYPES or rt.startswith("DECIMAL")) else number_sql(s))
        return (f"(CASE WHEN {d} = round({d}) AND abs({d}) <= 2147483647 THEN CAST({d} AS INTEGER) END)",
                f"non_numeric:{col}")
    # strings
    if col == "sex":
        u = f"upper({s})"
        return (f"(CASE WHEN {u} IN {_in(_SEX_F)} THEN 'F' WHEN {u} IN {_in(_SEX_M)} THEN 'M' "
                f"WHEN {u} IN {_in(_SEX_U)} THEN 'U' END)", "unknown_sex")
    if col == "setting":
        return f"(CASE WHEN lower({s}) IN {_in(SETTINGS)} THEN lower({s}) END)", "unknown_setting"
    if col == "kind":
        return f"(CASE WHEN lower({s}) IN {_in(EVENT_KINDS)} THEN lower({s}) END)", "unknown_kind"
    if col == "present_on_admission":
        u = f"upper({s})"
        return (f"(CASE WHEN {u} IN ('Y', 'YES', 'JA') THEN 'Y' WHEN {u} IN ('N', 'NO', 'NEJ') THEN 'N' "
                f"WHEN {u} IN ('U', 'W') THEN {u} END)", "unknown_present_on_admission")
    return s, None


def _duck_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_date32(arrow_type):
        return "DATE"
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMP"
    if pa.types.is_floating(arrow_type):
        return "DOUBLE"
    if pa.types.is_int32(arrow_type):
        return "INTEGER"
    if pa.types.is_integer(arrow_type):
        return "BIGINT"
    return "VARCHAR"


def _shown(col: str, s: str) -> str:
    """SQL text quoting an offending value in a reason (never for identifiers)."""
    if col in IDENTIFIERS:
        return "''"
    return "' (' || '''' || left(" + s + ", 40) || '''' || ')'"


_TYPE_WORD = {"bad_date": "is not a date", "bad_timestamp": "is not a timestamp", "non_numeric": "is not a number",
              "unknown_sex": "is not F/M/U", "unknown_setting": "is not a known setting",
              "unknown_kind": "is not a known kind", "unknown_present_on_admission": "is not Y/N/U/W"}


# --------------------------------------------------------------------------- checks


@dataclass
class Check:
    cond: str  # SQL boolean, true = problem
    code: str
    text: str  # SQL string expression


def _codes_sql(checks: list[Check]) -> tuple[str, str]:
    if not checks:
        return "CAST(NULL AS VARCHAR)", "CAST(NULL AS VARCHAR)"
    codes = "NULLIF(concat_ws(';', " + ", ".join(f"CASE WHEN {c.cond} THEN '{c.code}' END" for c in checks) + "), '')"
    texts = "NULLIF(concat_ws('; ', " + ", ".join(f"CASE WHEN {c.cond} THEN {c.text} END" for c in checks) + "), '')"
    return codes, texts


def _row_checks(table: Table) -> list[Check]:
    cols = set(table.columns)
    checks: list[Check] = []
    if {"birth_date", "death_date"} <= cols:
        checks.append(Check("death_date < birth_date", "death_before_birth", "'death_date is before birth_date'"))
    if {"start_time", "end_time"} <= cols:
        checks.append(Check("end_time < start_time", "end_before_start", "'end_time is before start_time'"))
    if "cost" in cols:
        checks.append(Check("cost < 0", "negative_cost", "'cost is negative (' || cost || ')'"))
    if "days_supply" in cols:
        checks.append(Check(f"days_supply < 0 OR days_supply > {MAX_DAYS_SUPPLY}", "days_supply_out_of_range",
                            f"'days_supply ' || days_supply || ' is outside 0..{MAX_DAYS_SUPPLY}'"))
    return checks


def build_stage(con: duckdb.DuckDBPyConnection, raw: RawTable, stage: str) -> None:
    """``stage``: source_row, canonical typed columns, row_codes, row_reasons; in source order."""
    table = raw.table
    texts, typed, checks = [], [], []
    for fld in table.schema:
        col = fld.name
        s = f"s_{col}"
        if col in raw.mapping:
            rc = raw.mapping[col]
            texts.append(f"{raw.ident(rc)} AS r_{col}")
            texts.append(f"{_text(raw.ident(rc), raw.raw_types[rc])} AS {s}")
            expr, fail = _typed(col, fld.type, f"r_{col}", raw.raw_types[rc], s)
        else:
            texts.append(f"CAST(NULL AS VARCHAR) AS {s}")
            expr, fail = "NULL", None
        typed.append(f"CAST({expr} AS {_duck_type(fld.type)}) AS {quote_ident(col)}")
        if not fld.nullable:
            checks.append(Check(f"{s} IS NULL", f"missing:{col}", f"'{col} is empty'"))
        if fail:
            word = _TYPE_WORD[fail.split(":")[0]]
            checks.append(Check(f"{s} IS NOT NULL AND {quote_ident(col)} IS NULL", fail, f"'{col} {word}' || {_shown(col, s)}"))
    # columns of the row-level checks are the typed ones (NULL when missing or unparseable: no double report)
    checks += _row_checks(table)
    codes, reasons = _codes_sql(checks)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {quote_ident(stage)} AS "
        f"SELECT source_row, {', '.join(quote_ident(c) for c in table.columns)}, {codes} AS row_codes, {reasons} AS row_reasons "
        f"FROM (SELECT *, {', '.join(typed)} FROM (SELECT rowid + 1 AS source_row, {', '.join(texts)} "
        f"FROM {quote_ident(raw.relation)}))"
    )


def build_problems(con: duckdb.DuckDBPyConnection, table: Table, stage: str, problems: str) -> None:
    """``problems``: source_row, reason_code, reason for every row of ``stage`` with at least one problem."""
    name = table.name
    joins, checks = [], []
    extra_cols = []
    if name in ("persons", "encounters"):
        key = table.key
        nonnull = " AND ".join(f"t.{quote_ident(k)} IS NOT NULL" for k in key)
        part = ", ".join(f"t.{quote_ident(k)}" for k in key)
        extra_cols.append(f"CASE WHEN {nonnull} THEN row_number() OVER (PARTITION BY {part} ORDER BY t.source_row) END AS key_rank")
        checks.append(Check("key_rank > 1", "duplicate_key", f"'{', '.join(key)} already used by an earlier row'"))
    if name in ("encounters", "events"):
        joins.append("LEFT JOIN persons p ON p.person_id = t.person_id")
        extra_cols += ["p.person_id AS p_id", "p.birth_date AS p_birth", "p.death_date AS p_death"]
        checks.append(Check("person_id IS NOT NULL AND p_id IS NULL", "unknown_person",
                            "'person_id is not among the accepted persons'"))
        col, when = ("start_time", "start_time") if name == "encounters" else ("time", '"time"')
        checks.append(Check(f"CAST({when} AS DATE) < p_birth", "before_birth",
                            f"'{col} ' || CAST(CAST({when} AS DATE) AS VARCHAR) || ' is before the birth date'"))
        checks.append(Check(f"CAST({when} AS DATE) > p_death", "after_death",
                            f"'{col} ' || CAST(CAST({when} AS DATE) AS VARCHAR) || ' is after the death date'"))
    if name == "events":
        joins.append("LEFT JOIN encounters e ON e.encounter_id = t.encounter_id")
        extra_cols += ["e.encounter_id AS e_id", "e.person_id AS e_person"]
        checks.append(Check("encounter_id IS NOT NULL AND e_id IS NULL", "unknown_encounter",
                            "'encounter_id is not among the accepted encounters'"))
        checks.append(Check("e_id IS NOT NULL AND e_person <> person_id", "encounter_of_other_person",
                            "'the encounter belongs to another person'"))
        part = ", ".join(f"t.{quote_ident(k)}" for k in table.key)
        extra_cols.append(
            f"CASE WHEN t.row_codes IS NULL THEN row_number() OVER (PARTITION BY t.row_codes IS NULL, {part} "
            f"ORDER BY t.source_row) END AS dup_rank")
        checks.append(Check("dup_rank > 1", "duplicate_row", "'exact duplicate of an earlier event'"))
    codes, reasons = _codes_sql(checks)
    cols = ", ".join(["t.*", *extra_cols])
    inner = f"SELECT {cols} FROM {quote_ident(stage)} t {' '.join(joins)}"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {quote_ident(problems)} AS "
        f"SELECT source_row, NULLIF(concat_ws(';', row_codes, {codes}), '') AS reason_code, "
        f"NULLIF(concat_ws('; ', row_reasons, {reasons}), '') AS reason "
        f"FROM ({inner}) WHERE row_codes IS NOT NULL OR {codes} IS NOT NULL"
    )


def finish_table(
    con: duckdb.DuckDBPyConnection,
    raw: RawTable,
    stage: str,
    problems: str,
    quarantine_dir: Path | None,
) -> Outcome:
    """Write the quarantine, create the accepted table, count; drops nothing (the caller does)."""
    table = raw.table
    name = table.name
    n_bad = int(con.execute(f"SELECT count(*) FROM {quote_ident(problems)}").fetchall()[0][0])
    reasons = {
        code: int(n)
        for code, n in con.execute(
            f"SELECT code, count(*) AS n FROM (SELECT unnest(string_split(reason_code, ';')) AS code "
            f"FROM {quote_ident(problems)}) GROUP BY code ORDER BY n DESC, code"
        ).fetchall()
    }
    # quarantine: source_row, reason_code, reason, then the columns as read
    reserved = {"source_row", "reason_code", "reason"}
    orig = ", ".join(
        f"r.{raw.ident(c)} AS {quote_ident('source_' + c if c.lower() in reserved else c)}" for c in raw.raw_columns
    )
    q_sql = (
        f"SELECT q.source_row, q.reason_code, q.reason, {orig} FROM {quote_ident(problems)} q "
        f"JOIN (SELECT rowid + 1 AS __lv_row, * FROM {quote_ident(raw.relation)}) r ON r.__lv_row = q.source_row "
        f"ORDER BY q.source_row"
    )
    qfile: Path | None = None
    if quarantine_dir is None:
        con.execute(f"CREATE OR REPLACE TABLE {quote_ident('quarantine_' + name)} AS {q_sql}")
    else:
        target = Path(quarantine_dir) / f"{name}.parquet"
        if n_bad:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{name}.parquet.tmp")
            con.execute(f"COPY ({q_sql}) TO {quote_literal(str(tmp))} (FORMAT parquet)")
            tmp.replace(target)
            qfile = target
        elif target.is_file():
            target.unlink()  # a stale quarantine from an earlier run would mislead
    cols = ", ".join(f"s.{quote_ident(c)}" for c in table.columns)
    con.execute(
        f"CREATE OR REPLACE TABLE {quote_ident(name)} AS SELECT {cols} FROM {quote_ident(stage)} s "
        f"ANTI JOIN {quote_ident(problems)} q ON q.source_row = s.source_row ORDER BY s.source_row"
    )
    accepted = int(con.execute(f"SELECT count(*) FROM {quote_ident(name)}").fetchall()[0][0])
    return Outcome(read=raw.rows, accepted=accepted, quarantined=n_bad, reasons=reasons, quarantine_file=qfile)


def validate_table(
    con: duckdb.DuckDBPyConnection,
    raw: RawTable,
    quarantine_dir: Path | None,
    drop: Callable[[str], None],
) -> Outcome:
    """Stage, check and split one table (its parents must already be accepted in ``con``)."""
    stage, problems = f"_lv_stage_{raw.table.name}", f"_lv_problems_{raw.table.name}"
    try:
        build_stage(con, raw, stage)
        build_problems(con, raw.table, stage, problems)
        return finish_table(con, raw, stage, problems, quarantine_dir)
    finally:
        drop(stage)
        drop(problems)
