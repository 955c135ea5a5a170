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
``non_numeric:<col>``              not a (finite) number; for integer columns not a whole number (for events
                                   ``value`` not a qualitative or censored result: see "Lab values" below)
``ambiguous_number:<col>``         ``1,234``: one comma before exactly three digits, no point; a thousands
                                   separator (1234) or a decimal comma (1.234)? Not guessed
``nul_byte:<col>``                 the value contains a NUL byte (0x00; usually padding from a fixed-width export)
``implausible_date:<col>``         a date/time before 1900-01-01 or after today, or after the declared extract
                                   end (``open_extract(extract_end=...)``; not for an encounter's end_time,
                                   which may lie after it); no upper bound where the extract declares shifted
                                   dates (MIMIC-IV)
``unknown_value_censor``           a source ``value_censor`` not ``<``/``>`` (``<=``, ``>=``, ``≤``, ``≥`` accepted)
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

Lab values (events ``value``) that are not a plain number keep their event, with
``value`` NULL and the text in ``value_text``: qualitative results (a word of
:data:`QUALITATIVE_RESULTS`: ``neg``, ``pos``, ``positiv``, ``Ej påvisad``, ``+``)
and censored results (``<5``, ``>90``, ``< 0,5``: a comparison sign and a number;
``value_censor`` gets ``<`` or ``>``). The bound stays out of ``value`` on purpose
(see :mod:`lowvalue.data.schema`). Other text (``12..5``, ``x``, ``nan``, ``hög``)
is still ``non_numeric:value``.

Time zones (rule kept from :func:`timestamp_sql`): a time with an offset or ``Z``
is converted to UTC and the zone dropped; a time without one is kept as written
(the source's local time). When one table has both kinds (counted over all its
timestamp columns; a Parquet ``TIMESTAMPTZ`` column counts as with an offset, a
bare date as without), :func:`zone_warnings` returns a warning, which the extract
summary prints: the two kinds can be hours apart.

Which columns must be present in the source comes from ``Table.required``
(checked by the readers); which *values* must be non-empty comes from the Arrow
field's ``nullable`` flag.

Duplicate keys are decided over all source rows with a key, valid or not (the
first row by ``source_row`` is the one kept, so a later valid row never replaces
an earlier invalid one); exact duplicate events are decided among the events
without row-level problems (a duplicate of an invalid event has the same problem
anyway).

Cost (issue 13): the source is read once per table. Over Parquet the raw relation and the stage are views (over CSV
the stage is a view over the text table), and one pass writes the *checked* table (:func:`write_checked`): every row
in source order with its typed columns, its row problems and, for events, its row hash. A Parquet column already in
its canonical type is checked in that type (:func:`in_place`); its text is made only to quote an offending value.
Duplicates and references are then found on the checked table's narrow columns: repeated hashes by sorting
(:func:`repeated_hashes`), the exact comparison only among rows that share a hash (:func:`find_duplicates`), never
by windowing or grouping the whole table. Without problems the checked table becomes the accepted table; otherwise
the accepted rows are copied from it once, in source order (:func:`finish_table`).

Typed Parquet whose columns need no parser (:func:`stays_in_place`) is not written at all: its checks read the
source twice instead (problems, then hashes; :func:`_check_in_place`), and without problem rows the accepted
table is a view over the files whose row ids are the source rows (:func:`rowid_relation`); columns stored exactly as
their canonical values (:func:`stored_as_canonical`) are read as stored. Writing 24 M events into DuckDB's storage
cost twice what both passes cost.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa

from lowvalue.data.readers import RawTable, drop_relation, quote_ident, quote_literal
from lowvalue.data.schema import EVENT_KINDS, SETTINGS, Table

IDENTIFIERS = ("person_id", "encounter_id")
"""Columns whose values never appear in reason texts, logs or summaries."""

REASON_CODES: dict[str, str] = {
    "missing:<col>": "a required value is empty",
    "bad_date:<col>": "not a date",
    "bad_timestamp:<col>": "not a timestamp",
    "non_numeric:<col>": "not a number",
    "ambiguous_number:<col>": "1,234: thousands separator or decimal comma, not guessed",
    "nul_byte:<col>": "contains a NUL byte",
    "implausible_date:<col>": "before 1900-01-01 or after today / the declared extract end",
    "unknown_value_censor": "value_censor not < or >",
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


EARLIEST_DATE = date(1900, 1, 1)
"""No date or time of an extract lies before this day (``implausible_date:<col>``)."""


@dataclass(frozen=True)
class DateBounds:
    """Plausible dates: ``earliest`` .. ``latest`` (inclusive); ``latest`` None = no upper bound (shifted dates).

    ``latest_end`` bounds an encounter's ``end_time``, which may lie after a declared extract end (not after today).
    """

    earliest: date = EARLIEST_DATE
    latest: date | None = None
    latest_end: date | None = None
    why_latest: str = "today"

    @classmethod
    def default(cls, extract_end: date | None = None, *, shifted: bool = False, today: date | None = None) -> DateBounds:
        today = today or date.today()
        if shifted:
            return cls(latest=extract_end, latest_end=None, why_latest="the declared extract end")
        if extract_end is not None and extract_end < today:
            return cls(latest=extract_end, latest_end=today, why_latest="the declared extract end")
        return cls(latest=today, latest_end=today)


@dataclass
class Outcome:
    """What validation did to one table."""

    read: int
    accepted: int
    quarantined: int
    reasons: dict[str, int]
    quarantine_file: Path | None
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- dialects

Dialect = dict[str, Callable[..., str]]
"""How validation's SQL differs between engines: one definition of each check below, rendered through a table of
small renderers (as :data:`lowvalue.engine.sql.DUCKDB`/``SPARK`` for rules). :data:`DUCKDB` renders exactly the SQL
this module always wrote; :data:`SPARK` renders the same checks for Spark SQL, where every function that could
accept more than DuckDB's cast does (Spark's casts take ``2025`` as a date, ``1d`` as a number, a trailing zone) is
gated by a regular expression of what DuckDB accepts, and every parse is a ``try_`` function (Spark 4 runs in ANSI
mode, where a failed cast is an error, not NULL)."""


def _duck_isin(expr: str, values) -> str:
    return "(list_position([" + ", ".join(quote_literal(v) for v in values) + f"], {expr}) IS NOT NULL)"


DUCKDB: Dialect = {
    "str": quote_literal,
    "ident": quote_ident,
    "type": lambda t: t,
    "isin": _duck_isin,
    "full_match": lambda s, p: f"regexp_full_match({s}, {quote_literal(p)})",
    "matches": lambda s, p: f"regexp_matches({s}, {quote_literal(p)})",
    "extract": lambda s, p, g: f"regexp_extract({s}, {quote_literal(p)}, {g})",
    "replace_all": lambda s, p, r: f"regexp_replace({s}, {quote_literal(p)}, {quote_literal(r)}, 'g')",
    "double": lambda s: f"TRY_CAST({s} AS DOUBLE)",
    "isfinite": lambda x: f"isfinite({x})",
    "date": lambda s: f"TRY_CAST({s} AS DATE)",
    "compact_date": lambda s: f"CAST(try_strptime({s}, '%Y%m%d') AS DATE)",
    "compact_timestamp": lambda s, fmts: f"try_strptime({s}, [{', '.join(quote_literal(f) for f in fmts)}])",
    "timestamp": lambda s: f"TRY_CAST({s} AS TIMESTAMP)",
    "try_int": lambda s: f"TRY_CAST({s} AS INTEGER)",
    "bool_int": lambda b: f"({b})::INTEGER",
    "minus_minutes": lambda ts, m: f"{ts} - to_minutes({m})",
    "strpos": lambda s, sub: f"strpos({s}, {sub})",
    "nul": lambda: "chr(0)",
    "text": lambda x, raw_type: x if raw_type == "VARCHAR" else f"CAST({x} AS VARCHAR)",
    "num_text": lambda x, t: x,  # a number in a reason text (DuckDB's || casts it)
    "utc": lambda x: f"({x} AT TIME ZONE 'UTC')",
    "row_hash": lambda cols: ROW_HASH.format(cols=cols),
}


def _spark_regex(p: str) -> str:
    """A pattern for Java's regex engine: ``$`` at the end means the end of the text (Java's ``$`` also matches
    before a final line break)."""
    return p[:-1] + "\\z" if p.endswith("$") else p


def _spark_str(text: str) -> str:
    return "'" + str(text).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _spark_gated(pattern: str, parse: Callable[[str], str]) -> Callable[[str], str]:
    """``parse(s)`` only where ``s`` fully matches ``pattern`` (what DuckDB's cast accepts), else NULL."""
    return lambda s: f"(CASE WHEN {s} RLIKE {_spark_str(chr(92) + 'A(?:' + pattern + ')' + chr(92) + 'z')} THEN {parse(s)} END)"


_SPARK_FORMAT = {"%Y": "yyyy", "%m": "MM", "%d": "dd", "%H": "HH", "%M": "mm", "%S": "ss", "T": "'T'"}
_NUMBER_RE = r"[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?"
_TIME_RE = r"([01]?[0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9]([.][0-9]{1,6})?)?"
_DATE_RE = r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}|[0-9]{4}/[0-9]{1,2}/[0-9]{1,2}|[0-9]{4} [0-9]{1,2} [0-9]{1,2}"


