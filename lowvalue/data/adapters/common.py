"""Shared machinery of the extract adapters: reading sources, mapping codes, checking, writing.

Every adapter works in three steps, all in DuckDB SQL so nothing is loaded into pandas:

1. **stage**: the format module reads each source table straight from its CSV / CSV.gz /
   Parquet files (:class:`Source`; CSV as :mod:`lowvalue.data.readers` reads it) and inserts canonical-shaped rows into four staging
   tables of a disk-backed work database: ``st_persons``, ``st_encounters``, ``st_events``
   and ``st_aux`` (source rows that only feed attributes, e.g. OMOP ``death``, MIMIC
   ``icustays``). Every staged row carries its ``src_table`` and 1-based ``src_row``
   (the data row in the source, header not counted), a ``problem`` reason code when the
   adapter already knows the row cannot be used, and ``n_src`` (how many source rows it
   stands for; 1 in every adapter today).
2. **check** (:func:`finish`): the checks of :mod:`lowvalue.data.validation` are applied
   here, so that ``open_extract`` on the output quarantines nothing: missing required
   values, unknown persons, dates before birth / after death, duplicate keys, exact
   duplicate events (quarantined only when the source rows are duplicates too, else merged:
   :func:`_dedup_events`), an event's encounter of another person. Repairs instead of
   quarantine, each counted per source table: an event whose encounter does not exist
   keeps the event with ``encounter_id`` NULL (``encounter_not_found``); an encounter
   ending before it starts loses its end time; negative costs and days_supply outside
   0..3650 become NULL.
3. **write**: ``persons``, ``encounters``, ``events`` Parquet files with exactly the
   canonical schema, ``source_codes.parquet`` (one row per event: ``event_row``, the
   1-based row of the event in ``events.parquet``, with ``source_table``,
   ``source_row``, ``source_system``, ``source_code``), ``quarantine/<source_table>.parquet``
   (``source_row``, ``reason_code``, ``reason`` and the source's own columns minus direct
   identifiers) and ``conversion.json`` (also listing source tables present but not converted,
   and warnings such as labs written without values).

Codes: one canonical event per source row. It carries the standard system/code when a
shipped mapping exists (e.g. a MIMIC lab itemid -> LOINC, a drug name -> ATC) and the
source's own system/code otherwise; the original is always kept in ``source_codes.parquet``.
So a rule never sees the same intervention twice (once as RxNorm, once as ATC).

Counts reconcile per source table: ``read = written + quarantined`` where *written* counts
source rows represented in the output (a source row that yields one canonical row, or
several, or is merged into one) and *quarantined* the source rows that yield none.
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from importlib.resources import files
from typing import Iterable

import duckdb

from lowvalue.data.readers import (
    _csv_error, _unique, csv_sql, detect_encoding, quick_encoding, quote_ident, quote_literal, read_header, utf8_file,
)
from lowvalue.data.schema import EVENT_KINDS, SETTINGS
from lowvalue.data.validation import REASON_CODES, date_sql, number_sql, timestamp_sql
from lowvalue.errors import InputError

MAPPINGS = Path(str(files("lowvalue.data.adapters") / "mappings"))  # package data, on disk

DIRECT_IDENTIFIER_COLUMNS = frozenset({
    "ssn", "drivers", "passport", "prefix", "first", "middle", "last", "suffix", "maiden", "name", "given", "family",
    "address", "birthplace", "city", "county", "zip", "fips", "lat", "lon", "phone", "email", "mrn",
    "person_source_value",
})
"""Source columns never written anywhere (not even to quarantine files): names, addresses, SSN,
passport, driver's licence, and OMOP ``person_source_value`` (often a hospital record number)."""

NON_SYSTEMIC = r"(ophth|ophthalmic|\boph\b|\botic\b|topical|cream|ointment|\boint\b|\bgel\b|lotion|\beye\b|\bear\b|vaginal|\bvag\b|inhal|nebul|\bsoln?\b.*\bflush\b|mouthwash|shampoo|patch)"
"""Drug names that look non-systemic; name patterns marked systemic_only are not applied to them."""

ADAPTER_REASONS: dict[str, str] = {
    **REASON_CODES,
    "unknown_admission": "the row is dated by an admission (hadm_id) that is not in admissions",
    "no_birth_date": "the subject has no usable birth date (MEDS_BIRTH / year_of_birth)",
    "static_row": "a MEDS row without time that is not a birth, death or sex fact",
    "unknown_visit": "the row refers to a visit/admission that is not in the source",
}

TIMESTAMP_FROM_TEXT = timestamp_sql  # re-exported for the format modules
NUMBER_FROM_TEXT = number_sql
DATE_FROM_TEXT = date_sql


# --------------------------------------------------------------------------- SQL helpers


def text(expr: str) -> str:
    """Trimmed text, NULL if empty."""
    return f"NULLIF(trim(CAST({expr} AS VARCHAR)), '')"


def ident_sql(expr: str) -> str:
    """An identifier as the source's own string; ``123.0`` / ``1.23e5`` (ids written as floats) -> ``123`` / ``123000``."""
    t = text(expr)
    return (f"(CASE WHEN strpos({t}, '.') = 0 AND strpos({t}, '+') = 0 THEN {t} "
            f"WHEN regexp_full_match({t}, '-?\\d+\\.0*') THEN regexp_extract({t}, '^(-?\\d+)', 1) "
            f"WHEN regexp_full_match({t}, '-?\\d+(\\.\\d+)?[eE]\\+?\\d+') AND TRY_CAST({t} AS DOUBLE) = round(TRY_CAST({t} AS DOUBLE)) "
            f"THEN CAST(CAST(TRY_CAST({t} AS DOUBLE) AS HUGEINT) AS VARCHAR) ELSE {t} END)")


