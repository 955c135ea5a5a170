"""Run a rule set over an extract: flags, candidates, denominators, waterfall, triggers, manifest.

This is the one place that turns per-rule candidate tables into the scan's
outputs, so the CLI, the Python API and the tests all see the same thing (the
SQL of each output is :mod:`lowvalue.engine.outputs`; on Spark the same SQL runs
in :mod:`lowvalue.engine.spark_scan`).
The large tables (candidates, flags, triggers, features) are built and sorted
in the engine and written with its own Parquet writer: nothing the size of the
extract passes through pandas. Output rows are sorted on content, never on
arrival order, so the same input and rules give byte-identical Parquet files.
"""

from __future__ import annotations

import json
import math
import os
import platform
import queue
import time
from concurrent.futures import ThreadPoolExecutor, as_completed, wait
from pathlib import Path
from typing import Any, Callable

import duckdb
import pandas as pd

from lowvalue import __version__
from lowvalue.engine import outputs, sql
from lowvalue.engine.coverage import Coverage
from lowvalue.engine.evaluability import check as check_evaluable
from lowvalue.engine.outputs import CANDIDATE_COLUMNS, FLAG_COLUMNS, TIERS, TRIGGER_COLUMNS, TYPES  # noqa: F401
from lowvalue.errors import LowvalueError
from lowvalue.rules.library import RuleSet, load_library, rule_digest
from lowvalue.rules.model import Rule

STORED = {"candidates": ("lv_candidates", CANDIDATE_COLUMNS), "flags": ("lv_flags", FLAG_COLUMNS),
          "triggers": ("lv_triggers", TRIGGER_COLUMNS)}
"""Output tables held in the engine: table, columns (file order: :data:`lowvalue.engine.outputs.ORDER`)."""