def _spark_text(x: str, raw_type: str) -> str:
    from lowvalue.engine.sql import SPARK as RULES  # the rules' dialect: a DOUBLE written as DuckDB writes it

    if raw_type == "VARCHAR":
        return x
    if raw_type not in ("DOUBLE", "FLOAT"):
        return f"CAST({x} AS STRING)"
    return (f"(CASE WHEN isnan({x}) THEN 'nan' WHEN {x} = CAST('Infinity' AS DOUBLE) THEN 'inf' "
            f"WHEN {x} = CAST('-Infinity' AS DOUBLE) THEN '-inf' ELSE {RULES['text'](x, 'double')} END)")


SPARK: Dialect = {
    "str": _spark_str,
    "ident": lambda name: "`" + str(name).replace("`", "``") + "`",
    "type": lambda t: {"VARCHAR": "STRING", "INTEGER": "INT"}.get(t, t),
    "isin": lambda expr, values: f"coalesce({expr} IN ({', '.join(_spark_str(v) for v in values)}), FALSE)",
    "full_match": lambda s, p: f"({s} RLIKE {_spark_str(chr(92) + 'A(?:' + p + ')' + chr(92) + 'z')})",
    "matches": lambda s, p: f"({s} RLIKE {_spark_str(_spark_regex(p))})",
    "extract": lambda s, p, g: f"regexp_extract({s}, {_spark_str(_spark_regex(p))}, {g})",
    "replace_all": lambda s, p, r: f"regexp_replace({s}, {_spark_str(_spark_regex(p))}, {_spark_str(r)})",
    "double": _spark_gated(_NUMBER_RE, lambda s: f"try_cast({s} AS DOUBLE)"),
    "isfinite": lambda x: f"(abs({x}) < CAST('Infinity' AS DOUBLE))",
    # DuckDB: yyyy-m-d with one separator (-, / or blank), optionally followed by a time, which it drops
    "date": _spark_gated(f"({_DATE_RE})([ T]{_TIME_RE})? *", lambda s: (
        f"try_cast(regexp_replace(regexp_extract({s}, '^([0-9]{{4}})[-/ ]([0-9]{{1,2}})[-/ ]([0-9]{{1,2}})', 0), "
        f"'[/ ]', '-') AS DATE)")),
    "compact_date": lambda s: f"CAST(try_to_timestamp({s}, 'yyyyMMdd') AS DATE)",
    "compact_timestamp": lambda s, fmts: "coalesce(" + ", ".join(
        f"try_to_timestamp({s}, {_spark_str(re.sub('%.|T', lambda m: _SPARK_FORMAT[m[0]], f))})" for f in fmts) + ")",
    "timestamp": _spark_gated(f"({_DATE_RE.split('|')[0]})([ T]{_TIME_RE})? *",
                              lambda s: f"try_cast(trim({s}) AS TIMESTAMP)"),
    "try_int": lambda s: f"try_cast({s} AS INT)",
    "bool_int": lambda b: f"CAST(({b}) AS INT)",
    "minus_minutes": lambda ts, m: f"timestampadd(MINUTE, -({m}), {ts})",
    "strpos": lambda s, sub: f"instr({s}, {sub})",
    "nul": lambda: "char(0)",
    "text": _spark_text,
    "num_text": _spark_text,
    "utc": lambda x: x,  # a Spark TIMESTAMP is an instant; the session zone is UTC (engine/spark.py)
    "row_hash": lambda cols: f"xxhash64({cols})",
}


# --------------------------------------------------------------------------- parsing (SQL builders)


def _isin(expr: str, values, d: Dialect = DUCKDB) -> str:
    """``expr IN (values)`` (values without NULL) for a non-NULL ``expr``; false for NULL, where IN gives NULL
    (every use has the same outcome either way). On DuckDB not IN or ``list_contains``: DuckDB plans those as a join
    against the list, a hash join per column that also gives up the source order a single-table scan keeps (the
    accepted table is written in that order, see :func:`finish_table`)."""
    return d["isin"](expr, values)


def number_sql(s: str, d: Dialect = DUCKDB) -> str:
    """DOUBLE from text: ``12.5``, ``12,5`` (decimal comma), ``1 234,5`` (space/NBSP thousands); finite only."""
    compact = d["replace_all"](s, "[ \u00a0\u202f']", "")
    comma = (
        f"CASE WHEN {d['strpos'](compact, chr(39) + '.' + chr(39))} = 0 AND "
        f"length({compact}) - length(replace({compact}, ',', '')) = 1 "
        f"THEN replace({compact}, ',', '.') ELSE {compact} END"
    )
    parsed = f"COALESCE({d['double'](s)}, {d['double'](comma)})"
    return f"(CASE WHEN {d['isfinite'](parsed)} THEN {parsed} END)"


_AMBIGUOUS_RE = "[+-]?[1-9][0-9]{0,2},[0-9]{3}"


def ambiguous_sql(s: str, d: Dialect = DUCKDB) -> str:
    """True for ``1,234``-like text: a comma that may be a thousands separator or a decimal comma."""
    return d["full_match"](s, _AMBIGUOUS_RE)


_CENSOR_RE = "^(<=?|>=?|≤|≥)\\s*(.*)$"


def censored_sql(s: str, d: Dialect = DUCKDB) -> str:
    """True for a censored result: ``<5``, ``>90``, ``< 0,5``, ``<=0.1``, ``≥ 1 000``."""
    bound = d["extract"](s, _CENSOR_RE, 2)
    return (f"({d['matches'](s, _CENSOR_RE)} AND "
            f"({number_sql(bound, d)} IS NOT NULL OR {ambiguous_sql(bound, d)}))")


def censor_sign_sql(s: str, d: Dialect = DUCKDB) -> str:
    return f"(CASE WHEN {_isin(f'left({s}, 1)', ('<', '≤'), d)} THEN '<' ELSE '>' END)"


QUALITATIVE_RESULTS: tuple[str, ...] = (
    "neg", "negative", "negativ", "negativt", "pos", "positive", "positiv", "positivt", "svagt positiv",
    "weakly positive", "påvisad", "påvisade", "påvisat", "påvisbar", "ej påvisad", "ej påvisade", "ej påvisat",
    "ej påvisbar", "detected", "not detected", "undetected", "reactive", "non-reactive", "nonreactive",
    "normal", "abnormal", "patologisk", "trace", "spår", "present", "absent", "equivocal", "gränsvärde",
    "borderline", "indeterminate", "+", "++", "+++", "-",
)
"""Qualitative lab results (compared lower-case, blanks collapsed, a trailing full stop dropped) kept as
``value_text`` with ``value`` NULL. Other text stays ``non_numeric:value``: a word outside this list is more often
a fault ("x", "nan") than a result, and the list is where a region adds its laboratory's words."""


def qualitative_sql(s: str, d: Dialect = DUCKDB) -> str:
    """True for a qualitative result: one of :data:`QUALITATIVE_RESULTS` (``neg``, ``Positiv``, ``ej påvisad``)."""
    norm = d["replace_all"](d["replace_all"](f"lower(trim({s}))", "\\s+", " "), "\\.$", "")
    return f"({_isin(norm, QUALITATIVE_RESULTS, d)})"


