"""Reading and validation at scale: typed Parquet read in place, duplicates by hash, the memory limit."""

from __future__ import annotations

import os
import stat
from datetime import datetime

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from extract_fixtures import write_extract

from lowvalue.cli import main
from lowvalue.data import validation
from lowvalue.data.extract import memory_limit_bytes, open_extract
from lowvalue.data.schema import TABLES
from lowvalue.data.synth import generate
from lowvalue.errors import LowvalueError
from lowvalue.workdir import root


def _dirty(clean, out):
    """A copy of a synthetic Parquet extract with faults of every kind a typed file can carry."""
    out.mkdir()
    con = duckdb.connect()

    def src(t):
        return f"(SELECT CAST(file_row_number AS DOUBLE) AS rid, * FROM read_parquet('{clean / (t + '.parquet')}'))"

    con.execute(f"""COPY (
        SELECT person_id,
               CASE WHEN rid = 3 THEN NULL WHEN rid = 5 THEN DATE '1850-01-01' ELSE birth_date END AS birth_date,
               CASE WHEN rid = 4 THEN 'X' WHEN rid = 8 THEN ' f ' ELSE sex END AS sex, municipality, listing_unit,
               CASE WHEN rid = 6 THEN DATE '1901-01-01' ELSE death_date END AS death_date
        FROM (SELECT * FROM {src('persons')} UNION ALL (SELECT * REPLACE (1.5 AS rid) FROM {src('persons')} LIMIT 1 OFFSET 1))
        ORDER BY rid) TO '{out / 'persons.parquet'}' (FORMAT parquet)""")
    con.execute(f"""COPY (
        SELECT encounter_id, CASE WHEN rid = 2 THEN 'NOPERSON' ELSE person_id END AS person_id, start_time,
               CASE WHEN rid = 3 THEN start_time - INTERVAL 1 DAY ELSE end_time END AS end_time,
               CASE WHEN rid = 4 THEN 'spa' ELSE setting END AS setting, unit,
               CASE WHEN rid = 5 THEN -1.0 WHEN rid = 6 THEN 'nan'::DOUBLE ELSE cost END AS cost
        FROM (SELECT * FROM {src('encounters')} UNION ALL (SELECT * REPLACE (7.5 AS rid) FROM {src('encounters')} LIMIT 1 OFFSET 7))
        ORDER BY rid) TO '{out / 'encounters.parquet'}' (FORMAT parquet)""")
    con.execute(f"""COPY (
        SELECT * EXCLUDE (o) REPLACE (
               CASE WHEN o = 2 THEN 'NOENC' ELSE encounter_id END AS encounter_id,
               CASE WHEN floor(o) = 3 THEN TIMESTAMP '1800-01-01' ELSE "time" END AS "time",
               CASE WHEN o = 4 THEN 'x' ELSE kind END AS kind,
               CASE WHEN floor(o) = 5 THEN 'nan'::DOUBLE WHEN o = 11 THEN -0.0 WHEN o IN (11.5, 12) THEN 0.0 ELSE value END AS value,
               CASE WHEN o = 6 THEN 5000 ELSE days_supply END AS days_supply,
               CASE WHEN o = 7 THEN -5 ELSE cost END AS cost)
        FROM (SELECT rid AS o, * EXCLUDE (rid) FROM {src('events')}
              UNION ALL SELECT rid + 0.5, * EXCLUDE (rid) FROM {src('events')} WHERE rid IN (1, 3, 5, 8, 11, 20, 21)
              UNION ALL SELECT rid + 0.7, * EXCLUDE (rid) FROM {src('events')} WHERE rid IN (8, 20)
              UNION ALL SELECT rid + 0.6, * EXCLUDE (rid) REPLACE (code || 'Z' AS code) FROM {src('events')} WHERE rid = 9
              UNION ALL SELECT rid + 0.8, * EXCLUDE (rid) REPLACE (CASE WHEN unit IS NULL THEN 'u' END AS unit) FROM {src('events')} WHERE rid = 10)
        ORDER BY o) TO '{out / 'events.parquet'}' (FORMAT parquet)""")
    return out