class ScanResult:
    """The tables a scan produces, plus its manifest.

    The small tables (evaluability, denominators, waterfall, code-set coverage, orphan codes) are pandas
    DataFrames. The large ones (candidates, flags, triggers, features) stay in the engine (``con``) until they are
    written (:meth:`write`); reading the attribute fetches them as a DataFrame, for tests and small extracts.
    """

    TABLES = ("flags", "candidates", "denominators", "waterfall", "triggers", "evaluability", "features",
              "codeset_coverage", "orphan_codes")
    LARGE = ("flags", "candidates", "triggers", "features")
    """Kept in the engine (``selects``); a scan without features has no ``features`` select and reads as empty."""

    def __init__(self, *, evaluability: pd.DataFrame, denominators: pd.DataFrame, waterfall: pd.DataFrame,
                 codeset_coverage: pd.DataFrame, orphan_codes: pd.DataFrame, con: Any, selects: dict[str, str],
                 manifest: dict[str, Any] | None = None, rules: RuleSet | None = None, owner: Any = None,
                 tables: dict[str, str] | None = None) -> None:
        self.evaluability, self.denominators, self.waterfall = evaluability, denominators, waterfall
        self.codeset_coverage, self.orphan_codes = codeset_coverage, orphan_codes
        self.con, self.selects = con, selects  # table name -> SELECT (in file order) on con
        # table name -> a relation with the same rows in any order: counts need no sort (millions of rows at scale)
        self.tables = tables or {n: f"({s})" for n, s in selects.items()}
        self.manifest, self.rules = manifest or {}, rules
        self._owner = owner  # the Extract that owns con: kept open as long as this result
        self._frames: dict[str, pd.DataFrame] = {}

    def _large(self, name: str) -> pd.DataFrame:
        if name not in self._frames:
            self._frames[name] = self.con.execute(self.selects[name]).df() if name in self.selects else pd.DataFrame()
        return self._frames[name]

    flags = property(lambda self: self._large("flags"))
    candidates = property(lambda self: self._large("candidates"))
    triggers = property(lambda self: self._large("triggers"))
    features = property(lambda self: self._large("features"))

    def rows(self, name: str) -> int:
        """Rows of table ``name`` (without fetching it)."""
        if name in self.selects:
            return int(self.con.execute(f"SELECT count(*) FROM {self.tables[name]}").fetchall()[0][0])
        return len(getattr(self, name))

    def write(self, out: Path | str) -> Path:
        """Write the results folder ``out`` whole (:func:`lowvalue.results.writing`): it replaces an earlier one."""
        from lowvalue.results import writing

        with writing(out) as tmp:
            self.write_into(tmp)
        return Path(out)

    def write_into(self, folder: Path) -> Path:
        """Every table as Parquet, the rule library and code overlay the scan used, and last the manifest that says it is complete."""
        from lowvalue.results import MANIFEST, write_table, write_text

        if hasattr(self._owner, "check_unchanged"):  # an extract read in place: one file changed, one line, exit 2
            self._owner.check_unchanged()
        folder.mkdir(parents=True, exist_ok=True)
        for name in self.TABLES:
            if name in self.selects:
                self._copy(name, folder / f"{name}.parquet")
            else:
                write_table(getattr(self, name), folder / f"{name}.parquet")
        if self.rules is not None:  # the rule set the scan used, read by every later command
            from lowvalue.rules.library import snapshot as keep_library
            from lowvalue.rules.overlay import snapshot

            keep_library(self.rules, folder)
            if self.rules.overlay is not None:
                snapshot(self.rules.overlay, folder)
        manifest = {**self.manifest, "tables": list(self.TABLES), "complete": True}
        write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n", folder / MANIFEST)
        return folder

    def _copy(self, name: str, path: Path) -> None:
        """Write the large table ``name`` with the engine's own Parquet writer."""
        from lowvalue.results import copy_table

        copy_table(self.con, self.selects[name], path)

    def pseudonymised(self, key: bytes) -> "ScanResult":
        """A copy whose person, encounter, flag and candidate ids are keyed hashes (see :mod:`lowvalue.privacy`).

        The large tables are rewritten in the engine through a table of each distinct id and its pseudonym.
        """
        from lowvalue.privacy import ID_COLUMNS, pseudonym, pseudonymise

        small = {name: pseudonymise(getattr(self, name), key) for name in self.TABLES if name not in self.LARGE}
        cols = {n: [c[0] for c in self.con.execute(f"SELECT * FROM ({s}) LIMIT 0").description if c[0] in ID_COLUMNS]
                for n, s in self.selects.items()}
        ids = " UNION ".join(f"SELECT DISTINCT {c} AS id FROM {self.tables[n]}" for n in cols for c in cols[n])
        distinct = [r[0] for r in self.con.execute(f"SELECT id FROM ({ids}) WHERE id IS NOT NULL").fetchall()] if ids else []
        import pyarrow as pa

        mapping = pa.table({"id": distinct, "ps": [pseudonym(key, str(v)) for v in distinct]})
        self.con.register("_lv_ps_in", mapping)
        self.con.execute("CREATE OR REPLACE TEMP TABLE lv_ps AS SELECT * FROM _lv_ps_in")
        self.con.unregister("_lv_ps_in")
        selects = {}
        for n, s in self.selects.items():
            replace = ", ".join(f"(SELECT ps FROM lv_ps WHERE lv_ps.id = t.{c}) AS {c}" for c in cols[n])
            # sorted again on every column: the lookups are joins, which need not keep the order of their input
            selects[n] = f"SELECT * REPLACE ({replace}) FROM {self.tables[n]} t ORDER BY ALL" if replace else s
        manifest = {**self.manifest, "pseudonymised": "HMAC-SHA256 of ids with a secret key (lowvalue.privacy)"}
        return ScanResult(**small, con=self.con, selects=selects, manifest=manifest, rules=self.rules,
                          tables=self.tables, owner=self._owner)

    def summary(self) -> pd.DataFrame:
        """One row per rule: evaluability, candidates, eligible, flags by tier; triggers: events found."""
        counts = {r[0]: r[1:] for r in self.con.execute(f"""
            SELECT rule_id, count(*), count(*) FILTER (WHERE eligible), NULL, NULL FROM {self.tables['candidates']}
            GROUP BY rule_id""").fetchall()}
        for rid, low, likely in self.con.execute(f"""
                SELECT rule_id, count(*) FILTER (WHERE variant = 'specific'), count(*) FILTER (WHERE variant = 'sensitive')
                FROM {self.tables['flags']} GROUP BY rule_id""").fetchall():
            counts[rid] = counts[rid][:2] + (low, likely)
        trig = dict(self.con.execute(f"SELECT trigger_id, count(*) FROM {self.tables['triggers']} GROUP BY ALL").fetchall())
        rows = []
        for rid, ev in self.evaluability.set_index("rule_id").iterrows():
            if ev["type"] == "trigger":
                rows.append({"rule_id": rid, "status": ev["status"], "candidates": None, "eligible": None,
                             "low_value": None, "likely_low_value": None, "trigger_events": int(trig.get(rid, 0))})
                continue
            n, eligible, low, likely = counts.get(rid, (0, 0, 0, 0))
            rows.append({"rule_id": rid, "status": ev["status"], "candidates": n, "eligible": eligible,
                         "low_value": low or 0, "likely_low_value": likely or 0, "trigger_events": None})
        return pd.DataFrame(rows).astype({k: "Int64" for k in ("candidates", "eligible", "low_value",
                                                                "likely_low_value", "trigger_events")})


