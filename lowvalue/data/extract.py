"""Open an extract: read, check, and hold the accepted rows in DuckDB.

>>> extract = open_extract("region/", quarantine_dir=Path("region/quarantine"))   # doctest: +SKIP
>>> extract.con.sql("SELECT count(*) FROM events")                                 # doctest: +SKIP

The connection holds three tables, ``persons``, ``encounters`` and ``events``,
with exactly the canonical column names, order and types of
:mod:`lowvalue.data.schema` and only the accepted rows, in source order, and for each the relation
:func:`~lowvalue.data.validation.rowid_relation` (``lv_rowid_<table>``) with the same rows and their row id
``_lv_rowid`` (0, 1, 2 … over the accepted rows): the one way to ask for row ids. A table read from typed Parquet
without a quarantined row is a view over its files (nothing written, :func:`~lowvalue.data.validation.stays_in_place`);
otherwise a table (``LOWVALUE_IN_PLACE=0`` writes every table: :data:`IN_PLACE_ENV`). Because a view reads its files
again, each file's size, modification time and inode are noted when the extract is opened and
:meth:`Extract.check_unchanged` (called before a scan's results are written) refuses to go on when one changed. Rows that
fail a check go to ``quarantine_dir/<table>.parquet`` (or, without a quarantine
folder, to the DuckDB table ``quarantine_<table>``); see
:mod:`lowvalue.data.validation` for the reason codes and :mod:`lowvalue.data.readers`
for file formats and row numbering.

Counts reconcile exactly: for every table ``read == accepted + quarantined``.
Nothing that identifies a person is logged or summarised (counts only).

Plausible dates: 1900-01-01 to today, or to ``extract_end`` when given (see
``implausible_date:<col>`` in :mod:`lowvalue.data.validation`). A converted
extract whose ``conversion.json`` says ``"dates_shifted": true`` (MIMIC-IV moves
every date into the 22nd century) has no upper bound unless ``extract_end`` is
given. ``Extract.warnings`` lists what is suspicious but not a row's fault (times
with and without a UTC offset in one table); the summary prints them.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import os
import re
import shutil
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from lowvalue.data import readers, validation
from lowvalue.data.readers import RawTable, quote_ident
from lowvalue.data.schema import TABLES
from lowvalue.errors import InputError, LowvalueError

log = logging.getLogger(__name__)

DEFAULT_MEMORY_FRACTION = 0.5
"""Without ``memory_limit``, DuckDB may hold this fraction of the machine's RAM (or of the cgroup's limit); it spills
what does not fit to a private temporary folder."""

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb|kib|mib|gib|tib|%)\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_MIN_MEMORY = 64 * 2**20


def total_memory() -> int:
    """Bytes of RAM this process may use: the machine's, or its cgroup's limit when lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < total:
            total = int(text)
    return total


def memory_limit_bytes(value: str | None) -> int:
    """``4GB``, ``512MiB``, ``2.5GB`` or ``25%`` (of RAM) as bytes; None is the default (50 % of RAM).

    Raises :class:`LowvalueError` (one line) for anything else or for less than 64 MiB.
    """
    if value is None:
        return int(total_memory() * DEFAULT_MEMORY_FRACTION)
    m = _SIZE.match(str(value))
    if not m:
        raise LowvalueError(f"memory limit {value!r} is not a size: give e.g. 4GB, 512MB or 25% (of RAM)")
    number, unit = float(m.group(1)), m.group(2).lower()
    if unit == "%" and not 0 < number <= 100:
        raise LowvalueError(f"memory limit {value!r}: a share of RAM is above 0% and at most 100%")
    size = int(total_memory() * number / 100) if unit == "%" else int(number * _UNITS[unit])
    if size < _MIN_MEMORY:
        raise LowvalueError(f"memory limit {value!r} is too small: give at least 64MB")
    return size


def _duckdb_size(size: int) -> str:
    return f"{max(size // 2**10, 1)}KiB"


