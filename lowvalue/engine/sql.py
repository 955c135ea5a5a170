"""Compile a rule to SQL and run it on DuckDB.

The semantics are those of ``docs/rule-language.md`` and of the reference
evaluator (:mod:`lowvalue.engine.reference`); a property test checks that this
engine and the reference agree on random timelines and random rules.

Shape of the generated query, one CTE per concept::

    cand        candidates: index events of persons in the population
    m_<i>       events matching condition i for each candidate (kind, codes, window, ...)
    h_<i>       whether condition i holds per candidate, with its evidence events
    final       candidates + one boolean per condition + eligible/sensitive/specific

Everything that differs between SQL engines is in a :data:`Dialect`, a lookup
table of small renderers (as sqlglot does): :data:`DUCKDB` and :data:`SPARK`
(run by :mod:`lowvalue.engine.spark`). Every compiling function takes the table
as ``d``, DuckDB by default; another dialect is another table.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import duckdb
import pandas as pd

from lowvalue.data.schema import TABLES
from lowvalue.data.validation import ROWID, number_rows, rowid_relation
from lowvalue.errors import RuleError
from lowvalue.rules.codes import ICD_FAMILY, CodeEntry, ValueSet, unit_factor
from lowvalue.rules.library import RuleSet
from lowvalue.rules.model import Criterion, Rule, ValueTest
from lowvalue.rules.windows import Window

EVIDENCE_PER_CONDITION = 3

Dialect = dict[str, Callable[..., str]]


def q(text: str) -> str:
    """A SQL string literal (DuckDB, standard SQL: a quote is doubled)."""
    return "'" + str(text).replace("'", "''") + "'"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _strftime(col: str, fmt: str) -> str:
    return f"strftime({col}, {q(fmt)})"


def _first_n(x: str, keys: list[tuple[str, bool]], n: int) -> str:
    """The first ``n`` values of ``x`` in the order of ``keys`` (expression, descending; a descending one numeric), as
    a list: ``min_by`` keeps a top-n heap per group, where an ordered ``list()`` sorted every group whole."""
    key = ", ".join(f"'k{i}': " + (f"-({k})" if desc else k) for i, (k, desc) in enumerate(keys))
    return f"min_by({x}, {{{key}}}, {n})"


DUCKDB: Dialect = {
    "str": q,
    "ident": ident,
    "number": lambda x: repr(float(x)),
    "type": lambda arrow: {"string": "VARCHAR", "date32[day]": "DATE", "timestamp[us]": "TIMESTAMP", "double": "DOUBLE",
                           "int32": "INTEGER"}[arrow],
    "text": lambda col, arrow: f"CAST({col} AS VARCHAR)",
    "rowid": lambda alias: f"{alias}._lv_rowid",  # read from rowid_relation(table), never DuckDB's own rowid
    "temp_table": lambda name, select: f"CREATE OR REPLACE TEMP TABLE {name} AS{select}",
    "days_between": lambda a, b: f"date_diff('day', {a}, {b})",
    "add_days": lambda day, n: f"({day} {'-' if n < 0 else '+'} {abs(int(n))})",  # the DATE n days later
    "epoch_us": lambda col: f"epoch_us({col})",
    "strftime": _strftime,
    "starts_with": lambda col, prefix: f"starts_with({col}, {prefix})",
    "struct": lambda fields: "{" + ", ".join(f"{q(k)}: {v}" for k, v in fields) + "}",
    "list": lambda items: "[" + ", ".join(items) + "]",
    # typed, so every rule's judged rows share one type and can be appended to one table (engine/scan.py)
    "no_evidence": lambda: ("CAST([] AS STRUCT(condition VARCHAR, role VARCHAR, time VARCHAR, system VARCHAR, code VARCHAR, "
                            "value DOUBLE, unit VARCHAR)[])"),
    "list_agg": lambda x: f"list({x})",
    "first_n": _first_n,
    "list_head": lambda lst, n: f"list_slice({lst}, 1, {n})",
    "list_distinct": lambda lst: f"list_distinct({lst})",
    "list_len": lambda lst: f"length({lst})",
    "int_range": lambda lo, hi: f"range({lo}, {hi} + 1)",  # lo..hi inclusive
    "bool_or": lambda x: f"bool_or({x})",
    "order_by": lambda cols: ", ".join(cols),  # ascending, nulls last (DuckDB's default)
    "evidence_pass": lambda: "flagged",  # evidence in a second pass over the flagged candidates (see compile_rule)
    "json_value": lambda col: f"CAST(to_json({col}) AS VARCHAR)",  # a scalar as JSON text; NULL stays NULL
    "list_map": lambda lst, var, body: f"list_transform({lst}, lambda {var}: {body})",
    "list_join": lambda lst, sep: f"array_to_string({lst}, {sep})",
    "arg_max": lambda x, keys: f"arg_max({x}, ({', '.join(keys)}))",  # x of the row with the greatest keys
    "arg_min": lambda x, key: f"arg_min({x}, {key})",
    "values": lambda rows, alias, cols: f"(VALUES {', '.join(rows)}) {alias}({', '.join(cols)})",
}


def _spark_str(text: str) -> str:
    """A Spark SQL string literal: backslash escapes (``''`` would be two adjacent literals)."""
    return "'" + str(text).replace("\\", "\\\\").replace("'", "\\'") + "'"


_SPARK_TIME = {"%Y": "yyyy", "%m": "MM", "%d": "dd", "%H": "HH", "%M": "mm", "%S": "ss", "%f": "SSSSSS", "T": "'T'"}


def _spark_double_text(col: str) -> str:
    """CAST(double AS VARCHAR) as DuckDB writes it: shortest digits, ``.0`` when whole, ``1e-05``/``1e+16`` outside."""
    dec = f"regexp_replace(CAST(CAST({col} AS DECIMAL(38, 20)) AS STRING), '0+$', '')"
    sci = f"regexp_replace(CAST({col} AS STRING), '[.]0E', 'E')"  # Java: 1.0E-5, 1.5E16
    for pat, rep in (("E-([0-9])$", "e-0$1"), ("E-", "e-"), ("E([0-9])$", "e+0$1"), ("E", "e+")):
        sci = f"regexp_replace({sci}, '{pat}', '{rep}')"
    return (f"(CASE WHEN {col} = 0 THEN CAST({col} AS STRING) WHEN abs({col}) >= 1e-4D AND abs({col}) < 1e16D "
            f"THEN regexp_replace({dec}, '[.]$', '.0') ELSE {sci} END)")


def _spark_sorted(x: str, keys: list[tuple[str, bool]]) -> str:
    """``x`` collected in the order of ``keys`` (expression, descending): a struct sorted with a comparator."""
    fields = ", ".join(f"'k{i}', {k}" for i, (k, _) in enumerate(keys))
    cmp = " ".join(f"WHEN l.k{i} {'>' if desc else '<'} r.k{i} THEN -1 WHEN l.k{i} {'<' if desc else '>'} r.k{i} THEN 1"
                   for i, (_, desc) in enumerate(keys))
    return (f"transform(array_sort(collect_list(named_struct({fields}, 'x', {x})), (l, r) -> CASE {cmp} ELSE 0 END), "
            f"s -> s.x)")


SPARK: Dialect = {
    **DUCKDB,
    "str": _spark_str,
    "ident": lambda name: "`" + name.replace("`", "``") + "`",
    "number": lambda x: repr(float(x)) + "D",
    "type": lambda arrow: {"string": "STRING", "date32[day]": "DATE", "timestamp[us]": "TIMESTAMP", "double": "DOUBLE",
                           "int32": "INT"}[arrow],
    "text": lambda col, arrow: _spark_double_text(col) if arrow == "double" else f"CAST({col} AS STRING)",
    "rowid": lambda alias: f"{alias}._lv_rowid",
    "temp_table": lambda name, select: f"CREATE OR REPLACE TEMPORARY VIEW {name} AS{select}",
    "days_between": lambda a, b: f"datediff({b}, {a})",
    "add_days": lambda day, n: f"date_add({day}, {int(n)})",
    "epoch_us": lambda col: f"unix_micros({col})",
    "strftime": lambda col, fmt: f"date_format({col}, {_spark_str(re.sub('%.|T', lambda m: _SPARK_TIME[m[0]], fmt))})",
    "starts_with": lambda col, prefix: f"startswith({col}, {prefix})",
    "struct": lambda fields: "named_struct(" + ", ".join(f"{_spark_str(k)}, {v}" for k, v in fields) + ")",
    "list": lambda items: "array(" + ", ".join(items) + ")",
    "no_evidence": lambda: ("CAST(array() AS ARRAY<STRUCT<condition: STRING, role: STRING, time: STRING, system: STRING, "
                            "code: STRING, value: DOUBLE, unit: STRING>>)"),
    "list_agg": lambda x: f"collect_list({x})",
    "first_n": lambda x, keys, n: f"slice({_spark_sorted(x, keys)}, 1, {n})",
    "list_head": lambda lst, n: f"slice({lst}, 1, {n})",
    "list_distinct": lambda lst: f"array_distinct({lst})",
    "list_len": lambda lst: f"size({lst})",
    "int_range": lambda lo, hi: f"sequence({lo}, {hi})",
    "order_by": lambda cols: ", ".join(f"{c} NULLS LAST" for c in cols),
    "evidence_pass": lambda: "",  # CTEs are inlined: evidence in the same pass (see compile_rule)
    # to_json takes structs only: the value is wrapped as {"v":...} and unwrapped (Jackson escapes like DuckDB)
    "json_value": lambda col: (f"CASE WHEN {col} IS NOT NULL THEN "
                               f"regexp_replace(substr(to_json(named_struct('v', {col})), 6), '}}$', '') END"),
    "list_map": lambda lst, var, body: f"transform({lst}, {var} -> {body})",
    "list_join": lambda lst, sep: f"array_join({lst}, {sep})",
    "arg_max": lambda x, keys: f"max_by({x}, struct({', '.join(keys)}))",
    "arg_min": lambda x, key: f"min_by({x}, {key})",
    "values": lambda rows, alias, cols: f"(VALUES {', '.join(rows)}) AS {alias}({', '.join(cols)})",
}


def codeset_key(vs: ValueSet) -> int:
    """A code set's key in ``lv_sets``/``lv_hit``: 60 bits of a digest of its entries, so equal sets share their
    matches. An integer, because every criterion filters ``lv_hit`` on it."""
    body = json.dumps([[s, [[e.kind, e.low, e.high] for e in sorted(set(vs.codes[s]), key=lambda e: (e.kind, e.low, e.high))]]
                       for s in vs.systems])
    return int(hashlib.sha256(body.encode()).hexdigest()[:15], 16)


def code_sets(rs: RuleSet, rules: Iterable[Rule] | None = None) -> list[ValueSet]:
    """Every code set ``rules`` (default: all of ``rs``) use, once each, in a stable order."""
    out: dict[int, ValueSet] = {}
    for rule in (rs.rules.values() if rules is None else rules):
        for ref in rule.code_refs():
            vs = rs.valueset(ref)
            out.setdefault(codeset_key(vs), vs)
    return [out[k] for k in sorted(out)]


def _code_norm(system: str, code: str, d: Dialect) -> str:
    icd = ", ".join(d["str"](s) for s in sorted(ICD_FAMILY))
    return f"CASE WHEN {system} IN ({icd}) THEN replace(upper(trim({code})), '.', '') ELSE upper(trim({code})) END"


def prepare_sql(d: Dialect = DUCKDB) -> list[str]:
    """The distinct codes of the extract, counted once: ``lv_code_raw`` (as written) and ``lv_codes`` (normalised).

    Every code-set question is answered on these small tables (a few thousand rows, whatever the extract's size)
    instead of on every event; encounters count as events of kind ``encounter``, system ``setting``.
    """
    raw = d["temp_table"]("lv_code_raw", f"""
        SELECT kind, system, code, {_code_norm('system', 'code', d)} AS code_norm, events, with_value FROM (
          SELECT kind, system, code, count(*) AS events, count(value) AS with_value FROM events GROUP BY kind, system, code
          UNION ALL
          SELECT 'encounter', 'setting', setting, count(*), 0 FROM encounters GROUP BY setting) r""")
    codes = d["temp_table"]("lv_codes", """
        SELECT kind, system, code_norm, min(code) AS code, sum(events) AS events, sum(with_value) AS with_value
        FROM lv_code_raw GROUP BY kind, system, code_norm""")
    return [raw, codes]


def sets_sql(sets: Iterable[ValueSet], d: Dialect = DUCKDB) -> str:
    """SELECT (cs, system, code): the codes of the extract (as written) that each code set matches."""
    parts = [f"SELECT DISTINCT CAST({codeset_key(vs)} AS BIGINT) AS cs, c.system, c.code FROM lv_code_raw c "
             f"WHERE {match_sql(vs, 'c', d)}" for vs in sets]
    text = d["type"]("string")
    empty = f"SELECT CAST(NULL AS BIGINT) AS cs, CAST(NULL AS {text}) AS system, CAST(NULL AS {text}) AS code WHERE FALSE"
    return " UNION ALL ".join(parts) if parts else empty


@dataclass(frozen=True)
class PersonRanges:
    """Person partitions as consecutive ranges of the person id: partition ``i`` holds the persons from ``bounds[i-1]``
    (inclusive) to ``bounds[i]`` (exclusive); the first starts at the lowest id, the last ends after the highest.

    Ranges rather than a hash of the id: an extract written in person order (as the synthetic region is, and any
    export sorted by person) then holds each partition in its own Parquet row groups, and DuckDB skips the other
    partitions' row groups on their min/max statistics (at 1 000 000 persons, building one partition's ``lv_hit``
    took 4.8 CPU-s instead of 7.4). An extract in another order reads every row group, as with a hash, and compares
    strings instead of hashing them. The bounds are the persons' quantiles, so partitions hold about as many persons.
    """

    bounds: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if list(self.bounds) != sorted(self.bounds):
            raise ValueError("person ranges need their bounds in order")

    def __len__(self) -> int:
        return len(self.bounds) + 1

    @classmethod
    def of(cls, con: duckdb.DuckDBPyConnection, parts: int) -> PersonRanges:
        """``parts`` ranges of the ``persons`` table's ids holding about as many persons each (duplicate bounds, when
        there are fewer persons than partitions, leave a partition empty)."""
        if parts <= 1:
            return cls()
        cuts = ", ".join(f"{i}/{int(parts)}" for i in range(1, int(parts)))
        bounds = con.execute(f"SELECT quantile_disc(person_id, [{cuts}]) FROM persons").fetchall()[0][0]
        return cls(tuple(str(b) for b in bounds or ()))

    def where(self, col: str, part: int) -> str:
        """A predicate: ``col`` (a person id) falls in partition ``part``."""
        lo = [f"{col} >= {q(self.bounds[part - 1])}"] if part > 0 else []
        hi = [f"{col} < {q(self.bounds[part])}"] if part < len(self.bounds) else []
        return " AND ".join(lo + hi) or "TRUE"

    def key(self, col: str) -> str:
        """The partition number of the person ``col`` (the one whose :meth:`where` it satisfies): the number of
        bounds at or below it, found by bisection (nested CASEs, a handful of comparisons a row for the 26
        partitions of a 10 000 000-person extract)."""
        def part(lo: int, hi: int) -> str:  # the partition among lo..hi
            if lo == hi:
                return str(lo)
            mid = (lo + hi) // 2
            return f"CASE WHEN {col} < {q(self.bounds[mid])} THEN {part(lo, mid)} ELSE {part(mid + 1, hi)} END"

        return f"({part(0, len(self.bounds))})"


PART_TABLES = ("events", "encounters")
"""The tables a person partition's work reads besides ``lv_hit``: as views ``lv_part_events``, ``lv_part_encounters``
with the table's row id ``_lv_rowid`` (its :func:`~lowvalue.data.validation.rowid_relation`; see
:func:`use_partition`)."""

SPLIT_FROM = 12
"""From this many person partitions on, :func:`split_persons` writes a table split into them when reading the
partitions through their ranges would take this many passes over it or more (:func:`range_reads`); otherwise each
partition reads the table's own rows through :meth:`PersonRanges.where`. Writing the split costs about as much as
twenty filtered passes over the tables (at 1 000 000 persons: 28 CPU-s for writing 32 M rows of Parquet and reading
them back, against 1.0–1.3 CPU-s a pass), whatever the extract's size; but in an extract not in person order each
partition's filter reads every row, and the number of partitions grows with the extract, so such an extract is split
(reading it whole once per partition made the cost of a scan grow with its square). An extract in person order is
never split: each partition reads only its own row groups (at 10 000 000 persons the split took 117 s)."""

BLOCK_ROWS = 122_880
"""Rows per block in :func:`range_reads`' estimate: DuckDB's row group. A Parquet file's row groups may be larger,
which makes the estimate a little low for it."""


def range_reads(con: duckdb.DuckDBPyConnection, table: str, ranges: PersonRanges) -> float:
    """About how many passes over ``table`` reading each person partition of ``ranges`` through its range filter
    takes: 1.0 for a table in person order (each partition reads only the row groups its persons are in; the others
    are skipped on their min/max statistics), about ``len(ranges)`` for one whose persons are spread over every row
    group. Estimated on blocks of :data:`BLOCK_ROWS` consecutive rows and, like DuckDB's zone maps of a text column,
    on the first 8 bytes of each block's lowest and highest person id (so it never promises more skipping than the
    engine can do). One pass over the person ids."""
    blocks = con.execute(f"SELECT count(*), min(person_id), max(person_id) FROM {rowid_relation(table)} "
                         f"GROUP BY {ROWID} // {int(BLOCK_ROWS)}").fetchall()
    total = sum(n for n, _, _ in blocks)
    if not total or len(ranges) <= 1:
        return 1.0
    cut = [b.encode()[:8] for b in ranges.bounds]  # partition i: from cut[i-1] (inclusive) to cut[i]
    reads = 0
    for n, lo, hi in blocks:
        if lo is None:  # no person id in the block: every partition's filter reads it
            reads += n * len(ranges)
            continue
        low, high = lo.encode()[:8], hi.encode()[:8]
        reads += n * sum(1 for i in range(len(ranges))
                         if not (i > 0 and high < cut[i - 1]) and not (i < len(cut) and low > cut[i]))
    return reads / total


def split_persons(con: duckdb.DuckDBPyConnection, ranges: PersonRanges, folder: Path) -> list[str]:
    """Write each of the events and encounters whose person partitions ``ranges`` (at least :data:`SPLIT_FROM`)
    would otherwise read it :data:`SPLIT_FROM` times or more (:func:`range_reads`) once, split into them (Parquet
    under ``folder``); :func:`use_partition` filters the others. Returns the tables written."""
    if len(ranges) < SPLIT_FROM:
        return []
    split = [t for t in PART_TABLES if range_reads(con, t, ranges) >= SPLIT_FROM]
    for t in split:
        con.execute(f"""COPY (SELECT {ranges.key('person_id')} AS lv_part, * FROM {rowid_relation(t)})
                        TO {q(str(folder / t))} (FORMAT parquet, PARTITION_BY (lv_part), COMPRESSION snappy)""")
    return split


def use_partition(con: duckdb.DuckDBPyConnection, part: int = 0, ranges: PersonRanges = PersonRanges(),
                  folder: Path | None = None) -> None:
    """Point the views ``lv_part_<table>`` at partition ``part``: its files under ``folder`` when
    :func:`split_persons` wrote them there, else the table's rows of the partition (all when there is one)."""
    for t in PART_TABLES:
        split = folder / t if folder is not None and len(ranges) > 1 else None
        if split is None or not split.is_dir():
            select = f"SELECT * FROM {rowid_relation(t)}" + ("" if len(ranges) <= 1 else
                                                             f" WHERE {ranges.where('person_id', part)}")
        elif (split / f"lv_part={int(part)}").is_dir():
            select = f"SELECT * EXCLUDE (lv_part) FROM read_parquet({q(str(split / f'lv_part={int(part)}' / '*.parquet'))})"
        else:  # no person of the extract falls in this partition
            select = f"SELECT * FROM {rowid_relation(t)} LIMIT 0"
        con.execute(f"CREATE OR REPLACE TEMP VIEW lv_part_{t} AS {select}")