def ts_sql(expr: str) -> str:
    """TIMESTAMP (UTC, zone dropped when one is given) from text or a typed column (see validation.timestamp_sql)."""
    t = text(expr)
    tail = f"substr({t}, 11)"
    # fast paths: ISO text ending in Z (UTC) or without any offset casts directly; anything else takes the full parser
    return (f"(CASE WHEN right({t}, 1) IN ('Z', 'z') AND TRY_CAST({t} AS TIMESTAMP) IS NOT NULL THEN TRY_CAST({t} AS TIMESTAMP) "
            f"WHEN strpos({tail}, '+') = 0 AND strpos({tail}, '-') = 0 AND TRY_CAST({t} AS TIMESTAMP) IS NOT NULL "
            f"THEN TRY_CAST({t} AS TIMESTAMP) ELSE {timestamp_sql(t)} END)")


def num_sql(expr: str) -> str:
    return number_sql(text(expr))


def day_sql(expr: str) -> str:
    return date_sql(text(expr))


def q(value: str) -> str:
    return quote_literal(str(value))


# --------------------------------------------------------------------------- reading sources


@dataclass
class SourceTable:
    """One source table: its files, format and columns (lower-case name -> name as in the file)."""

    name: str
    files: list[Path]
    fmt: str  # csv | parquet | empty
    columns: dict[str, str]
    label: str
    source_sql: str = ""  # FROM-clause of the rows in file order (set by :class:`Source`)
    rows: int | None = None  # known after a CSV table's reading pass

    def scan(self) -> str:
        """FROM-clause SQL: every source row, in file order, with ``src_row`` (1-based) and its columns as in the file."""
        if not self.source_sql:
            files = "[" + ", ".join(q(str(f)) for f in self.files) + "]"
            self.source_sql = f"read_parquet({files}, union_by_name=true)"
        if self.fmt == "csv" and len(self.files) > 1:
            return f"(SELECT row_number() OVER (ORDER BY _f, _r) AS src_row, * EXCLUDE (_f, _r) FROM {self.source_sql})"
        return f"(SELECT row_number() OVER () AS src_row, * FROM {self.source_sql})"

    def has(self, col: str) -> bool:
        return col.lower() in self.columns

    def col(self, col: str, alias: str = "s") -> str:
        """SQL for a column (any case), or NULL when the file lacks it."""
        actual = self.columns.get(col.lower())
        return f"{alias}.{quote_ident(actual)}" if actual is not None else "CAST(NULL AS VARCHAR)"

    def need(self, *cols: str) -> None:
        """InputError naming file and column when a required column is missing."""
        for c in cols:
            if c.lower() not in self.columns:
                found = ", ".join(self.columns) or "none"
                raise InputError(self.label, f"required column missing (found: {found})", column=c)

    def safe_columns(self) -> list[str]:
        """Source columns that may be copied to quarantine files (no direct identifiers)."""
        return [a for lc, a in self.columns.items() if lc not in DIRECT_IDENTIFIER_COLUMNS]


def _files_for(folder: Path, name: str) -> tuple[list[Path], str] | None:
    """Files of table ``name`` in ``folder`` (case-insensitive): name.csv, .csv.gz, .tsv, .txt, .parquet, or name/*.parquet|*.csv."""
    if not folder.is_dir():
        return None
    entries = {p.name.lower(): p for p in folder.iterdir()}
    lname = name.lower()
    for suffix, fmt in ((".parquet", "parquet"), (".csv", "csv"), (".csv.gz", "csv"), (".tsv", "csv"), (".txt", "csv")):
        p = entries.get(lname + suffix)
        if p is not None and p.is_file():
            return [p], fmt
    d = entries.get(lname)
    if d is not None and d.is_dir():
        pq = sorted(d.rglob("*.parquet"))
        if pq:
            return pq, "parquet"
        cs = sorted([*d.rglob("*.csv"), *d.rglob("*.csv.gz")])
        if cs:
            return cs, "csv"
        return [], "empty"
    return None


def csv_header(path: Path) -> list[str]:
    """Column names of a CSV file as the canonical reader sees them (encoding, delimiter, BOM handled)."""
    return _unique(read_header(path, quick_encoding(path) or detect_encoding(path))[1])