@pytest.fixture(scope="module")
def dirty(tmp_path_factory):
    base = tmp_path_factory.mktemp("scale")
    generate(persons=150, seed=3, out=base / "clean")
    pq_dir = _dirty(base / "clean", base / "pq")
    csv_dir = base / "csv"
    csv_dir.mkdir()
    con = duckdb.connect()
    for t in TABLES:
        con.execute(f"COPY (SELECT * FROM read_parquet('{pq_dir / (t + '.parquet')}')) TO '{csv_dir / (t + '.csv')}' (HEADER)")
    return pq_dir, csv_dir


def _quarantine(ex, table):
    return ex.to_pandas(f"quarantine_{table}")[["source_row", "reason_code", "reason"]]


def test_typed_parquet_and_csv_of_the_same_rows_agree(dirty, tmp_path):
    pq_dir, csv_dir = dirty
    a = open_extract(pq_dir, quarantine_dir=tmp_path / "qa")
    b = open_extract(csv_dir, quarantine_dir=tmp_path / "qb")
    assert a.formats["events"] == "parquet" and b.formats["events"].startswith("csv")
    for t in TABLES:
        assert a.con.execute(f"DESCRIBE {t}").fetchall() == b.con.execute(f"DESCRIBE {t}").fetchall()
        left, right = a.to_pandas(t), b.to_pandas(t)
        assert len(left) > 0
        assert left.equals(right), t
        assert _quarantine(a, t).equals(_quarantine(b, t)), t
        assert (a.counts[t].read, a.counts[t].accepted, a.counts[t].quarantined, a.counts[t].reasons) == \
               (b.counts[t].read, b.counts[t].accepted, b.counts[t].quarantined, b.counts[t].reasons)
    codes = set(a.counts["persons"].reasons) | set(a.counts["encounters"].reasons) | set(a.counts["events"].reasons)
    assert {"missing:birth_date", "implausible_date:birth_date", "unknown_sex", "death_before_birth", "duplicate_key",
            "unknown_person", "end_before_start", "unknown_setting", "negative_cost", "non_numeric:cost",
            "unknown_encounter", "implausible_date:time", "unknown_kind", "non_numeric:value",
            "days_supply_out_of_range", "duplicate_row"} <= codes
    q = _quarantine(a, "encounters")
    assert "cost is not a number ('nan')" in q["reason"].tolist()  # the offending value quoted as before


def _reference_duplicates(ex, pq_dir):
    """The duplicate events by the definition (a row number over every column, among rows without row problems)."""
    con = duckdb.connect()
    stage_rows = ex.counts["events"].read
    keys = ", ".join(f'"{k}"' for k in TABLES["events"].key)
    con.execute(f"CREATE TABLE ev AS SELECT file_row_number + 1 AS source_row, * FROM read_parquet('{pq_dir / 'events.parquet'}')")
    assert con.execute("SELECT count(*) FROM ev").fetchone()[0] == stage_rows
    q = _quarantine(ex, "events")
    row_level = {"implausible_date:time", "unknown_kind", "non_numeric:value", "days_supply_out_of_range", "negative_cost"}
    invalid = [int(r) for r, c in zip(q["source_row"], q["reason_code"]) if set(c.split(";")) & row_level]
    con.execute("CREATE TABLE bad(source_row BIGINT)")
    con.executemany("INSERT INTO bad VALUES (?)", [[r] for r in invalid])
    return {r[0] for r in con.execute(
        f"SELECT source_row FROM (SELECT source_row, row_number() OVER (PARTITION BY {keys} ORDER BY source_row) AS rk "
        f"FROM ev WHERE source_row NOT IN (SELECT source_row FROM bad)) WHERE rk > 1").fetchall()}