def date_sql(s: str, d: Dialect = DUCKDB) -> str:
    """DATE from text: ISO ``2025-03-01`` (a trailing time is dropped), ``20250301``, ``2025/03/01``."""
    return (
        f"(CASE WHEN {d['full_match'](s, chr(92) + 'd{8}')} THEN {d['compact_date'](s)} "
        f"ELSE {d['date'](s)} END)"
    )


_TZ_RE = r"^(\d{4}[-/]\d{1,2}[-/]\d{1,2}[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)\s*(Z|z|[+-]\d{2}(?::?\d{2})?)$"
_COMPACT_FORMATS = ("%Y%m%d", "%Y%m%d %H%M", "%Y%m%d%H%M", "%Y%m%d %H%M%S", "%Y%m%d%H%M%S", "%Y%m%dT%H%M",
                    "%Y%m%dT%H%M%S")


def timestamp_sql(s: str, d: Dialect = DUCKDB) -> str:
    """TIMESTAMP (UTC, zone dropped) from text.

    Accepted: ``2025-03-01 14:05[:SS[.ffffff]]``, ``2025-03-01T14:05:00``, the same with ``Z`` or an
    offset ``+01:00``/``+0100``/``+01`` (converted to UTC, then the zone is dropped: the canonical
    TIMESTAMP is zone-less and, for such values, in UTC), ``20250301 1405[SS]``, ``202503011405``,
    ``2025/03/01 14:05``, or a bare date (midnight). Values without an offset are kept as they are
    (local time of the source).
    """
    off = d["extract"](s, _TZ_RE, 2)
    base = d["timestamp"](f"replace({d['extract'](s, _TZ_RE, 1)}, '/', '-')")
    minutes = (
        f"(CASE WHEN upper({off}) = 'Z' THEN 0 ELSE "
        f"(CASE WHEN left({off}, 1) = '-' THEN -1 ELSE 1 END) * "
        f"(CAST(substr({off}, 2, 2) AS {d['type']('INTEGER')}) * 60 + "
        f"COALESCE({d['try_int'](f'right(replace({off}, {chr(39)}:{chr(39)}, {chr(39)}{chr(39)}), 2)')} * "
        f"{d['bool_int'](f'length(replace({off}, {chr(39)}:{chr(39)}, {chr(39)}{chr(39)})) = 5')}, 0)) END)"
    )
    return (
        f"(CASE WHEN {s} IS NULL THEN NULL "
        f"WHEN {d['full_match'](s, chr(92) + 'd{8}([ T]?' + chr(92) + 'd{4}(' + chr(92) + 'd{2})?)?')} "
        f"THEN {d['compact_timestamp'](s, _COMPACT_FORMATS)} "
        f"WHEN {d['matches'](s, _TZ_RE)} THEN {d['minus_minutes'](base, minutes)} "
        f"WHEN {d['strpos'](s, chr(39) + '/' + chr(39))} > 0 THEN {d['timestamp'](f'replace({s}, {chr(39)}/{chr(39)}, {chr(39)}-{chr(39)})')} "
        f"ELSE {d['timestamp'](s)} END)"
    )


def _text(ident: str, raw_type: str, d: Dialect = DUCKDB) -> str:
    """Trimmed text of a raw value (``ident``: its quoted column), NULL if empty."""
    return f"NULLIF(trim({d['text'](ident, raw_type)}), '')"


_NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                  "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE")


_SMALL_INTS = ("TINYINT", "SMALLINT", "INTEGER", "UTINYINT", "USMALLINT")


def in_place(arrow_type: pa.DataType, raw_type: str) -> bool:
    """Whether a raw column of ``raw_type`` is checked in its own type, without text (typed Parquet, frames).

    True where :func:`_typed` converts the typed value directly (a date or time from a DATE/TIMESTAMP column, a
    number from a numeric one). Such a value is empty exactly when it is NULL (its text is never blank), so the
    checks need no text; the text is made only to quote an offending value in a reason, as before.
    """
    rt = raw_type.upper()
    if pa.types.is_date32(arrow_type) or pa.types.is_timestamp(arrow_type):
        return rt == "DATE" or rt.startswith("TIMESTAMP")
    if pa.types.is_floating(arrow_type) or pa.types.is_integer(arrow_type):
        return rt in _NUMERIC_TYPES or rt.startswith("DECIMAL")
    return False


def stays_in_place(raw: RawTable) -> bool:
    """Whether a table's accepted rows can stay in its source files, as a view, when none is quarantined.

    A Parquet view (:attr:`RawTable.is_view`) whose every column is read without a parser: in its canonical type
    (:func:`in_place`) or a string column (trimmed; a few mapped to their canonical spelling). Such a view gives the
    same rows as a written table at little cost per read; a column parsed from text (CSV, numbers or times stored
    as text) would be parsed again by every reader, so those tables are written (:func:`finish_table`).
    """
    if not raw.is_view:
        return False
    return all(in_place(fld.type, raw.raw_types[raw.mapping[fld.name]]) or pa.types.is_string(fld.type)
               for fld in raw.table.schema if fld.name in raw.mapping)


ROWID = "_lv_rowid"
"""The column of :func:`rowid_relation` with each accepted row's id (the engine's event ids)."""


def rowid_relation(table: str) -> str:
    """The relation with the accepted rows of ``table`` and their row id :data:`ROWID` before the canonical columns.

    Row ids are 0, 1, 2 … over the accepted rows in source order, whether the table was written (DuckDB's
    ``rowid``) or stays in its source files (source_row - 1, every row accepted): the one way the engine asks for
    them (person partitions, ``lv_hit``'s ``ev_id``, the Parquet hand-over to Spark).
    """
    return f"lv_rowid_{table}"


