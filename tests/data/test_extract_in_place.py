"""Clean typed Parquet stays in place: views over the files instead of written tables, with the same outputs.

``LOWVALUE_IN_PLACE=0`` (``extract.IN_PLACE_ENV``) forces the written path, so each test compares the two.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest

from lowvalue.data import validation
from lowvalue.data.extract import IN_PLACE_ENV, open_extract
from lowvalue.data.schema import TABLES
from lowvalue.data.synth import generate
from lowvalue.engine.scan import ScanResult, scan
from lowvalue.errors import InputError
from lowvalue.rules.library import load_library
from lowvalue.rules.overlay import apply_overlay, load_overlay


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("inplace")
    generate(persons=200, seed=3, out=base / "clean")
    return base / "clean"


@pytest.fixture(scope="module")
def rules(region):
    return apply_overlay(load_library(None), load_overlay(region / "region-codes"))


def _copy(region: Path, out: Path, events_sql: str = "SELECT * FROM ev", folder: bool = False) -> Path:
    """``region``'s files in ``out``; the events rewritten by ``events_sql`` over ``ev`` (source order kept), in
    three files of a folder ``events/`` when ``folder``."""
    out.mkdir()
    con = duckdb.connect()
    for t in ("persons", "encounters"):
        con.execute(f"COPY (SELECT * FROM read_parquet('{region / (t + '.parquet')}')) TO '{out / (t + '.parquet')}' "
                    "(FORMAT parquet)")
    con.execute(f"CREATE TABLE ev AS SELECT file_row_number AS o, * EXCLUDE (file_row_number) "
                f"FROM read_parquet('{region / 'events.parquet'}', file_row_number=true)")
    con.execute(f"CREATE TABLE src AS SELECT * FROM ({events_sql}) ORDER BY o")
    if not folder:
        con.execute(f"COPY (SELECT * EXCLUDE (o) FROM src ORDER BY o) TO '{out / 'events.parquet'}' (FORMAT parquet)")
        return out
    (out / "events").mkdir()
    n = con.execute("SELECT count(*) FROM src").fetchone()[0]
    for i, (lo, hi) in enumerate([(0, n // 3), (n // 3, n // 2), (n // 2, n)]):
        con.execute(f"COPY (SELECT * EXCLUDE (o) FROM src ORDER BY o LIMIT {hi - lo} OFFSET {lo}) "
                    f"TO '{out / 'events' / f'part-{i}.parquet'}' (FORMAT parquet)")
    return out


def _views(ex) -> set[str]:
    return {r[0] for r in ex.con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}


def _open_both(folder: Path, tmp_path: Path, monkeypatch):
    viewed = open_extract(folder, quarantine_dir=tmp_path / "q-view")
    monkeypatch.setenv(IN_PLACE_ENV, "0")
    written = open_extract(folder, quarantine_dir=tmp_path / "q-written")
    monkeypatch.delenv(IN_PLACE_ENV)
    return viewed, written


def _same_rows(a, b) -> None:
    for t in TABLES:
        rel = validation.rowid_relation(t)
        left = a.con.execute(f"SELECT * FROM {rel} ORDER BY _lv_rowid").df()
        right = b.con.execute(f"SELECT * FROM {rel} ORDER BY _lv_rowid").df()
        assert list(left.columns) == ["_lv_rowid", *TABLES[t].columns]
        assert left.equals(right), t
        assert a.con.execute(f"DESCRIBE {t}").fetchall() == b.con.execute(f"DESCRIBE {t}").fetchall()
        assert a.to_pandas(t).equals(b.to_pandas(t)), t  # the tables themselves, in source order
        assert vars(a.counts[t]) == vars(b.counts[t])


def _same_outputs(a, b, rules, tmp_path: Path) -> None:
    first = scan(a, rules)
    assert len(first.flags) > 0 and len(first.features) > 0
    first.write(tmp_path / "out-a")
    scan(b, rules).write(tmp_path / "out-b")
    for name in ScanResult.TABLES:
        assert (tmp_path / "out-a" / f"{name}.parquet").read_bytes() == \
            (tmp_path / "out-b" / f"{name}.parquet").read_bytes(), name


@pytest.mark.parametrize("folder", [False, True], ids=["file", "folder-of-files"])
def test_clean_parquet_is_viewed_in_place_with_the_written_paths_outputs(region, rules, tmp_path, monkeypatch, folder):
    data = _copy(region, tmp_path / "data", folder=folder)
    viewed, written = _open_both(data, tmp_path, monkeypatch)
    assert set(TABLES) <= _views(viewed) and not set(TABLES) & _views(written)
    tables = {r[0] for r in viewed.con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert not tables, tables  # nothing of the extract written into DuckDB
    assert viewed.fingerprint == written.fingerprint and viewed.quarantined_rows == 0
    _same_rows(viewed, written)
    if not folder:  # the rows are the same either way; the scan's outputs once
        _same_outputs(viewed, written, rules, tmp_path)


def test_one_bad_event_row_is_quarantined_and_the_rest_numbered_as_before(region, rules, tmp_path, monkeypatch):
    data = _copy(region, tmp_path / "data", "SELECT * REPLACE (CASE WHEN o = 40 THEN 'x' ELSE kind END AS kind) FROM ev")
    viewed, written = _open_both(data, tmp_path, monkeypatch)
    assert {"persons", "encounters"} <= _views(viewed) and "events" not in _views(viewed)  # events written
    q = viewed.to_pandas("quarantine_events")
    assert q["source_row"].tolist() == [41] and q["reason_code"].tolist() == ["unknown_kind"]
    assert q.equals(written.to_pandas("quarantine_events"))
    n = viewed.counts["events"].read
    ids = viewed.con.execute("SELECT min(_lv_rowid), max(_lv_rowid), count(DISTINCT _lv_rowid) "
                             f"FROM {validation.rowid_relation('events')}").fetchone()
    assert ids == (0, n - 2, n - 1)  # dense over the accepted rows: the rows after the bad one move up by one
    _same_rows(viewed, written)
    _same_outputs(viewed, written, rules, tmp_path)


def test_duplicate_events_found_in_place_as_when_written(region, tmp_path, monkeypatch):
    """The hashes of a table kept in place are taken over every row: the duplicates are the same."""
    data = _copy(region, tmp_path / "data",
                 "SELECT * FROM ev UNION ALL SELECT o + 0.5, * EXCLUDE (o) FROM ev WHERE o IN (3, 7) "
                 "UNION ALL SELECT o + 0.7, * EXCLUDE (o) FROM ev WHERE o = 7")
    viewed, written = _open_both(data, tmp_path, monkeypatch)
    assert viewed.counts["events"].reasons == {"duplicate_row": 3} == written.counts["events"].reasons
    _same_rows(viewed, written)


def test_values_stored_unlike_their_canonical_form_are_read_through_the_stage(region, tmp_path, monkeypatch):
    """Blanks around a code or ``K`` for ``F`` are not problems: the table stays in place, and those columns (only
    those) are read through the stage's expressions, in the view and in the hashes; a duplicate that differs from
    its original only in such blanks is still found."""
    con = duckdb.connect()
    data = tmp_path / "data"
    _copy(region, data, "SELECT * REPLACE (CASE WHEN o % 7 = 0 THEN ' ' || code || ' ' ELSE code END AS code) FROM ev")
    con.execute(f"COPY (SELECT * REPLACE (CASE WHEN sex = 'F' THEN 'K' ELSE sex END AS sex) FROM "
                f"read_parquet('{data / 'persons.parquet'}')) TO '{data / 'p.parquet'}' (FORMAT parquet)")
    (data / "p.parquet").replace(data / "persons.parquet")
    plain, stored_as_canonical = {}, validation.stored_as_canonical

    def spy(raw, bits):
        plain[raw.table.name] = stored_as_canonical(raw, bits)
        return plain[raw.table.name]

    monkeypatch.setattr(validation, "stored_as_canonical", spy)
    viewed, written = _open_both(data, tmp_path, monkeypatch)
    assert set(TABLES) <= _views(viewed) and viewed.quarantined_rows == 0
    assert viewed.con.execute("SELECT count(*) FROM persons WHERE sex = 'F'").fetchone()[0] > 0
    assert plain["events"] == set(TABLES["events"].columns) - {"code"}  # only the changed columns
    assert plain["persons"] == set(TABLES["persons"].columns) - {"sex"}
    _same_rows(viewed, written)
    dup = _copy(region, tmp_path / "dup", "SELECT * FROM ev UNION ALL "
                                          "SELECT o + 0.5, * EXCLUDE (o) REPLACE (code || '  ' AS code) FROM ev WHERE o = 3")
    viewed, written = _open_both(dup, tmp_path / "x", monkeypatch)
    assert viewed.counts["events"].reasons == {"duplicate_row": 1} == written.counts["events"].reasons
    _same_rows(viewed, written)


def test_what_stays_in_place(region, tmp_path):
    csv = tmp_path / "csv"
    csv.mkdir()
    con = duckdb.connect()
    for t in TABLES:
        con.execute(f"COPY (SELECT * FROM read_parquet('{region / (t + '.parquet')}')) TO '{csv / (t + '.csv')}' (HEADER)")
    assert not set(TABLES) & _views(open_extract(csv))
    # a number stored as text is parsed, so that table is written; the others stay views
    texts = _copy(region, tmp_path / "texts", "SELECT * REPLACE (CAST(cost AS VARCHAR) AS cost) FROM ev")
    ex = open_extract(texts)
    assert {"persons", "encounters"} <= _views(ex) and "events" not in _views(ex)


def test_a_source_file_changed_before_the_results_are_written_is_one_line(region, rules, tmp_path):
    data = _copy(region, tmp_path / "data")
    ex = open_extract(data)
    ex.check_unchanged()
    result = scan(ex, rules.select(["LV-ABX-005"]))
    events = data / "events.parquet"
    stamp = events.stat()
    os.utime(events, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 1_000_000_000))
    with pytest.raises(InputError, match="the extract changed while it was scanned") as err:
        result.write(tmp_path / "out")
    assert str(events) in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()
    events.unlink()  # gone is changed too
    with pytest.raises(InputError, match="changed while it was scanned"):
        ex.check_unchanged()