KEPT = "lv_rows_"
"""Prefix of the judged-rows tables a scan keeps, one per person partition (``lv_rows_<part>``, see :func:`_collect`)."""


def _kept(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The kept judged-rows tables, qualified: they stay in the database where the scan's working table ``lv_rows``
    was (TEMP, or another attached working database)."""
    found = con.execute(f"""SELECT database_name, schema_name, table_name FROM duckdb_tables()
        WHERE regexp_full_match(table_name, '{KEPT}[0-9]+') ORDER BY length(table_name), table_name""").fetchall()
    return [".".join(sql.ident(n) for n in names) for names in found]


def start_outputs(con: duckdb.DuckDBPyConnection) -> None:
    """Create the empty engine tables the judged rules are appended to (:data:`STORED`); ``lv_candidates`` is a
    view over the kept judged rows (:func:`_collect`), empty until the first partition is collected."""
    for table in _kept(con):
        con.execute(f"DROP TABLE {table}")
    for name, (table, cols) in STORED.items():
        types = {c: TYPES.get(c, "VARCHAR") for c in cols}
        if name == "candidates":
            empty = ", ".join(f"CAST(NULL AS {t}) AS {c}" for c, t in types.items())
            con.execute(f"CREATE OR REPLACE TEMP VIEW {table} AS SELECT {empty} WHERE FALSE")
        else:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {table} ({', '.join(f'{c} {t}' for c, t in types.items())})")


def _collect(con: duckdb.DuckDBPyConnection, rules: list[Rule], rows: str, part: int = 0) -> dict[str, list[int]]:
    """Append the judged rows of ``rules`` (the table ``rows`` in :func:`lowvalue.engine.outputs.rows_sql`'s
    shape) to the output tables; return each rule's waterfall counts (none for triggers).

    A partition's rules are collected together: three statements over all of them instead of four per rule. The
    candidates are not copied: ``rows`` is kept as ``lv_rows_<part>`` (renamed, without the columns only flags and
    the waterfall read) and ``lv_candidates`` is a view over the kept tables. Copying millions of candidate rows
    into a second table was most of the collection's time."""
    con.execute(f"INSERT INTO lv_flags {outputs.flags_sql(rows)}")
    con.execute(f"INSERT INTO lv_triggers {outputs.triggers_sql(rows)}")
    by: dict[str, list[tuple[int, int, int]]] = {}
    for rid, *count in con.execute(f"SELECT rule_id, steps, n, flagged FROM ({outputs.step_counts_sql(rows)})").fetchall():
        by.setdefault(rid, []).append(tuple(count))  # type: ignore[arg-type]
    con.execute(f"ALTER TABLE {rows} RENAME TO {KEPT}{int(part)}")
    for col in ("evidence", "variant", "cost", "steps"):  # dropping a column does not rewrite the table
        con.execute(f"ALTER TABLE {KEPT}{int(part)} DROP COLUMN {col}")
    kept = _kept(con)
    con.execute(f"CREATE OR REPLACE TEMP VIEW {STORED['candidates'][0]} AS "
                + " UNION ALL ".join(outputs.candidates_sql(t) for t in kept))
    return {r.id: outputs.step_counts(r, by.get(r.id, [])) for r in rules if r.type != "trigger"}


def _one_candidates_table(con: duckdb.DuckDBPyConnection) -> None:
    """Turn ``lv_candidates`` from a view over the kept rows of each partition into one table (and drop those).

    For a scan split into many partitions (:data:`lowvalue.engine.sql.SPLIT_FROM`): at 10 000 000 persons, sorting
    the 60 M candidates for their file through the view over 19 partitions' tables ran out of a 5 GB (and a 7 GB)
    memory limit, while the same sort of one table of 60 M such rows completes within 5 GB. A smaller scan keeps
    the view: copying its candidates would cost more than it saves."""
    table = STORED["candidates"][0]
    con.execute(f"CREATE OR REPLACE TEMP TABLE lv_candidates_one AS SELECT * FROM {table}")
    con.execute(f"DROP VIEW {table}")
    for kept in _kept(con):
        con.execute(f"DROP TABLE {kept}")
    con.execute(f"ALTER TABLE lv_candidates_one RENAME TO {table}")


def judge_sql(rule: Rule, rs: RuleSet) -> str:
    """The judged rows of ``rule`` in the shape every rule shares, as a scan needs them (see
    :func:`lowvalue.engine.sql.compile_rule`: conditions beyond eligibility for the eligible candidates only, and a
    trigger's flagged candidates only; neither changes an output)."""
    judged = sql.compile_rule(rule, rs, ordered=False, every_condition=False, flagged_only=rule.type == "trigger")
    return outputs.rows_sql(rule, f"({judged})")


HIT_BYTES = 200
"""Memory per ``lv_hit`` row, with what the rules build from it (measured on the synthetic region); sizes the
person partitions of a scan so that the working set stays within a share of DuckDB's memory limit. Re-measured at
1 000 000 persons in 5 partitions: ``lv_hit`` alone holds 1.16 GB for 6.2 M rows (190 bytes a row), and building it
needs as much again for the sort, so :data:`HIT_SHARE` stays at half the limit (4 partitions at 3 GB would need
about 2.9 GB while one is built)."""
HIT_SHARE = 0.5


def person_partitions(con: duckdb.DuckDBPyConnection) -> int:
    """How many person partitions keep ``lv_hit`` within :data:`HIT_SHARE` of the connection's memory limit."""
    from lowvalue.data.extract import memory_limit_bytes

    limit = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]  # e.g. '11.1 GiB'
    budget = max(memory_limit_bytes(limit) * HIT_SHARE, 64 * 2**20)
    return max(1, math.ceil(sql.hit_rows(con) * HIT_BYTES / budget))



