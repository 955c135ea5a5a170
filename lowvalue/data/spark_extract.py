"""Open an extract on Spark: read, check and quarantine it where Spark reads, with the checks of validation.py.

The DuckDB path (:func:`lowvalue.data.extract.open_extract`) reads an extract into the driver's DuckDB; this is the
same step for ``scan --engine spark``, run by Spark, so the extract may live wherever Spark reads: a local folder,
``file:``, HDFS (``hdfs://``), an S3-compatible object store (``s3a://``), ``dbfs:/``. Nothing of the extract passes
through the driver but its first bytes (a CSV file's encoding and header) and the counts.

One definition of every check: the stage, the duplicate checks, the problems and the quarantine are the SQL of
:mod:`lowvalue.data.validation` rendered with its :data:`~lowvalue.data.validation.SPARK` table; reason codes,
reasons, counts and warnings are the same as DuckDB's (``tests/engine/test_spark_scan.py``,
``tests/data/test_validation_spark.py``). What differs is only how the rows get in:

* **Parquet**: ``spark.read.parquet`` (columns merged by name, as DuckDB's ``union_by_name``); ``source_row`` is
  the row's number in its file (``_metadata.row_index``) plus the rows of the files before it, sorted by name.
* **CSV**: the encoding and the header (delimiter, names) come from the file's first MiB, read on the driver
  (through Hadoop's file system for a remote file); Spark then parses the file (``multiLine``: quoted line breaks
  allowed, one task per file) as text columns. A line with more fields than the header is refused in one line, as
  on DuckDB; fewer fields are padded with NULL, as on DuckDB. What Spark cannot do that DuckDB does: check that
  the whole file is in the encoding chosen (Spark replaces a bad byte by U+FFFD without a word). So a file read as
  UTF-8 whose text holds U+FFFD is, if local, scanned whole on the driver and read again in the encoding found
  (Windows-1252), as DuckDB does; if remote it is refused in one line ("save the file as UTF-8"). UTF-16 is refused
  in one line (Spark reads it only unsplit and without a BOM check; DuckDB transcodes it).
* **Fingerprint**: a local extract's is DuckDB's (SHA-256 of the files' names, sizes and bytes); a remote one's is
  SHA-256 of the files' names, sizes and modification times (the driver does not read a cluster's data), and the
  manifest's ``fingerprint_of`` says which.

The accepted rows of each table are materialised once (a local checkpoint), with ``_lv_rowid = source_row - 1``:
ordered as DuckDB's row ids of the accepted table are (the engine uses the id only to order ties), without a
global sort.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from lowvalue.data import readers, validation
from lowvalue.data.extract import TABLE_ORDER, Extract, TableCount, _dates_shifted
from lowvalue.data.readers import RawTable
from lowvalue.data.schema import TABLES
from lowvalue.errors import InputError

log = logging.getLogger(__name__)

SPARK = validation.SPARK
ROWID = "_lv_rowid"
_CORRUPT = "_lv_corrupt"
_REMOTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")


def is_remote(source: str) -> bool:
    """Whether ``source`` is a URI other than ``file:`` (``hdfs://``, ``s3a://``, ``dbfs:/``): read by Spark only."""
    return bool(_REMOTE.match(str(source))) and urlparse(str(source)).scheme.lower() != "file"


def local_path(source: str | Path) -> Path:
    """A local folder as a path: ``file:`` URIs (``file:///data/region``) become ``/data/region``."""
    text = str(source)
    if _REMOTE.match(text) and urlparse(text).scheme.lower() == "file":
        return Path(urlparse(text).path)
    return Path(text)


def duck_type(spark_type: Any) -> str:
    """DuckDB's name for a Spark column type, so that :func:`validation.stage_sql` decides as on DuckDB whether a
    column is checked in its own type (a Parquet TIMESTAMP adjusted to UTC is DuckDB's TIMESTAMP WITH TIME ZONE,
    Spark's TIMESTAMP; a naive one is DuckDB's TIMESTAMP, Spark's TIMESTAMP_NTZ)."""
    name = spark_type.typeName()
    simple = {"string": "VARCHAR", "integer": "INTEGER", "long": "BIGINT", "short": "SMALLINT", "byte": "TINYINT",
              "float": "FLOAT", "double": "DOUBLE", "date": "DATE", "timestamp": "TIMESTAMP WITH TIME ZONE",
              "timestamp_ntz": "TIMESTAMP", "boolean": "BOOLEAN", "binary": "BLOB"}
    if name == "decimal":
        return f"DECIMAL({spark_type.precision},{spark_type.scale})"
    return simple.get(name, spark_type.simpleString().upper())


# --------------------------------------------------------------------------- files, local or through Hadoop


@dataclass
class _File:
    uri: str  # what Spark reads
    name: str  # relative name (fingerprint, ordering)
    size: int
    mtime: int  # ms; 0 for local files (their bytes are hashed)
    local: Path | None


class _Files:
    """Finds a table's files as :func:`readers.locate` does, in a local folder or through Hadoop's file system."""

    def __init__(self, spark: Any, source: str) -> None:
        self.spark, self.source = spark, source.rstrip("/")
        self.local = None if is_remote(source) else local_path(source)
        if self.local is None:
            from py4j.protocol import Py4JJavaError

            jvm = spark.sparkContext._jvm
            self._path = jvm.org.apache.hadoop.fs.Path
            try:
                self._fs = self._path(self.source).getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
            except Py4JJavaError as exc:  # no file system for the scheme (s3a needs hadoop-aws), no credentials, …
                raise InputError(self.source, f"Spark cannot open it: {_java_error(exc)}") from None

    def check_folder(self) -> None:
        if self.local is not None:
            if not self.local.exists():
                raise InputError(str(self.local), "extract folder not found")
            if not self.local.is_dir():
                raise InputError(str(self.local), "not a folder (an extract is a folder with persons, encounters and events)")
        elif not self._fs.isDirectory(self._path(self.source)):
            raise InputError(self.source, "extract folder not found")

    def locate(self, table: str) -> list[_File]:
        if self.local is not None:
            return [_File(str(f), f.relative_to(self.local).as_posix(), f.stat().st_size, 0, f)
                    for f in readers.locate(self.local, table)]
        for suffix in (".parquet", *readers.CSV_SUFFIXES):
            path = self._path(f"{self.source}/{table}{suffix}")
            if self._fs.isFile(path):
                st = self._fs.getFileStatus(path)
                return [_File(path.toString(), f"{table}{suffix}", st.getLen(), st.getModificationTime(), None)]
        sub = self._path(f"{self.source}/{table}")
        if self._fs.isDirectory(sub):
            files = sorted((st for st in self._fs.listStatus(sub)
                            if st.isFile() and st.getPath().getName().endswith(".parquet")),
                           key=lambda st: st.getPath().getName())
            if not files:
                raise InputError(f"{self.source}/{table}", "folder holds no *.parquet files")
            return [_File(st.getPath().toString(), f"{table}/{st.getPath().getName()}", st.getLen(),
                          st.getModificationTime(), None) for st in files]
        raise InputError(f"{self.source}/{table}.(parquet|csv|csv.gz|txt)",
                         f"file not found (nor a folder {table}/ of Parquet files)")

    def head(self, f: _File, size: int = 1 << 20) -> bytes:
        """The first ``size`` bytes (decompressed for ``.gz``)."""
        if f.local is not None:
            with readers._open_bytes(f.local) as fh:
                return fh.read(size)
        jvm = self.spark.sparkContext._jvm
        stream = self._fs.open(self._path(f.uri))
        try:
            if f.uri.lower().endswith(".gz"):
                stream = jvm.java.util.zip.GZIPInputStream(stream)
            return bytes(stream.readNBytes(size))
        finally:
            stream.close()

    def fingerprint(self, located: dict[str, list[_File]]) -> tuple[str, str]:
        h = hashlib.sha256()
        if self.local is not None:
            for files in sorted(located.values(), key=lambda fs: fs[0].name):
                readers.hash_files([f.local for f in files], self.local, h)
            return h.hexdigest(), "content"
        for files in sorted(located.values(), key=lambda fs: fs[0].name):
            for f in files:
                h.update(f"{f.name}\0{f.size}\0{f.mtime}\0".encode())
        return h.hexdigest(), "names, sizes and modification times"


# --------------------------------------------------------------------------- reading


def _read_parquet(spark: Any, table: str, files: list[_File], relation: str, label: str) -> RawTable:
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException
    from pyspark.sql import functions as F

    try:
        # merging schemas is a Spark job over every footer: only worth it when there is more than one file
        df = spark.read.option("mergeSchema", str(len(files) > 1).lower()).parquet(*[f.uri for f in files])
        names = list(df.columns)
        readers.check_unique_names(label, names)
        stored = readers.storage_names(names)
        types = {f.name: duck_type(f.dataType) for f in df.schema.fields}
        row = F.col("_metadata.row_index") + 1
        if len(files) > 1:  # the rows of the files before, in name order (as readers.locate sorts them)
            counts = {r[0]: r[1] for r in df.groupBy(F.col("_metadata.file_path")).count().collect()}
            offset, n = None, 0
            for path in sorted(counts):
                offset = (F.when(F.col("_metadata.file_path") == path, F.lit(n)) if offset is None
                          else offset.when(F.col("_metadata.file_path") == path, F.lit(n)))
                n += counts[path]
            row = row + offset
        view = df.select(*[F.col(SPARK["ident"](n)).alias(stored.get(n, n)) for n in names],
                         row.cast("bigint").alias(readers.ROW_COLUMN))
        view.createOrReplaceTempView(relation)
        raw = readers._map_columns(TABLES[table], label, names, types)
    except (PySparkException, Py4JJavaError) as exc:
        raise InputError(label, f"cannot read Parquet: {_first_line(exc)}") from None
    raw.relation, raw.fmt, raw.stored, raw.row_sql = relation, "parquet", stored, readers.ROW_COLUMN
    return raw


def _read_csv(spark: Any, files: _Files, table: str, f: _File, relation: str, keep: list[Any]) -> RawTable:
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    label = str(f.local) if f.local is not None else f.uri
    head = files.head(f)
    encoding = readers.head_encoding(head)
    if encoding is None:
        encoding = readers.detect_encoding(f.local) if f.local is not None else _head_cp1252(head, label)
    if encoding == "utf-16":
        raise InputError(label, "UTF-16 text: Spark reads CSV as UTF-8 or Windows-1252 only; save the file as UTF-8 "
                                "(or scan with --engine duckdb, which transcodes it)")
    first = head.split(b"\n", 1)[0].decode("utf-8-sig" if encoding.startswith("utf-8") else encoding, "replace")
    delim, header = readers.parse_header(first, label)
    readers.check_unique_names(label, header)
    names = readers._unique(header)
    raw = readers._map_columns(TABLES[table], label, names, {n: "VARCHAR" for n in names})
    raw.stored = readers.storage_names(names)
    stored = [raw.stored.get(n, n) for n in names]
    schema = T.StructType([T.StructField(n, T.StringType()) for n in stored] + [T.StructField(_CORRUPT, T.StringType())])

    def read(enc: str) -> Any:
        utf8 = enc.startswith("utf-8")
        df = spark.read.csv(f.uri, schema=schema, header=True, sep=delim, quote='"', escape='"', multiLine=True,
                            encoding="UTF-8" if utf8 else "ISO-8859-1", mode="PERMISSIVE",
                            columnNameOfCorruptRecord=_CORRUPT, enforceSchema=True)
        if not utf8:  # Spark 4 reads no Windows-1252: Latin-1, whose bytes 0x80-0x9F are then made cp1252's
            df = df.select(*[F.translate(c, _LATIN1_C1, _CP1252_C1).alias(c) for c in stored], _CORRUPT)
        if df.rdd.getNumPartitions() != 1:  # pragma: no cover - multiLine reads a file in one task
            df = df.coalesce(1)
        # one partition in file order: the row's position is its data-row number
        df = df.withColumn(readers.ROW_COLUMN, F.monotonically_increasing_id() + 1).localCheckpoint(eager=True)
        keep.append(df)
        return df

    try:
        df = read(encoding)
        bad = _odd_rows(df, stored if encoding.startswith("utf-8") else [])
        if any(replaced for _, _, replaced in bad):
            if f.local is None:
                raise InputError(label, "bytes that are not UTF-8 after the first MiB (Spark would replace them); "
                                        "save the file as UTF-8")
            encoding = readers.detect_encoding(f.local)  # Windows-1252, or InputError with the line
            df = read(encoding)
            bad = _odd_rows(df, [])
    except (PySparkException, Py4JJavaError) as exc:
        raise InputError(label, f"malformed CSV: {_first_line(exc)}") from None
    for row, text, _ in bad:  # Spark marks short and long lines alike; DuckDB pads short ones, refuses long ones
        if text is None:
            continue
        fields = next(csv.reader(io.StringIO(text), delimiter=delim, quotechar='"'), [])
        if len(fields) > len(names):
            raise InputError(label, f"malformed CSV on data row {row}: Expected Number of Columns: {len(names)} "
                                    f"Found: {len(fields)}", row=row)
    df.drop(_CORRUPT).createOrReplaceTempView(relation)
    raw.relation, raw.fmt, raw.encoding, raw.delimiter = relation, "csv", encoding, delim
    raw.row_sql = readers.ROW_COLUMN
    return raw


_C1 = [b for b in range(0x80, 0xA0) if b not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)]  # undefined in cp1252: refused
_LATIN1_C1 = bytes(_C1).decode("latin-1")
_CP1252_C1 = bytes(_C1).decode("cp1252")


