"""Person partitions: each person's rows in exactly one partition, read from the split files or through a filter on
the extract's tables, with the same ``lv_hit`` and partition views either way."""

from __future__ import annotations

from pathlib import Path

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
        for parts in (2, 3, 7):
            key = x.con.execute(f"SELECT person_id, {sql.partition_key('person_id', parts)} AS k FROM persons").df()
            assert set(key.k) <= set(range(parts)) and len(set(key.k)) == parts
            for part in range(parts):
                mine = x.con.execute(f"SELECT person_id FROM persons WHERE {sql.partition_sql('person_id', part, parts)}").df()
                assert sorted(mine.person_id) == sorted(key.person_id[key.k == part]), (parts, part)


@pytest.mark.parametrize("split", [False, True])
def test_partitions_hold_the_same_hits_and_rows_split_or_filtered(monkeypatch, split):
    """Three partitions' ``lv_hit`` and ``lv_part_*`` together are the single partition's, row for row (row ids
    included), whether the extract was split into files (``SPLIT_FROM`` reached) or each partition filters it."""
    monkeypatch.setattr(sql, "SPLIT_FROM", 3 if split else 4)
    parts = 3
    with open_extract(EXAMPLE) as x, private_workdir("partitions") as folder:
        sql.prepare(x.con)
        sql.ensure_sets(x.con, sql.code_sets(RS))
        sql.build_hits(x.con)
        whole = {t: _rows(x.con, t) for t in ("lv_hit", "lv_part_events", "lv_part_encounters")}
        sql.split_persons(x.con, parts, folder)
        assert (folder / "events").is_dir() == split
        got: dict[str, list[pd.DataFrame]] = {t: [] for t in whole}
        for part in range(parts):
            sql.build_hits(x.con, part, parts, folder)
            for t in whole:
                rows = _rows(x.con, t)
                key = x.con.execute(f"SELECT DISTINCT {sql.partition_key('person_id', parts)} FROM {t}").fetchall()
                assert key in ([(part,)], []), t
                got[t].append(rows)
            cs = x.con.execute("SELECT cs FROM lv_hit").df().cs
            assert cs.is_monotonic_increasing  # clustered by code set: criteria skip the other sets' blocks
        for t, frames in got.items():
            both = pd.concat(frames).sort_values(list(whole[t].columns)).reset_index(drop=True)
            assert len(both) == len(whole[t]) > 100, t
            pd.testing.assert_frame_equal(both, whole[t], obj=t)