def hit_sql(sets_table: str, d: Dialect = DUCKDB, events: str = "events", encounters: str = "encounters") -> str:
    """SELECT the events (and encounter pseudo-events) whose code is in a code set of ``sets_table``, once per set.

    One pass over the events with a hash join on (system, code as written): no per-row string work. ``ev_id`` is the
    event's row id (an encounter's: -1 - its row id), the tie-breaker that makes evidence order deterministic;
    ``events``/``encounters`` name the tables read (the person partition's views carry the row id as ``_lv_rowid``).
    """
    rowid = d["rowid"] if (events, encounters) == PART_TABLES else (lambda alias: f"{alias}._lv_rowid")
    return f"""
        SELECT s.cs, {rowid('e')} AS ev_id, e.person_id, e.encounter_id, e.time, CAST(e.time AS DATE) AS day,
               {d['epoch_us']('e.time')} AS t_us, e.kind, e.system, e.code, e.value, e.unit, e.days_supply, e.cost,
               c.setting, c.unit AS care_unit, c.end_time AS enc_end, c.start_time AS enc_start,
               e.present_on_admission AS poa
        FROM {events} e JOIN {sets_table} s ON s.system = e.system AND s.code = e.code
        LEFT JOIN {encounters} c ON c.encounter_id = e.encounter_id
        UNION ALL
        SELECT s.cs, -1 - {rowid('c')}, c.person_id, c.encounter_id, c.start_time, CAST(c.start_time AS DATE),
               {d['epoch_us']('c.start_time')}, 'encounter', 'setting', c.setting, NULL, NULL, NULL, c.cost, c.setting,
               c.unit, c.end_time, c.start_time, NULL
        FROM {encounters} c JOIN {sets_table} s ON s.system = 'setting' AND s.code = c.setting"""