def _head_cp1252(head: bytes, label: str) -> str:
    """The encoding of a remote file that is not UTF-8 in its first MiB: Windows-1252 if its bytes allow it."""
    if readers._BAD_CP1252_BYTES.search(head):
        raise InputError(label, "unreadable encoding in the first MiB: neither UTF-8 nor Windows-1252; "
                                "save the file as UTF-8")
    return "cp1252"


def _odd_rows(df: Any, cols: list[str]) -> list[tuple[int, str | None, bool]]:
    """(source row, the line if Spark found it malformed, whether its text holds U+FFFD) of the first 1000 rows that
    are malformed or, among ``cols``, hold U+FFFD (what Spark puts where bytes were not UTF-8): one pass."""
    replaced = " OR ".join(f"instr({SPARK['ident'](c)}, '\ufffd') > 0" for c in cols) or "FALSE"
    return [(int(r[0]), r[1], bool(r[2])) for r in df.selectExpr(readers.ROW_COLUMN, _CORRUPT, f"({replaced})")
            .where(f"{_CORRUPT} IS NOT NULL OR ({replaced})").limit(1000).collect()]


def _java_error(exc: Any) -> str:
    """The first line of a Java exception's message, without its stack trace."""
    try:
        return str(exc.java_exception.toString()).splitlines()[0][:300]
    except Exception:  # pragma: no cover - not a Py4JJavaError
        return _first_line(exc)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


