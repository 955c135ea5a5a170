"""Person partitions: each person's rows in exactly one partition, read from the split files or through a filter on
the extract's tables, with the same ``lv_hit`` and partition views either way; ranges of the person id, so an
extract in person order is read a row group range per partition."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from lowvalue.data.extract import open_extract
from lowvalue.engine import sql
from lowvalue.rules.library import load_library
from lowvalue.workdir import private_workdir

RS = load_library()
EXAMPLE = Path(__file__).parents[2] / "examples" / "synthetic_data"


def _rows(con, table: str) -> pd.DataFrame:
    return con.execute(f"SELECT * FROM {table} ORDER BY ALL").df()


def test_partition_predicate_and_key_agree_and_cover_every_person():
    with open_extract(EXAMPLE) as x:
        n = x.con.execute("SELECT count(*) FROM persons").fetchall()[0][0]
        for parts in (1, 2, 3, 7, 26):
            ranges = sql.PersonRanges.of(x.con, parts)
            assert len(ranges) == parts and list(ranges.bounds) == sorted(ranges.bounds)
            key = x.con.execute(f"SELECT person_id, {ranges.key('person_id')} AS k FROM persons").df()
            assert set(key.k) == set(range(parts))
            assert key.k.value_counts().max() - key.k.value_counts().min() <= 1 + n // 100  # about as many persons each
            for part in range(parts):
                mine = x.con.execute(f"SELECT person_id FROM persons WHERE {ranges.where('person_id', part)}").df()
                assert sorted(mine.person_id) == sorted(key.person_id[key.k == part]), (parts, part)


def test_more_partitions_than_persons_leave_some_empty():
    with open_extract(EXAMPLE) as x:
        x.con.execute("CREATE TEMP TABLE few AS SELECT * FROM persons ORDER BY person_id LIMIT 2")
        ranges = sql.PersonRanges(tuple(sorted([r[0] for r in x.con.execute(
            "SELECT person_id FROM few").fetchall()] * 2)))  # duplicate bounds
        counts = [x.con.execute(f"SELECT count(*) FROM persons WHERE {ranges.where('person_id', p)}").fetchall()[0][0]
                  for p in range(len(ranges))]
        assert sum(counts) == x.con.execute("SELECT count(*) FROM persons").fetchall()[0][0] and 0 in counts
        keys = [x.con.execute(f"SELECT count(*) FROM persons WHERE {ranges.key('person_id')} = {p}").fetchall()[0][0]
                for p in range(len(ranges))]
        assert keys == counts
        with pytest.raises(ValueError):
            sql.PersonRanges(tuple(reversed(ranges.bounds)))


def test_an_extract_in_person_order_is_read_a_row_group_range_per_partition(tmp_path):
    """The events in person order (as an export sorted by person is): a partition's filter skips the other
    partitions' row groups on their statistics, which a hash of the id could not."""
    con = duckdb.connect()
    path = tmp_path / "events.parquet"
    con.execute(f"COPY (SELECT printf('P%07d', range // 10) AS person_id, range AS v FROM range(400000)) TO "
                f"'{path}' (FORMAT parquet, ROW_GROUP_SIZE 20000)")
    con.execute(f"CREATE TABLE persons AS SELECT DISTINCT person_id FROM '{path}'")
    ranges = sql.PersonRanges.of(con, 4)
    con.execute("SET enable_profiling='no_output'")
    con.execute(f"SELECT count(*) FROM '{path}' WHERE {ranges.where('person_id', 1)}").fetchall()
    scanned = json.loads(con.get_profiling_information(format="json"))["query"]
    assert con.execute(f"SELECT count(*) FROM '{path}' WHERE {ranges.where('person_id', 1)}").fetchall()[0][0] == 100000
    assert 0 < scanned["total_row_groups_scanned"] <= 6 < scanned["total_row_groups_to_scan"] == 20


@pytest.mark.parametrize("ids, ordered, expect", [
    ("printf('P%07d', i // 10)", True, (1.0, 1.2)),  # each partition reads its own blocks
    ("printf('P%07d', i // 10)", False, (4.0, 4.0)),  # persons spread over every block
    ("printf('SE2024-%09d', i // 10)", True, (4.0, 4.0)),  # in order, but zone maps keep 8 bytes: no skipping
])
def test_range_reads_estimates_how_often_the_partitions_read_a_table(monkeypatch, ids, ordered, expect):
    """``split_persons`` splits a table only when reading the partitions through their ranges would read it many
    times over; the estimate must not promise skipping the engine cannot do."""
    monkeypatch.setattr(sql, "BLOCK_ROWS", 2000)
    con = duckdb.connect()
    order = "i" if ordered else "hash(i)"
    con.execute(f"CREATE TABLE t AS SELECT {ids} AS person_id FROM range(40000) r(i) ORDER BY {order}")
    con.execute("CREATE VIEW lv_rowid_t AS SELECT rowid AS _lv_rowid, person_id FROM t")
    con.execute("CREATE TABLE persons AS SELECT DISTINCT person_id FROM t")
    reads = sql.range_reads(con, "t", sql.PersonRanges.of(con, 4))
    assert expect[0] <= reads <= expect[1]
    assert sql.range_reads(con, "t", sql.PersonRanges()) == 1.0


@pytest.mark.parametrize("split", [False, True])
def test_partitions_hold_the_same_hits_and_rows_split_or_filtered(monkeypatch, split):
    """Three partitions' ``lv_hit`` and ``lv_part_*`` together are the single partition's, row for row (row ids
    included), whether the extract was split into files (``SPLIT_FROM`` reached) or each partition filters it."""
    monkeypatch.setattr(sql, "SPLIT_FROM", 3 if split else 4)
    parts = 3
    with open_extract(EXAMPLE) as x, private_workdir("partitions") as folder:
        ranges = sql.PersonRanges.of(x.con, parts)
        sql.prepare(x.con)
        sql.ensure_sets(x.con, sql.code_sets(RS))
        sql.build_hits(x.con)
        whole = {t: _rows(x.con, t) for t in ("lv_hit", "lv_part_events", "lv_part_encounters")}
        sql.split_persons(x.con, ranges, folder)
        assert (folder / "events").is_dir() == split
        got: dict[str, list[pd.DataFrame]] = {t: [] for t in whole}
        for part in range(parts):
            sql.build_hits(x.con, part, ranges, folder)
            for t in whole:
                rows = _rows(x.con, t)
                key = x.con.execute(f"SELECT DISTINCT {ranges.key('person_id')} FROM {t}").fetchall()
                assert key in ([(part,)], []), t
                got[t].append(rows)
            cs = x.con.execute("SELECT cs FROM lv_hit").df().cs
            assert cs.is_monotonic_increasing  # clustered by code set: criteria skip the other sets' blocks
        for t, frames in got.items():
            both = pd.concat(frames).sort_values(list(whole[t].columns)).reset_index(drop=True)
            assert len(both) == len(whole[t]) > 100, t
            pd.testing.assert_frame_equal(both, whole[t], obj=t)