@pytest.mark.parametrize("collide", [False, True])
def test_duplicate_rows_by_hash_flag_exactly_the_duplicates(dirty, tmp_path, monkeypatch, collide):
    pq_dir, _ = dirty
    if collide:  # every row in 3 hash buckets: only the exact comparison tells duplicates apart
        monkeypatch.setattr(validation, "ROW_HASH", "hash({cols}) % 3")
    ex = open_extract(pq_dir, quarantine_dir=tmp_path / "q")
    q = _quarantine(ex, "events")
    flagged = {int(r) for r, c in zip(q["source_row"], q["reason_code"]) if "duplicate_row" in c.split(";")}
    expected = _reference_duplicates(ex, pq_dir)
    assert flagged == expected
    # copies of 1, 8 (twice), 20 (twice), 21 and 11 (-0.0 equals 0.0); not the copies of the invalid rows 3 and 5,
    # the near duplicate of 9 or the copy of 10 with unit NULL where it was set (or set where it was NULL)
    assert len(flagged) == 7
    assert ex.counts["events"].reasons["duplicate_row"] == 7


def test_duplicates_including_nulls_in_a_frame():
    rows = {
        "person_id": ["P1"] * 6, "encounter_id": [None, None, "E1", None, None, None],
        "time": [datetime(2025, 3, 1)] * 6, "kind": ["diagnosis"] * 6, "system": ["ICD-10-SE"] * 6,
        "code": ["J06.9", "J06.9", "J06.9", "J06.9", "J06.8", "J06.9"],
        "value": [None, None, None, 0.0, None, -0.0],
    }
    persons = pa.table({"person_id": ["P1"], "birth_date": pa.array([datetime(1950, 1, 1).date()]), "sex": ["F"]})
    encounters = pa.table({"encounter_id": ["E1"], "person_id": ["P1"], "start_time": [datetime(2025, 3, 1)],
                           "end_time": [None], "setting": ["outpatient"], "unit": ["X"]})
    ex = open_extract({"persons": persons, "encounters": encounters, "events": pa.table(rows)})
    q = ex.to_pandas("quarantine_events")
    assert q["source_row"].tolist() == [2, 6] and set(q["reason_code"]) == {"duplicate_row"}


def test_parquet_folder_numbered_across_files_read_in_place(tmp_path):
    d = write_extract(tmp_path / "x")
    con = duckdb.connect()
    (d / "events").mkdir()
    con.execute(f"CREATE TABLE ev AS SELECT * FROM read_csv('{d / 'events.csv'}', all_varchar=true)")
    for i in range(3):
        con.execute(f"COPY (SELECT * REPLACE ('{i}' || code AS code, CASE WHEN {i} = 2 AND rowid = 1 THEN 'nope' "
                    f"ELSE kind END AS kind) FROM ev) TO '{d / 'events' / f'part-{i}.parquet'}' (FORMAT parquet)")
    (d / "events.csv").unlink()
    ex = open_extract(d)
    q = ex.to_pandas("quarantine_events")
    assert q["source_row"].tolist() == [4 + 4 + 2] and q["reason_code"].tolist() == ["unknown_kind"]
    assert ex.to_pandas("events")["code"].str[0].tolist() == list("00001111222")
    assert not [r for r in ex.con.execute("SHOW ALL TABLES").fetchall() if r[2].startswith("_lv_")]


def test_memory_limit_is_applied_and_spills_to_a_private_folder(tmp_path):
    ex = open_extract(write_extract(tmp_path / "x"), memory_limit="1GB")
    limit, temp = ex.con.execute("SELECT current_setting('memory_limit'), current_setting('temp_directory')").fetchone()
    assert limit == "953.6 MiB"
    spill = ex.spill_dir
    assert temp == str(spill) and spill.parent == root() and spill.is_dir()
    assert stat.S_IMODE(os.stat(root()).st_mode) == 0o700
    ex.close()
    assert not spill.exists()
    default = open_extract(write_extract(tmp_path / "y"))
    kib = memory_limit_bytes(None) // 2**10
    assert default.con.execute("SELECT current_setting('memory_limit')").fetchone()[0] == \
        duckdb.connect(config={"memory_limit": f"{kib}KiB"}).execute("SELECT current_setting('memory_limit')").fetchone()[0]
    default.close()


@pytest.mark.parametrize("value", ["lots", "4 parsecs", "0GB", "1KB", "150%", ""])
def test_bad_memory_limit_refused(value):
    with pytest.raises(LowvalueError, match="memory limit"):
        memory_limit_bytes(value)


