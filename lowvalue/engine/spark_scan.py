"""A scan on Spark (``lowvalue scan --engine spark``): the same outputs as the DuckDB scan, computed by Spark.

What runs where, and why:

* The extract is read, checked and quarantined by Spark (:func:`lowvalue.data.spark_extract.open_extract`: the
  checks of :mod:`lowvalue.data.validation` rendered for Spark), from any path Spark reads. An extract already
  opened on DuckDB (or pandas frames, which are on the driver anyway) is handed to Spark as Parquet with DuckDB's
  row ids instead (:func:`lowvalue.engine.spark.export`).
* Spark counts the distinct codes (``lv_code_raw``: one pass over the events). That table is small (one row per
  distinct code, whatever the extract's size) and comes to the driver, where the code sets are matched and the
  code-set coverage and orphan codes counted by the same code as on DuckDB (:class:`~lowvalue.engine.coverage.Coverage`
  on a driver-side DuckDB holding only the distinct codes). The questions that need the events (how inpatient
  events are dated, the care settings present) are asked on Spark.
* Every runnable rule is compiled with the :data:`~lowvalue.engine.sql.SPARK` table and the rules are judged in
  batches, one Spark query per batch (:data:`BATCH` rules: a ``UNION ALL`` of their rows in the shape of
  :func:`lowvalue.engine.outputs.rows_sql`), materialised once. Spark spends about a second planning each query,
  so one query for many rules instead of one per rule is most of a Spark scan's speed-up on small extracts.
* ``--pseudonymise`` (:meth:`SparkScanResult.pseudonymised`): the keyed pseudonyms are computed by Spark (``sha2``
  over HMAC-SHA256's padded keys, broadcast as one row), so the ids never come to the driver; same pseudonyms and
  file order as on DuckDB.
* Candidates, flags, triggers, denominators, the waterfall's counts and the pre-index features are SELECTs over
  the judged rows (:mod:`lowvalue.engine.outputs`, :func:`lowvalue.risk.features.features_sql`), on Spark. The
  small ones (denominators, waterfall counts) come to the driver; the large ones are written by Spark
  (:func:`lowvalue.engine.spark.write_parquet`), one file per table, never collected.
"""

from __future__ import annotations

import itertools
import os
import shutil
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from functools import reduce
from pathlib import Path
from typing import Any, Callable

import duckdb
import pandas as pd

from lowvalue.engine import outputs, spark, sql
from lowvalue.engine.coverage import Coverage
from lowvalue.engine.scan import ScanResult, _period, evaluability, manifest
from lowvalue.rules.library import RuleSet

BATCH = int(os.environ.get("LOWVALUE_SPARK_BATCH", "64"))
"""Rules judged in one Spark query (``$LOWVALUE_SPARK_BATCH``; the shipped library is one batch)."""
WORKERS = int(os.environ.get("LOWVALUE_SPARK_WORKERS", "1"))
"""Batches judged at a time (``$LOWVALUE_SPARK_WORKERS``): with more than one, the driver plans one batch while the
executors run another. On two local cores this did not pay (measured on the example: see benchmarks/README.md)."""

VIEWS = {"candidates": "lv_candidates", "flags": "lv_flags", "triggers": "lv_triggers", "features": "lv_features"}