def _denominators(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.execute(outputs.denominators_sql("lv_candidates")).df()


def _period(con: Any) -> dict[str, str | None]:
    """First and last time in the validated extract: where follow-up ends, for the risk layer (never re-read later)."""
    lo, hi = con.execute("""SELECT min(t), max(t) FROM (SELECT time AS t FROM events UNION ALL
                            SELECT start_time FROM encounters UNION ALL SELECT end_time FROM encounters) p""").fetchone()
    return {"start": lo.isoformat() if lo else None, "end": hi.isoformat() if hi else None}


def _versions(engine: str = "duckdb") -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "lowvalue": __version__}
    for pkg in ("duckdb", "pandas", "pyarrow", "pydantic") + (("pyspark",) if engine == "spark" else ()):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:  # pragma: no cover
            pass
    return out


THREADS_ENV = "LOWVALUE_SCAN_THREADS"
"""How many rule statements a DuckDB scan runs at once (default 2). Each statement spends about 20 ms binding and
optimising on one thread and many are small, so one at a time leaves a core idle; DuckDB's own threads (the
``threads`` setting) are shared by the statements, so more than the cores gain nothing."""


def scan_threads() -> int:
    """``$LOWVALUE_SCAN_THREADS``, checked: a whole number of at least 1."""
    raw = os.environ.get(THREADS_ENV, "2")
    if not raw.strip().isdigit() or int(raw) < 1:
        raise LowvalueError(f"{THREADS_ENV}={raw!r}: give a whole number of 1 or more / ange ett heltal, minst 1")
    return int(raw)


