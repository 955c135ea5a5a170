"""Read the three tables of an extract into DuckDB, exactly as they are in the source.

Nothing here interprets values: every table becomes a DuckDB relation of its own
(``_lv_raw_<table>``), with the source's own column names and, for CSV, every
column as VARCHAR, in source order. A Parquet table is a *view* over
``read_parquet`` (not copied: validation reads it in place, in its own types);
CSV text and DataFrames are copied into a temporary table. Typing and checking happen afterwards in
:mod:`lowvalue.data.validation`, so a bad value becomes a quarantined row with a
row number rather than a crash. What *is* fatal here (an :class:`InputError`) is
what makes a whole file unusable: it is missing, its encoding cannot be read, it
is not valid CSV/Parquet, or it lacks a required column.

Row numbers: ``source_row`` is the 1-based number of the *data row* in its
source, for every format (the header line of a CSV file is not counted, so in a
CSV file without quoted line breaks data row N is on line N + 1). It is DuckDB's
``rowid`` of the raw table + 1 (``RawTable.row_sql``); for a Parquet view it is the
row's number in its file plus the rows of the files before it. A source column that would shadow that
pseudo-column (``rowid``, any case) or collide with the reader's own working names
(``_lv_*``, ``__lv_*``) is stored under an internal name (``RawTable.stored``) and
keeps its own name in the quarantine. A folder of
Parquet files is numbered continuously across its files, sorted by name. Fatal
errors about the text of a CSV file (encoding, malformed lines) instead name the
physical *line* in the file, as an editor shows it, and say so.

Locating a table ``T`` in folder ``DIR``: the first of ``T.parquet``,
``T.csv``, ``T.csv.gz``, ``T.txt``, or a folder ``T/`` of ``*.parquet`` files.

CSV encodings: UTF-8 (with or without BOM) is read directly; UTF-16 with a BOM
and Windows-1252 (cp1252, common in Swedish exports) are transcoded in streamed
chunks to a temporary UTF-8 file first (DuckDB reads only UTF-8 without a network
extension). Anything else is refused with the line of the first byte that no
supported encoding can read. A text CSV never contains C0 control bytes other
than tab, CR, LF, so those count as undecodable; this is what catches UTF-16
without BOM and binary files. The exception is NUL (0x00): after the header line
it does not decide the encoding (exports pad fields with it); the value keeps it
and validation quarantines its row with ``nul_byte:<col>``. A NUL in the header
line is still refused (that is UTF-16 without a BOM, or not text at all).

CSV structure: quoted fields may hold line breaks (RFC 4180; DuckDB's parallel
reader refuses them with ``null_padding``, so such a file is re-read with the
serial reader). A line longer than DuckDB's maximum line size, and a column name
that appears twice in a header (compared like canonical names: case, BOM and
blanks ignored; for Parquet and frames too), are fatal and named in one line.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from lowvalue.data.schema import Table
from lowvalue.errors import InputError

CSV_SUFFIXES = (".csv", ".csv.gz", ".txt")
DELIMITERS = (";", ",", "\t", "|")
_CHUNK = 1 << 20

# C0 control bytes other than tab, LF, CR and NUL: never in a text CSV (NUL: see the module docstring).
_BAD_UTF8_BYTES = re.compile(rb"[\x01-\x08\x0b\x0c\x0e-\x1f]")
# ... plus the five bytes Windows-1252 leaves undefined.
_BAD_CP1252_BYTES = re.compile(rb"[\x01-\x08\x0b\x0c\x0e-\x1f\x81\x8d\x8f\x90\x9d]")
_MAX_HEADER = 1 << 16

RESERVED_PREFIXES = ("_lv_", "__lv_")
RESERVED_NAMES = ("rowid",)
"""Source column names stored under an internal name in DuckDB (they would shadow ``rowid`` or our working columns)."""


@dataclass
class RawTable:
    """One table as read: where it lives in DuckDB and how its columns map to the canonical ones."""

    table: Table
    source: str  # file path, folder path, or "<DataFrame>"
    relation: str  # DuckDB table or view with the rows as read, in source order (row_sql = source_row)
    fmt: str  # "csv", "parquet" or "frame"
    raw_columns: list[str]  # every column of the source, in order, as named there
    raw_types: dict[str, str]  # raw column -> DuckDB type
    mapping: dict[str, str]  # canonical column -> raw column (only those present)
    ignored: list[str] = field(default_factory=list)  # extra columns (normalised names)
    absent: list[str] = field(default_factory=list)  # optional canonical columns not in the source
    encoding: str | None = None  # CSV only
    delimiter: str | None = None  # CSV only
    rows: int = 0
    stored: dict[str, str] = field(default_factory=dict)  # raw column -> its column name in ``relation`` if renamed
    row_sql: str = "rowid + 1"  # SQL for source_row over ``relation`` (a view carries it as a column)
    is_view: bool = False  # ``relation`` is a view over the source files (Parquet read in place)

    def ident(self, raw_column: str) -> str:
        """The quoted DuckDB identifier of a raw column in ``relation``."""
        return quote_ident(self.stored.get(raw_column, raw_column))


def normalise_name(name: str) -> str:
    """Column-name matching: strip a BOM and whitespace, lower-case."""
    return str(name).replace("\ufeff", "").strip().lower()


def quote_ident(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def storage_names(names: list[str]) -> dict[str, str]:
    """Raw column -> internal DuckDB name, for the names that must not be used as they are (see the docstring)."""
    out = {}
    for i, name in enumerate(names):
        low = str(name).lower()
        if low in RESERVED_NAMES or low.startswith(RESERVED_PREFIXES):
            out[name] = f"_lv_src{i + 1}"
    return out


def check_unique_names(source: str, names: list[str]) -> None:
    """InputError naming the first column name that appears twice (compared like canonical names)."""
    seen: dict[str, int] = {}
    for i, name in enumerate(names, start=1):
        norm = normalise_name(name)
        if not norm:
            continue  # blank header cells are numbered, not matched
        if norm in seen:
            raise InputError(source, f"column name appears twice in the header (columns {seen[norm]} and {i}); "
                                     "rename or drop one", column=norm)
        seen[norm] = i


def _select_stored(names: list[str], stored: dict[str, str]) -> str:
    return ", ".join(quote_ident(n) + (f" AS {quote_ident(stored[n])}" if n in stored else "") for n in names)


# --------------------------------------------------------------------------- locating files


def locate(folder: Path, table: str) -> list[Path]:
    """The file(s) holding ``table`` in ``folder``; InputError naming the expected file if none."""
    for suffix in (".parquet", *CSV_SUFFIXES):
        path = folder / f"{table}{suffix}"
        if path.is_file():
            return [path]
    sub = folder / table
    if sub.is_dir():
        files = sorted(p for p in sub.iterdir() if p.is_file() and p.name.endswith(".parquet"))
        if not files:
            raise InputError(str(sub), "folder holds no *.parquet files")
        return files
    raise InputError(
        f"{folder}/{table}.(parquet|csv|csv.gz|txt)",
        f"file not found (nor a folder {table}/ of Parquet files)",
    )


def is_csv(path: Path) -> bool:
    return any(path.name.lower().endswith(s) for s in CSV_SUFFIXES)


def hash_files(files: list[Path], base: Path, hasher: hashlib._Hash) -> None:
    """Feed name, size and bytes of each file to ``hasher`` (callers pass files sorted by name)."""
    for path in files:
        rel = path.relative_to(base).as_posix() if path.is_relative_to(base) else path.name
        hasher.update(f"{rel}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                hasher.update(chunk)


# --------------------------------------------------------------------------- encodings


def _open_bytes(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb")


def detect_encoding(path: Path) -> str:
    """``utf-8``, ``utf-8-sig``, ``utf-16`` (BOM only) or ``cp1252``; InputError if none fits.

    Streams the whole file once (both candidates are checked in the same pass). NUL bytes after the
    header line do not count against either (see the module docstring).
    """
    _refuse_nul_in_header(path)
    try:
        with _open_bytes(path) as fh:
            head = fh.read(4)
            if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                return "utf-16"
            bom = head.startswith(codecs.BOM_UTF8)
            utf8_fail: tuple[int, int, int] | None = None  # (offset, line, byte)
            cp_fail: tuple[int, int, int] | None = None
            carry = b""
            pos = 0  # absolute offset of data[0]
            line = 1  # line number at data[0]
            chunk = head
            while True:
                more = fh.read(_CHUNK)
                data = carry + chunk
                final = not more
                if utf8_fail is None:
                    bad = _BAD_UTF8_BYTES.search(data)
                    limit = bad.start() if bad else len(data)
                    try:
                        data[:limit].decode("utf-8")
                        ok_to = limit
                        err = bad.start() if bad else None
                    except UnicodeDecodeError as exc:
                        if (not bad) and (not final) and exc.reason == "unexpected end of data":
                            ok_to, err = exc.start, None  # a sequence split across chunks
                        else:
                            ok_to, err = exc.start, exc.start
                    if err is not None:
                        utf8_fail = (pos + err, line + data[:err].count(b"\n"), data[err])
                if cp_fail is None:
                    # cp1252 is single-byte: check only the new bytes (carry was checked before).
                    off = len(carry)
                    bad = _BAD_CP1252_BYTES.search(data, off)
                    if bad:
                        i = bad.start()
                        cp_fail = (pos + i, line + data[:i].count(b"\n"), data[i])
                if utf8_fail is not None and cp_fail is not None:
                    break
                consumed = len(data) if utf8_fail is not None else ok_to
                line += data[:consumed].count(b"\n")
                pos += consumed
                carry = data[consumed:]
                if final:
                    break
                chunk = more
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(str(path), f"cannot read file: {exc}") from None
    if utf8_fail is None:
        return "utf-8-sig" if bom else "utf-8"
    if cp_fail is None:
        return "cp1252"
    # Neither fits: report the byte at which the better candidate gave up.
    offset, line_no, byte = max(utf8_fail, cp_fail)
    raise InputError(
        str(path),
        f"unreadable encoding: byte 0x{byte:02x} on line {line_no} (offset {offset}) is neither UTF-8 "
        "nor Windows-1252; save the file as UTF-8",
        row=line_no,
    )


def _refuse_nul_in_header(path: Path) -> None:
    try:
        with _open_bytes(path) as fh:
            first = fh.readline(_MAX_HEADER)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(str(path), f"cannot read file: {exc}") from None
    if first.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\x00" not in first:
        return
    offset = first.index(b"\x00")
    raise InputError(
        str(path),
        f"unreadable encoding: byte 0x00 on line 1 (offset {offset}) is neither UTF-8 nor "
        "Windows-1252 (a NUL byte in the header line: UTF-16 without a byte-order mark?); save the file as UTF-8",
        row=1,
    )


@contextmanager
def utf8_file(path: Path, encoding: str) -> Iterator[Path]:
    """A path DuckDB can read: the file itself if UTF-8, else a temporary UTF-8 transcoding (streamed)."""
    if encoding in ("utf-8", "utf-8-sig"):
        yield path
        return
    from lowvalue.workdir import private_dir

    tmp = private_dir("csv")  # a copy of patient data: private, and removed by the next command if we are killed
    try:
        out = tmp / (path.name.removesuffix(".gz") + ".utf8.csv")
        with _open_bytes(path) as raw, out.open("w", encoding="utf-8", newline="") as dst:
            src = io.TextIOWrapper(raw, encoding=encoding, newline="")
            while chunk := src.read(_CHUNK):
                dst.write(chunk)
        yield out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- CSV


def read_header(path: Path, encoding: str) -> tuple[str, list[str]]:
    """Delimiter (the most frequent of ``; , TAB |`` in the header line) and the header's column names."""
    with _open_bytes(path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig" if encoding.startswith("utf-8") else encoding, newline="")
        first = text.readline()
    return parse_header(first, str(path))


def parse_header(first: str, source: str) -> tuple[str, list[str]]:
    """Delimiter and column names of a CSV header line (decoded; its line break and a BOM are dropped)."""
    first = first.rstrip("\r\n").lstrip("\ufeff")
    if not first.strip():
        raise InputError(source, "empty file or empty header line (a CSV file must start with a header)", row=1)
    counts = {d: first.count(d) for d in DELIMITERS}
    delim = max(DELIMITERS, key=lambda d: (counts[d], -DELIMITERS.index(d)))
    if counts[delim] == 0:
        delim = ","
    names = next(csv.reader([first], delimiter=delim, quotechar='"'))
    return delim, names


def _unique(names: list[str]) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for i, name in enumerate(names):
        base = name.replace("\ufeff", "").strip() or f"column{i + 1}"
        cand, n = base, 2
        while cand.lower() in seen:
            cand, n = f"{base}_{n}", n + 1
        seen.add(cand.lower())
        out.append(cand)
    return out


_CSV_LINE = re.compile(r"CSV Error on Line:\s*(\d+)")


_MAX_LINE = re.compile(r"Maximum line size of (\d+) bytes exceeded\. Actual Size:\s*(\d+)")
_QUOTED_NEWLINE = "quoted new lines"  # DuckDB: "The parallel scanner does not support null_padding in conjunction with quoted new lines"


def _csv_error(path: Path, exc: Exception) -> InputError:
    msg = str(exc)
    m = _CSV_LINE.search(msg)
    line = int(m.group(1)) if m else None
    big = _MAX_LINE.search(msg)
    if big:
        limit, size = int(big.group(1)), int(big.group(2))
        where = f"line {line}" if line else "a line"
        return InputError(str(path), f"{where} is {size:,} bytes, longer than the maximum line size of {limit:,} bytes "
                                     "(usually a quote that is never closed, or line breaks lost in the export)", row=line)
    rest = msg.splitlines()[1:]
    detail = next((ln.strip() for ln in rest if ln.strip().startswith("Expected")), "")
    if not detail:  # DuckDB's cause ("Value with unterminated quote found."), not the line it quotes
        detail = next((ln.strip()[:200] for ln in rest if ln.strip() and not ln.startswith((" ", "Original Line"))
                       and not ln.startswith("Possible")), "")
    if not detail:
        detail = msg.splitlines()[0].removeprefix("Invalid Input Error: ")
    where = f" on line {line}" if line else ""
    return InputError(str(path), f"malformed CSV{where}: {detail}", row=line)


def quick_encoding(path: Path) -> str | None:
    """Guess from the first MiB: ``utf-16`` (BOM), ``utf-8``/``utf-8-sig`` if it is clean UTF-8, else None (scan it all)."""
    try:
        with _open_bytes(path) as fh:
            head = fh.read(_CHUNK)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(str(path), f"cannot read file: {exc}") from None
    return head_encoding(head)


def head_encoding(head: bytes) -> str | None:
    """:func:`quick_encoding` of a file's first bytes (also for files the driver cannot open, read through Spark)."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if _BAD_UTF8_BYTES.search(head) or b"\x00" in head.split(b"\n", 1)[0]:
        return None
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return None
    return "utf-8-sig" if head.startswith(codecs.BOM_UTF8) else "utf-8"


def csv_sql(path: Path, delim: str, names: list[str], *, stored: dict[str, str] | None = None,
            parallel: bool = True) -> str:
    """DuckDB ``read_csv(...)`` of a UTF-8 CSV file whose delimiter and header are known: every column VARCHAR.

    ``stored`` renames columns DuckDB would treat specially (:func:`storage_names`); ``parallel=False`` is DuckDB's
    serial reader, the one that reads quoted line breaks together with ``null_padding``.
    Public so that the extract adapters (:mod:`lowvalue.data.adapters.common`) read CSV exactly as this module does.
    """
    stored = stored or {}
    cols = "{" + ", ".join(f"{quote_literal(stored.get(n, n))}: 'VARCHAR'" for n in names) + "}"
    return (f"read_csv({quote_literal(str(path))}, delim={quote_literal(delim)}, quote='\"', escape='\"', "
            f"header=true, auto_detect=false, columns={cols}, null_padding=true, compression='auto'"
            f"{'' if parallel else ', parallel=false'})")


def read_csv(con: duckdb.DuckDBPyConnection, table: Table, path: Path, relation: str) -> RawTable:
    """Read a CSV file as VARCHAR columns into ``relation``.

    Encoding: if the first MiB is clean UTF-8 the file is handed to DuckDB directly (which
    checks UTF-8 as it reads); only if DuckDB then meets invalid UTF-8, or the first MiB is not
    UTF-8, is the whole file scanned (:func:`detect_encoding`) and, for cp1252/UTF-16,
    transcoded. This keeps the common case to one pass over the file.
    """
    encoding = quick_encoding(path) or detect_encoding(path)
    delim, header = read_header(path, encoding)
    check_unique_names(str(path), header)
    names = _unique(header)
    raw = _map_columns(table, str(path), names, {n: "VARCHAR" for n in names})
    raw.stored = storage_names(names)

    def load(readable: Path) -> None:
        def run(parallel: bool) -> None:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {quote_ident(relation)} AS SELECT * FROM "
                        f"{csv_sql(readable, delim, names, stored=raw.stored, parallel=parallel)}")

        try:
            run(True)
        except duckdb.Error as exc:
            if _QUOTED_NEWLINE not in str(exc):
                raise
            run(False)  # quoted line breaks: the serial reader handles them with null_padding

    try:
        try:
            with utf8_file(path, encoding) as readable:
                load(readable)
        except duckdb.InvalidInputException as exc:
            if "Invalid unicode" not in str(exc) or encoding not in ("utf-8", "utf-8-sig"):
                raise
            encoding = detect_encoding(path)  # not UTF-8 after all: cp1252, or InputError with the line
            with utf8_file(path, encoding) as readable:
                load(readable)
    except (duckdb.InvalidInputException, duckdb.ConversionException) as exc:
        raise _csv_error(path, exc) from None
    except duckdb.IOException as exc:
        raise InputError(str(path), f"cannot read file: {str(exc).splitlines()[0]}") from None
    except duckdb.Error as exc:  # anything else DuckDB refuses in a CSV file: one line, not a traceback
        raise _csv_error(path, exc) from None
    raw.relation, raw.fmt, raw.encoding, raw.delimiter = relation, "csv", encoding, delim
    raw.rows = _count(con, relation)
    return raw


# --------------------------------------------------------------------------- Parquet and frames


ROW_COLUMN = "__lv_row"
"""The source_row column of a Parquet view (``__lv_*`` source columns are renamed, so it cannot collide)."""

_PARQUET_VIRTUAL = ("file_row_number", "file_index", "filename")
"""DuckDB's virtual columns of ``read_parquet``; a source column of such a name is copied instead of viewed."""


def read_parquet(con: duckdb.DuckDBPyConnection, table: Table, files: list[Path], relation: str, source: str) -> RawTable:
    """A view ``relation`` over the Parquet file(s), in their own types, with ``source_row`` as ``__lv_row``.

    Nothing is copied: validation reads the files in place. ``__lv_row`` is DuckDB's ``file_row_number`` plus the
    rows of the files before (files in the given order, as :func:`locate` sorts them), so it is the same number a
    copy's ``rowid + 1`` would be. A source column named like one of DuckDB's virtual columns (``filename``,
    ``file_row_number``, ``file_index``) would hide it, so such a file is copied into a table as before.
    """
    file_list = "[" + ", ".join(quote_literal(str(f)) for f in files) + "]"
    scan = f"read_parquet({file_list}, union_by_name=true)"
    sizes: list[int] | None = []
    for f in files:
        try:
            meta = pq.read_metadata(f)
            names = meta.schema.to_arrow_schema().names
        except (OSError, pa.ArrowException):
            sizes = None
            continue  # DuckDB says what is wrong with it below
        check_unique_names(str(f), names)
        if sizes is not None:
            sizes.append(meta.num_rows)
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()
        names = [r[0] for r in described]
        stored = storage_names(names)
        as_view = sizes is not None and not any(normalise_name(n) in _PARQUET_VIRTUAL for n in names)
        if as_view:
            if len(files) == 1:
                row = "file_row_number + 1"
            else:
                offsets, n = [], 0
                for size in sizes:
                    offsets.append(n)
                    n += size
                row = f"file_row_number + 1 + CAST({offsets} AS BIGINT[])[CAST(file_index AS BIGINT) + 1]"
            # not TEMP: a table that stays in place is this view, and the scan's worker cursors (engine/sql.worker) must see it
            con.execute(f"CREATE OR REPLACE VIEW {quote_ident(relation)} AS "
                        f"SELECT {_select_stored(names, stored)}, CAST({row} AS BIGINT) AS {ROW_COLUMN} FROM {scan}")
        else:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {quote_ident(relation)} AS "
                        f"SELECT {_select_stored(names, stored)} FROM {scan}")
        raw = _map_columns(table, source, names, {r[0]: r[1] for r in described})
        raw.relation, raw.fmt, raw.stored = relation, "parquet", stored
        if as_view:
            raw.row_sql, raw.is_view = ROW_COLUMN, True
        raw.rows = _count(con, relation)
    except duckdb.Error as exc:
        raise InputError(source, f"cannot read Parquet: {str(exc).splitlines()[0]}") from None
    return raw