class SparkScanResult(ScanResult):
    """A :class:`ScanResult` whose large tables are Spark views: counted and fetched through
    :class:`lowvalue.engine.spark.Connection`, written by Spark."""

    written: dict[str, tuple[str, list[str]]] = {}
    """Table name -> (Spark view, file order) where it is not the scan's own view and order (a pseudonymised copy)."""

    def _copy(self, name: str, path: Path) -> None:
        view, order = self.written.get(name, (VIEWS[name], outputs.ORDER[name]))
        spark.write_parquet(self.con.spark.table(view), order, path)

    def rows(self, name: str) -> int:
        """Rows of table ``name``: the large tables counted together, in one Spark query (the manifest asks for each)."""
        if name not in self.selects:
            return super().rows(name)
        if getattr(self, "_counts", None) is None:
            union = " UNION ALL ".join(f"SELECT {sql.SPARK['str'](n)} AS t, count(*) AS n FROM {self.tables[n]}"
                                       for n in self.selects)
            self._counts = {t: int(n) for t, n in self.con.execute(union).fetchall()}
        return self._counts[name]

    def pseudonymised(self, key: bytes) -> ScanResult:
        """A copy whose ids are keyed pseudonyms, as :meth:`ScanResult.pseudonymised` makes them on DuckDB.

        The same pseudonyms (HMAC-SHA256 of the id, :func:`lowvalue.privacy.pseudonym`), computed by Spark where
        the rows are (:func:`pseudonym_columns`) instead of on the driver from the distinct ids, and the same file
        order (every column, ascending, NULLs last: DuckDB's ``ORDER BY ALL``, since sorting on an id means sorting
        on its pseudonym now).
        """
        from lowvalue.privacy import pseudonymise

        small = {name: pseudonymise(getattr(self, name), key) for name in self.TABLES if name not in self.LARGE}
        ss = self.con.spark
        selects, written = {}, {}
        copy = next(_copies)  # views of their own: a second copy (another key) leaves this one's alone
        for name in self.selects:
            frame = pseudonym_columns(ss.table(VIEWS[name]), key)
            view = f"lv_ps{copy}_{name}"
            frame.createOrReplaceTempView(view)
            written[name] = (view, list(frame.columns))
            selects[name] = f"SELECT * FROM {view} ORDER BY " + ", ".join(f"{c} ASC NULLS LAST" for c in frame.columns)
        manifest = {**self.manifest, "pseudonymised": "HMAC-SHA256 of ids with a secret key (lowvalue.privacy)"}
        result = SparkScanResult(**small, con=self.con, selects=selects, manifest=manifest, rules=self.rules,
                                 tables=self.tables, owner=self._owner)
        result.written = written
        return result


_copies = itertools.count()


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """HMAC-SHA256's inner and outer padded keys (RFC 2104): ``HMAC(k, m) = H(opad || H(ipad || m))``."""
    import hashlib

    block = hashlib.sha256().block_size
    k = (hashlib.sha256(key).digest() if len(key) > block else key).ljust(block, b"\0")
    return bytes(b ^ 0x36 for b in k), bytes(b ^ 0x5C for b in k)


def pseudonym_columns(frame: Any, key: bytes) -> Any:
    """``frame`` with its id columns (:data:`lowvalue.privacy.ID_COLUMNS`) replaced by :func:`lowvalue.privacy.pseudonym`
    of their text, computed by Spark's ``sha2`` (executors run no Python; nulls stay null).

    The padded keys come from a one-row broadcast frame, not from literals: the key never appears in a query's
    text or plan (which Spark may print in an error).
    """
    from pyspark.sql import functions as F

    from lowvalue.privacy import ID_COLUMNS

    ids = [c for c in frame.columns if c in ID_COLUMNS]
    if not ids:
        return frame
    inner, outer = hmac_pads(key)
    pads = frame.sparkSession.createDataFrame([(bytearray(inner), bytearray(outer))], "_lv_ipad binary, _lv_opad binary")

    def pseudonym(c: str) -> Any:
        text = F.encode(F.col(c).cast("string"), "UTF-8")
        digest = F.sha2(F.concat(F.col("_lv_opad"), F.unhex(F.sha2(F.concat(F.col("_lv_ipad"), text), 256))), 256)
        return F.concat(F.lit("ps_"), F.substring(digest, 1, 20)).alias(c)

    joined = frame.crossJoin(F.broadcast(pads))
    return joined.select(*[pseudonym(c) if c in ids else F.col(c) for c in frame.columns])


class _Work:
    """What a Spark scan's result needs until it is written: the extract, the Parquet hand-over folder (if any) and
    the driver-side DuckDB of distinct codes; the folder is removed when the result is dropped."""

    def __init__(self, extract: Any, folder: Path | None, codes: duckdb.DuckDBPyConnection) -> None:
        self.extract, self.folder, self.codes = extract, folder, codes
        if folder is not None:
            self._remove = weakref.finalize(self, shutil.rmtree, str(folder), True)
        if hasattr(extract, "frames"):  # the tables Spark checked: their materialised rows released with the result
            self._release = weakref.finalize(self, extract.close)