def number_rows(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Create the :func:`rowid_relation` of a table written into DuckDB (its ``rowid``, in insertion order)."""
    con.execute(f"CREATE OR REPLACE VIEW {quote_ident(rowid_relation(table))} AS "
                f"SELECT rowid AS {ROWID}, * FROM {quote_ident(table)}")


def _typed(col: str, arrow_type: pa.DataType, ident: str, raw_type: str, s: str,
           d: Dialect = DUCKDB) -> tuple[str, str | None]:
    """(SQL for the canonical value, failure code or None) for one column.

    ``ident`` is the raw value (as read), ``s`` its trimmed text (NULL if empty).
    """
    rt = raw_type.upper()
    if pa.types.is_date32(arrow_type):
        if rt == "DATE":
            return ident, None
        if rt.startswith("TIMESTAMP"):
            return f"CAST({ident} AS DATE)", None
        return date_sql(s, d), f"bad_date:{col}"
    if pa.types.is_timestamp(arrow_type):
        if rt in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"):
            return d["utc"](ident), None
        if rt.startswith("TIMESTAMP") or rt == "DATE":
            return f"CAST({ident} AS TIMESTAMP)", None
        return timestamp_sql(s, d), f"bad_timestamp:{col}"
    if pa.types.is_floating(arrow_type):
        if rt in _NUMERIC_TYPES or rt.startswith("DECIMAL"):
            return (f"(CASE WHEN {d['isfinite'](f'CAST({ident} AS DOUBLE)')} THEN CAST({ident} AS DOUBLE) END)",
                    f"non_numeric:{col}")
        return f"(CASE WHEN NOT {ambiguous_sql(s, d)} THEN {number_sql(s, d)} END)", f"non_numeric:{col}"
    if pa.types.is_integer(arrow_type):
        if rt in _SMALL_INTS:  # every value fits: the same INTEGER the DOUBLE round trip gives, without it
            return f"CAST({ident} AS {d['type']('INTEGER')})", f"non_numeric:{col}"
        x = (f"CAST({ident} AS DOUBLE)" if (rt in _NUMERIC_TYPES or rt.startswith("DECIMAL"))
             else f"(CASE WHEN NOT {ambiguous_sql(s, d)} THEN {number_sql(s, d)} END)")
        return (f"(CASE WHEN {x} = round({x}) AND abs({x}) <= 2147483647 THEN CAST({x} AS {d['type']('INTEGER')}) END)",
                f"non_numeric:{col}")
    # strings
    if col == "sex":
        u = f"upper({s})"
        return (f"(CASE WHEN {_isin(u, _SEX_F, d)} THEN 'F' WHEN {_isin(u, _SEX_M, d)} THEN 'M' "
                f"WHEN {_isin(u, _SEX_U, d)} THEN 'U' END)", "unknown_sex")
    if col == "setting":
        return f"(CASE WHEN {_isin(f'lower({s})', SETTINGS, d)} THEN lower({s}) END)", "unknown_setting"
    if col == "kind":
        return f"(CASE WHEN {_isin(f'lower({s})', EVENT_KINDS, d)} THEN lower({s}) END)", "unknown_kind"
    if col == "present_on_admission":
        u = f"upper({s})"
        return (f"(CASE WHEN {_isin(u, ('Y', 'YES', 'JA'), d)} THEN 'Y' WHEN {_isin(u, ('N', 'NO', 'NEJ'), d)} THEN 'N' "
                f"WHEN {_isin(u, ('U', 'W'), d)} THEN {u} END)", "unknown_present_on_admission")
    if col == "value_censor":
        return (f"(CASE WHEN {_isin(s, ('<', '<=', '≤'), d)} THEN '<' WHEN {_isin(s, ('>', '>=', '≥'), d)} THEN '>' END)",
                "unknown_value_censor")
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


def _shown(col: str, s: str, d: Dialect = DUCKDB) -> str:
    """SQL text quoting an offending value in a reason (never for identifiers)."""
    if col in IDENTIFIERS:
        return "''"
    return f"' (' || {d['str'](chr(39))} || left({s}, 40) || {d['str'](chr(39))} || ')'"


_TYPE_WORD = {"bad_date": "is not a date", "bad_timestamp": "is not a timestamp", "non_numeric": "is not a number",
              "unknown_sex": "is not F/M/U", "unknown_setting": "is not a known setting",
              "unknown_kind": "is not a known kind", "unknown_present_on_admission": "is not Y/N/U/W",
              "unknown_value_censor": "is not < or >"}


# --------------------------------------------------------------------------- checks


@dataclass
class Check:
    cond: str  # SQL boolean, true = problem
    code: str
    text: str  # SQL string expression


def _codes_sql(checks: list[Check], d: Dialect = DUCKDB) -> tuple[str, str]:
    if not checks:
        return f"CAST(NULL AS {d['type']('VARCHAR')})", f"CAST(NULL AS {d['type']('VARCHAR')})"
    codes = "NULLIF(concat_ws(';', " + ", ".join(f"CASE WHEN {c.cond} THEN '{c.code}' END" for c in checks) + "), '')"
    texts = "NULLIF(concat_ws('; ', " + ", ".join(f"CASE WHEN {c.cond} THEN {c.text} END" for c in checks) + "), '')"
    return codes, texts


def _any_sql(checks: list[Check]) -> str:
    """SQL boolean: at least one of ``checks`` holds (never NULL). The same rows as the codes of :func:`_codes_sql`
    being non-NULL, without building a string for every row: most rows have no problem (at 24 M events, filtering on
    this instead of concatenating a dozen empty CASEs per row took reading and validation from 12.9 to 12.6 s)."""
    return "coalesce(" + " OR ".join(f"({c.cond})" for c in checks) + ", FALSE)" if checks else "FALSE"


def _date_checks(table: Table, bounds: DateBounds, dialect: Dialect = DUCKDB) -> list[Check]:
    checks = []
    text = dialect["type"]("VARCHAR")
    for fld in table.schema:
        if not (pa.types.is_date32(fld.type) or pa.types.is_timestamp(fld.type)):
            continue
        col, d = fld.name, f"CAST({dialect['ident'](fld.name)} AS DATE)"
        latest = bounds.latest_end if col == "end_time" else bounds.latest
        why = "today" if col == "end_time" else bounds.why_latest
        cond = f"{d} < DATE '{bounds.earliest.isoformat()}'"
        reason = f"'{col} ' || CAST({d} AS {text}) || ' is before {bounds.earliest.isoformat()}'"
        if latest is not None:
            cond = f"({cond} OR {d} > DATE '{latest.isoformat()}')"
            reason = (f"'{col} ' || CAST({d} AS {text}) || CASE WHEN {d} < DATE '{bounds.earliest.isoformat()}' "
                      f"THEN ' is before {bounds.earliest.isoformat()}' ELSE ' is after {why} ({latest.isoformat()})' END")
        checks.append(Check(cond, f"implausible_date:{col}", reason))
    return checks


def _row_checks(table: Table, bounds: DateBounds, d: Dialect = DUCKDB) -> list[Check]:
    cols = set(table.columns)
    checks: list[Check] = _date_checks(table, bounds, d)
    if {"birth_date", "death_date"} <= cols:
        checks.append(Check("death_date < birth_date", "death_before_birth", "'death_date is before birth_date'"))
    if {"start_time", "end_time"} <= cols:
        checks.append(Check("end_time < start_time", "end_before_start", "'end_time is before start_time'"))
    if "cost" in cols:
        checks.append(Check("cost < 0", "negative_cost", f"'cost is negative (' || {d['num_text']('cost', 'DOUBLE')} || ')'"))
    if "days_supply" in cols:
        checks.append(Check(f"days_supply < 0 OR days_supply > {MAX_DAYS_SUPPLY}", "days_supply_out_of_range",
                            f"'days_supply ' || {d['num_text']('days_supply', 'INTEGER')} || ' is outside 0..{MAX_DAYS_SUPPLY}'"))
    return checks


def _numeric_text(arrow_type: pa.DataType, raw_type: str) -> bool:
    """A numeric canonical column read from text (where ``1,234`` can occur)."""
    rt = raw_type.upper()
    return ((pa.types.is_floating(arrow_type) or pa.types.is_integer(arrow_type))
            and not (rt in _NUMERIC_TYPES or rt.startswith("DECIMAL")))


def stage_sql(raw: RawTable, bounds: DateBounds | None = None, d: Dialect = DUCKDB, changed: bool = False) -> str:
    """SELECT of the stage: source_row, canonical typed columns, row_codes, row_reasons, :data:`ROW_BAD`; in
    source order.

    A column already in its canonical type (:func:`in_place`) is checked in that type; only text (CSV, string
    columns) goes through the text parsers. ``raw.raw_types`` are DuckDB's type names on every engine
    (:func:`lowvalue.data.spark_extract.duck_type` names Spark's types so). ``changed`` (DuckDB, a table kept in
    place): also :data:`CHANGED`, a bit per column whose canonical value differs from the stored one
    (:func:`stored_as_canonical`).
    """
    inner, checks = _typed_sql(raw, bounds or DateBounds.default(), d)
    codes, reasons = _codes_sql(checks, d)
    mask = ""
    if changed:
        bits = [f"CASE WHEN r_{c} IS DISTINCT FROM {quote_ident(c)} THEN {1 << i} ELSE 0 END"
                for i, c in enumerate(raw.table.columns) if c in _maybe_canonical(raw)]
        mask = f", CAST({' + '.join(bits) or '0'} AS BIGINT) AS {CHANGED}"
    # the codes and reasons are built for the rows with a problem only (a CASE evaluates its branch for those)
    return (f"SELECT source_row, {', '.join(d['ident'](c) for c in raw.table.columns)}, "
            f"CASE WHEN {ROW_BAD} THEN {codes} END AS row_codes, CASE WHEN {ROW_BAD} THEN {reasons} END AS row_reasons, "
            f"{ROW_BAD}{mask} FROM (SELECT *, {_any_sql(checks)} AS {ROW_BAD} FROM ({inner}))")


ROW_BAD = "row_bad"
"""The stage's column that is true where the row has a row-level problem (``row_codes`` is not NULL): what the
checks across rows filter on."""

CHANGED = "lv_changed"
"""The stage's column (``stage_sql(changed=True)``) with a bit per column whose canonical value is not the stored one."""


def _maybe_canonical(raw: RawTable) -> list[str]:
    """The string columns stored as text: their canonical value is the stored one unless it has blanks around it,
    is empty or has another spelling (``K`` for ``F``), which only a pass over the rows can tell."""
    return [c for c in raw.table.columns if c in raw.mapping and pa.types.is_string(raw.table.schema.field(c).type)
            and raw.raw_types[raw.mapping[c]].upper() == "VARCHAR"]


def stored_as_canonical(raw: RawTable, changed_bits: int) -> frozenset[str]:
    """The columns of a table kept in place whose stored values are their canonical values in every row, so they
    are read as stored (:func:`rows_sql`, the hashes of :func:`find_duplicates`) without the stage's expressions:
    a column in its canonical DuckDB type (for a valid row its typed value is the stored one), and a string column
    without a bit in ``changed_bits`` (the OR of :data:`CHANGED` over every row)."""
    table = raw.table
    same_type = {c for c in table.columns if c in raw.mapping and not pa.types.is_string(table.schema.field(c).type)
                 and raw.raw_types[raw.mapping[c]].upper() == _duck_type(table.schema.field(c).type)}
    text = {c for i, c in enumerate(table.columns) if c in _maybe_canonical(raw) and not changed_bits & (1 << i)}
    return frozenset(same_type | text)


def rows_sql(raw: RawTable, plain: frozenset[str] = frozenset()) -> str:
    """SELECT :data:`ROWID` (source_row - 1) and the canonical columns of every source row: the stage's own typed
    columns without its checks, the accepted rows of a table that stays in its source (:func:`stays_in_place`);
    the ``plain`` columns (:func:`stored_as_canonical`) as stored."""
    inner, _ = _typed_sql(raw, DateBounds.default(), DUCKDB, plain)
    cols = ", ".join(quote_ident(c) for c in raw.table.columns)
    return f"SELECT CAST(source_row - 1 AS BIGINT) AS {ROWID}, {cols} FROM ({inner})"


def _typed_sql(raw: RawTable, bounds: DateBounds, d: Dialect,
               plain: frozenset[str] = frozenset()) -> tuple[str, list[Check]]:
    """(the stage's inner SELECT: source_row, raw values, their texts and the canonical typed columns; the row
    checks over it): one definition of each column's type for the stage and for a table kept in place (``plain``
    columns as stored, see :func:`stored_as_canonical`)."""
    table = raw.table
    q = d["ident"]
    texts, typed, checks = [], [], []
    lab_value = "value" in table.columns and "value_text" in table.columns
    # A typed numeric value's text is never qualitative or censored, so it gives no value_text/value_censor of its own.
    own_value = lab_value and not ("value" in raw.mapping and in_place(table.schema.field("value").type,
                                                                       raw.raw_types[raw.mapping["value"]]))
    for fld in table.schema:
        col = fld.name
        s = f"s_{col}"
        empty = f"{s} IS NULL"  # SQL: the value is empty
        shown = s  # SQL: the value's trimmed text, quoted in a reason
        exempt = None  # SQL: text that does not parse but is not a failure of this column
        if col in raw.mapping:
            rc = raw.mapping[col]
            rt = raw.raw_types[rc]
            ident = q(raw.stored.get(rc, rc))
            texts.append(f"{ident} AS r_{col}")
            if in_place(fld.type, rt):
                empty, shown = f"r_{col} IS NULL", _text(f"r_{col}", rt, d)
            else:
                texts.append(f"{_text(ident, rt, d)} AS {s}")
            expr, fail = _typed(col, fld.type, f"r_{col}", rt, s, d)
            if rt.upper() == "VARCHAR":
                checks.append(Check(f"{d['strpos'](f'r_{col}', d['nul']())} > 0", f"nul_byte:{col}",
                                    f"'{col} contains a NUL byte (0x00)'"))
            if _numeric_text(fld.type, rt):
                exempt = ambiguous_sql(s, d)
                checks.append(Check(
                    f"{s} IS NOT NULL AND {exempt}", f"ambiguous_number:{col}",
                    f"{d['str'](col + ' ' + chr(39))} || {s} || "
                    f"{d['str'](chr(39) + ' is ambiguous: a thousands separator or a decimal comma? Write it without the comma, or with a decimal point')}"))
                if lab_value and col == "value":
                    exempt = f"({exempt} OR {qualitative_sql(s, d)} OR {censored_sql(s, d)})"
        else:
            texts.append(f"CAST(NULL AS {d['type']('VARCHAR')}) AS {s}")
            expr, fail = "NULL", None
        if own_value and col == "value_text":
            # the value's own text where it is qualitative or censored (see the module docstring)
            own = f"(CASE WHEN {qualitative_sql('s_value', d)} OR {censored_sql('s_value', d)} THEN s_value END)"
            expr = own if expr == "NULL" else f"COALESCE({expr}, {own})"
        if own_value and col == "value_censor":
            own = f"(CASE WHEN {censored_sql('s_value', d)} THEN {censor_sign_sql('s_value', d)} END)"
            expr = own if expr == "NULL" else f"COALESCE({expr}, {own})"
        if col in plain:
            expr = f"r_{col}"
        typed.append(f"CAST({expr} AS {d['type'](_duck_type(fld.type))}) AS {q(col)}")
        if not fld.nullable:
            checks.append(Check(empty, f"missing:{col}", f"'{col} is empty'"))
        if fail:
            word = _TYPE_WORD[fail.split(":")[0]]
            cond = f"NOT ({empty}) AND {q(col)} IS NULL" + (f" AND NOT {exempt}" if exempt else "")
            checks.append(Check(cond, fail, f"'{col} {word}' || {_shown(col, shown, d)}"))
    # columns of the row-level checks are the typed ones (NULL when missing or unparseable: no double report)
    checks += _row_checks(table, bounds, d)
    return (f"SELECT *, {', '.join(typed)} FROM (SELECT {raw.row_sql} AS source_row, {', '.join(texts)} "
            f"FROM {q(raw.relation)})"), checks


def build_stage(con: duckdb.DuckDBPyConnection, raw: RawTable, stage: str, bounds: DateBounds | None = None,
                changed: bool = False) -> None:
    """``stage``: source_row, canonical typed columns, row_codes, row_reasons; in source order.

    A view: it is read once, by :func:`write_checked` (over Parquet files straight from the files, in their types;
    over CSV text the parsers run in that one pass), so a copy would only cost.
    """
    con.execute(f"CREATE OR REPLACE TEMP VIEW {quote_ident(stage)} AS {stage_sql(raw, bounds, changed=changed)}")


ROW_HASH = "hash({cols})"
"""SQL of the hash that groups candidate duplicate events (over all key columns; NULLs hash alike, -0.0 as 0.0)."""


def duplicate_keys_sql(table: Table, stage: str, d: Dialect = DUCKDB) -> str:
    """Persons and encounters: each key that more than one source row has, with the first such row
    (``first_row``); a row with that key and a later ``source_row`` is a ``duplicate_key``."""
    cols = ", ".join(d["ident"](k) for k in table.key)
    nonnull = " AND ".join(f"{d['ident'](k)} IS NOT NULL" for k in table.key)
    return (f"SELECT {cols}, min(source_row) AS first_row "
            f"FROM {d['ident'](stage)} WHERE {nonnull} GROUP BY {cols} HAVING count(*) > 1")


def duplicate_rows_sql(table: Table, stage: str, d: Dialect = DUCKDB, hashes: str | None = None,
                       hash_column: str | None = None) -> str:
    """Events: the ``source_row`` of every row without row-level problems that equals, in every column of the key
    (all columns; NULL equal to NULL, as in GROUP BY), such a row with a smaller source_row: a ``duplicate_row``.
    ``hashes``: a relation of the row hashes (:data:`ROW_HASH`) that occur more than once, to compare only those
    rows exactly (DuckDB, see :func:`find_duplicates`; ``hash_column``: the column of ``stage`` that already holds
    each row's hash); Spark partitions by the columns directly."""
    cols = ", ".join(d["ident"](k) for k in table.key)
    own = d["ident"](hash_column) if hash_column else d["row_hash"](cols)
    among = f" AND {own} IN (SELECT h FROM {d['ident'](hashes)})" if hashes else ""
    return (f"SELECT source_row FROM ("
            f"SELECT source_row, row_number() OVER (PARTITION BY {cols} ORDER BY source_row) AS rk "
            f"FROM {d['ident'](stage)} WHERE NOT {ROW_BAD}{among}"
            f") WHERE rk > 1")


HASH_COLUMN = "row_hash"
"""The column of the checked table (:func:`write_checked`) with each event's :data:`ROW_HASH`."""

SORT_CHUNK_ROWS = 1 << 24
"""At most this many hashes (8 bytes each: 128 MiB) are sorted at a time by :func:`repeated_hashes`; more are split
into ranges of the hash, so the memory outside DuckDB's limit stays bounded whatever the extract's size."""


def repeated_hashes(con: duckdb.DuckDBPyConnection, relation: str, expr: str, where: str, rows: int, into: str) -> int:
    """``into``: a temporary table (``h``) of the values of ``expr`` (a hash, UBIGINT) that occur more than once among
    the rows of ``relation`` where ``where`` holds; returns how many.

    Sorted with numpy rather than grouped by DuckDB: a GROUP BY over one distinct number per row builds a hash table
    as large as the extract (the costliest check at a million persons, 5–7 CPU-seconds over 24 M events), where
    sorting the fetched numbers and comparing neighbours takes a sixth of that. ``rows`` (an upper bound of the rows)
    decides into how many ranges of the hash the work is split (:data:`SORT_CHUNK_ROWS`).
    """
    import numpy as np

    parts = max(1, -(-rows // SORT_CHUNK_ROWS))
    found = []
    select = f"SELECT {expr} AS h FROM {quote_ident(relation)} WHERE {where}"
    spread = f"__lv_spread_{into}"
    if parts > 1:  # computed once (a view over the source would be read once per range), held by DuckDB, bounded
        con.execute(f"CREATE OR REPLACE TEMP TABLE {quote_ident(spread)} AS {select}")
        select = f"SELECT h FROM {quote_ident(spread)}"
    for i in range(parts):
        lo, hi = (2**64 * i) // parts, (2**64 * (i + 1)) // parts - 1
        in_range = "" if parts == 1 else f" AND h BETWEEN {lo} AND {hi}"
        values = con.execute(f"SELECT h FROM ({select}) WHERE TRUE{in_range}").fetchnumpy()["h"]
        values = np.asarray(values, dtype=np.uint64)
        values.sort()
        same = values[1:] == values[:-1]
        if same.any():
            found.append(np.unique(values[1:][same]))
        del values, same
    con.execute(f"DROP TABLE IF EXISTS {quote_ident(spread)}")
    hashes = np.concatenate(found) if found else np.empty(0, dtype=np.uint64)
    view = f"__lv_hashes_{into}"
    con.register(view, pa.table({"h": pa.array(hashes, type=pa.uint64())}))
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {quote_ident(into)} AS SELECT h FROM {quote_ident(view)}")
    finally:
        con.unregister(view)
    return len(hashes)


def find_duplicates(con: duckdb.DuckDBPyConnection, table: Table, checked: str, dups: str, rows: int,
                    exact: str | None = None, hash_column: str | None = HASH_COLUMN) -> None:
    """``dups``: what the duplicate checks need, found by key or hash rather than by windowing over every column.

    ``checked`` is the table :func:`write_checked` wrote (``rows`` rows), so these read narrow columns of DuckDB's
    own storage, not the source again; or, for a table that stays in its source (:func:`stays_in_place`), a view
    over the source without a hash column (``hash_column=None``; see :func:`_check_in_place`): each event's hash is
    then computed over every row, without its row checks (a hash shared with an invalid row only widens the exact
    step, which leaves invalid rows out), and the exact step reads ``exact`` (the stage).

    Persons and encounters: :func:`duplicate_keys_sql`, the same rows a row number over the key ordered by
    source_row > 1 would give, without sorting or holding the table, over the rows whose key's hash repeats
    (:func:`repeated_hashes`; a key that repeats has a hash that repeats).

    Events: :func:`duplicate_rows_sql`, found in two steps: the hashes (:data:`HASH_COLUMN`, computed while the
    table was written) that occur more than once among the valid rows (:func:`repeated_hashes`), then, only if
    there are any, the exact comparison (a row number over every column) among the valid rows with such a hash,
    so a hash collision never flags a row. ``exact``: the relation with every column for that comparison when
    ``checked`` holds only some (``keep=False``; its hash is computed again), else ``checked`` itself.
    """
    hashes = f"{dups}_hash"
    if table.name in ("persons", "encounters"):
        # the keys' hashes that repeat first, then the exact aggregate over the rows with such a hash only
        keys = ", ".join(quote_ident(k) for k in table.key)
        nonnull = " AND ".join(f"{quote_ident(k)} IS NOT NULL" for k in table.key)
        among = f"{dups}_rows"
        try:
            found = repeated_hashes(con, checked, ROW_HASH.format(cols=keys), nonnull, rows, hashes)
            con.execute(f"CREATE OR REPLACE TEMP VIEW {quote_ident(among)} AS SELECT * FROM {quote_ident(checked)} "
                        f"WHERE {ROW_HASH.format(cols=keys)} IN (SELECT h FROM {quote_ident(hashes)})")
            con.execute(f"CREATE OR REPLACE TEMP TABLE {quote_ident(dups)} AS {duplicate_keys_sql(table, among)}"
                        + ("" if found else " LIMIT 0"))  # none repeats: no pass over the rows for nothing
        finally:
            con.execute(f"DROP VIEW IF EXISTS {quote_ident(among)}")
            con.execute(f"DROP TABLE IF EXISTS {quote_ident(hashes)}")
        return
    try:
        if hash_column is None:
            found = repeated_hashes(con, checked, ROW_HASH.format(cols=", ".join(quote_ident(k) for k in table.key)),
                                    "TRUE", rows, hashes)
        else:  # among the valid rows only (their row problems are stored: the filter costs nothing), as the exact step
            found = repeated_hashes(con, checked, hash_column, f"NOT {ROW_BAD}", rows, hashes)
        if not found:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {quote_ident(dups)} (source_row BIGINT)")
            return
        con.execute(f"CREATE OR REPLACE TEMP TABLE {quote_ident(dups)} AS "
                    + (duplicate_rows_sql(table, checked, DUCKDB, hashes, hash_column) if exact is None
                       else duplicate_rows_sql(table, exact, DUCKDB, hashes)))
    finally:
        con.execute(f"DROP TABLE IF EXISTS {quote_ident(hashes)}")


def problems_sql(table: Table, stage: str, dups: str, parents: dict[str, str] | None = None,
                 d: Dialect = DUCKDB, changed: bool = False) -> str:
    """SELECT source_row, reason_code, reason for every row of ``stage`` with at least one problem.

    ``dups`` is what :func:`duplicate_keys_sql`/:func:`duplicate_rows_sql` found; ``parents`` names the relations
    of the accepted persons and encounters (default ``persons``, ``encounters``). ``changed`` (a stage with
    :data:`CHANGED`): also that column, and also the rows without a problem whose bits are set (reason_code NULL).
    """
    name = table.name
    q = d["ident"]
    parents = {"persons": "persons", "encounters": "encounters", **(parents or {})}
    joins, checks = [], []
    extra_cols = []
    text = d["type"]("VARCHAR")
    if name in ("persons", "encounters"):
        on = " AND ".join(f"d.{q(k)} = t.{q(k)}" for k in table.key)
        joins.append(f"LEFT JOIN {q(dups)} d ON {on}")
        extra_cols.append("d.first_row AS dup_first")
        checks.append(Check("dup_first IS NOT NULL AND source_row > dup_first", "duplicate_key",
                            f"'{', '.join(table.key)} already used by an earlier row'"))
    if name in ("encounters", "events"):
        joins.append(f"LEFT JOIN {parents['persons']} p ON p.person_id = t.person_id")
        extra_cols += ["p.person_id AS p_id", "p.birth_date AS p_birth", "p.death_date AS p_death"]
        checks.append(Check("person_id IS NOT NULL AND p_id IS NULL", "unknown_person",
                            "'person_id is not among the accepted persons'"))
        col, when = ("start_time", "start_time") if name == "encounters" else ("time", q("time"))
        checks.append(Check(f"CAST({when} AS DATE) < p_birth", "before_birth",
                            f"'{col} ' || CAST(CAST({when} AS DATE) AS {text}) || ' is before the birth date'"))
        checks.append(Check(f"CAST({when} AS DATE) > p_death", "after_death",
                            f"'{col} ' || CAST(CAST({when} AS DATE) AS {text}) || ' is after the death date'"))
    if name == "events":
        joins.append(f"LEFT JOIN {parents['encounters']} e ON e.encounter_id = t.encounter_id")
        extra_cols += ["e.encounter_id AS e_id", "e.person_id AS e_person"]
        checks.append(Check("encounter_id IS NOT NULL AND e_id IS NULL", "unknown_encounter",
                            "'encounter_id is not among the accepted encounters'"))
        checks.append(Check("e_id IS NOT NULL AND e_person <> person_id", "encounter_of_other_person",
                            "'the encounter belongs to another person'"))
        joins.append(f"LEFT JOIN {q(dups)} d ON d.source_row = t.source_row")
        extra_cols.append("d.source_row AS dup_row")
        checks.append(Check("dup_row IS NOT NULL", "duplicate_row", "'exact duplicate of an earlier event'"))
    codes, reasons = _codes_sql(checks, d)
    cols = ", ".join(["t.*", *extra_cols])
    inner = f"SELECT {cols} FROM {q(stage)} t {' '.join(joins)}"
    return (f"SELECT source_row, NULLIF(concat_ws(';', row_codes, {codes}), '') AS reason_code, "
            f"NULLIF(concat_ws('; ', row_reasons, {reasons}), '') AS reason{f', {CHANGED}' if changed else ''} "
            f"FROM ({inner}) WHERE {ROW_BAD} OR {_any_sql(checks)}"
            + (f" OR {CHANGED} <> 0" if changed else ""))


def build_problems(con: duckdb.DuckDBPyConnection, table: Table, stage: str, problems: str, dups: str,
                   changed: bool = False) -> None:
    """``problems``: :func:`problems_sql` as a table."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {quote_ident(problems)} AS "
                f"{problems_sql(table, stage, dups, changed=changed)}")


def quarantine_sql(raw: RawTable, problems: str, d: Dialect = DUCKDB) -> str:
    """The quarantine: source_row, reason_code, reason, then the source's columns as read, in source order."""
    reserved = {"source_row", "reason_code", "reason"}
    orig = ", ".join(
        f"r.{d['ident'](raw.stored.get(c, c))} AS {d['ident']('source_' + c if c.lower() in reserved else c)}"
        for c in raw.raw_columns
    )
    return (f"SELECT q.source_row, q.reason_code, q.reason, {orig} FROM {d['ident'](problems)} q "
            f"JOIN (SELECT {raw.row_sql} AS __lv_qrow, * FROM {d['ident'](raw.relation)}) r "
            f"ON r.__lv_qrow = q.source_row ORDER BY q.source_row")


def zone_counts_sql(raw: RawTable, d: Dialect = DUCKDB) -> tuple[list[str], str | None]:
    """(timestamp columns, SELECT of two counts: values with a UTC offset, values without), or None when a table
    cannot mix the two (see :func:`zone_warnings`)."""
    aware, naive, cols = [], [], []
    for fld in raw.table.schema:
        if not pa.types.is_timestamp(fld.type) or fld.name not in raw.mapping:
            continue
        rc = raw.mapping[fld.name]
        rt, ident = raw.raw_types[rc].upper(), d["ident"](raw.stored.get(rc, rc))
        cols.append(fld.name)
        if rt in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"):
            aware.append(f"count({ident})")
        elif rt.startswith("TIMESTAMP") or rt == "DATE":
            naive.append(f"count({ident})")
        else:
            s = _text(ident, rt, d)
            aware.append(f"count(*) FILTER (WHERE {d['matches'](s, _TZ_RE)})")
            naive.append(f"count(*) FILTER (WHERE {s} IS NOT NULL AND NOT {d['matches'](s, _TZ_RE)})")
    if not aware or not naive:
        return cols, None
    return cols, f"SELECT {' + '.join(aware)}, {' + '.join(naive)} FROM {d['ident'](raw.relation)}"


def zone_warning(table: str, cols: list[str], n_aware: int, n_naive: int) -> list[str]:
    """The warning of :func:`zone_warnings` for the counts of :func:`zone_counts_sql`."""
    if not (n_aware and n_naive):
        return []
    return [f"{table}: {', '.join(cols)} mix {n_aware:,} with a UTC offset (converted to UTC) and "
            f"{n_naive:,} without (kept as written, the source's local time); the two can be hours apart: "
            "give every time an offset, or none"]


_ORDER_KEEPERS = ("projection", "filter", "read parquet", "read_parquet", "seq scan", "table scan")
_OPERATOR = re.compile(r"[╭┌]─+\s*([A-Za-z_][A-Za-z_ ]*?)\s*─")


def _keeps_order(con: duckdb.DuckDBPyConnection, select: str) -> bool:
    """Whether DuckDB's plan for ``select`` is one scan with projections and filters only, so it keeps source order.

    A safety net: the stage is written so that this holds, but an optimizer rule that turned an expression into a
    join would silently reorder rows; then the caller sorts instead (also when the plan cannot be read).
    """
    plan = "\n".join(str(r[-1]) for r in con.execute(f"EXPLAIN {select}").fetchall())
    operators = [op.strip().lower() for op in _OPERATOR.findall(plan)]
    return bool(operators) and all(op in _ORDER_KEEPERS for op in operators)


_BAD_ROWS = "__lv_bad_rows"
"""DuckDB variable: a bit per source row, set for the quarantined ones (only while the accepted table is written)."""


def finish_table(
    con: duckdb.DuckDBPyConnection,
    raw: RawTable,
    checked: str,
    problems: str,
    quarantine_dir: Path | None,
    keep: bool = True,
    in_place: bool = False,
    plain: frozenset[str] = frozenset(),
) -> Outcome:
    """Write the quarantine, make the accepted table of ``checked`` (:func:`write_checked`), count; drops nothing
    (the caller does). Also makes the table's :func:`rowid_relation`.

    ``in_place`` (a table that :func:`stays_in_place`; ``checked`` is then its stage): without problems the
    accepted table is a view over the source files (:func:`rows_sql`, its ``plain`` columns as stored; the raw view
    is kept as ``lv_source_<table>``), nothing is written; with problems the accepted rows are written from the
    stage, once.

    Without problems the checked table *is* the accepted table: its working columns are dropped (DuckDB drops a
    column without copying the others) and it is renamed, so the extract is written once. Otherwise the accepted
    rows are copied from it (DuckDB's own storage, not the source) in source order: the quarantined rows are left
    out by a filter on a bitstring of their source rows, not by a join, so DuckDB keeps the order without sorting
    (a filter over one relation preserves insertion order). Either way the table's ``rowid`` runs 0, 1, 2 … as
    before. ``keep=False`` (a table no other is checked against, for ``lowvalue validate``): no accepted table;
    accepted = read − quarantined.
    """
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
    q_sql = quarantine_sql(raw, problems)
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
    for stale in (name, rowid_relation(name)):  # also without keep: no stale table or view of an earlier call
        drop_relation(con, stale)
    if not keep:
        return Outcome(read=raw.rows, accepted=raw.rows - n_bad, quarantined=n_bad, reasons=reasons,
                       quarantine_file=qfile)
    if in_place and not n_bad:
        source = f"lv_source_{name}"
        drop_relation(con, source)
        con.execute(f"ALTER VIEW {quote_ident(raw.relation)} RENAME TO {quote_ident(source)}")
        # plain views, not TEMP: the scan's worker cursors read the extract's tables (engine/sql.worker)
        con.execute(f"CREATE VIEW {quote_ident(rowid_relation(name))} AS {rows_sql(replace(raw, relation=source), plain)}")
        cols = ", ".join(quote_ident(c) for c in table.columns)
        con.execute(f"CREATE VIEW {quote_ident(name)} AS SELECT {cols} FROM {quote_ident(rowid_relation(name))}")
        return Outcome(read=raw.rows, accepted=raw.rows, quarantined=0, reasons=reasons, quarantine_file=qfile)
    if not n_bad:
        working = [c for (c,) in con.execute(f"SELECT column_name FROM (DESCRIBE {quote_ident(checked)})").fetchall()
                   if c not in table.columns]
        for c in working:
            con.execute(f"ALTER TABLE {quote_ident(checked)} DROP COLUMN {quote_ident(c)}")
        con.execute(f"ALTER TABLE {quote_ident(checked)} RENAME TO {quote_ident(name)}")
    else:
        cols = ", ".join(f"s.{quote_ident(c)}" for c in table.columns)
        select = f"SELECT {cols} FROM {quote_ident(checked)} s"
        create = f"CREATE TABLE {quote_ident(name)} AS "
        sorted_select = (f"{select} ANTI JOIN {quote_ident(problems)} q ON q.source_row = s.source_row "
                         "ORDER BY s.source_row")
        if raw.rows >= 2**31:  # pragma: no cover - get_bit takes an INTEGER position
            con.execute(create + sorted_select)
        else:
            con.execute(f"SET VARIABLE {_BAD_ROWS} = (SELECT bitstring_agg(source_row, 1, {max(raw.rows, 1)}) "
                        f"FROM {quote_ident(problems)})")
            try:
                kept = f"{select} WHERE get_bit(getvariable('{_BAD_ROWS}'), CAST(s.source_row - 1 AS INTEGER)) = 0"
                # the plan of the unfiltered table decides (the filter adds a Filter; planning the bitstring costs time)
                con.execute(create + (kept if _keeps_order(con, select) else sorted_select))
            finally:
                con.execute(f"RESET VARIABLE {_BAD_ROWS}")
    number_rows(con, name)
    accepted = int(con.execute(f"SELECT count(*) FROM {quote_ident(name)}").fetchall()[0][0])
    return Outcome(read=raw.rows, accepted=accepted, quarantined=n_bad, reasons=reasons, quarantine_file=qfile)


def zone_warnings(con: duckdb.DuckDBPyConnection, raw: RawTable) -> list[str]:
    """A warning when one table has times with a UTC offset and times without (see the module docstring)."""
    cols, select = zone_counts_sql(raw)
    if select is None:
        return []
    n_aware, n_naive = con.execute(select).fetchall()[0]
    return zone_warning(raw.table.name, cols, n_aware, n_naive)


REFERENCE_COLUMNS = ("person_id", "encounter_id", "start_time", "time")
"""The canonical columns :func:`problems_sql` reads besides the keys (references to parents, dates against life)."""


def write_checked(con: duckdb.DuckDBPyConnection, raw: RawTable, stage: str, checked: str, keep: bool = True) -> None:
    """``checked``: every row of the stage, in source order, with its row problems: the one pass over the source.

    Columns: ``source_row``, the canonical columns, ``row_codes``, ``row_reasons``, :data:`ROW_BAD` and, for events, each row's
    :data:`ROW_HASH` (:data:`HASH_COLUMN`), all computed while the source is read once; the checks across rows
    (duplicates, references) then read narrow columns of this table, and without problems it becomes the accepted
    table (:func:`finish_table`). It is a table of the extract's own database (in memory, or its file when large),
    not a temporary one, for that reason. ``keep=False``: only the columns the checks across rows read (dropped
    afterwards; in the database too: a large extract's file compresses it, where a temporary table of 24 M events
    would outgrow a 3 GB limit and spill).
    """
    table = raw.table
    keyed = table.name in ("persons", "encounters")
    columns = table.columns if keep else [c for c in table.columns
                                          if c in REFERENCE_COLUMNS or (keyed and c in table.key)]
    cols = ", ".join(f"s.{quote_ident(c)}" for c in columns)
    row_hash = ""
    if not keyed:
        keys = ", ".join(f"s.{quote_ident(k)}" for k in table.key)
        row_hash = f", {DUCKDB['row_hash'](keys)} AS {HASH_COLUMN}"
    select = f"SELECT s.source_row, {cols}, s.row_codes, s.row_reasons, s.{ROW_BAD}{row_hash} FROM {quote_ident(stage)} s"
    con.execute(f"CREATE OR REPLACE TABLE {quote_ident(checked)} AS "
                + (select if _keeps_order(con, select) else f"{select} ORDER BY s.source_row"))


def validate_table(
    con: duckdb.DuckDBPyConnection,
    raw: RawTable,
    quarantine_dir: Path | None,
    drop: Callable[[str], None],
    bounds: DateBounds | None = None,
    keep: bool = True,
    in_place: bool = True,
) -> Outcome:
    """Stage, check and split one table (its parents must already be accepted in ``con``).

    The source is read once to write the checked table (:func:`write_checked`); duplicates and references are
    found on it, and it becomes the accepted table. ``keep=False``: count and quarantine only (see
    :func:`finish_table`).

    A table that :func:`stays_in_place` (and ``in_place``) is not written at all when it has no problem rows: the
    checks read the stage over the source directly (:func:`_check_in_place`: the problems in one pass, the hashes in
    another, neither writes the rows), and the accepted table is a view over the files. Writing 24 M events into
    DuckDB's storage cost more than both passes; with problem rows the accepted rows are written from the stage in
    one pass.
    """
    name = raw.table.name
    stage, checked = f"_lv_stage_{name}", f"_lv_checked_{name}"
    problems, dups = f"_lv_problems_{name}", f"_lv_dups_{name}"
    in_place = in_place and stays_in_place(raw)
    try:
        warnings = zone_warnings(con, raw)
        build_stage(con, raw, stage, bounds, changed=in_place)
        if in_place:  # the checks read the source through the stage; ``checked`` names the stored columns' view
            plain = _check_in_place(con, raw, stage, checked, problems, dups)
            out = finish_table(con, raw, stage, problems, quarantine_dir, keep, in_place, plain)
        else:
            write_checked(con, raw, stage, checked, keep)
            find_duplicates(con, raw.table, checked, dups, raw.rows, None if keep else stage)
            build_problems(con, raw.table, checked, problems, dups)
            out = finish_table(con, raw, checked, problems, quarantine_dir, keep)
        out.warnings = warnings
        return out
    finally:
        drop(stage)
        drop(checked)
        drop(problems)
        drop(dups)


def _check_in_place(con: duckdb.DuckDBPyConnection, raw: RawTable, stage: str, plain_view: str, problems: str,
                    dups: str) -> frozenset[str]:
    """The checks of a table kept in place, on its stage over the source; returns its :func:`stored_as_canonical`
    columns. ``problems`` and ``dups`` are made as on the written path.

    Problems first (one pass: row checks, references, and :data:`CHANGED`, which tells which columns are stored as
    their canonical values), then the hashes over those columns as stored (a second, cheap pass: no expressions for
    them), then the exact duplicates on the stage. Only when there are duplicates is the problems pass run again
    with them (a duplicate's reason sits among the others in a fixed order).
    """
    table = raw.table
    if table.name in ("persons", "encounters"):
        con.execute(f"CREATE OR REPLACE TEMP TABLE {quote_ident(dups)} AS {duplicate_keys_sql(table, stage)} LIMIT 0")
    else:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {quote_ident(dups)} (source_row BIGINT)")
    build_problems(con, table, stage, problems, dups, changed=True)
    bits = con.execute(f"SELECT coalesce(bit_or({CHANGED}), 0) FROM {quote_ident(problems)}").fetchall()[0][0]
    plain = stored_as_canonical(raw, int(bits))
    con.execute(f"CREATE OR REPLACE TEMP VIEW {quote_ident(plain_view)} AS SELECT {ROWID} + 1 AS source_row, "
                f"* EXCLUDE ({ROWID}) FROM ({rows_sql(raw, plain)})")
    find_duplicates(con, table, plain_view, dups, raw.rows, exact=stage, hash_column=None)
    if con.execute(f"SELECT count(*) FROM {quote_ident(dups)}").fetchall()[0][0]:
        build_problems(con, table, stage, problems, dups)
    else:
        con.execute(f"DELETE FROM {quote_ident(problems)} WHERE reason_code IS NULL")
    return plain