def persons_sql(where: str = "TRUE") -> str:
    """SELECT what a candidate takes from its person (``lv_persons``), for the persons ``where`` holds for.

    The candidates of each rule join the partition's persons, held as a small table, rather than the extract's
    ``persons``, which may be a view over the source file (read and trimmed again by each rule's statement)."""
    return f"SELECT person_id, birth_date, sex, listing_unit FROM persons WHERE {where}"


WORK = "lv_work"
"""The in-memory database of the working tables that rule statements read and write (``lv_hit``, ``lv_rows``).
TEMP tables are seen by their own connection only; this database is seen by every cursor of the connection, so a
scan can judge several rules at once, each on its own cursor (:func:`worker`). It stays attached with the
connection: a scan's kept judged rows (its candidates, ``scan.KEPT``) are in it."""


def working(con: duckdb.DuckDBPyConnection) -> None:
    """Attach :data:`WORK` to ``con`` (once) and search it first, then the extract's own database: unqualified
    names find the working tables there and the extract's tables (``persons``, …) behind them; TEMP comes first."""
    if con.execute("SELECT count(*) FROM duckdb_databases() WHERE database_name = ?", [WORK]).fetchall()[0][0]:
        return
    home = con.execute("SELECT current_database()").fetchall()[0][0]
    con.execute(f"ATTACH ':memory:' AS {WORK}")
    con.execute(f"SET search_path = {q(f'{WORK}.main,{home}.main')}")