def scan_data(data: Any, rs: RuleSet, *, quarantine_dir: Path | None, extract_end: Any, memory_limit: str | None,
              features: bool, progress: Callable[[str, float], None] | None) -> ScanResult:
    """``scan --engine spark`` from its data: an extract folder or URI is read and checked by Spark
    (:mod:`lowvalue.data.spark_extract`); an opened :class:`~lowvalue.data.extract.Extract` or a mapping of frames
    goes through the driver's DuckDB and the Parquet hand-over."""
    from collections.abc import Mapping

    from lowvalue.data import spark_extract
    from lowvalue.data.extract import Extract, open_extract

    if isinstance(data, Extract):
        extract = data
    elif isinstance(data, Mapping):
        extract = open_extract(data, quarantine_dir=quarantine_dir, extract_end=extract_end, memory_limit=memory_limit)
    else:
        extract = spark_extract.open_extract(spark.session(), data, quarantine_dir=quarantine_dir,
                                             extract_end=extract_end)
    return scan(extract, rs, features=features, progress=progress, started=time.perf_counter())


def _codes(spark_con: spark.Connection) -> duckdb.DuckDBPyConnection:
    """A driver-side DuckDB with the extract's distinct codes (counted by Spark) and empty code-set matches."""
    raw = spark_con.execute("SELECT * FROM lv_code_raw").arrow()
    con = duckdb.connect()
    con.register("_lv_code_raw", raw)
    con.execute("CREATE TABLE lv_code_raw AS SELECT * FROM _lv_code_raw")
    con.unregister("_lv_code_raw")
    con.execute(sql.prepare_sql(sql.DUCKDB)[1])  # lv_codes
    con.execute("CREATE TABLE lv_sets (cs BIGINT, system VARCHAR, code VARCHAR)")
    con.execute("CREATE TABLE lv_set_keys (cs BIGINT)")
    return con