# --------------------------------------------------------------------------- validation


class SparkExtract(Extract):
    """A checked extract held by Spark: ``frames`` are the accepted tables (canonical columns and ``_lv_rowid``,
    materialised), counts and quarantine as :class:`Extract`; there is no DuckDB connection (``con`` is None)."""

    def __init__(self, frames: dict[str, Any], keep: list[Any], **kw: Any) -> None:
        super().__init__(None, **kw)  # type: ignore[arg-type]
        self.frames = frames
        self._keep = keep
        self.fingerprint_of = "content"

    def to_pandas(self, table: str):  # pragma: no cover - small data only, as Extract.to_pandas
        if table in self.frames:
            return self.frames[table].drop(ROWID).toPandas()
        return super().to_pandas(table)

    def close(self) -> None:
        while self._keep:
            self._keep.pop().unpersist()
        super().close()


def _materialise(df: Any, keep: list[Any]) -> Any:
    df = df.localCheckpoint(eager=True)
    keep.append(df)
    return df


def open_extract(spark: Any, source: str | Path, *, quarantine_dir: Path | None = None,
                 extract_end: date | None = None) -> SparkExtract:
    """Read and check the extract folder ``source`` (a local path or a URI Spark reads) on Spark.

    The same outcome as :func:`lowvalue.data.extract.open_extract`: accepted rows, quarantine files
    (``quarantine_dir/<table>.parquet``, same columns, reason codes and reasons), counts that reconcile, warnings.
    ``quarantine_dir`` is a local folder (the result folder's, or the user's).
    """
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import AnalysisException, ParseException, PySparkException

    started = time.perf_counter()
    files = _Files(spark, str(source))
    try:
        files.check_folder()
        located = {t: files.locate(t) for t in TABLE_ORDER}  # all missing-file errors before any work
        fingerprint, fingerprint_of = files.fingerprint(located)
    except Py4JJavaError as exc:  # a remote file system that refuses (permissions, network)
        raise InputError(str(source), f"Spark cannot list it: {_java_error(exc)}") from None
    shifted = files.local is not None and _dates_shifted(files.local)
    bounds = validation.DateBounds.default(extract_end, shifted=shifted)
    keep: list[Any] = []
    raw: dict[str, RawTable] = {}
    sources: dict[str, str] = {}
    counts: dict[str, TableCount] = {}
    qfiles: dict[str, Path] = {}
    frames: dict[str, Any] = {}
    warnings: list[str] = []
    parents = {"persons": "_lv_ok_persons", "encounters": "_lv_ok_encounters"}
    try:
        for t in TABLE_ORDER:
            fs = located[t]
            rel = f"_lv_raw_{t}"
            label = (fs[0].uri if fs[0].local is None else str(fs[0].local)) if len(fs) == 1 else \
                f"{str(files.local) if files.local is not None else files.source}/{t}"
            if len(fs) == 1 and readers.is_csv(Path(fs[0].name)):
                raw[t] = _read_csv(spark, files, t, fs[0], rel, keep)
            else:
                raw[t] = _read_parquet(spark, t, fs, rel, label)
            sources[t] = label
            r = raw[t]
            cols, zone = validation.zone_counts_sql(r, SPARK)
            if zone is not None:
                n_aware, n_naive = spark.sql(zone).collect()[0]
                for w in validation.zone_warning(t, cols, int(n_aware or 0), int(n_naive or 0)):
                    warnings.append(w)
                    log.warning("%s", w)
            stage, problems, dups = f"_lv_stage_{t}", f"_lv_problems_{t}", f"_lv_dups_{t}"
            try:
                staged = _materialise(spark.sql(validation.stage_sql(r, bounds, SPARK)), keep)
            except (AnalysisException, ParseException):
                raise  # the SQL's fault, not the data's
            except (PySparkException, Py4JJavaError) as exc:  # a file that fails only when its pages are read
                raise InputError(label, f"cannot read {r.fmt}: {_first_line(exc)}") from None
            staged.createOrReplaceTempView(stage)
            dup_sql = (validation.duplicate_keys_sql(r.table, stage, SPARK) if t in ("persons", "encounters")
                       else validation.duplicate_rows_sql(r.table, stage, SPARK))
            spark.sql(dup_sql).createOrReplaceTempView(dups)
            bad = _materialise(spark.sql(validation.problems_sql(r.table, stage, dups, parents, SPARK)), keep)
            bad.createOrReplaceTempView(problems)
            cols_sql = ", ".join(f"s.{SPARK['ident'](c)}" for c in r.table.columns)
            # a view over the materialised stage and problems (the scan materialises what it reads often)
            ok = spark.sql(f"SELECT s.source_row - 1 AS {ROWID}, {cols_sql} FROM {stage} s "
                           f"LEFT ANTI JOIN {problems} q ON q.source_row = s.source_row")
            ok.createOrReplaceTempView(f"_lv_ok_{t}")
            # every count in one query: reasons, quarantined (''), read (the stage: one row per row read), accepted
            tally = dict(spark.sql(
                f"SELECT code, count(*) FROM (SELECT explode(split(reason_code, ';')) AS code FROM {problems}) "
                f"GROUP BY code UNION ALL SELECT '', count(*) FROM {problems} "
                f"UNION ALL SELECT ' read', count(*) FROM {stage} "
                f"UNION ALL SELECT ' accepted', count(*) FROM _lv_ok_{t}").collect())
            n_bad, r.rows, accepted = (int(tally.pop(k)) for k in ("", " read", " accepted"))
            reasons = {code: int(n) for code, n in sorted(tally.items(), key=lambda kv: (-kv[1], kv[0]))}
            if quarantine_dir is not None:
                target = Path(quarantine_dir) / f"{t}.parquet"
                if n_bad:
                    from lowvalue.engine.spark import write_parquet

                    target.parent.mkdir(parents=True, exist_ok=True)
                    write_parquet(spark.sql(validation.quarantine_sql(r, problems, SPARK)), ["source_row"], target)
                    qfiles[t] = target
                elif target.is_file():
                    target.unlink()  # a stale quarantine from an earlier run would mislead
            frames[t] = ok
            if r.rows != accepted + n_bad:  # pragma: no cover - an internal bug, never data
                raise AssertionError(f"{t}: read {r.rows} != accepted {accepted} + quarantined {n_bad}")
            counts[t] = TableCount(t, sources[t], r.rows, accepted, n_bad, reasons)
            log.info("%s: read %d, accepted %d, quarantined %d", t, r.rows, accepted, n_bad)
    except BaseException:
        for df in keep:
            df.unpersist()
        raise
    extract = SparkExtract(frames, keep, counts=counts, fingerprint=fingerprint, sources=sources, raw=raw,
                           quarantine_dir=quarantine_dir, quarantine_files=qfiles,
                           seconds=time.perf_counter() - started, warnings=warnings)
    extract.fingerprint_of = fingerprint_of
    return extract
