"""Run compiled rules on Spark SQL: the same rule, the same rows as DuckDB and the reference evaluator.

The SQL comes from :func:`lowvalue.engine.sql.compile_rule` with the :data:`~lowvalue.engine.sql.SPARK`
renderer table; this module only owns the Spark side: one local session per process, loading the canonical
tables (pandas frames or Parquet), and bringing results back to pandas in the DuckDB engine's dtypes.

Times: the JVM and the session both run in UTC and every timestamp is naive UTC on both sides, so Spark
never shifts a wall-clock time (``spark.driver.extraJavaOptions=-Duser.timezone=UTC``,
``spark.sql.session.timeZone=UTC``). Event ids: the canonical tables carry ``_lv_rowid`` (row number of the
frame, DuckDB's row id (``validation.rowid_relation``) when exported from an opened extract, or ``source_row - 1`` when Spark read and checked
the extract: ordered as DuckDB's row ids of the accepted rows, which is all the rules use them for), so
``lv_hit.ev_id`` is deterministic and orders ties as DuckDB's does; a Spark view is recomputed on every use and a random id would not join with itself.

A whole scan on Spark (``lowvalue scan --engine spark``) is :mod:`lowvalue.engine.spark_scan`; this module gives
it the session, the tables (:func:`open_frames` for the ones Spark checked, :func:`export` for a DuckDB extract),
:func:`distinct_codes`, :func:`hits`, a DuckDB-like
:class:`Connection` for small results, and the writer of large ones (:func:`write_parquet`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from lowvalue.data.schema import TABLES
from lowvalue.data.validation import rowid_relation
from lowvalue.engine import sql
from lowvalue.errors import LowvalueError
from lowvalue.rules.codes import ValueSet
from lowvalue.rules.library import RuleSet
from lowvalue.rules.model import Rule

ROWID = "_lv_rowid"
CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
    "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "2",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.adaptive.enabled": "true",
    "spark.buffer.pageSize": "4m",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
}

_session: Any = None


def driver_memory() -> str:
    """``$LOWVALUE_SPARK_DRIVER_MEMORY``, else a quarter of this machine's memory (1–8 GB): in local mode the driver
    is the executor, and a fixed 1 GB lost task results at 100 000 persons."""
    if os.environ.get("LOWVALUE_SPARK_DRIVER_MEMORY"):
        return os.environ["LOWVALUE_SPARK_DRIVER_MEMORY"]
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return "2g"
    return f"{min(max(total // 4 // 2**30, 1), 8)}g"


LOCAL_ONLY = ("spark.driver.bindAddress", "spark.driver.host", "spark.sql.shuffle.partitions", "spark.default.parallelism")
"""Settings for a session this process starts in local mode only: a cluster's executors must reach the driver, and
a cluster sizes its own parallelism."""


def session() -> Any:
    """The process's SparkSession, created on first use and reused.

    Three cases: a session already active in the process (a Databricks notebook or job) is used as it is, with the
    SQL settings of :data:`CONF` that can change at run time; a process started by ``spark-submit`` (it has a
    gateway to the launcher's JVM) builds its session with the launcher's master and memory; otherwise a local
    session (``$LOWVALUE_SPARK_MASTER``, default ``local[2]``, ``$LOWVALUE_SPARK_DRIVER_MEMORY``).
    """
    global _session
    if _session is None:
        try:
            from pyspark.sql import SparkSession
        except ImportError as e:
            raise LowvalueError("the Spark engine needs pyspark: pip install 'lowvalue[spark]'") from e

        active = SparkSession.getActiveSession()
        if active is not None:
            for k, v in CONF.items():
                if k.startswith("spark.sql."):
                    active.conf.set(k, v)
            _session = active
            return _session
        launched = bool(os.environ.get("PYSPARK_GATEWAY_PORT"))
        master = None if launched else os.environ.get("LOWVALUE_SPARK_MASTER", "local[2]")
        local = master is not None and master.startswith("local")
        if local:
            os.environ.setdefault("PYSPARK_PYTHON", os.sys.executable)  # type: ignore[attr-defined]
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = SparkSession.builder.appName("lowvalue")
        conf = {k: v for k, v in CONF.items() if local or k not in LOCAL_ONLY}
        if master is not None:
            builder = builder.master(master).config("spark.driver.memory", driver_memory())
        for k, v in conf.items():
            builder = builder.config(k, v)
        _session = builder.getOrCreate()
        _session.sparkContext.setLogLevel("ERROR")
    return _session


class Connection:
    """The ``execute(sql)`` interface the engine-neutral code expects (:func:`lowvalue.engine.sql.prepare`,
    :class:`~lowvalue.engine.scan.ScanResult`), on a Spark session."""

    def __init__(self, spark: Any | None = None) -> None:
        self.spark = spark or session()

    def execute(self, text: str) -> "Result":
        return Result(self.spark.sql(text))


class Result:
    """A Spark query's rows, fetched as DuckDB's results are (``fetchall``, ``fetchone``, ``df``) and through Arrow
    (naive UTC timestamps, whatever the Python process's zone). For small results only: never a large table."""

    def __init__(self, df: Any) -> None:
        self.frame = df

    def arrow(self) -> pa.Table:
        return _to_arrow(self.frame, age=False)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [tuple(r.values()) for r in self.arrow().to_pylist()]

    def fetchone(self) -> tuple[Any, ...] | None:
        rows = self.fetchall()
        return rows[0] if rows else None

    def df(self) -> pd.DataFrame:
        con = duckdb.connect()
        try:  # through DuckDB's own pandas conversion: the dtypes of the DuckDB engine's frames
            return con.from_arrow(self.arrow()).df()
        finally:
            con.close()


def _arrow(name: str, df: pd.DataFrame) -> pa.Table:
    """The frame's canonical columns as Arrow, typed by the schema (all-null columns keep their type), plus a row id."""
    arrays, fields = [pa.array(range(len(df)), pa.int64())], [pa.field(ROWID, pa.int64())]
    for f in TABLES[name].schema:
        if f.name in df.columns:
            col = df[f.name]
            arrays.append(pa.array(col.astype(object).where(col.notna(), None).tolist(), type=f.type))
            fields.append(pa.field(f.name, f.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _view(spark: Any, name: str, source: Any) -> None:
    """Create the canonical view ``name`` (schema columns, cast; ``_lv_rowid`` kept) over a Spark DataFrame."""
    source.createOrReplaceTempView(f"_lv_src_{name}")
    select = sql.canonical_select(name, list(source.columns), f"_lv_src_{name}", sql.SPARK)
    spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW {name} AS {select.replace('SELECT ', f'SELECT {ROWID}, ', 1)}")


SMALL = {"spark.sql.shuffle.partitions": "1", "spark.sql.adaptive.enabled": "false",
         "spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN",
         "spark.sql.autoBroadcastJoinThreshold": "64MB"}
"""Session settings for frames (tests, decks: tiny data, where the cost is per stage, not per row)."""
LARGE = {"spark.sql.shuffle.partitions": CONF["spark.sql.shuffle.partitions"], "spark.sql.adaptive.enabled": "true",
         "spark.sql.codegen.wholeStage": "true", "spark.sql.codegen.factoryMode": "FALLBACK",
         "spark.sql.autoBroadcastJoinThreshold": "10MB"}


def _tune(spark: Any, conf: dict[str, str]) -> None:
    for k, v in conf.items():
        spark.conf.set(k, v)


def load_frames(persons: pd.DataFrame, encounters: pd.DataFrame, events: pd.DataFrame, sets: list[ValueSet],
                spark: Any | None = None) -> None:
    """Make pandas frames the session's canonical tables and match ``sets`` (``lv_hit``; no validation)."""
    spark = spark or session()
    _tune(spark, SMALL)
    for name, df in (("persons", persons), ("encounters", encounters), ("events", events)):
        table = _arrow(name, df)
        try:
            source = spark.createDataFrame(table)  # Spark >= 4: Arrow directly
        except TypeError:  # pragma: no cover - Spark 3.5 takes pandas
            source = spark.createDataFrame(table.to_pandas(timestamp_as_object=False))
        _view(spark, name, source)
    _prepare(spark, sets)


def load_parquet(folder: Path | str, sets: list[ValueSet], spark: Any | None = None,
                 conf: dict[str, str] | None = None) -> None:
    """Use ``folder/{persons,encounters,events}.parquet`` (with ``_lv_rowid``, see :func:`export`) as the tables
    and match ``sets``. ``conf``: :data:`SMALL` or :data:`LARGE` session settings (default LARGE)."""
    spark = spark or session()
    open_parquet(spark, folder, conf or LARGE)
    _prepare(spark, sets)


def open_parquet(spark: Any, folder: Path | str, conf: dict[str, str]) -> None:
    """The views ``persons``, ``encounters``, ``events`` over ``folder``'s Parquet (see :func:`export`), with the
    session settings ``conf`` in local mode (a cluster keeps its own)."""
    if spark.sparkContext.master.startswith("local"):
        _tune(spark, conf)
    for name in ("persons", "encounters", "events"):
        _view(spark, name, spark.read.parquet(str(Path(folder) / f"{name}.parquet")))


def open_frames(spark: Any, frames: dict[str, Any], conf: dict[str, str]) -> None:
    """The views ``persons``, ``encounters``, ``events`` over Spark DataFrames with ``_lv_rowid`` (the accepted
    tables of :func:`lowvalue.data.spark_extract.open_extract`), with the session settings ``conf`` in local mode."""
    if spark.sparkContext.master.startswith("local"):
        _tune(spark, conf)
    for name in ("persons", "encounters", "events"):
        _view(spark, name, frames[name])


def _prepare(spark: Any, sets: list[ValueSet]) -> None:
    """The code sets' matches on the distinct codes and ``lv_hit`` (see :func:`sql.prepare`), and ``persons``,
    each materialised once (every rule reads them several times)."""
    distinct_codes(spark)
    spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW lv_sets AS {sql.sets_sql(sets, sql.SPARK)}")
    hits(spark)


def distinct_codes(spark: Any) -> None:
    """``lv_code_raw`` and ``lv_codes`` (:func:`sql.prepare_sql`) over the loaded tables, ``lv_code_raw``
    materialised. The previous load's materialised views are released first: tests load many small extracts into
    one session.

    A local checkpoint replaces a view's plan by its computed rows, so later queries neither recompute nor
    re-analyse it (a cached view is matched against every reference, which costs seconds per rule).
    """
    while _checkpoints:
        _checkpoints.pop().unpersist()
    sql.prepare(Connection(spark), sql.SPARK)
    _checkpoint(spark, "lv_code_raw")


def hits(spark: Any) -> None:
    """``lv_hit`` for the code-set matches in the view ``lv_sets``; ``lv_sets``, ``lv_hit`` and ``persons``
    materialised; ``lv_persons`` (what the candidates read of them) a view over ``persons``."""
    _checkpoint(spark, "lv_sets")
    spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW lv_hit AS {sql.hit_sql('lv_sets', sql.SPARK)}")
    for name in ("lv_hit", "persons"):
        _checkpoint(spark, name)
    spark.sql(f"CREATE OR REPLACE TEMPORARY VIEW lv_persons AS {sql.persons_sql()}")


_checkpoints: list[Any] = []


def _checkpoint(spark: Any, name: str) -> None:
    """Materialise the view ``name`` in as many partitions as a shuffle makes: a union of one branch per code set
    would otherwise leave hundreds of tiny partitions, a task each in every later stage."""
    df = materialise(spark.table(name).coalesce(int(spark.conf.get("spark.sql.shuffle.partitions"))))
    df.createOrReplaceTempView(name)


def materialise(df: Any) -> Any:
    """``df`` computed once (a local checkpoint), released by the next load (:func:`distinct_codes`)."""
    df = df.localCheckpoint(eager=True)
    _checkpoints.append(df)
    return df


def export(con: Any, folder: Path | str) -> Path:
    """Write the canonical tables of a DuckDB extract as Parquet with their row ids (``rowid_relation``, so ev_ids agree)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("persons", "encounters", "events"):
        path = sql.q(str(folder / f"{name}.parquet"))
        con.execute(f"COPY (SELECT * FROM {rowid_relation(name)}) TO {path} (FORMAT parquet)")
    return folder


def _to_arrow(df: Any, age: bool = True) -> pa.Table:
    """A Spark result in the DuckDB engine's Arrow types.

    Spark's timestamps come back as UTC-zoned Arrow timestamps (the session zone) and are made naive again;
    ``year()`` is an INT on Spark and a BIGINT on DuckDB (with ``age``, a column ``age`` is made BIGINT).
    """
    table = df.toArrow() if hasattr(df, "toArrow") else pa.Table.from_pandas(df.toPandas(), preserve_index=False)
    cols = []
    for f, col in zip(table.schema, table.columns):
        if pa.types.is_timestamp(f.type):
            col = col.cast(pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us"))
        elif f.name == "age" and age:
            col = col.cast(pa.int64())
        cols.append(col)
    return pa.Table.from_arrays(cols, names=table.column_names)


def evaluate(rule: Rule, rs: RuleSet, spark: Any | None = None) -> pd.DataFrame:
    """Judge every candidate of ``rule`` on the loaded tables; the columns and dtypes of :func:`sql.evaluate`."""
    con = duckdb.connect()
    try:  # through DuckDB's own pandas conversion, as the DuckDB engine returns it
        return con.from_arrow(_to_arrow((spark or session()).sql(sql.compile_rule(rule, rs, sql.SPARK)))).df()
    finally:
        con.close()


def evaluate_frames(persons: pd.DataFrame, encounters: pd.DataFrame, events: pd.DataFrame, rule: Rule,
                    rs: RuleSet) -> pd.DataFrame:
    """Evaluate one rule on pandas frames on Spark; same columns and order as :func:`sql.evaluate_frames`."""
    load_frames(persons, encounters, events, sql.code_sets(rs, [rule]))
    return evaluate(rule, rs)[sql.frame_columns(rule)].reset_index(drop=True)


SMALL_ROWS = 2_000_000
"""Extracts with fewer events than this run with :data:`SMALL` settings (interpreted, one shuffle partition)."""


def write_parquet(df: Any, order: list[str], path: Path) -> Path:
    """Write a Spark DataFrame as the one Parquet file ``path``, sorted on ``order`` (ascending, NULLs last), in
    the types the DuckDB engine writes.

    Spark writes a folder of part files; a result folder holds one file per table (``flags.parquet``), which its
    readers (pandas, DuckDB, the later commands) open as a file. So the rows go to one partition, are sorted there
    (one task: the sort spills, nothing comes to the driver) and the single part file is renamed into place.
    Timestamps are written as TIMESTAMP_NTZ (Parquet ``isAdjustedToUTC=false``), which readers see as naive, as
    DuckDB writes them. ``path`` must be on a file system both the driver and the executors see (local mode: any).
    """
    from pyspark.sql import functions as F

    for f in df.schema.fields:
        if f.dataType.typeName() == "timestamp":
            df = df.withColumn(f.name, F.col(f.name).cast("timestamp_ntz"))
    folder = path.with_name(f".{path.name}.spark")
    (df.repartition(1).sortWithinPartitions(*[F.col(c).asc_nulls_last() for c in order])
       .write.mode("overwrite").option("compression", "zstd").parquet(str(folder)))
    parts = sorted(folder.glob("part-*.parquet"))
    if len(parts) != 1:  # pragma: no cover - Spark writes one (possibly empty) file for one partition
        raise LowvalueError(f"Spark wrote {len(parts)} files for {path.name}, expected one")
    os.replace(parts[0], path)
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    return path