ON_DISK_SHARE = 0.25
"""An extract whose tables would take more than this share of the memory limit is held in a database file (in the
private folder) rather than in memory: DuckDB then drops its pages from memory at no cost and reads them again when
needed, where in-memory tables would have to be written out to the spill folder first (and the rules, which need the
memory, would spill instead)."""
BYTES_IN_ENGINE = {"parquet": 7.0, "csv": 1.0}
"""DuckDB's size of a table per byte of its source file (measured on the synthetic region: Parquet is compressed)."""


def _connect(memory_limit: str | None, source_bytes: float = 0.0) -> tuple[duckdb.DuckDBPyConnection, Path]:
    """A new connection bounded by ``memory_limit`` that spills to a new private folder (removed later); its
    tables are in memory, or in a database file in that folder when the extract is large (:data:`ON_DISK_SHARE`)."""
    from lowvalue.workdir import private_dir

    size = memory_limit_bytes(memory_limit)
    spill = private_dir("duckdb")  # spilled pages are patient data: private, and removed by the next command if killed
    database = str(spill / "extract.duckdb") if source_bytes > ON_DISK_SHARE * size else ":memory:"
    try:
        return duckdb.connect(database, config={"memory_limit": _duckdb_size(size), "temp_directory": str(spill)}), spill
    except BaseException:
        shutil.rmtree(spill, ignore_errors=True)
        raise


TABLE_ORDER = ("persons", "encounters", "events")  # parents first: children are checked against them
FRAME_SOURCE = "<DataFrame>"
IN_PLACE_ENV = "LOWVALUE_IN_PLACE"
"""``LOWVALUE_IN_PLACE=0``: write every accepted table into DuckDB, also those that could stay views over their
Parquet files (the way to compare the two, e.g. ``tests/data/test_extract_in_place.py``); the outputs are the same."""