def worker(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A cursor of ``con`` (after :func:`working`) for another thread: it sees the extract and the working tables
    as ``con`` does (the search path is per cursor), not ``con``'s TEMP tables."""
    cursor = con.cursor()
    cursor.execute(f"SET search_path = {q(con.execute('SELECT current_setting(?)', ['search_path']).fetchall()[0][0])}")
    return cursor


def prepare(con: Any, d: Dialect = DUCKDB) -> None:
    """Count the extract's distinct codes (:func:`prepare_sql`) and start an empty ``lv_hit`` (DuckDB).

    ``con`` is anything with ``execute(sql)``. Code sets are matched when a rule needs them (:func:`ensure_sets`);
    a scan asks for all of them at once, so the events are read once.
    """
    for statement in prepare_sql(d):
        con.execute(statement)
    if d is DUCKDB:
        con.execute("CREATE OR REPLACE TEMP TABLE lv_sets (cs BIGINT, system VARCHAR, code VARCHAR)")
        con.execute("CREATE OR REPLACE TEMP TABLE lv_set_keys (cs BIGINT)")
        working(con)
        con.execute(f"CREATE OR REPLACE TABLE {WORK}.lv_hit AS {hit_sql('lv_sets', events=rowid_relation('events'), encounters=rowid_relation('encounters'))} LIMIT 0")  # empty until build_hits
        con.execute(f"CREATE OR REPLACE TABLE {WORK}.lv_persons AS {persons_sql()} LIMIT 0")
        con.execute("CREATE OR REPLACE TEMP TABLE lv_hit_keys (cs BIGINT)")


def ensure_sets(con: duckdb.DuckDBPyConnection, sets: Iterable[ValueSet]) -> None:
    """Match the code sets not yet in ``lv_sets`` on the distinct codes (on DuckDB, after :func:`prepare`)."""
    have = {r[0] for r in con.execute("SELECT cs FROM lv_set_keys").fetchall()}
    new = {codeset_key(vs): vs for vs in sets if codeset_key(vs) not in have}
    if not new:
        return
    con.execute(f"INSERT INTO lv_sets {sets_sql(new.values())}")
    con.executemany("INSERT INTO lv_set_keys VALUES (?)", [[k] for k in sorted(new)])


def build_hits(con: duckdb.DuckDBPyConnection, part: int = 0, ranges: PersonRanges = PersonRanges(),
               folder: Path | None = None) -> None:
    """``lv_hit`` for every matched code set (``lv_sets``) and the persons of partition ``part`` of ``ranges``
    (read from ``folder`` when the extract was split there, :func:`split_persons`), and ``lv_persons`` for those
    persons (:func:`persons_sql`); the partition's views ``lv_part_*`` stay for the features (:func:`use_partition`).

    Stored in code-set order, so a criterion that reads one set (``cs = …``) skips the others' blocks (zone maps).
    The previous partition's ``lv_hit`` is dropped first: replacing it kept both in memory while the new one was
    sorted, and the sort spilled (at 1 000 000 persons in 5 partitions: 0.4 GB a partition, 30 % more CPU).
    """
    use_partition(con, part, ranges, folder)
    con.execute(f"DROP TABLE IF EXISTS {WORK}.lv_hit")
    con.execute(f"CREATE OR REPLACE TABLE {WORK}.lv_persons AS {persons_sql(ranges.where('person_id', part))}")
    con.execute(f"CREATE TABLE {WORK}.lv_hit AS SELECT * FROM "
                f"({hit_sql('lv_sets', events='lv_part_events', encounters='lv_part_encounters')}) ORDER BY cs")
    con.execute("CREATE OR REPLACE TEMP TABLE lv_hit_keys AS SELECT cs FROM lv_set_keys")


def drop_hits(con: duckdb.DuckDBPyConnection) -> None:
    """Drop what :func:`build_hits` made for the last partition (its views ``lv_part_*``, ``lv_hit``, ``lv_persons``)
    once the partitions are done: they hold patient rows the results no longer need."""
    for view in PART_TABLES:
        con.execute(f"DROP VIEW IF EXISTS lv_part_{view}")
    for table in ("lv_hit", "lv_persons"):
        con.execute(f"DROP TABLE IF EXISTS {table}")


def hit_rows(con: duckdb.DuckDBPyConnection) -> int:
    """How many rows ``lv_hit`` holds for the whole extract, counted on the distinct codes (no pass over events)."""
    return int(con.execute("""SELECT coalesce(sum(r.events), 0) FROM lv_code_raw r
                              JOIN lv_sets s ON s.system = r.system AND s.code = r.code""").fetchall()[0][0])


def match_sql(vs: ValueSet, alias: str, d: Dialect = DUCKDB) -> str:
    """A predicate: the event's (system, normalised code) is in the code set."""
    parts, q = [], d["str"]
    for system in vs.systems:
        entries: tuple[CodeEntry, ...] = vs.codes[system]
        exact = sorted({e.low for e in entries if e.kind == "exact"})
        ors = []
        if exact:
            ors.append(f"{alias}.code_norm IN ({', '.join(q(c) for c in exact)})")
        for e in sorted({e for e in entries if e.kind == "prefix"}, key=lambda e: e.low):
            ors.append(d["starts_with"](f"{alias}.code_norm", q(e.low)))
        for e in sorted({e for e in entries if e.kind == "range"}, key=lambda e: e.low):
            ors.append(f"substr({alias}.code_norm, 1, {len(e.low)}) BETWEEN {q(e.low)} AND {q(e.high)}")
        if ors:
            parts.append(f"({alias}.system = {q(system)} AND ({' OR '.join(ors)}))")
    return "(" + " OR ".join(parts) + ")" if parts else "FALSE"


def convert_sql(vs: ValueSet, value: str, unit: str, d: Dialect = DUCKDB) -> str:
    """``value`` (in ``unit``) on the code set's canonical scale; NULL when the unit is not convertible.

    The units are compared trimmed and in lower case; the units as the code set writes them are first looked up
    as they are (a plain string comparison), and the trimmed, lower-cased comparison runs only for the other
    rows. Both give the same value: a unit written exactly like a listed one trims and lowers to that one's
    lower case (only units without surrounding space, whose letters lower the same in Python and SQL, are looked
    up as written). Lowering and trimming every lab row, once per listed unit, was most of the cost of a value
    test on millions of rows (SQL engines do not share the repeated expression inside a filter).
    """
    if vs.units is None:
        return value
    u, q = f"lower(trim({unit}))", d["str"]
    names = [vs.units.canonical, *vs.units.factors]
    results = [value] + [f"{value} * {d['number'](f)}" for f in vs.units.factors.values()]
    whens = [f"WHEN {unit} IS NULL OR trim({unit}) = '' OR {u} = {q(names[0].lower())} THEN {value}"]
    whens += [f"WHEN {u} = {q(name.lower())} THEN {result}" for name, result in zip(names[1:], results[1:])]
    lowered = f"(CASE {' '.join(whens)} ELSE NULL END)"
    exact: dict[str, str] = {}
    for name in names:  # the result of the first listed unit that lowers the same, as in ``lowered``
        if name and name == name.strip() and all(c.isascii() or c.lower() == c for c in name):
            exact.setdefault(name, next(r for n, r in zip(names, results) if n.lower() == name.lower()))
    if not exact:
        return lowered
    return f"(CASE {unit} {' '.join(f'WHEN {q(n)} THEN {r}' for n, r in exact.items())} ELSE {lowered} END)"


def value_sql(vs: ValueSet, alias: str, d: Dialect = DUCKDB) -> str:
    """The event's value on the code set's canonical scale; NULL when not usable."""
    return convert_sql(vs, f"{alias}.value", f"{alias}.unit", d)


def day_offset(ev: str, idx: str, d: Dialect = DUCKDB, at: str = "") -> str:
    """Days from the anchor (``at``: "" the index, "dis_" its discharge, NULL when unknown) to the event."""
    return d["days_between"](f"{idx}.{at}day", f"{ev}.day")


def window_sql(w: Window, ev: str, idx: str, d: Dialect = DUCKDB, at: str = "") -> str:
    if w.unit == "d":
        off, lo, hi = day_offset(ev, idx, d, at), w.start, w.end
    else:
        off, lo, hi = f"({ev}.t_us - {idx}.{at}t_us)", w.start * 3_600_000_000, w.end * 3_600_000_000
    return f"{off} {'>=' if w.start_inclusive else '>'} {lo} AND {off} {'<=' if w.end_inclusive else '<'} {hi}"


def _threshold(t: ValueTest, vs: ValueSet, d: Dialect, alias: str = "m") -> str:
    """What values are compared with, on ``vs``'s canonical scale.

    A ``threshold`` is written in ``t.unit`` (canonical when omitted) and converted like a value; ``index_ratio``
    multiplies the index event's own value, converted with the same code set so both sides share one scale.
    """
    if t.index_ratio is not None:
        return f"({d['number'](t.index_ratio)} * {convert_sql(vs, f'{alias}.index_value', f'{alias}.index_unit', d)})"
    factor = unit_factor(t.unit, vs) if t.unit is not None else 1.0
    if factor is None:
        raise RuleError(vs.source_file or vs.name, f"threshold unit {t.unit!r} cannot be converted to code set {vs.name!r}")
    return d["number"](float(t.threshold) * factor)  # type: ignore[arg-type]


def _population(rule: Rule, d: Dialect) -> list[str]:
    p, where = rule.population, []
    if p.age_min is not None:
        where.append(f"age >= {int(p.age_min)}")
    if p.age_max is not None:
        where.append(f"age <= {int(p.age_max)}")
    if p.sex:
        where.append(f"sex IN ({', '.join(d['str'](s) for s in p.sex)})")
    return where


def _candidates(rule: Rule, rs: RuleSet, d: Dialect) -> str:
    vs, q = rs.valueset(rule.index.codes), d["str"]
    where = [f"e.cs = {codeset_key(vs)}", f"e.kind = {q(rule.index.kind)}"]
    if rule.index.settings:
        where.append(f"e.setting IN ({', '.join(q(s) for s in rule.index.settings)})")
    if rule.index.value is not None:
        where.append(f"{value_sql(vs, 'e', d)} {rule.index.value.op} {_threshold(rule.index.value, vs, d)}")
    age = ("year(e.day) - year(p.birth_date) - CASE WHEN month(e.day) < month(p.birth_date) OR "
           "(month(e.day) = month(p.birth_date) AND day(e.day) < day(p.birth_date)) THEN 1 ELSE 0 END")
    pop = _population(rule, d)
    dis = (f" CAST(e.enc_end AS DATE) AS dis_day, {d['epoch_us']('e.enc_end')} AS dis_t_us,"
           if any(c.anchor == "discharge" for cond in rule.conditions.values() for c in cond.criteria) else "")
    if any(cond.hospital_onset is not None for cond in rule.conditions.values()):
        dis += f" e.poa AS index_poa, {d['epoch_us']('e.enc_start')} AS enc_start_us,"
    return f"""cand AS (
  SELECT * FROM (
    SELECT e.ev_id AS cand_id, e.person_id, e.encounter_id, e.time AS index_time, e.day, e.t_us,
           e.system AS index_system, e.code AS index_code, e.value AS index_value, e.unit AS index_unit,
           e.days_supply AS index_days_supply, e.setting, e.care_unit, e.cost,{dis}
           {age} AS age, p.sex, p.listing_unit
    FROM lv_hit e JOIN lv_persons p ON p.person_id = e.person_id
    WHERE {' AND '.join(where)}
  ) {('WHERE ' + ' AND '.join(pop)) if pop else ''}
)"""


def _evidence(name: str, role: str, d: Dialect) -> str:
    """The condition's evidence list: its latest :data:`EVIDENCE_PER_CONDITION` events (ties by system, code, row).

    The events are picked first and only the picked ones rendered (text time, condition, role): rendering every
    matching event and sorting whole groups was most of a flagged rule's time."""
    fields = ["time", "system", "code", "value", "unit"]
    keys = [(d["epoch_us"]("m.time"), True), ("m.system", False), ("m.code", False), ("m.ev_id", False)]
    top = d["first_n"](d["struct"]([(f, f"m.{f}") for f in fields]), keys, EVIDENCE_PER_CONDITION)
    return d["list_map"](top, "x", d["struct"]([("condition", d["str"](name)), ("role", d["str"](role)),
                                                ("time", d["strftime"]("x.time", "%Y-%m-%dT%H:%M:%S")),
                                                *[(f, f"x.{f}") for f in fields[1:]]]))


def _criterion(i: int | str, name: str, role: str, crit: Criterion, rs: RuleSet, d: Dialect, src: str = "cand",
               p: str = "", evidence: bool = False, matched: bool = False) -> list[str]:
    """CTEs {p}m_i (matching events of the candidates in ``src``) and {p}h_i (holds, and with ``evidence`` the
    evidence list). With ``matched`` (a second pass, ``src`` a subset of the first pass's candidates), no {p}m_i:
    the rows of ``src``'s candidates are taken from the first pass's m_i, which halves the query DuckDB plans."""
    vs, q, at = rs.valueset(crit.codes), d["str"], "dis_" if crit.anchor == "discharge" else ""
    on = ["e.person_id = c.person_id", f"e.cs = {codeset_key(vs)}", f"e.kind = {q(crit.kind)}"]
    evidence = f", {_evidence(name, role, d)} AS evidence" if evidence else ""  # type: ignore[assignment]
    m, h = f"{p}m_{i}", f"{p}h_{i}"
    if matched:
        m = f"(SELECT * FROM m_{i} WHERE cand_id IN (SELECT cand_id FROM {src}))"
    if crit.same_encounter:
        on.append("e.encounter_id = c.encounter_id")
    ctes = []
    if crit.coverage is not None:
        lo, hi = crit.window.int_bounds()
        off = day_offset("e", "c", d, at)
        supply = "greatest(coalesce(e.days_supply, 1), 1)"
        ctes += [] if matched else [f"""{m} AS (
  SELECT c.cand_id, e.ev_id, e.time, e.system, e.code, e.value, e.unit,
         {d['int_range'](f'greatest({off}, {lo})', f'least({off} + {supply} - 1, {hi})')} AS days
  FROM {src} c JOIN lv_hit e ON {' AND '.join(on)}
  WHERE {off} <= {hi} AND {off} + {supply} - 1 >= {lo}
)"""]
        ctes.append(f"""{h} AS (
  SELECT m.cand_id, {d['list_len'](d['list_distinct'](f"flatten({d['list_agg']('m.days')})"))} >= {crit.coverage.min_days} AS holds{evidence}
  FROM {m} m GROUP BY m.cand_id
)""")
        return ctes
    where = [window_sql(crit.window, "e", "c", d, at)]
    join_first = ""
    if crit.first_in is not None and not matched:
        n = crit.first_in.amount
        ctes.append(f"""{p}f_{i} AS (
  SELECT person_id, day,
         lag(day) OVER (PARTITION BY person_id ORDER BY day) IS NULL
         OR {d['days_between']('lag(day) OVER (PARTITION BY person_id ORDER BY day)', 'day')} > {n} AS first_ok
  FROM (SELECT DISTINCT e.person_id, e.day FROM lv_hit e WHERE e.cs = {codeset_key(vs)} AND e.kind = {q(crit.kind)})
)""")
        join_first = f" JOIN {p}f_{i} f ON f.person_id = e.person_id AND f.day = e.day AND f.first_ok"
    ctes += [] if matched else [f"""{m} AS (
  SELECT c.cand_id, c.index_value, c.index_unit, e.ev_id, e.time, e.system, e.code, e.value, e.unit, {value_sql(vs, 'e', d)} AS v
  FROM {src} c JOIN lv_hit e ON {' AND '.join(on)}{join_first}
  WHERE {' AND '.join(where)}
)"""]
    t = crit.value
    if t is None:
        ctes.append(f"""{h} AS (
  SELECT m.cand_id, count(*) >= {crit.at_least} AS holds{evidence}
  FROM {m} m GROUP BY m.cand_id
)""")
    elif t.of == "any":
        thr = _threshold(t, vs, d)
        ctes.append(f"""{h} AS (
  SELECT m.cand_id, count(*) >= {crit.at_least} AS holds{evidence}
  FROM {m} m WHERE m.v IS NOT NULL AND m.v {t.op} {thr} GROUP BY m.cand_id
)""")
    else:
        thr = _threshold(t, vs, d)
        ctes.append(f"""{h} AS (
  SELECT m.cand_id, coalesce({d['bool_or'](f'm.v {t.op} {thr}')}, false) AS holds{evidence}
  FROM (SELECT *, max(time) OVER (PARTITION BY cand_id) AS t_last FROM {m} WHERE v IS NOT NULL) m
  WHERE m.time = m.t_last GROUP BY m.cand_id
)""")
    return ctes


def _any_of(i: int, name: str, role: str, crits: list[Criterion], rs: RuleSet, d: Dialect, src: str = "cand",
            p: str = "", evidence: bool = False, matched: bool = False) -> list[str]:
    """CTEs {p}h_i_j per criterion j, and {p}h_i: holds if any does; evidence = the holding criteria's events, capped."""
    ctes, hs, holds, evid = [], [], [], []
    for j, crit in enumerate(crits):
        ctes += _criterion(f"{i}_{j}", name, role, crit, rs, d, src, p, evidence, matched)
        hs.append(f"{p}h_{i}_{j}")
        holds.append(f"coalesce({p}h_{i}_{j}.holds, false)")
        evid.append(f"CASE WHEN {holds[-1]} THEN {p}h_{i}_{j}.evidence ELSE {d['no_evidence']()} END")
    flat = "flatten(" + d["list"](evid) + ")"
    ev = f", {d['list_head'](flat, EVIDENCE_PER_CONDITION)} AS evidence" if evidence else ""
    ctes.append(f"""{p}h_{i} AS (
  SELECT c.cand_id, {' OR '.join(holds)} AS holds{ev}
  FROM {src} c {_joins(hs)}
)""")
    return ctes


def _conditions(rule: Rule, rs: RuleSet, d: Dialect, src: str = "cand", p: str = "", evidence: bool = False,
                late: str | None = None, matched: bool = False) -> tuple[list[str], list[str], list[str]]:
    """CTEs, columns (one boolean per condition) and the names of the per-condition CTEs, joined on ``c.cand_id``.

    With ``late`` (a CTE of the eligible candidates, see :func:`compile_rule`), the eligibility conditions are judged
    on ``src`` first, then ``late`` is defined, then the other conditions are judged on ``late`` only.
    """
    q, ident = d["str"], d["ident"]
    ctes: list[str] = []
    exprs: dict[str, str] = {}
    hs: dict[str, str] = {}

    def judge(name: str, i: int, where: str) -> None:
        cond = rule.conditions[name]
        if cond.index_setting is not None:
            exprs[name] = f"coalesce(c.setting IN ({', '.join(q(s) for s in cond.index_setting)}), false)"
        elif cond.hospital_onset is not None:
            after = cond.hospital_onset.hours * 3_600_000_000
            exprs[name] = (f"coalesce(c.setting = 'inpatient' AND (c.index_poa = 'N' OR (coalesce(c.index_poa, 'U') = 'U' "
                           f"AND c.t_us - c.enc_start_us >= {after})), false)")
        else:
            make = _any_of if cond.any_of else _criterion
            ctes.extend(make(i, name, cond.role, cond.criteria if cond.any_of else cond.criteria[0],  # type: ignore[arg-type]
                             rs, d, where, p, evidence, matched))
            hs[name] = f"{p}h_{i}"
            exprs[name] = f"{'NOT ' if cond.role == 'exclude' else ''}coalesce({p}h_{i}.holds, false)"

    first = [n for n in rule.conditions if not late or n in rule.eligibility]
    for i, name in enumerate(rule.conditions):
        if name in first:
            judge(name, i, src)
    if late:
        ctes.append(f"{late} AS (SELECT c.* FROM {src} c {_joins([hs[n] for n in first if n in hs])} "
                    f"WHERE {' AND '.join(exprs[n] for n in first) or 'TRUE'})")
        for i, name in enumerate(rule.conditions):
            if name not in first:
                judge(name, i, late)
    cols = [f"{exprs[n]} AS {ident(f'cond__{n}')}" for n in rule.conditions]
    return ctes, cols, [hs[n] for n in rule.conditions if n in hs]


def _joins(hs: list[str]) -> str:
    return " ".join(f"LEFT JOIN {h} ON {h}.cand_id = c.cand_id" for h in hs)


def compile_rule(rule: Rule, rs: RuleSet, d: Dialect = DUCKDB, *, ordered: bool = True,
                 every_condition: bool = True, flagged_only: bool = False) -> str:
    """The SQL that judges every candidate of ``rule``: one row per candidate (after :func:`ensure_sets`).

    With ``every_condition`` False, the conditions beyond eligibility are judged for the eligible candidates only
    (in the others' rows their columns mean nothing): what a scan writes does not depend on them (an ineligible
    candidate is flagged by no tier, fails an eligibility condition first, and leaves the waterfall at an eligibility
    step), and a rule whose index is any routine test (every laboratory result a candidate, a few per thousand
    eligible) no longer joins every candidate to the history of every condition.

    Every condition is judged for every candidate; the evidence lists, which only flags show, are collected for
    the flagged candidates only (others get an empty list). With ``d["evidence_pass"]`` they are collected in a
    second pass over the flagged candidates (``fl``: DuckDB materialises the shared CTEs, and collecting and
    sorting events for millions of unflagged candidates is what made large scans slow); without it in the same
    pass (Spark inlines CTEs, so a second pass would judge every candidate twice).

    With ``flagged_only`` only the flagged candidates' rows are returned: a trigger's unflagged candidates are
    written nowhere, and their ``candidate_id`` (a digest of text renderings) was most of a large trigger's time.
    """
    q, ident = d["str"], d["ident"]
    second = bool(d["evidence_pass"]())
    late = "elig" if not every_condition and rule.eligibility else None
    ctes, cols, hs = _conditions(rule, rs, d, evidence=not second, late=late)
    ctes = [_candidates(rule, rs, d)] + ctes

    def tier(names: list[str]) -> str:
        return " AND ".join(ident(f"cond__{n}") for n in names) or "TRUE"

    def lists(hs: list[str]) -> str:
        evid = [f"coalesce({h}.evidence, {d['no_evidence']()})" for h in hs]
        return evid[0] if len(evid) == 1 else f"flatten({d['list'](evid)})"

    inline = f", {lists(hs)} AS all_evidence" if hs and not second else ""
    ctes.append(f"""judged AS (
  SELECT *, {tier(rule.conditions_of('eligibility'))} AS eligible, {tier(rule.conditions_of('sensitive'))} AS sensitive,
         {tier(rule.conditions_of('specific'))} AS specific
  FROM (SELECT c.cand_id, c.person_id, c.encounter_id, c.index_time, c.index_system, c.index_code, c.index_value,
               c.index_unit, c.index_days_supply, c.setting, c.care_unit AS unit, c.listing_unit, c.cost, c.age, c.sex
               {''.join(', ' + col for col in cols)}{inline}
        FROM cand c {_joins(hs)}) j
)""")
    evidence, ev_join, columns = d["no_evidence"](), "", "judged.*"
    if inline:
        evidence = f"CASE WHEN judged.sensitive OR judged.specific THEN judged.all_evidence ELSE {d['no_evidence']()} END"
        columns = ", ".join(f"judged.{c}" for c in ["cand_id", "person_id", "encounter_id", "index_time", "index_system",
                                                    "index_code", "index_value", "index_unit", "index_days_supply",
                                                    "setting", "unit", "listing_unit", "cost", "age", "sex"]
                            + [ident(f"cond__{n}") for n in rule.conditions] + ["eligible", "sensitive", "specific"])
    elif hs:
        ectes, _, ehs = _conditions(rule, rs, d, src="fl", p="e", evidence=True, matched=True)
        ctes.append("fl AS (SELECT c.* FROM cand c JOIN judged j ON j.cand_id = c.cand_id WHERE j.sensitive OR j.specific)")
        ctes += ectes
        ctes.append(f"ev AS (SELECT c.cand_id, {lists(ehs)} AS evidence FROM fl c {_joins(ehs)})")
        evidence, ev_join = f"coalesce(ev.evidence, {d['no_evidence']()})", " LEFT JOIN ev ON ev.cand_id = judged.cand_id"
    key = (f"concat_ws('|', person_id, coalesce(encounter_id, ''), {d['strftime']('index_time', '%Y-%m-%dT%H:%M:%S.%f')}, "
           f"index_system, index_code, coalesce({d['text']('index_value', 'double')}, ''), coalesce(index_unit, ''), "
           f"coalesce({d['text']('index_days_supply', 'int32')}, ''))")
    order = d["order_by"](["person_id", "index_time", "index_system", "index_code", "encounter_id", "index_value", "cand_id"])
    return f"""WITH {', '.join(ctes)}
SELECT substr(md5({q(rule.id)} || '|' || {key}), 1, 16) AS candidate_id, {columns}, {evidence} AS evidence
FROM judged{ev_join}""" + ("\nWHERE judged.sensitive OR judged.specific" if flagged_only else "") + (
        f"\nORDER BY {order}" if ordered else "")


TRIAL_COLUMNS = ["trial_id", "person_id", "encounter_id", "anchor_time", "anchor_system", "anchor_code", "setting",
                 "unit", "age", "sex", "eligible", "treated", "treatment_time"]
"""The columns of :func:`compile_trial`, before its ``cond__<name>`` columns (one per anchor eligibility condition)."""


def compile_trial(rule: Rule, rs: RuleSet, d: Dialect = DUCKDB, *, ordered: bool = True) -> str:
    """The SQL of the rule's target trial: one row per anchor (``docs/rule-language.md``, *Target trial*).

    The anchors are the candidates of :meth:`Rule.trial_rule` and its conditions are judged by the same CTEs as any
    rule's (windows from the anchor); ``tx`` adds the earliest index intervention in the grace window. ``trial_id``
    is a digest of the rule and the anchor's key, as ``candidate_id`` is of a candidate's.
    """
    assert rule.anchor is not None
    q, ident = d["str"], d["ident"]
    tr = rule.trial_rule()
    ctes, cols, hs = _conditions(tr, rs, d)
    vs = rs.valueset(rule.index.codes)
    on = ["e.person_id = c.person_id", f"e.cs = {codeset_key(vs)}", f"e.kind = {q(rule.index.kind)}",
          window_sql(rule.anchor.grace_window, "e", "c", d)]
    if rule.index.settings:
        on.append(f"e.setting IN ({', '.join(q(s) for s in rule.index.settings)})")
    if rule.index.value is not None:
        on.append(f"{value_sql(vs, 'e', d)} {rule.index.value.op} {_threshold(rule.index.value, vs, d)}")
    ctes = [_candidates(tr, rs, d)] + ctes + [f"""tx AS (
  SELECT c.cand_id, min(e.time) AS treatment_time FROM cand c JOIN lv_hit e ON {' AND '.join(on)} GROUP BY c.cand_id
)"""]
    elig = " AND ".join(ident(f"cond__{n}") for n in tr.eligibility) or "TRUE"
    key = (f"concat_ws('|', person_id, coalesce(encounter_id, ''), {d['strftime']('anchor_time', '%Y-%m-%dT%H:%M:%S.%f')}, "
           f"anchor_system, anchor_code, coalesce({d['text']('index_value', 'double')}, ''), coalesce(index_unit, ''))")
    order = d["order_by"](["person_id", "anchor_time", "anchor_system", "anchor_code", "encounter_id", "cand_id"])
    conds = "".join(f", {ident(f'cond__{n}')}" for n in tr.conditions)
    return f"""WITH {', '.join(ctes)}
SELECT substr(md5({q(rule.id)} || '|anchor|' || {key}), 1, 16) AS trial_id, person_id, encounter_id, anchor_time,
       anchor_system, anchor_code, setting, unit, age, sex, {elig} AS eligible, treatment_time IS NOT NULL AS treated,
       treatment_time{conds}
FROM (SELECT c.cand_id, c.person_id, c.encounter_id, c.index_time AS anchor_time, c.index_system AS anchor_system,
             c.index_code AS anchor_code, c.index_value, c.index_unit, c.setting, c.care_unit AS unit, c.age, c.sex,
             tx.treatment_time{''.join(', ' + col for col in cols)}
      FROM cand c {_joins(hs + ['tx'])}) t""" + (f"\nORDER BY {order}" if ordered else "")


def evaluate_trial(con: duckdb.DuckDBPyConnection, rule: Rule, rs: RuleSet) -> pd.DataFrame:
    """The rule's target trial on the extract in ``con`` (after :func:`prepare`): :func:`compile_trial`'s rows."""
    ensure_sets(con, code_sets(rs, [rule]))
    if con.execute("SELECT count(*) FROM lv_set_keys WHERE cs NOT IN (SELECT cs FROM lv_hit_keys)").fetchall()[0][0]:
        build_hits(con)
    return con.execute(compile_trial(rule, rs)).df()


def trial_frames(persons: pd.DataFrame, encounters: pd.DataFrame, events: pd.DataFrame, rule: Rule,
                 rs: RuleSet) -> pd.DataFrame:
    """The rule's target trial on pandas frames; the reference evaluator's columns (:func:`reference.trial`)."""
    from lowvalue.engine.reference import TRIAL_COLUMNS as REF

    df = _on_frames(persons, encounters, events, lambda con: evaluate_trial(con, rule, rs))
    return df[REF + [c for c in df.columns if c.startswith("cond__")]].reset_index(drop=True)


def evaluate(con: duckdb.DuckDBPyConnection, rule: Rule, rs: RuleSet) -> pd.DataFrame:
    """Judge every candidate of ``rule`` on the extract in ``con`` (after :func:`prepare`)."""
    ensure_sets(con, code_sets(rs, [rule]))
    if con.execute("SELECT count(*) FROM lv_set_keys WHERE cs NOT IN (SELECT cs FROM lv_hit_keys)").fetchall()[0][0]:
        build_hits(con)  # a code set matched since lv_hit was built (all persons: tests and small extracts)
    return con.execute(compile_rule(rule, rs)).df()


def canonical_select(name: str, columns: list[str], source: str, d: Dialect = DUCKDB) -> str:
    """SELECT the canonical table ``name`` from ``source``: every schema column, cast, NULL when absent."""
    cols = [
        (f"CAST({d['ident'](f.name)} AS {d['type'](str(f.type))})" if f.name in columns
         else f"CAST(NULL AS {d['type'](str(f.type))})") + f" AS {d['ident'](f.name)}"
        for f in TABLES[name].schema
    ]
    return f"SELECT {', '.join(cols)} FROM {source}"


def load_frames(con: duckdb.DuckDBPyConnection, persons: pd.DataFrame, encounters: pd.DataFrame,
                events: pd.DataFrame) -> None:
    """Create the canonical tables in ``con`` from pandas frames (for tests and small data; no validation)."""
    for name, df in (("persons", persons), ("encounters", encounters), ("events", events)):
        con.register(f"_lv_{name}", df)
        con.execute(f"CREATE OR REPLACE TABLE {name} AS {canonical_select(name, list(df.columns), f'_lv_{name}')}")
        con.unregister(f"_lv_{name}")
        number_rows(con, name)


CANDIDATE_KEY = ["person_id", "encounter_id", "index_time", "index_system", "index_code", "index_value", "index_unit",
                 "index_days_supply"]


def _on_frames(persons: pd.DataFrame, encounters: pd.DataFrame, events: pd.DataFrame,
               run: Callable[[duckdb.DuckDBPyConnection], pd.DataFrame]) -> pd.DataFrame:
    """``run`` on a fresh DuckDB connection holding the frames as an extract (after :func:`prepare`): how the
    cross-checks and test decks put small pandas extracts through the engine."""
    con = duckdb.connect()
    try:
        load_frames(con, persons, encounters, events)
        prepare(con)
        return run(con)
    finally:
        con.close()


def frame_columns(rule: Rule) -> list[str]:
    """The columns of :func:`evaluate_frames` (and of the reference evaluator), in order."""
    return CANDIDATE_KEY + ["eligible", "sensitive", "specific"] + [f"cond__{n}" for n in rule.conditions]


def evaluate_frames(persons: pd.DataFrame, encounters: pd.DataFrame, events: pd.DataFrame, rule: Rule,
                    rs: RuleSet) -> pd.DataFrame:
    """Evaluate one rule on pandas frames; same columns and order as the reference evaluator."""
    df = _on_frames(persons, encounters, events, lambda con: evaluate(con, rule, rs))
    return df[frame_columns(rule)].reset_index(drop=True)