def drop_relation(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Drop a table or view ``name`` (temporary or not) if it exists."""
    for kind in ("VIEW", "TABLE"):
        found = con.execute(f"SELECT count(*) FROM duckdb_{kind.lower()}s() WHERE {kind.lower()}_name = ? "
                            "AND NOT internal", [name]).fetchall()[0][0]
        if found:
            con.execute(f"DROP {kind} IF EXISTS {quote_ident(name)}")


def frame_to_arrow(obj, label: str) -> pa.Table:
    """A pandas DataFrame or Arrow table as one Arrow table (object columns of mixed type become strings)."""
    if isinstance(obj, pa.Table):
        return obj.combine_chunks()
    if isinstance(obj, pa.RecordBatch):
        return pa.Table.from_batches([obj])
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover
        pd = None
    if pd is not None and isinstance(obj, pd.DataFrame):
        try:
            return pa.Table.from_pandas(obj, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            fixed = obj.copy()
            for col in fixed.columns:
                if fixed[col].dtype == object:
                    fixed[col] = fixed[col].map(lambda v: None if v is None or v != v else str(v))
            return pa.Table.from_pandas(fixed, preserve_index=False)
    raise InputError(label, f"expected a pandas DataFrame or pyarrow Table, got {type(obj).__name__}")


def read_frame(con: duckdb.DuckDBPyConnection, table: Table, data: pa.Table, relation: str, label: str) -> RawTable:
    view = f"_lv_frame_{table.name}"
    check_unique_names(label, list(data.column_names))
    con.register(view, data)
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {quote_ident(view)}").fetchall()
        raw = _map_columns(table, label, [r[0] for r in described], {r[0]: r[1] for r in described})
        raw.stored = storage_names([r[0] for r in described])
        con.execute(f"CREATE OR REPLACE TEMP TABLE {quote_ident(relation)} AS "
                    f"SELECT {_select_stored([r[0] for r in described], raw.stored)} FROM {quote_ident(view)}")
    finally:
        con.unregister(view)
    raw.relation, raw.fmt = relation, "frame"
    raw.rows = _count(con, relation)
    return raw


# --------------------------------------------------------------------------- columns


def _map_columns(table: Table, source: str, names: list[str], types: dict[str, str]) -> RawTable:
    by_norm: dict[str, str] = {}
    ignored: list[str] = []
    for name in names:
        norm = normalise_name(name)
        if norm in table.columns and norm not in by_norm:
            by_norm[norm] = name
        else:
            ignored.append(norm or name)
    for col in table.required:
        if col not in by_norm:
            found = ", ".join(normalise_name(n) for n in names) or "none"
            raise InputError(source, f"required column missing (found: {found})", column=col)
    return RawTable(
        table=table,
        source=source,
        relation="",
        fmt="",
        raw_columns=list(names),
        raw_types=dict(types),
        mapping={c: by_norm[c] for c in table.columns if c in by_norm},
        ignored=ignored,
        absent=[c for c in table.columns if c not in by_norm],
    )


def _count(con: duckdb.DuckDBPyConnection, relation: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM {quote_ident(relation)}").fetchall()[0][0])
