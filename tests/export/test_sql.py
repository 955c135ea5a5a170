"""The SQL export round trip on a real database: written, read back equal, idempotent per scan.

PostgreSQL: set LOWVALUE_TEST_POSTGRES_URL (``.ci/run`` starts Debian's server and sets it); without it that case
is skipped. SQLite runs always (same code, another dialect).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pandas as pd
import pytest

PG = os.environ.get("LOWVALUE_TEST_POSTGRES_URL")
if not PG:  # with a server to test against, a missing 'sql' extra is a failure, not a skip
    pytest.importorskip("sqlalchemy")

from lowvalue.export import export  # noqa: E402
from lowvalue.export.database import TABLES, read_back  # noqa: E402
from lowvalue.export.tables import scan_id  # noqa: E402
from lowvalue.results import read_manifest  # noqa: E402


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path):  # noqa: ANN201
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'dwh.db'}", None
        return
    if not PG:
        pytest.skip("LOWVALUE_TEST_POSTGRES_URL is not set (.ci/run sets it after starting PostgreSQL)")
    import sqlalchemy as sa

    from lowvalue.export.database import parse_url

    schema = f"lv_test_{uuid.uuid4().hex[:8]}"
    yield PG, schema
    engine = sa.create_engine(parse_url(PG))
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def _same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    got = got.drop(columns="scan_id").reset_index(drop=True)
    assert list(got.columns) == list(want.columns) and len(got) == len(want)
    for c in want.columns:
        w, g = want[c], got[c]
        if w.dtype.kind == "M":
            assert (pd.to_datetime(g).to_numpy() == w.to_numpy()).all(), c
        elif w.dtype.kind == "f":
            assert ((g.astype(float) - w).abs().fillna(0) < 1e-9).all() and (g.isna() == w.isna()).all(), c
        else:
            assert (g.astype(object).where(g.notna(), None).tolist() == w.astype(object).where(w.notna(), None).tolist()), c


def test_sql_round_trip_and_idempotent_per_scan(example_results: Path, tmp_path: Path, database) -> None:  # noqa: ANN001
    url, schema = database
    rows = export(example_results, "sql", url=url, schema=schema).rows
    sid = scan_id(read_manifest(example_results))
    back = read_back(url, schema)
    for t in TABLES:
        want = pd.read_parquet(example_results / f"{t}.parquet")
        assert rows[t] == len(want)
        key = {"flags": ["flag_id"], "denominators": ["rule_id", "unit", "month"], "waterfall": ["rule_id", "step"]}[t]
        assert not want.duplicated(key).any()
        _same(back[t].sort_values(key).reset_index(drop=True),  # a database does not keep the order
              want.sort_values(key).reset_index(drop=True))
        assert (back[t].scan_id == sid).all()
    assert back["scans"].scan_id.tolist() == [sid]

    export(example_results, "sql", url=url, schema=schema)  # again: its rows replaced, not doubled
    again = read_back(url, schema)
    for t in TABLES:
        assert len(again[t]) == len(back[t])

    other = tmp_path / "other"  # another scan (another data fingerprint) in the same tables
    shutil.copytree(example_results, other)
    m = json.loads((other / "manifest.json").read_text())
    m["data"]["fingerprint"] = "0" * 64
    (other / "manifest.json").write_text(json.dumps(m))
    export(other, "sql", url=url, schema=schema)
    export(example_results, "sql", url=url, schema=schema)  # re-exporting the first leaves the other's rows alone
    both = read_back(url, schema)
    assert sorted(both["scans"].scan_id) == sorted([sid, scan_id(m)])
    for t in TABLES:
        assert both[t].scan_id.value_counts().to_dict() == {sid: len(back[t]), scan_id(m): len(back[t])}