def _judge_duckdb(extract: Any, rules: list[Rule], rs: RuleSet, done: Callable[[Rule, float], None], parts: int,
                  each_part: Callable[[int], None], collected: Callable[[int], None], threads: int = 1) -> None:
    """For each person partition: ``each_part(part)`` (builds ``lv_hit`` for its persons, after the previous
    partition's features), then append each rule's judged rows to ``lv_rows`` (:func:`judge_sql`, one statement
    per rule) and call ``done(rule, seconds)``, then ``collected(part)``, which turns ``lv_rows`` into the outputs;
    ``each_part(parts)`` at the end (the last partition's features).

    The rule statements run ``threads`` at a time (:func:`scan_threads`), each on its own cursor
    (:func:`lowvalue.engine.sql.worker`: ``lv_hit`` and ``lv_rows`` are in the working database every cursor sees).
    The order in which rules append their rows changes no output (outputs are sorted on content). ``done`` is called
    on this thread with the statement's own seconds; the first error stops the scan (no further statements start,
    running ones are interrupted) and is raised as DuckDB raised it. From the second partition on, the rules start
    longest first (by their seconds on the previous one), so a long statement does not end a partition alone."""
    con = extract.con
    cursors = [sql.worker(con) for _ in range(min(threads, max(len(rules), 1)))]
    free: queue.SimpleQueue[duckdb.DuckDBPyConnection] = queue.SimpleQueue()
    for cursor in cursors:
        free.put(cursor)

    def judge(rule: Rule) -> float:
        cursor = free.get()
        try:
            t0 = time.perf_counter()
            cursor.execute(f"INSERT INTO lv_rows {judge_sql(rule, rs)}")
            return time.perf_counter() - t0
        finally:
            free.put(cursor)

    took: dict[str, float] = {}  # rule id -> seconds on the previous partition
    try:
        with ThreadPoolExecutor(len(cursors), thread_name_prefix="lowvalue-rules") as pool:
            for part in range(parts):
                each_part(part)
                if not rules:
                    continue
                con.execute(f"CREATE OR REPLACE TABLE {sql.WORK}.lv_rows AS {judge_sql(rules[0], rs)} LIMIT 0")
                running = {pool.submit(judge, rule): rule for rule in sorted(rules, key=lambda r: -took.get(r.id, 0.0))}
                try:
                    for future in as_completed(running):
                        took[running[future].id] = future.result()
                        done(running[future], took[running[future].id])
                except BaseException:
                    for future in running:
                        future.cancel()
                    for cursor in cursors:
                        cursor.interrupt()
                    wait(running)
                    raise
                collected(part)
            each_part(parts)
    finally:
        for cursor in cursors:
            cursor.close()