def scan(extract: Any, rs: RuleSet, *, features: bool, progress: Callable[[str, float], None] | None,
         started: float) -> ScanResult:
    """The Spark half of :func:`lowvalue.engine.scan.scan` (same arguments), from an opened extract on."""
    from lowvalue.risk import features as feats
    from lowvalue.workdir import private_dir

    ss = spark.session()
    con = spark.Connection(ss)
    timing: dict[str, float] = {}
    n_events = extract.counts["events"].accepted if "events" in extract.counts else 0
    conf = spark.SMALL if n_events < spark.SMALL_ROWS else spark.LARGE
    frames = getattr(extract, "frames", None)
    folder = None if frames is not None else private_dir("spark")
    try:
        if frames is not None:  # read and checked by Spark
            spark.open_frames(ss, frames, conf)
        else:
            spark.export(extract.con, folder)
            spark.open_parquet(ss, folder, conf)
        spark.distinct_codes(ss)
        codes = _codes(con)
    except BaseException:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    work = _Work(extract, folder, codes)

    sql.ensure_sets(codes, sql.code_sets(rs) + (feats.code_sets(rs) if features else []))
    cov = Coverage.of(codes, rs, events=con)
    ss.createDataFrame(codes.sql("SELECT cs, system, code FROM lv_sets").to_arrow_table()).createOrReplaceTempView("lv_sets")
    if features:
        ss.createDataFrame(codes.sql(feats.groups_sql()).to_arrow_table()).createOrReplaceTempView("lv_groups")
    spark.hits(ss)
    settings = {r[0] for r in con.execute("SELECT DISTINCT setting FROM encounters").fetchall()}
    ordered, evaluable, runnable = evaluability(cov, rs, settings)
    timing["(codes)"] = round(time.perf_counter() - started, 3)

    def judge(batch: list[Any]) -> tuple[list[Any], Any, float]:
        t0 = time.perf_counter()
        text = outputs.batch_sql(
            outputs.rows_sql(rule, f"({sql.compile_rule(rule, rs, sql.SPARK, ordered=False)})", sql.SPARK)
            for rule in batch)
        return batch, spark.materialise(ss.sql(text)), time.perf_counter() - t0

    size = max(1, min(BATCH, -(-len(runnable) // max(WORKERS, 1))))  # at least one batch per worker
    judged = []
    with ThreadPoolExecutor(max(WORKERS, 1)) as pool:
        for batch, rows, seconds in pool.map(judge, [runnable[i:i + size] for i in range(0, len(runnable), size)]):
            judged.append(rows)
            for rule in batch:  # a batch's time, shared among its rules
                timing[rule.id] = round(seconds / len(batch), 3)
                if progress:
                    progress(rule.id, seconds / len(batch))
    if judged:
        reduce(lambda a, b: a.unionByName(b), judged).createOrReplaceTempView("lv_rows")
    else:
        ss.sql(f"SELECT * FROM ({_no_rows()}) r WHERE FALSE").createOrReplaceTempView("lv_rows")
    for name, select in (("candidates", outputs.candidates_sql), ("flags", outputs.flags_sql),
                         ("triggers", outputs.triggers_sql)):
        ss.sql(f"CREATE OR REPLACE TEMPORARY VIEW {VIEWS[name]} AS {select('lv_rows', sql.SPARK)}")
    counts: dict[str, list[tuple[int, int, int]]] = {}
    for rule_id, steps, n, flagged in con.execute(outputs.step_counts_sql("lv_rows")).fetchall():
        counts.setdefault(rule_id, []).append((int(steps), int(n), int(flagged)))
    selects = {name: outputs.ordered(VIEWS[name], name, sql.SPARK) for name in ("candidates", "flags", "triggers")}
    if features:
        t0 = time.perf_counter()
        ss.sql(f"CREATE OR REPLACE TEMPORARY VIEW lv_cand AS "
               f"{feats.cand_sql('(SELECT * FROM lv_candidates WHERE eligible) e', sql.SPARK)}")
        # counted for the manifest, then written: computed once
        spark.materialise(ss.sql(feats.features_sql("lv_cand", "lv_triggers", rs, sql.SPARK))
                          ).createOrReplaceTempView(VIEWS["features"])
        selects["features"] = outputs.ordered(VIEWS["features"], "features", sql.SPARK)
        timing["(features)"] = round(time.perf_counter() - t0, 3)
    result = SparkScanResult(
        evaluability=pd.DataFrame(evaluable),
        denominators=con.execute(outputs.denominators_sql("lv_candidates", sql.SPARK)).df(),
        waterfall=outputs.waterfall(runnable, {r.id: outputs.step_counts(r, counts.get(r.id, [])) for r in runnable}),
        codeset_coverage=cov.table(ordered),
        orphan_codes=cov.orphans(ordered),
        con=con, selects=selects, rules=rs, owner=work, tables={name: VIEWS[name] for name in selects},
    )
    result.manifest = manifest(result, extract, rs, "spark", _period(con), timing, started, 1)
    if getattr(extract, "fingerprint_of", "content") != "content":  # a remote extract's files are not read whole
        result.manifest["data"]["fingerprint_of"] = extract.fingerprint_of
    return result


def _no_rows() -> str:
    """The shape of :func:`outputs.rows_sql` with no rows (a scan where no rule can run)."""
    return ("SELECT CAST(NULL AS STRING) AS candidate_id, CAST(NULL AS STRING) AS rule_id, FALSE AS is_trigger, "
            "CAST(NULL AS STRING) AS variant, CAST(NULL AS STRING) AS person_id, CAST(NULL AS STRING) AS encounter_id, "
            "CAST(NULL AS TIMESTAMP) AS index_time, CAST(NULL AS STRING) AS unit, CAST(NULL AS STRING) AS listing_unit, "
            "CAST(NULL AS STRING) AS setting, "
            "CAST(NULL AS STRING) AS index_system, CAST(NULL AS STRING) AS index_code, CAST(NULL AS BIGINT) AS age, "
            "CAST(NULL AS STRING) AS sex, FALSE AS eligible, FALSE AS sensitive, FALSE AS specific, "
            "CAST(NULL AS STRING) AS first_failed, CAST(NULL AS DOUBLE) AS cost, 0 AS steps, "
            f"{sql.SPARK['no_evidence']()} AS evidence")