class Source:
    """A source folder: locates tables and opens them for SQL.

    CSV files are read with the canonical reader's functions (:mod:`lowvalue.data.readers`): the same encodings
    (UTF-8 with or without BOM, cp1252 and UTF-16 transcoded to a temporary UTF-8 file kept for the run), the same
    delimiters and the same one-line errors. Each CSV file is read once in full when opened, so that an encoding
    or CSV error surfaces here, as an :class:`InputError`, and not halfway through a conversion.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, root: Path, stack: ExitStack):
        self.con, self.root, self.stack = con, root, stack
        self.opened: dict[str, SourceTable | None] = {}

    def table(self, name: str, *, required: bool = False, subdir: str | None = None, need: Iterable[str] = ()) -> SourceTable | None:
        folder = self.root / subdir if subdir else self.root
        key = str(folder / name).lower()
        st = self.opened.get(key)  # a table looked up twice is read once
        if st is None:
            st = self.opened[key] = self._open(name, folder, required)
        if st is not None and st.fmt != "empty":
            st.need(*need)
        return st

    def _open(self, name: str, folder: Path, required: bool) -> SourceTable | None:
        found = _files_for(folder, name)
        label = str(folder / name)
        if found is None or found[1] == "empty":
            if required:
                raise InputError(label, "required table missing (looked for .csv, .csv.gz, .parquet or a folder of them)")
            return None
        files, fmt = found
        label = str(files[0]) if len(files) == 1 else label
        if all(f.stat().st_size == 0 for f in files):  # an empty file: no rows, no columns
            if required:
                raise InputError(label, "file is empty")
            return SourceTable(name, files, "empty", {}, label)
        return self.files_table(name, files, fmt, label)

    def files_table(self, name: str, files: list[Path], fmt: str, label: str) -> SourceTable:
        """A source table of the given files, its columns known (InputError naming the file if it cannot be read)."""
        st = SourceTable(name, files, fmt, {}, label)
        if fmt == "csv":
            parts = [self._csv(f) for f in files]
            st.rows = sum(n for _, _, n in parts)
            if len(parts) == 1:
                st.source_sql, names = parts[0][0], parts[0][1]
            else:  # several files of one table: in file order, columns matched by name
                st.source_sql = "(" + " UNION ALL BY NAME ".join(
                    f"SELECT {i} AS _f, row_number() OVER () AS _r, * FROM {sql}" for i, (sql, _, _) in enumerate(parts)) + ")"
                names = [n for _, ns, _ in parts for n in ns]
        else:
            try:
                names = [r[0] for r in self.con.execute(f"DESCRIBE SELECT * EXCLUDE (src_row) FROM {st.scan()}").fetchall()]
            except duckdb.Error as exc:
                raise InputError(label, f"cannot read {fmt}: {str(exc).splitlines()[0]}") from None
        for n in names:
            st.columns.setdefault(str(n).strip().lower(), n)
        return st

    def _csv(self, path: Path) -> tuple[str, list[str], int]:
        """(FROM-clause, column names, rows) of one CSV file, read through once as ``readers.read_csv`` does:
        clean UTF-8 in the first MiB is read directly; invalid UTF-8 later on means scanning it all, then cp1252."""
        encoding = quick_encoding(path) or detect_encoding(path)
        delim, header = read_header(path, encoding)
        names = _unique(header)

        def load(encoding: str) -> tuple[str, int]:
            sql = csv_sql(self.stack.enter_context(utf8_file(path, encoding)), delim, names)
            # hashing the whole row makes DuckDB decode every field: a count alone would skip them
            return sql, int(self.con.execute(f"SELECT count(*), max(hash(s)) FROM {sql} s").fetchone()[0])

        try:
            try:
                sql, n = load(encoding)
            except duckdb.InvalidInputException as exc:
                if "Invalid unicode" not in str(exc) or encoding not in ("utf-8", "utf-8-sig"):
                    raise
                sql, n = load(detect_encoding(path))  # not UTF-8 after all: cp1252, or InputError with the line
        except (duckdb.InvalidInputException, duckdb.ConversionException) as exc:
            raise _csv_error(path, exc) from None
        except duckdb.IOException as exc:
            raise InputError(str(path), f"cannot read file: {str(exc).splitlines()[0]}") from None
        return sql, names, n


# --------------------------------------------------------------------------- mapping tables


def read_mapping(name: str) -> tuple[list[str], list[list[str]]]:
    """A shipped mapping CSV (``#`` lines are provenance comments): header and rows."""
    with (MAPPINGS / name).open(encoding="utf-8", newline="") as f:
        lines = [ln for ln in f if not ln.startswith("#")]
    rows = list(csv.reader(lines))
    return rows[0], rows[1:]


def load_mappings(con: duckdb.DuckDBPyConnection) -> None:
    """Create the ``map_*`` tables from the shipped CSVs."""
    for name in ("lab_items", "units", "icu_items", "settings", "vocabularies", "drug_names_atc", "drug_codes_atc"):
        header, rows = read_mapping(f"{name}.csv")
        cols = ", ".join(f"{quote_ident(h)} VARCHAR" for h in header)
        con.execute(f"CREATE OR REPLACE TABLE map_{name} ({cols})")
        if rows:
            con.executemany(f"INSERT INTO map_{name} VALUES ({', '.join('?' for _ in header)})", rows)
    con.execute("CREATE OR REPLACE TABLE map_vocab_u AS SELECT upper(vocabulary) AS vocabulary, any_value(system) AS system, "
                "any_value(kind) AS kind FROM map_vocabularies GROUP BY 1")
    con.execute("CREATE OR REPLACE TABLE map_units_n AS SELECT system, code, lower(trim(from_unit)) AS from_unit, to_unit, "
                "CAST(factor AS DOUBLE) AS factor FROM map_units")


def setting_sql(fmt: str, expr: str) -> str:
    """The canonical setting of a source encounter class (``map_settings``), NULL when only the default applies."""
    return (f"(SELECT m.setting FROM map_settings m WHERE m.format = {q(fmt)} AND upper(m.source_value) = upper({text(expr)}))")


def default_setting(con: duckdb.DuckDBPyConnection, fmt: str) -> str:
    return con.execute("SELECT setting FROM map_settings WHERE format = ? AND source_value = '*'", [fmt]).fetchone()[0]


def build_drug_map(con: duckdb.DuckDBPyConnection, names_sql: str, table: str) -> None:
    """Create ``table`` (system, code, name, atc) from the distinct (system, code, name) of ``names_sql``.

    Order: an ATC code stays; a code in ``drug_codes_atc``; else the best name pattern
    (lowest priority, then longest pattern; systemic_only patterns skip non-systemic names).
    ``atc`` NULL means unmapped (the source code is kept).
    """
    con.execute(f"CREATE OR REPLACE TEMP TABLE _dn AS SELECT DISTINCT system, code, name FROM ({names_sql})")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {table} AS
        WITH by_name AS (
            SELECT d.system, d.code, d.name, m.atc,
                   row_number() OVER (PARTITION BY d.system, d.code, d.name
                                      ORDER BY CAST(m.priority AS INTEGER), length(m.pattern) DESC, m.pattern) AS rn
            FROM _dn d JOIN map_drug_names_atc m
              ON d.name IS NOT NULL AND regexp_matches(lower(d.name), m.pattern)
             AND NOT (m.systemic_only = '1' AND regexp_matches(lower(d.name), {q(NON_SYSTEMIC)}))
        )
        SELECT d.system, d.code, d.name,
               CASE WHEN d.system = 'ATC' THEN d.code
                    ELSE COALESCE(c.atc, NULLIF(n.atc, '')) END AS atc
        FROM _dn d
        LEFT JOIN map_drug_codes_atc c ON c.system = d.system AND c.code = d.code
        LEFT JOIN by_name n ON n.rn = 1 AND n.system IS NOT DISTINCT FROM d.system AND n.code IS NOT DISTINCT FROM d.code
                           AND n.name IS NOT DISTINCT FROM d.name
    """)


# --------------------------------------------------------------------------- staging tables

STAGE_DDL = {
    "st_persons": "src_table VARCHAR, src_row BIGINT, n_src INTEGER, person_id VARCHAR, birth_date DATE, sex VARCHAR, "
                  "municipality VARCHAR, listing_unit VARCHAR, death_date DATE, problem VARCHAR",
    "st_encounters": "src_table VARCHAR, src_row BIGINT, n_src INTEGER, encounter_id VARCHAR, person_id VARCHAR, "
                     "start_time TIMESTAMP, end_time TIMESTAMP, setting VARCHAR, unit VARCHAR, cost DOUBLE, "
                     "setting_defaulted BOOLEAN, problem VARCHAR",
    "st_events": "src_table VARCHAR, src_row BIGINT, n_src INTEGER, person_id VARCHAR, encounter_id VARCHAR, time TIMESTAMP, "
                 "kind VARCHAR, system VARCHAR, code VARCHAR, value DOUBLE, unit VARCHAR, days_supply INTEGER, cost DOUBLE, "
                 "source_system VARCHAR, source_code VARCHAR, unit_normalised BOOLEAN, problem VARCHAR",
    "st_aux": "src_table VARCHAR, src_row BIGINT, n_src INTEGER, person_id VARCHAR, problem VARCHAR",
}

EVENT_STAGE_COLUMNS = [c.split()[0] for c in STAGE_DDL["st_events"].split(", ")]


def unit_join(alias: str, system: str, code: str, unit: str) -> str:
    """LEFT JOIN clause normalising units: ``{alias}.factor`` / ``{alias}.to_unit`` for (system, code, unit)."""
    return (f"LEFT JOIN map_units_n {alias} ON {alias}.system = {system} AND {alias}.code = {code} "
            f"AND {alias}.from_unit = lower(trim({unit}))")


# --------------------------------------------------------------------------- the run


@dataclass
class TableReport:
    source_table: str
    read: int = 0
    written: int = 0
    quarantined: int = 0
    canonical_rows: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    repairs: dict[str, int] = field(default_factory=dict)
    role: str = "data"  # data | reference (vocabularies, dictionaries: read, not converted)


@dataclass
class ConversionReport:
    """What a conversion did: counts per source table, code mapping per system, output files."""

    fmt: str
    source: str
    out: str
    tables: dict[str, TableReport]
    canonical: dict[str, int]
    codes: dict[str, dict]
    units_normalised: dict[str, int]
    notes: list[str]
    warnings: list[str] = field(default_factory=list)  # data converted but with something lost, e.g. labs without values
    not_converted: dict[str, str] = field(default_factory=dict)  # source file present but not read -> why
    seconds: float = 0.0
    dates_shifted: bool = False  # the source moves dates (MIMIC-IV): open_extract then sets no "after today" bound

    @property
    def quarantined(self) -> int:
        return sum(t.quarantined for t in self.tables.values())

    def to_dict(self) -> dict:
        return {
            "format": self.fmt, "source": self.source, "output": self.out, "seconds": round(self.seconds, 2),
            "rule": "per source table: read = written + quarantined (source rows; written = represented in the output)",
            "tables": {k: {"role": t.role, "read": t.read, "written": t.written, "quarantined": t.quarantined,
                           "canonical_rows": t.canonical_rows, "quarantine_reasons": t.reasons, "repairs": t.repairs}
                       for k, t in self.tables.items()},
            "canonical": self.canonical, "codes": self.codes, "units_normalised": self.units_normalised,
            "notes": self.notes, "warnings": self.warnings, "not_converted": self.not_converted,
            "dates_shifted": self.dates_shifted,
        }

    def summary(self) -> str:
        head = ("source table", "read", "written", "quarantined")
        rows = [(k, f"{t.read:,}", f"{t.written:,}", f"{t.quarantined:,}") for k, t in self.tables.items() if t.role == "data"]
        w = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
        lines = [f"converted {self.fmt} {self.source} -> {self.out} in {self.seconds:.1f} s (read = written + quarantined)"]
        lines += ["  ".join([r[0].ljust(w[0])] + [r[i].rjust(w[i]) for i in (1, 2, 3)]) for r in [head, *rows]]
        for k, t in self.tables.items():
            if t.reasons:
                lines.append(f"{k}: quarantined: " + ", ".join(f"{c} {n:,}" for c, n in sorted(t.reasons.items(), key=lambda x: -x[1])))
            if t.repairs:
                lines.append(f"{k}: repaired: " + ", ".join(f"{c} {n:,}" for c, n in sorted(t.repairs.items(), key=lambda x: -x[1])))
        lines.append("canonical: " + ", ".join(f"{k} {v:,}" for k, v in self.canonical.items()))
        if self.not_converted:
            lines.append("not converted (reasons in conversion.json): " + ", ".join(self.not_converted))
        lines += [f"warning: {w}" for w in self.warnings]
        for system, c in self.codes.items():
            to = ", ".join(f"{s} {n:,}" for s, n in c["mapped_to"].items())
            lines.append(f"codes {system}: {c['rows']:,} rows, mapped {c['mapped']:,}" + (f" ({to})" if to else "")
                         + f", unmapped {c['unmapped']:,}")
        return "\n".join(lines)


class Run:
    """One conversion: the work database, the sources, and the counts."""

    def __init__(self, fmt: str, src: Path, out: Path, *, memory_limit: str = "2GB", threads: int | None = None):
        self.fmt, self.src, self.out = fmt, Path(src), Path(out)
        self.started = time.perf_counter()
        self.out.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=".lv_convert_", dir=self.out))
        self.con = duckdb.connect()  # in memory; spills to temp_directory beyond memory_limit
        self.con.execute(f"SET memory_limit = {q(memory_limit)}")
        self.con.execute(f"SET temp_directory = {q(str(self.tmp / 'spill'))}")
        self.con.execute("SET preserve_insertion_order = true")
        self.con.execute("SET TimeZone = 'UTC'")
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        for name, ddl in STAGE_DDL.items():
            self.con.execute(f"CREATE TABLE {name} ({ddl})")
        load_mappings(self.con)
        self.stack = ExitStack()  # temporary UTF-8 copies of cp1252 / UTF-16 sources, removed in close()
        self.source = Source(self.con, self.src, self.stack)
        self.tables: dict[str, SourceTable] = {}
        self.reports: dict[str, TableReport] = {}
        self.notes: list[str] = []
        self.warnings: list[str] = []
        self.used: set[Path] = set()  # source files registered (read), whatever their role
        self.not_converted: dict[str, str] = {}
        self.dates_shifted = False  # a format module sets it when its source shifts dates (conversion.json)

    # -- registration

    def register(self, st: SourceTable | None, key: str | None = None, role: str = "data") -> SourceTable | None:
        """Count a source table's rows and remember it (for reconciliation and quarantine files)."""
        if st is None:
            return None
        key = key or st.name
        self.tables[key] = st
        self.used.update(f.resolve() for f in st.files)
        if st.fmt == "empty":
            n = 0
        elif st.rows is not None:
            n = st.rows
        else:
            n = int(self.con.execute(f"SELECT count(*) FROM {st.scan()}").fetchone()[0])
        self.reports[key] = TableReport(key, read=n, role=role)
        if n == 0:
            self.notes.append(f"{key}: empty table")
        return st

    def sql(self, query: str, params: list | None = None) -> None:
        self.con.execute(query, params or [])

    def list_not_converted(self, folders: Iterable[str], reasons: dict[str, str]) -> None:
        """Record source tables present in ``folders`` (relative to the source) that no adapter step read.

        So that a table the adapter does not know (or a misnamed one, e.g. ``lab_events.csv``) is visible in
        conversion.json instead of silently skipped. Reasons by lower-case table name; default "not used by lowvalue".
        """
        scanned = {(self.src / f).resolve() for f in folders}
        for folder in folders:
            base = self.src / folder
            if not base.is_dir():
                continue
            for entry in sorted(base.iterdir()):
                low = entry.name.lower()
                if entry.is_dir():
                    if entry.resolve() in scanned:
                        continue
                    files = [f for f in entry.rglob("*") if f.is_file() and table_suffix(f.name)]
                else:
                    files = [entry] if table_suffix(low) else []
                if files and not any(f.resolve() in self.used for f in files):
                    name = low.removesuffix(table_suffix(low) or "")
                    rel = entry.relative_to(self.src).as_posix()
                    self.not_converted[rel] = reasons.get(name, "not used by lowvalue")

    def close(self) -> None:
        try:
            self.con.close()
        finally:
            self.stack.close()
            shutil.rmtree(self.tmp, ignore_errors=True)


TABLE_SUFFIXES = (".csv.gz", ".csv", ".tsv", ".parquet")
"""Files that count as source tables when listing what was not converted (not .txt: READMEs, checksums)."""


def table_suffix(name: str) -> str | None:
    return next((s for s in TABLE_SUFFIXES if name.lower().endswith(s)), None)


# --------------------------------------------------------------------------- check and write


def _reasons(*checks: tuple[str, str]) -> str:
    parts = ", ".join(f"CASE WHEN {cond} THEN {q(code)} END" for cond, code in checks)
    return f"NULLIF(concat_ws(';', {parts}), '')"


def finish(run: Run) -> ConversionReport:
    """Check the staged rows, write the canonical extract, quarantine files and conversion.json."""
    con, out = run.con, run.out
    settings = ", ".join(q(s) for s in SETTINGS)
    kinds = ", ".join(q(k) for k in EVENT_KINDS)

    # persons ---------------------------------------------------------------
    con.execute(f"""
        CREATE TABLE ck_persons AS
        SELECT *, {_reasons(("problem IS NOT NULL", "__problem"), ("person_id IS NULL", "missing:person_id"),
                            ("birth_date IS NULL", "missing:birth_date"), ("death_date < birth_date", "death_before_birth"),
                            ("person_id IS NOT NULL AND dup > 1", "duplicate_key"))} AS reasons
        FROM (SELECT *, CASE WHEN person_id IS NULL THEN 0 ELSE row_number() OVER (PARTITION BY person_id ORDER BY src_table, src_row) END AS dup
              FROM st_persons)""")
    con.execute("UPDATE ck_persons SET reasons = replace(reasons, '__problem', problem) WHERE problem IS NOT NULL")
    con.execute("CREATE TABLE ok_persons AS SELECT person_id, birth_date, COALESCE(sex, 'U') AS sex, municipality, listing_unit, "
                "death_date FROM ck_persons WHERE reasons IS NULL")

    # encounters ------------------------------------------------------------
    con.execute(f"""
        CREATE TABLE ck_encounters AS
        SELECT e.*, {_reasons(("e.problem IS NOT NULL", "__problem"), ("e.encounter_id IS NULL", "missing:encounter_id"),
                              ("e.person_id IS NULL", "missing:person_id"), ("e.start_time IS NULL", "missing:start_time"),
                              (f"e.setting IS NULL OR e.setting NOT IN ({settings})", "unknown_setting"),
                              ("e.person_id IS NOT NULL AND p.person_id IS NULL", "unknown_person"),
                              ("CAST(e.start_time AS DATE) < p.birth_date", "before_birth"),
                              ("CAST(e.start_time AS DATE) > p.death_date", "after_death"),
                              ("e.encounter_id IS NOT NULL AND e.dup > 1", "duplicate_key"))} AS reasons
        FROM (SELECT *, CASE WHEN encounter_id IS NULL THEN 0 ELSE row_number() OVER (PARTITION BY encounter_id ORDER BY src_table, src_row) END AS dup
              FROM st_encounters) e
        LEFT JOIN ok_persons p ON p.person_id = e.person_id""")
    con.execute("UPDATE ck_encounters SET reasons = replace(reasons, '__problem', problem) WHERE problem IS NOT NULL")
    con.execute("""
        CREATE TABLE ok_encounters AS
        SELECT encounter_id, person_id, start_time, CASE WHEN end_time < start_time THEN NULL ELSE end_time END AS end_time,
               setting, unit, CASE WHEN cost < 0 OR NOT isfinite(cost) THEN NULL ELSE cost END AS cost
        FROM ck_encounters WHERE reasons IS NULL ORDER BY src_table, src_row""")

    # events ----------------------------------------------------------------
    con.execute(f"""
        CREATE TABLE ck_events AS
        SELECT ev.*, {_reasons(("ev.problem IS NOT NULL", "__problem"), ("ev.person_id IS NULL", "missing:person_id"),
                                ("ev.time IS NULL", "missing:time"), ("ev.kind IS NULL OR ev.kind NOT IN (" + kinds + ")", "unknown_kind"),
                                ("ev.system IS NULL", "missing:system"), ("ev.code IS NULL", "missing:code"),
                                ("ev.person_id IS NOT NULL AND p.person_id IS NULL", "unknown_person"),
                                ("c.person_id IS NOT NULL AND c.person_id <> ev.person_id", "encounter_of_other_person"),
                                ("CAST(ev.time AS DATE) < p.birth_date", "before_birth"),
                                ("CAST(ev.time AS DATE) > p.death_date", "after_death"))} AS reasons,
               ev.encounter_id IS NOT NULL AND c.encounter_id IS NULL AS enc_missing
        FROM st_events ev
        LEFT JOIN ok_persons p ON p.person_id = ev.person_id
        LEFT JOIN ok_encounters c ON c.encounter_id = ev.encounter_id""")
    con.execute("UPDATE ck_events SET reasons = replace(reasons, '__problem', problem) WHERE problem IS NOT NULL")
    # repairs, then exact duplicates among the rows without problems
    con.execute("""
        CREATE TABLE fx_events AS
        SELECT src_table, src_row, n_src, person_id, CASE WHEN enc_missing THEN NULL ELSE encounter_id END AS encounter_id,
               time, kind, system, code, CASE WHEN isfinite(value) THEN value END AS value, unit,
               CASE WHEN days_supply BETWEEN 0 AND 3650 THEN days_supply END AS days_supply,
               CASE WHEN cost >= 0 AND isfinite(cost) THEN cost END AS cost,
               source_system, source_code, unit_normalised, enc_missing,
               days_supply IS NOT NULL AND NOT (days_supply BETWEEN 0 AND 3650) AS ds_fixed,
               cost IS NOT NULL AND NOT (cost >= 0 AND isfinite(cost)) AS cost_fixed
        FROM ck_events WHERE reasons IS NULL""")
    _dedup_events(run)
    # event_row = position in events.parquet: numbered in the table's stored order, written in that order
    con.execute("CREATE TABLE _ok AS SELECT * FROM dd_events WHERE dup = 1")
    con.execute("CREATE TABLE ok_events AS SELECT row_number() OVER () AS event_row, * FROM _ok")

    # quarantine bookkeeping: one row per quarantined staged row
    con.execute("""
        CREATE TABLE q_rows AS
        SELECT src_table, src_row, n_src, reasons FROM ck_persons WHERE reasons IS NOT NULL
        UNION ALL SELECT src_table, src_row, n_src, reasons FROM ck_encounters WHERE reasons IS NOT NULL
        UNION ALL SELECT src_table, src_row, n_src, reasons FROM ck_events WHERE reasons IS NOT NULL
        UNION ALL SELECT src_table, src_row, n_src, 'duplicate_row' FROM dd_events WHERE dup = 2""")
    # aux rows: quarantined when their own problem or their person is not accepted
    con.execute("""
        CREATE TABLE ck_aux AS
        SELECT a.*, COALESCE(a.problem, CASE WHEN a.person_id IS NOT NULL AND p.person_id IS NULL THEN 'unknown_person' END) AS reasons
        FROM st_aux a LEFT JOIN ok_persons p ON p.person_id = a.person_id""")
    con.execute("INSERT INTO q_rows SELECT src_table, src_row, n_src, reasons FROM ck_aux WHERE reasons IS NOT NULL")
    # a source row is written if any of its staged rows is; quarantined otherwise
    con.execute("""
        CREATE TABLE w_rows AS
        SELECT src_table, src_row FROM ck_persons WHERE reasons IS NULL
        UNION SELECT src_table, src_row FROM ck_encounters WHERE reasons IS NULL
        UNION SELECT src_table, src_row FROM ok_events
        UNION SELECT src_table, src_row FROM dd_events WHERE dup = 3
        UNION SELECT src_table, src_row FROM ck_aux WHERE reasons IS NULL""")
    con.execute("""
        CREATE TABLE q_src AS
        SELECT q.src_table, q.src_row, max(q.n_src) AS n_src,
               string_agg(DISTINCT r.reason, ';' ORDER BY r.reason) AS reason_code
        FROM q_rows q, unnest(string_split(q.reasons, ';')) AS r(reason)
        WHERE NOT EXISTS (SELECT 1 FROM w_rows w WHERE w.src_table = q.src_table AND w.src_row = q.src_row)
        GROUP BY q.src_table, q.src_row""")

    # write ------------------------------------------------------------------
    def copy(query: str, path: Path) -> None:
        con.execute(f"COPY ({query}) TO {q(str(path))} (FORMAT parquet, COMPRESSION zstd)")

    pcols = ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in (("person_id", "VARCHAR"), ("birth_date", "DATE"), ("sex", "VARCHAR"),
                                                               ("municipality", "VARCHAR"), ("listing_unit", "VARCHAR"), ("death_date", "DATE")))
    copy(f"SELECT {pcols} FROM ok_persons", out / "persons.parquet")
    copy("SELECT CAST(encounter_id AS VARCHAR) AS encounter_id, person_id, start_time, end_time, setting, "
         "CAST(unit AS VARCHAR) AS unit, CAST(cost AS DOUBLE) AS cost FROM ok_encounters", out / "encounters.parquet")
    copy("SELECT person_id, encounter_id, time, kind, system, code, value, unit, days_supply, cost FROM ok_events",
         out / "events.parquet")
    copy("SELECT event_row, src_table AS source_table, src_row AS source_row, source_system, source_code, "
         "(system IS DISTINCT FROM source_system OR code IS DISTINCT FROM source_code) AS mapped FROM ok_events",
         out / "source_codes.parquet")
    _write_quarantine(run)

    # counts -----------------------------------------------------------------
    reps = run.reports
    for (t, n) in con.execute("SELECT src_table, sum(n_src) FROM q_src GROUP BY 1").fetchall():
        reps[t].quarantined = int(n)
    for (t, code, n) in con.execute("""SELECT src_table, r.reason, sum(n_src) FROM q_src, unnest(string_split(reason_code, ';')) r(reason)
                                      GROUP BY 1, 2""").fetchall():
        reps[t].reasons[code] = int(n)
    staged = {t: int(n) for t, n in con.execute("""
        SELECT src_table, sum(n) FROM (SELECT src_table, src_row, max(n_src) AS n FROM (
            SELECT src_table, src_row, n_src FROM st_persons UNION ALL SELECT src_table, src_row, n_src FROM st_encounters
            UNION ALL SELECT src_table, src_row, n_src FROM st_events UNION ALL SELECT src_table, src_row, n_src FROM st_aux)
          GROUP BY 1, 2) GROUP BY 1""").fetchall()}
    for t, rep in reps.items():
        if rep.role != "data":
            continue
        rep.written = rep.read - rep.quarantined
        if staged.get(t, 0) != rep.read:  # pragma: no cover - an adapter bug, never data
            raise AssertionError(f"{t}: {rep.read} source rows read but {staged.get(t, 0)} staged")
    for tbl, canon in (("ok_persons", "persons"), ("ok_events", "events")):
        pass
    for (t, n) in con.execute("SELECT src_table, count(*) FROM ck_persons WHERE reasons IS NULL GROUP BY 1").fetchall():
        reps[t].canonical_rows["persons"] = int(n)
    for (t, n) in con.execute("SELECT src_table, count(*) FROM ck_encounters WHERE reasons IS NULL GROUP BY 1").fetchall():
        reps[t].canonical_rows["encounters"] = int(n)
    for (t, n, enc, ds, cost) in con.execute("""SELECT src_table, count(*), count(*) FILTER (WHERE enc_missing),
            count(*) FILTER (WHERE ds_fixed), count(*) FILTER (WHERE cost_fixed) FROM ok_events GROUP BY 1""").fetchall():
        reps[t].canonical_rows["events"] = int(n)
        for k, v in (("encounter_not_found_set_null", enc), ("days_supply_out_of_range_set_null", ds), ("negative_cost_set_null", cost)):
            if v:
                reps[t].repairs[k] = int(v)
    for (t, n) in con.execute("SELECT src_table, count(*) FROM ck_encounters WHERE reasons IS NULL AND end_time < start_time GROUP BY 1").fetchall():
        reps[t].repairs["end_before_start_end_set_null"] = int(n)
    for (t, n) in con.execute("SELECT src_table, count(*) FROM ck_encounters WHERE reasons IS NULL AND setting_defaulted GROUP BY 1").fetchall():
        reps[t].repairs["setting_defaulted"] = int(n)
    for (t, n) in con.execute("SELECT src_table, count(*) FROM ok_events WHERE value IS NULL AND kind = 'lab' GROUP BY 1").fetchall():
        reps[t].repairs["lab_without_value_kept"] = int(n)
    for (t, n) in con.execute("SELECT src_table, count(*) FROM dd_events WHERE dup = 3 GROUP BY 1").fetchall():
        reps[t].repairs["identical_event_merged"] = int(n)

    canonical = {name: int(con.execute(f"SELECT count(*) FROM {tbl}").fetchone()[0])
                 for name, tbl in (("persons", "ok_persons"), ("encounters", "ok_encounters"), ("events", "ok_events"))}
    codes: dict[str, dict] = {}
    for (ss, sys_, mapped, n) in con.execute("""
            SELECT source_system, system, (system IS DISTINCT FROM source_system OR code IS DISTINCT FROM source_code) AS mapped, count(*)
            FROM ok_events GROUP BY ALL ORDER BY 1, 2""").fetchall():
        c = codes.setdefault(ss, {"rows": 0, "mapped": 0, "unmapped": 0, "mapped_to": {}, "distinct_unmapped": 0, "top_unmapped": []})
        c["rows"] += int(n)
        if mapped:
            c["mapped"] += int(n)
            c["mapped_to"][sys_] = c["mapped_to"].get(sys_, 0) + int(n)
        else:
            c["unmapped"] += int(n)
    for (ss, nd) in con.execute("""SELECT source_system, count(DISTINCT source_code) FROM ok_events
                                   WHERE system = source_system AND code = source_code GROUP BY 1""").fetchall():
        codes[ss]["distinct_unmapped"] = int(nd)
    for (ss, top) in con.execute("""
            SELECT source_system, list([source_code, CAST(n AS VARCHAR)] ORDER BY n DESC, source_code)[1:10] FROM (
              SELECT source_system, source_code, count(*) AS n FROM ok_events
              WHERE system = source_system AND code = source_code GROUP BY 1, 2) GROUP BY 1""").fetchall():
        codes[ss]["top_unmapped"] = [[c, int(n)] for c, n in top]
    units = {f"{s} {c}": int(n) for s, c, n in con.execute(
        "SELECT system, code, count(*) FROM ok_events WHERE unit_normalised GROUP BY 1, 2 ORDER BY 1, 2").fetchall()}

    report = ConversionReport(run.fmt, str(run.src), str(out), reps, canonical, codes, units, run.notes, run.warnings,
                              run.not_converted, seconds=time.perf_counter() - run.started,
                              dates_shifted=run.dates_shifted)
    (out / "conversion.json").write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return report