ENGINES = ("duckdb", "spark")
"""Where a scan runs: DuckDB here (rules judged per person partition), or Spark (:mod:`lowvalue.engine.spark_scan`).
The outputs are the same."""


def evaluability(cov: Coverage, rs: RuleSet, settings: set[str]) -> tuple[list[Rule], list[dict[str, Any]], list[Rule]]:
    """The rules in output order (triggers first), their evaluability rows, and the rules that can run."""
    ordered = sorted(rs.rules.values(), key=lambda r: (r.type != "trigger", r.id))
    evaluable = [{"rule_id": r.id, "type": r.type, **check_evaluable(cov, r, settings)} for r in ordered]
    return ordered, evaluable, [r for r, v in zip(ordered, evaluable) if v["status"] != "not_evaluable"]


def manifest(result: ScanResult, extract: Any, rs: RuleSet, engine: str, period: dict[str, str | None],
             timing: dict[str, float], started: float, parts: int) -> dict[str, Any]:
    """What a scan records about itself (``manifest.json``, without the keys :meth:`ScanResult.write_into` adds)."""
    return {
        "lowvalue_version": __version__,
        "engine": engine,
        "rule_set": {"digest": rs.digest, "rules": {r.id: str(r.version) for r in rs.rules.values()},
                     "rule_digests": {r.id: rule_digest(rs, r) for r in rs.rules.values()},
                     "codes_overlay": rs.overlay.manifest() if rs.overlay is not None else None},
        "data": {"fingerprint": extract.fingerprint, "sources": extract.sources, "period": period,
                 "counts": {k: vars(v) for k, v in extract.counts.items()},
                 "warnings": list(getattr(extract, "warnings", []))},
        "versions": _versions(engine),
        "timing_seconds": {"total": round(time.perf_counter() - started, 3), "per_rule": timing},
        "person_partitions": parts,
        "rows": {name: result.rows(name) for name in ScanResult.TABLES},
    }