def _stamp(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns, st.st_ino


@dataclass
class TableCount:
    """How many rows of one table were read, accepted and quarantined, and why."""

    table: str
    source: str
    read: int
    accepted: int
    quarantined: int
    reasons: dict[str, int] = field(default_factory=dict)  # reason code -> rows with it (a row may have several)


class Extract:
    """A checked extract: accepted rows in ``con`` (tables persons, encounters, events) plus counts."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        counts: dict[str, TableCount],
        fingerprint: str,
        sources: dict[str, str],
        *,
        raw: dict[str, RawTable] | None = None,
        quarantine_dir: Path | None = None,
        quarantine_files: dict[str, Path] | None = None,
        seconds: float = 0.0,
        owns_connection: bool = False,
        warnings: list[str] | None = None,
        spill_dir: Path | None = None,
        stamps: dict[Path, tuple[int, int, int]] | None = None,
    ):
        self.con = con
        self.counts = counts
        self.fingerprint = fingerprint
        self.sources = sources
        self.quarantine_dir = quarantine_dir
        self.quarantine_files = quarantine_files or {}
        self.ignored_columns = {t: r.ignored for t, r in (raw or {}).items()}
        self.absent_columns = {t: r.absent for t, r in (raw or {}).items()}
        self.formats = {
            t: (f"csv {r.encoding}, delimiter {r.delimiter!r}" if r.fmt == "csv" else r.fmt) for t, r in (raw or {}).items()
        }
        self.seconds = seconds
        self.warnings: list[str] = list(warnings or [])
        self._stamps = dict(stamps or {})  # source file -> (size, mtime, inode) when the extract was opened
        self._owns_connection = owns_connection
        self.spill_dir = spill_dir  # DuckDB's private temporary folder (an owned connection's), removed on close/exit
        self._remove_spill = (weakref.finalize(self, shutil.rmtree, str(spill_dir), True)
                              if spill_dir is not None else None)

    @property
    def quarantined_rows(self) -> int:
        return sum(c.quarantined for c in self.counts.values())

    @property
    def read_rows(self) -> int:
        return sum(c.read for c in self.counts.values())

    def to_pandas(self, table: str) -> pd.DataFrame:
        """A table (``persons``, ``encounters``, ``events`` or ``quarantine_<table>``) as a DataFrame. Small data only."""
        allowed = set(TABLES) | {f"quarantine_{t}" for t in TABLES}
        if table not in allowed:
            raise ValueError(f"unknown table {table!r}; expected one of {sorted(allowed)}")
        if table.startswith("quarantine_") and self.quarantine_dir is not None:
            path = self.quarantine_files.get(table.removeprefix("quarantine_"))
            if path is None:
                return pd.DataFrame(columns=["source_row", "reason_code", "reason"])
            return self.con.execute(f"SELECT * FROM read_parquet({readers.quote_literal(str(path))})").df()
        return self.con.execute(f"SELECT * FROM {quote_ident(table)}").df()

    def summary(self, lang: str = "en") -> str:
        """A plain-text table of counts per table and the top reasons (no person identifiers), in ``lang`` (the
        catalogue's ``cli`` texts; reason codes, table and column names stay as they are)."""
        from lowvalue.messages import messages

        w = messages("cli", lang)
        head = (w["x_table"], w["x_read"], w["x_accepted"], w["x_quarantined"], w["x_source"])
        rows = [
            (c.table, f"{c.read:,}", f"{c.accepted:,}", f"{c.quarantined:,}", f"{c.source} ({self.formats.get(t, '')})".replace(" ()", ""))
            for t, c in self.counts.items()
        ]
        total = (w["x_total"], f"{self.read_rows:,}", f"{sum(c.accepted for c in self.counts.values()):,}",
                 f"{self.quarantined_rows:,}", "")
        widths = [max(len(r[i]) for r in [head, *rows, total]) for i in range(len(head))]

        def fmt(r):
            cells = [r[0].ljust(widths[0])] + [r[i].rjust(widths[i]) for i in (1, 2, 3)] + [r[4]]
            return "  ".join(cells).rstrip()

        lines = [w["x_head"].format(fingerprint=self.fingerprint[:16], seconds=f"{self.seconds:.1f}"),
                 fmt(head), fmt(tuple("-" * n for n in widths[:4]) + ("-" * 6,))]
        lines += [fmt(r) for r in rows] + [fmt(total)]
        for t, c in self.counts.items():
            if c.reasons:
                top = sorted(c.reasons.items(), key=lambda kv: (-kv[1], kv[0]))
                shown = ", ".join(f"{code} {n:,}" for code, n in top[:5])
                more = w["x_more"].format(n=len(top) - 5) if len(top) > 5 else ""
                lines.append(w["x_reasons"].format(table=t, reasons=shown + more))
        for t in self.counts:
            if self.ignored_columns.get(t):
                lines.append(w["x_ignored"].format(table=t, columns=", ".join(self.ignored_columns[t])))
            if self.absent_columns.get(t):
                lines.append(w["x_absent"].format(table=t, columns=", ".join(self.absent_columns[t])))
        lines += [w["x_warning"].format(warning=x) for x in self.warnings]
        if self.quarantined_rows:
            where = str(self.quarantine_dir) if self.quarantine_dir is not None else "DuckDB tables quarantine_<table>"
            lines.append(w["x_quarantined_rows"].format(where=where))
        return "\n".join(lines)

    def check_unchanged(self) -> None:
        """Raise :class:`InputError` (one line, exit 2) if a source file changed since the extract was opened.

        Tables kept as views read their files again whenever they are queried, so a file rewritten during a
        command would mix two extracts; called before results are written, after the last read of the extract.
        """
        for path, stamp in self._stamps.items():
            try:
                now = _stamp(path)
            except OSError:
                now = None
            if now != stamp:
                raise InputError(str(path), "the extract changed while it was scanned (another size or modification "
                                            "time than when it was opened); run the command again on a complete "
                                            "extract")

    def close(self) -> None:
        if self._owns_connection:
            self.con.close()
        if self._remove_spill is not None:
            self._remove_spill()

    def __enter__(self) -> Extract:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        counts = ", ".join(f"{c.table}={c.accepted}/{c.read}" for c in self.counts.values())
        return f"Extract({self.fingerprint[:12]}, {counts})"


def _fingerprint_frames(frames: dict[str, pa.Table]) -> str:
    h = hashlib.sha256()
    for name in sorted(frames):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, frames[name].schema) as writer:
            writer.write_table(frames[name])
        buf = sink.getvalue()
        h.update(f"{name}\0{buf.size}\0".encode())
        h.update(memoryview(buf))
    return h.hexdigest()


def _fingerprint_files(folder: Path, located: dict[str, list[Path]]) -> str:
    """The extract's fingerprint: SHA-256 of every file's name, size and bytes, tables in the order of their paths."""
    h = hashlib.sha256()
    for files in sorted(located.values(), key=lambda fs: str(fs[0].relative_to(folder))):
        readers.hash_files(files, folder, h)
    return h.hexdigest()


def _fingerprint_files_in_background(folder: Path, located: dict[str, list[Path]]) -> concurrent.futures.Future[str]:
    """:func:`_fingerprint_files` on a thread of its own (hashlib releases the GIL while it hashes), so the files'
    bytes are hashed while DuckDB reads and checks them rather than before; ``result()`` re-raises its errors."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="lowvalue-fingerprint")
    try:
        return pool.submit(_fingerprint_files, folder, located)
    finally:
        pool.shutdown(wait=False)


def _dates_shifted(folder: Path) -> bool:
    """Whether the adapter that wrote ``folder`` says its dates are shifted (``conversion.json``)."""
    path = folder / "conversion.json"
    if not path.is_file():
        return False
    try:
        return bool(json.loads(path.read_text(encoding="utf-8")).get("dates_shifted", False))
    except (OSError, ValueError, AttributeError):
        return False


def _engine_bytes(source: object) -> float:
    """About how many bytes the extract's tables take in DuckDB (from its files' sizes; 0 for frames)."""
    if isinstance(source, Mapping) or not Path(str(source)).is_dir():
        return 0.0
    total = 0.0
    for t in TABLE_ORDER:
        try:
            files = readers.locate(Path(str(source)), t)
        except InputError:  # reported when the extract is read
            continue
        total += sum(BYTES_IN_ENGINE["csv" if readers.is_csv(f) else "parquet"] * f.stat().st_size for f in files)
    return total


def open_extract(
    source: str | Path | Mapping[str, pd.DataFrame | pa.Table],
    *,
    quarantine_dir: Path | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
    extract_end: date | None = None,
    memory_limit: str | None = None,
    check_only: bool = False,
) -> Extract:
    """Read and check an extract folder (or a mapping table name -> DataFrame/Arrow table).

    ``extract_end`` (optional) is the last day the extract covers: later dates are quarantined as
    implausible (``implausible_date:<col>``; an encounter's end_time only after today).

    Raises :class:`InputError` when a table cannot be used at all; every other problem
    quarantines rows. With ``con`` given, the tables ``persons``, ``encounters``,
    ``events`` (and ``quarantine_*`` without a quarantine folder) are created or
    replaced in it; otherwise a new connection is opened: in memory, or, for an extract whose tables would take more
    than :data:`ON_DISK_SHARE` of the memory limit, on a database file in its private folder.

    ``memory_limit`` (``4GB``, ``512MB``, ``25%`` of RAM; default :data:`DEFAULT_MEMORY_FRACTION` of RAM) bounds
    what DuckDB holds in memory; beyond it DuckDB spills to a private temporary folder (``lowvalue.workdir``),
    removed when the extract is closed or the process ends. Parquet files are read in place and every table is
    written once, so memory does not grow with the extract beyond what the limit allows. On a given ``con`` the
    limit is set only when given (its temporary folder is the caller's).

    ``check_only`` (``lowvalue validate``): count and quarantine only; the accepted events, which no other table is
    checked against, are not written (the extract has ``persons`` and ``encounters`` but no ``events`` table, and
    events' accepted = read − quarantined). Quarantine, reasons, counts, warnings and fingerprint are the same.

    The source files are read by DuckDB (each table's pass over the source, :func:`validation.validate_table`;
    a table kept as a view over typed Parquet is read again by the commands that query it) and once for the
    fingerprint, which is hashed on a thread of its own while DuckDB works.
    """
    started = time.perf_counter()
    owns = con is None
    spill: Path | None = None
    if con is None:
        con, spill = _connect(memory_limit, _engine_bytes(source))
    elif memory_limit is not None:
        con.execute(f"SET memory_limit = '{_duckdb_size(memory_limit_bytes(memory_limit))}'")
    work: list[str] = []
    digest: concurrent.futures.Future[str] | None = None
    stamps: dict[Path, tuple[int, int, int]] = {}
    in_place = os.environ.get(IN_PLACE_ENV, "1") != "0"

    def drop(name: str) -> None:
        readers.drop_relation(con, name)

    try:
        raw: dict[str, RawTable] = {}
        sources: dict[str, str] = {}
        shifted = False
        if isinstance(source, Mapping):
            missing = [t for t in TABLE_ORDER if t not in source]
            if missing:
                raise InputError(FRAME_SOURCE, f"table '{missing[0]}' missing from the mapping (given: {', '.join(map(str, source)) or 'none'})")
            frames = {t: readers.frame_to_arrow(source[t], f"{FRAME_SOURCE} {t}") for t in TABLE_ORDER}
            fingerprint = _fingerprint_frames(frames)
            for t in TABLE_ORDER:
                work.append(f"_lv_raw_{t}")
                raw[t] = readers.read_frame(con, TABLES[t], frames[t], f"_lv_raw_{t}", f"{FRAME_SOURCE} {t}")
                sources[t] = FRAME_SOURCE
        else:
            folder = Path(source)
            if not folder.exists():
                raise InputError(str(folder), "extract folder not found")
            if not folder.is_dir():
                raise InputError(str(folder), "not a folder (an extract is a folder with persons, encounters and events)")
            located = {t: readers.locate(folder, t) for t in TABLE_ORDER}  # all missing-file errors before any work
            shifted = _dates_shifted(folder)
            stamps = {f: _stamp(f) for files in located.values() for f in files}  # before anything reads them
            digest = _fingerprint_files_in_background(folder, located)
            for t in TABLE_ORDER:
                files = located[t]
                rel = f"_lv_raw_{t}"
                work.append(rel)
                label = str(files[0]) if len(files) == 1 else str(folder / t)
                if len(files) == 1 and readers.is_csv(files[0]):
                    raw[t] = readers.read_csv(con, TABLES[t], files[0], rel)
                else:
                    raw[t] = readers.read_parquet(con, TABLES[t], files, rel, label)
                sources[t] = label
        counts: dict[str, TableCount] = {}
        qfiles: dict[str, Path] = {}
        warnings: list[str] = []
        bounds = validation.DateBounds.default(extract_end, shifted=shifted)
        for t in TABLE_ORDER:
            try:
                out = validation.validate_table(con, raw[t], quarantine_dir, drop, bounds,
                                                keep=not check_only or t != TABLE_ORDER[-1], in_place=in_place)
            except (duckdb.IOException, duckdb.InvalidInputException) as exc:
                if not raw[t].is_view:
                    raise
                # Parquet read in place: a file that only fails when its pages are read fails here, not in the reader
                raise InputError(sources[t], f"cannot read Parquet: {str(exc).splitlines()[0]}") from None
            warnings += out.warnings
            for w in out.warnings:
                log.warning("%s", w)
            drop(raw[t].relation)  # a table kept in place reads it under another name (validation.finish_table)
            if out.read != out.accepted + out.quarantined:  # pragma: no cover - an internal bug, never data
                raise AssertionError(f"{t}: read {out.read} != accepted {out.accepted} + quarantined {out.quarantined}")
            counts[t] = TableCount(t, sources[t], out.read, out.accepted, out.quarantined, out.reasons)
            if out.quarantine_file is not None:
                qfiles[t] = out.quarantine_file
            log.info("%s: read %d, accepted %d, quarantined %d", t, out.read, out.accepted, out.quarantined)
        if digest is not None:
            fingerprint = digest.result()
        seconds = time.perf_counter() - started
        return Extract(con, counts, fingerprint, sources, raw=raw, quarantine_dir=quarantine_dir,
                       quarantine_files=qfiles, seconds=seconds, owns_connection=owns, warnings=warnings,
                       spill_dir=spill, stamps=stamps)
    except BaseException:
        if digest is not None:
            digest.cancel()
        for name in work:
            try:
                drop(name)
            except duckdb.Error:  # pragma: no cover
                pass
        if owns:
            con.close()
        if spill is not None:
            shutil.rmtree(spill, ignore_errors=True)
        raise