def _dedup_events(run: Run) -> None:
    """``dd_events``: ``fx_events`` with ``dup`` 1 (kept), 2 (a duplicate in the source: quarantined ``duplicate_row``)
    or 3 (identical as a canonical event to an earlier one, but not in the source: merged into it, counted as written).

    Rows are duplicates only if the *source* rows are equal in every column: two MIMIC lab rows that differ only in
    labevent_id, or two diagnoses with another seq_num, are not duplicates. They still cannot both be written
    (``open_extract`` would quarantine the second as an exact duplicate), so one event stands for both, as the
    instance rows of one Synthea imaging study do, and ``repairs.identical_event_merged`` counts them.
    Only groups of canonically identical events are looked at, so the source is re-read only for those rows.
    """
    con = run.con
    key = ["person_id", "encounter_id", "time", "kind", "system", "code", "value", "unit", "days_supply", "cost"]
    con.execute(f"CREATE TABLE _dups AS SELECT {', '.join(key)}, row_number() OVER () AS grp FROM fx_events GROUP BY ALL HAVING count(*) > 1")
    on = " AND ".join(f"d.{k} IS NOT DISTINCT FROM f.{k}" for k in key)
    con.execute(f"CREATE TABLE _cand AS SELECT f.rowid AS fid, f.src_table, f.src_row, d.grp FROM fx_events f JOIN _dups d ON {on}")
    con.execute("CREATE TABLE _fp (src_table VARCHAR, src_row BIGINT, fp VARCHAR)")
    for (t,) in con.execute("SELECT DISTINCT src_table FROM _cand").fetchall():
        st = run.tables[t]
        row = "to_json(struct_pack(" + ", ".join(f"{quote_ident(c)} := s.{quote_ident(a)}" for c, a in st.columns.items()) + "))"
        con.execute(f"""INSERT INTO _fp SELECT {q(t)}, s.src_row, {row} FROM {st.scan()} s
                        WHERE s.src_row IN (SELECT src_row FROM _cand WHERE src_table = {q(t)})""")
    con.execute("""
        CREATE TABLE _cdup AS
        SELECT c.fid, CASE WHEN row_number() OVER (PARTITION BY c.grp ORDER BY c.src_table, c.src_row, c.fid) = 1 THEN 1
                           WHEN row_number() OVER (PARTITION BY c.grp, c.src_table, p.fp ORDER BY c.src_row, c.fid) > 1 THEN 2
                           ELSE 3 END AS dup
        FROM _cand c LEFT JOIN _fp p ON p.src_table = c.src_table AND p.src_row = c.src_row""")
    con.execute("CREATE TABLE dd_events AS SELECT f.*, COALESCE(c.dup, 1) AS dup FROM fx_events f LEFT JOIN _cdup c ON c.fid = f.rowid")