def scan(
    data: Any,
    rules: RuleSet | Path | str | None = None,
    *,
    codes: Path | str | None = None,
    only: list[str] | None = None,
    quarantine_dir: Path | None = None,
    extract_end: Any = None,
    progress: Any = None,
    features: bool = True,
    engine: str = "duckdb",
    memory_limit: str | None = None,
    partitions: int | None = None,
) -> ScanResult:
    """Scan an extract (folder, mapping of DataFrames, or an opened :class:`~lowvalue.data.extract.Extract`).

    ``rules`` is a loaded :class:`RuleSet`, a library folder, or None for the
    shipped library; ``codes`` a region's code overlay folder (:mod:`lowvalue.rules.overlay`),
    applied to it; ``only`` picks rule ids. ``progress`` is an optional
    callable ``progress(rule_id, seconds)`` called after each rule. With
    ``features`` the pre-index features of every candidate are computed too
    (:mod:`lowvalue.risk.features`) for the eligible ones, which the risk layer compares.
    ``engine`` (one of :data:`ENGINES`) is where the scan runs; the outputs are the same.
    ``extract_end`` (a date) is the last day the extract covers: later dates are quarantined as implausible.
    ``memory_limit`` (e.g. ``4GB``) bounds the engine's memory when it opens the extract; the rules then run on
    person partitions (ranges of person ids, one after another) sized to it, or on ``partitions`` of them when given.
    Outputs do not depend on the partitioning: every rule looks at one person at a time, and outputs are sorted.
    """
    from lowvalue.data.extract import Extract, open_extract
    from lowvalue.risk import features as feats

    if engine not in ENGINES:
        raise LowvalueError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    from lowvalue.rules.overlay import apply_overlay, load_overlay

    rs = rules if isinstance(rules, RuleSet) else load_library(rules)
    rs = (apply_overlay(rs, load_overlay(codes)) if codes else rs).select(only)
    if engine == "spark":  # read and checked by Spark too (engine/spark_scan.py)
        from lowvalue.engine import spark_scan

        return spark_scan.scan_data(data, rs, quarantine_dir=quarantine_dir, extract_end=extract_end,
                                    memory_limit=memory_limit, features=features, progress=progress)
    threads = scan_threads()
    extract = (data if isinstance(data, Extract)
               else open_extract(data, quarantine_dir=quarantine_dir, extract_end=extract_end, memory_limit=memory_limit))
    started = time.perf_counter()
    con = extract.con
    timing: dict[str, float] = {}
    sql.prepare(con)
    sql.ensure_sets(con, sql.code_sets(rs) + (feats.code_sets(rs) if features else []))
    parts = partitions or person_partitions(con)
    ranges = sql.PersonRanges.of(con, parts)
    timing["(codes)"] = round(time.perf_counter() - started, 3)
    cov = Coverage.of(con, rs)
    settings = {r[0] for r in con.execute("SELECT DISTINCT setting FROM encounters").fetchall()}
    ordered, evaluable, runnable = evaluability(cov, rs, settings)
    start_outputs(con)
    counts: dict[str, list[int]] = {}
    seen: dict[str, int] = {}
    selects = {name: outputs.ordered(table, name) for name, (table, _) in STORED.items()}

    def done(rule: Rule, seconds: float) -> None:
        timing[rule.id] = round(timing.get(rule.id, 0.0) + seconds, 3)
        seen[rule.id] = seen.get(rule.id, 0) + 1
        if progress and seen[rule.id] == parts:
            progress(rule.id, timing[rule.id])

    def collected(part: int) -> None:
        t0 = time.perf_counter()
        for rid, n in _collect(con, runnable, "lv_rows", part).items():
            counts[rid] = [a + b for a, b in zip(counts[rid], n)] if rid in counts else n
        tick("(outputs)", t0)

    def tick(name: str, t0: float) -> None:
        timing[name] = round(timing.get(name, 0.0) + time.perf_counter() - t0, 3)

    def each_part(part: int) -> None:
        if features and part > 0:  # the previous partition's features, on its lv_hit
            t0 = time.perf_counter()
            # the partition's own kept rows (_collect), not all candidates so far filtered by person
            own = f"({outputs.candidates_sql(f'{KEPT}{part - 1}')})" if runnable else "lv_candidates"
            eligible = f"(SELECT * FROM {own} c WHERE eligible)"
            selects["features"] = feats.compute(con, eligible, "lv_triggers", rs, append=part > 1)
            tick("(features)", t0)
        if part < parts:
            t0 = time.perf_counter()
            sql.build_hits(con, part, ranges, folder if parts > 1 else None)
            tick("(hits)", t0)

    from lowvalue.workdir import private_workdir

    with private_workdir("partitions") as folder:  # the split extract is patient data: private, removed after
        if parts > 1:
            t0 = time.perf_counter()
            sql.split_persons(con, ranges, folder)
            tick("(partitions)", t0)
        _judge_duckdb(extract, runnable, rs, done, parts, each_part, collected, threads)
    sql.drop_hits(con)
    con.execute("DROP TABLE IF EXISTS lv_rows")
    if parts >= sql.SPLIT_FROM:
        _one_candidates_table(con)
    result = ScanResult(
        evaluability=pd.DataFrame(evaluable),
        denominators=_denominators(con),
        waterfall=outputs.waterfall(runnable, counts),
        codeset_coverage=cov.table(ordered),
        orphan_codes=cov.orphans(ordered),
        con=con, selects=selects, rules=rs, owner=extract,
        tables={**{name: table for name, (table, _) in STORED.items()}, "features": "lv_features"},
    )
    result.manifest = manifest(result, extract, rs, engine, _period(con), timing, started, parts)
    return result