@pytest.mark.parametrize("command", ["validate", "scan"])
def test_cli_bad_memory_limit_one_line_exit_2(tmp_path, command):
    d = write_extract(tmp_path / "x")
    extra = ["--out", str(tmp_path / "out")] if command == "scan" else []
    res = CliRunner().invoke(main, [command, str(d), *extra, "--memory-limit", "lots"])
    assert res.exit_code == 2
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "memory limit 'lots'" in err[0]
    assert "Traceback" not in res.output
    assert not (tmp_path / "out").exists()


def test_cli_validate_with_memory_limit(tmp_path):
    d = write_extract(tmp_path / "x")
    res = CliRunner().invoke(main, ["validate", str(d), "--memory-limit", "512MB"])
    assert res.exit_code == 0, res.output
    assert "--memory-limit" in CliRunner().invoke(main, ["validate", "--help"]).output
    assert "50% of RAM" in " ".join(CliRunner().invoke(main, ["scan", "--help"]).output.split())


def test_a_large_extract_is_held_in_a_database_file_in_its_private_folder():
    """Over a quarter of the memory limit, the tables go to a database file (pages dropped, not spilled); below, memory."""
    import shutil

    from lowvalue.data.extract import ON_DISK_SHARE, _connect

    limit = 2**30
    for source_bytes, on_disk in ((ON_DISK_SHARE * limit * 1.01, True), (ON_DISK_SHARE * limit * 0.99, False)):
        con, spill = _connect("1GiB", source_bytes)
        try:
            (_, _, path), = con.execute("PRAGMA database_list").fetchall()
            assert (path is not None and path.startswith(str(spill))) is on_disk
            assert stat.S_IMODE(os.stat(spill).st_mode) == 0o700
        finally:
            con.close()
            shutil.rmtree(spill)


