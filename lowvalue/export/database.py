"""Scan results into a SQL database (a region's data warehouse) by URL, through SQLAlchemy.

Tables ``lowvalue_scans`` (one row per exported scan: its id and digests), ``lowvalue_flags``,
``lowvalue_denominators`` and ``lowvalue_waterfall`` (the results' tables with ``scan_id`` as first column), in
``--schema`` when given (created when missing). Idempotent per scan: one transaction deletes the scan's earlier rows
and inserts them again, so a re-export replaces them and other scans' rows stay. The scan's row in
``lowvalue_scans`` (primary key ``scan_id``) is written first, so two exports of the same scan at the same time
cannot both insert: the second waits, then fails on the key and rolls back; run it again.

These tables are the true counts, not suppressed: a warehouse is inside the region, next to the patient-level flags.

URLs: ``postgresql://user@host:5432/db`` (psycopg 3 is used), ``mssql+pyodbc://…`` (SQL Server, needs pyodbc and an
ODBC driver), ``sqlite:///file.db``. A password in the URL is never printed: messages show it as ``***``; give the
URL in ``LOWVALUE_EXPORT_URL`` to keep it out of the shell history.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from lowvalue.errors import LowvalueError
from lowvalue.export.tables import ScanTables
from lowvalue.results import stamp

TABLES = ("flags", "denominators", "waterfall")
PREFIX = "lowvalue_"
CHUNK = 5_000
EXTRA = "pip install 'lowvalue[sql]'"


def _sqlalchemy() -> Any:
    try:
        import sqlalchemy
    except ImportError:
        raise LowvalueError(f"--to sql needs SQLAlchemy: {EXTRA}") from None
    return sqlalchemy


def parse_url(text: str) -> Any:
    """The SQLAlchemy URL of ``text`` (``postgresql://`` means psycopg 3), refusing anything else with one line."""
    sa = _sqlalchemy()
    try:
        url = sa.engine.make_url(text)
    except (sa.exc.ArgumentError, ValueError):
        raise LowvalueError("--url is not a database URL; expected e.g. postgresql://USER@HOST:5432/DB, "
                            "mssql+pyodbc://USER@DSN or sqlite:///FILE.db") from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    try:
        url.get_dialect()
    except sa.exc.NoSuchModuleError:
        raise LowvalueError(f"{masked(url)}: unknown kind of database '{url.drivername}'; use postgresql://, "
                            "mssql+pyodbc:// or sqlite://") from None
    return url


def masked(url: Any) -> str:
    return url.render_as_string(hide_password=True)


def _scrub(text: str, url: Any) -> str:
    """An error text without the URL's password (drivers may echo a connection string)."""
    text = " ".join(str(text).split())
    if url.password:
        text = text.replace(str(url.password), "***")
    return text[:300]


def _columns(sa: Any, df: pd.DataFrame) -> list[Any]:
    """Column types from the frame's: text as Unicode text (NVARCHAR on SQL Server), int64 as BIGINT, …"""
    cols = [sa.Column("scan_id", sa.String(16), nullable=False, index=True)]
    for name, dtype in df.dtypes.items():
        if pd.api.types.is_bool_dtype(dtype):
            t = sa.Boolean()
        elif pd.api.types.is_integer_dtype(dtype):
            t = sa.BigInteger()
        elif pd.api.types.is_float_dtype(dtype):
            t = sa.Float(53)
        elif pd.api.types.is_datetime64_any_dtype(dtype):
            t = sa.DateTime()
        else:
            t = sa.UnicodeText()
        cols.append(sa.Column(str(name), t))
    return cols


def _records(df: pd.DataFrame, sid: str) -> list[dict[str, Any]]:
    """Rows as plain Python values (None for missing; datetimes, not pandas timestamps)."""
    out = df.astype(object).where(df.notna(), None)
    for c in df.columns:
        if pd.api.types.is_datetime64_any_dtype(df[c].dtype):
            out[c] = [None if v is None else v.to_pydatetime() for v in out[c]]
    recs = out.to_dict("records")
    for r in recs:
        r["scan_id"] = sid
    return recs


def write_sql(tables: ScanTables, url_text: str, schema: str | None = None) -> dict[str, int]:
    """Write the scan's flags, denominators and waterfall into the database; returns rows written per table."""
    sa = _sqlalchemy()
    url = parse_url(url_text)
    where = masked(url)
    sid = tables.scan_id
    md = sa.MetaData(schema=schema)
    scans = sa.Table(f"{PREFIX}scans", md,
                     sa.Column("scan_id", sa.String(16), primary_key=True),
                     *(sa.Column(k, sa.String(64)) for k in ("data_fingerprint", "rule_set_digest",
                                                             "codes_overlay_digest")),
                     sa.Column("lowvalue_version", sa.String(32)),
                     *(sa.Column(f"{t}_rows", sa.BigInteger()) for t in TABLES))
    data = {t: sa.Table(f"{PREFIX}{t}", md, *_columns(sa, tables.tables[t])) for t in TABLES}
    st = stamp(tables.manifest)
    head = {"scan_id": sid, **{k: v[:64] for k, v in st.items()},
            "lowvalue_version": str(tables.manifest.get("lowvalue_version", ""))[:32],
            **{f"{t}_rows": len(tables.tables[t]) for t in TABLES}}
    connect_args = {"connect_timeout": 10} if url.drivername.startswith("postgresql") else {}
    try:
        engine = sa.create_engine(url, connect_args=connect_args)
    except ImportError as err:
        fix = ("pip install 'pyodbc>=5' and Microsoft's ODBC Driver for SQL Server" if err.name == "pyodbc" else EXTRA)
        raise LowvalueError(f"{where}: the database driver is not installed ({err.name or err}): {fix}") from None
    except sa.exc.SQLAlchemyError as err:
        raise LowvalueError(f"{where}: {_scrub(err, url)}") from None
    try:
        with engine.begin() as conn:
            if schema and not sa.inspect(conn).has_schema(schema):
                conn.execute(sa.schema.CreateSchema(schema))
            md.create_all(conn, checkfirst=True)
            conn.execute(scans.delete().where(scans.c.scan_id == sid))
            conn.execute(scans.insert(), [head])
            for t, table in data.items():
                conn.execute(table.delete().where(table.c.scan_id == sid))
                recs = _records(tables.tables[t], sid)
                for i in range(0, len(recs), CHUNK):
                    conn.execute(table.insert(), recs[i:i + CHUNK])
    except sa.exc.IntegrityError as err:
        raise LowvalueError(f"{where}: another export of scan {sid} wrote at the same time "
                            f"({_scrub(getattr(err, 'orig', err), url)}); run the export again") from None
    except sa.exc.SQLAlchemyError as err:
        what = "cannot connect" if isinstance(err, (sa.exc.OperationalError, sa.exc.InterfaceError)) else "failed"
        raise LowvalueError(f"{where}: {what}: {_scrub(getattr(err, 'orig', None) or err, url)}") from None
    finally:
        engine.dispose()
    return {t: len(tables.tables[t]) for t in TABLES}


def read_back(url_text: str, schema: str | None = None) -> dict[str, pd.DataFrame]:
    """Every lowvalue table in the database, as written (for checks and the round-trip test)."""
    sa = _sqlalchemy()
    engine = sa.create_engine(parse_url(url_text))
    try:
        with engine.connect() as conn:
            return {t: pd.read_sql_table(f"{PREFIX}{t}", conn, schema=schema) for t in ("scans",) + TABLES}
    finally:
        engine.dispose()