def _write_quarantine(run: Run) -> None:
    con, qdir = run.con, run.out / "quarantine"
    if qdir.exists():
        shutil.rmtree(qdir)
    tables = [t for (t,) in con.execute("SELECT DISTINCT src_table FROM q_src ORDER BY 1").fetchall()]
    if not tables:
        return
    qdir.mkdir(parents=True)
    texts = " ".join(f"WHEN {q(k)} THEN {q(v)}" for k, v in ADAPTER_REASONS.items() if "<" not in k)
    for t in tables:
        st = run.tables[t]
        cols = ", ".join(f"CAST(s.{quote_ident(c)} AS VARCHAR) AS {quote_ident(c)}" for c in st.safe_columns())
        reason = (f"(SELECT string_agg(CASE split_part(r, ':', 1) {texts} "
                  f"WHEN 'missing' THEN 'a required value is empty: ' || split_part(r, ':', 2) ELSE r END, '; ') "
                  f"FROM unnest(string_split(qq.reason_code, ';')) AS x(r))")
        name = t.replace("/", "_")
        con.execute(f"""
            COPY (SELECT qq.src_row AS source_row, qq.reason_code, {reason} AS reason{', ' + cols if cols else ''}
                  FROM q_src qq JOIN {st.scan()} s ON s.src_row = qq.src_row
                  WHERE qq.src_table = {q(t)} ORDER BY qq.src_row)
            TO {q(str(qdir / (name + '.parquet')))} (FORMAT parquet)""")