@pytest.mark.parametrize("which", ["dirty", "clean"])
def test_accepted_table_has_dense_row_ids(dirty, tmp_path, which):
    """With or without quarantined rows (written tables, or views over the clean files) the accepted table has
    exactly the canonical columns and types, source order, and row ids 0, 1, 2 … (the engine's event ids) in its
    ``rowid_relation``."""
    pq_dir, _ = dirty
    folder = pq_dir if which == "dirty" else pq_dir.parent / "clean"
    ex = open_extract(folder, quarantine_dir=tmp_path / "q")
    ref = duckdb.connect()
    views = {r[0] for r in ex.con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
    for t in TABLES:
        assert (t in views) is (which == "clean")
        assert [r[0] for r in ex.con.execute(f"DESCRIBE {t}").fetchall()] == TABLES[t].columns
        rel = validation.rowid_relation(t)
        assert [r[0] for r in ex.con.execute(f"DESCRIBE {rel}").fetchall()] == ["_lv_rowid", *TABLES[t].columns]
        n, low, high, distinct = ex.con.execute(f"SELECT count(*), min(_lv_rowid), max(_lv_rowid), "
                                                f"count(DISTINCT _lv_rowid) FROM {rel}").fetchone()
        assert (n, low, high, distinct) == (ex.counts[t].accepted, 0, ex.counts[t].accepted - 1, n)
        # source order: the accepted rows are the source's rows without the quarantined ones, in the same order
        bad = set(ex.to_pandas(f"quarantine_{t}")["source_row"].astype(int)) if ex.quarantine_files.get(t) else set()
        assert bool(bad) == (which == "dirty" and t in ("persons", "encounters", "events"))
        key = TABLES[t].key[0] if t != "events" else "code"
        source = [r[0] for r in ref.execute(f"SELECT {key} FROM read_parquet('{folder / (t + '.parquet')}') "
                                            "ORDER BY file_row_number").fetchall()]
        kept = [v for i, v in enumerate(source, start=1) if i not in bad]
        assert [r[0] for r in ex.con.execute(f"SELECT {key} FROM {rel} ORDER BY _lv_rowid").fetchall()] == kept
        assert [r[0] for r in ex.con.execute(f"SELECT {key} FROM {t}").fetchall()] == kept
    assert not [r for r in ex.con.execute("SHOW ALL TABLES").fetchall() if r[2].startswith("_lv_")]


def test_check_only_counts_and_quarantines_as_a_full_open(dirty, tmp_path):
    """``validate``'s check_only: the same counts, reasons, quarantine files, warnings and fingerprint, without
    writing the accepted events."""
    for folder in dirty:
        full = open_extract(folder, quarantine_dir=tmp_path / f"full-{folder.name}")
        only = open_extract(folder, quarantine_dir=tmp_path / f"only-{folder.name}", check_only=True)
        assert only.fingerprint == full.fingerprint and only.warnings == full.warnings
        for t in TABLES:
            a, b = full.counts[t], only.counts[t]
            assert (a.read, a.accepted, a.quarantined, a.reasons) == (b.read, b.accepted, b.quarantined, b.reasons)
            assert _quarantine(full, t).equals(_quarantine(only, t)), t
        assert full.counts["events"].quarantined > 0
        tables = {r[2] for r in only.con.execute("SHOW ALL TABLES").fetchall()}
        assert {"persons", "encounters"} <= tables and "events" not in tables


def test_fingerprint_is_the_digest_of_the_files(tmp_path):
    """Hashed on a thread while DuckDB reads: still SHA-256 of each file's name, size and bytes, by path."""
    import hashlib

    d = write_extract(tmp_path / "x")
    h = hashlib.sha256()
    for name in ("encounters.csv", "events.csv", "persons.csv"):
        data = (d / name).read_bytes()
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    assert open_extract(d).fingerprint == h.hexdigest()


@pytest.mark.parametrize("collide", [False, True])
def test_repeated_hashes_sorted_in_ranges_find_the_same_duplicates(dirty, tmp_path, monkeypatch, collide):
    """The hashes are sorted a range of the hash at a time when there are many rows: the same duplicates."""
    pq_dir, _ = dirty
    monkeypatch.setattr(validation, "SORT_CHUNK_ROWS", 97)  # ~40 ranges for the dirty events
    if collide:
        monkeypatch.setattr(validation, "ROW_HASH", "hash({cols}) % 3")
    ex = open_extract(pq_dir, quarantine_dir=tmp_path / "q")
    q = _quarantine(ex, "events")
    flagged = {int(r) for r, c in zip(q["source_row"], q["reason_code"]) if "duplicate_row" in c.split(";")}
    assert flagged == _reference_duplicates(ex, pq_dir) and len(flagged) == 7


def test_repeated_hashes_counts_only_repeats():
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT * FROM (VALUES (1), (2), (2), (3), (3), (3), (18446744073709551615), "
                "(18446744073709551615), (0)) v(x)")
    for chunk in (1, 2, 1 << 24):
        validation.SORT_CHUNK_ROWS, old = chunk, validation.SORT_CHUNK_ROWS
        try:
            assert validation.repeated_hashes(con, "t", "CAST(x AS UBIGINT)", "TRUE", 9, "r") == 3
        finally:
            validation.SORT_CHUNK_ROWS = old
        assert sorted(r[0] for r in con.execute("SELECT h FROM r").fetchall()) == [2, 3, 18446744073709551615]


def test_duplicate_keys_decided_exactly_among_colliding_hashes(dirty, tmp_path, monkeypatch):
    """Keys are compared exactly among the rows whose key hash repeats: with every key in 3 hash buckets (and
    sorted in small ranges) the same rows are duplicate_key as with the real hash."""
    pq_dir, csv_dir = dirty
    plain = open_extract(csv_dir, quarantine_dir=tmp_path / "plain")
    monkeypatch.setattr(validation, "ROW_HASH", "hash({cols}) % 3")
    monkeypatch.setattr(validation, "SORT_CHUNK_ROWS", 50)
    collided = open_extract(csv_dir, quarantine_dir=tmp_path / "collided")
    for t in ("persons", "encounters"):
        assert plain.counts[t].reasons["duplicate_key"] == 1
        assert _quarantine(plain, t).equals(_quarantine(collided, t)), t
        assert plain.to_pandas(t).equals(collided.to_pandas(t))
