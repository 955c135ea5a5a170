"""Validation: every quarantine reason code, reconciliation, quarantine output, determinism."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
import pytest
from extract_fixtures import ENCOUNTERS, EVENTS, PERSONS, write_extract
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lowvalue.data.extract import open_extract

# Each case: table, the bad row (CSV text), the expected reason codes of that row.
CASES = [
    ("persons", ",1970-01-01,F,,,", "missing:person_id"),
    ("persons", "P9,,F,,,", "missing:birth_date"),
    ("persons", "P9,1970-13-01,F,,,", "bad_date:birth_date"),
    ("persons", "P9,1970-01-01,F,,,19600101", "death_before_birth"),
    ("persons", "P9,1970-01-01,1,,,", "unknown_sex"),
    ("persons", "P9,1970-01-01,F,,,not-a-date", "bad_date:death_date"),
    ("persons", "P1,1970-01-01,F,,,", "duplicate_key"),
    ("encounters", "E9,P1,2025-03-01 25:99,,primary_care,x,", "bad_timestamp:start_time"),
    ("encounters", "E9,P1,2025-03-01,,Vårdcentral,x,", "unknown_setting"),
    ("encounters", "E9,P1,2025-03-01,,primary_care,x,-5", "negative_cost"),
    ("encounters", "E9,P1,2025-03-01,,primary_care,x,12 kr", "non_numeric:cost"),
    ("encounters", "E9,P1,2025-03-02,2025-03-01,primary_care,x,", "end_before_start"),
    ("encounters", "E9,P404,2025-03-01,,primary_care,x,", "unknown_person"),
    ("encounters", "E9,P1,1949-12-31,,primary_care,x,", "before_birth"),
    ("encounters", "E9,P2,2025-07-01,,primary_care,x,", "after_death"),
    ("encounters", "E1,P1,2025-03-01,,primary_care,x,", "duplicate_key"),
    ("encounters", "E9,,2025-03-01,,,x,", "missing:person_id;missing:setting"),
    ("events", "P1,E1,2025-03-01,diagnoses,ICD-10-SE,J06.9,,,,", "unknown_kind"),
    ("events", "P1,E1,2025-03-01,lab,NPU,X,hög,,,", "non_numeric:value"),
    ("events", "P1,E1,2025-03-01,medication,ATC,J01,,,7.5,", "non_numeric:days_supply"),
    ("events", "P1,E1,2025-03-01,medication,ATC,J01,,,-1,", "days_supply_out_of_range"),
    ("events", "P1,E1,2025-03-01,medication,ATC,J01,,,3651,", "days_supply_out_of_range"),
    ("events", "P1,E1,2025-03-01,medication,ATC,J01,,,,-3", "negative_cost"),
    ("events", "P404,,2025-03-01,diagnosis,ICD-10-SE,J06.9,,,,", "unknown_person"),
    ("events", "P1,E404,2025-03-01,diagnosis,ICD-10-SE,J06.9,,,,", "unknown_encounter"),
    ("events", "P1,E2,2025-03-01,diagnosis,ICD-10-SE,J06.9,,,,", "encounter_of_other_person"),
    ("events", "P1,,1949-12-31 23:59,diagnosis,ICD-10-SE,J06.9,,,,", "before_birth"),
    ("events", "P2,,2025-07-01 00:00,diagnosis,ICD-10-SE,J06.9,,,,", "after_death"),
    ("events", EVENTS[0], "duplicate_row"),
    ("events", "P1,E1,,,, ,,,,", "missing:time;missing:kind;missing:system;missing:code"),
    ("events", "P1,E1,yesterday,diagnosis,ICD-10-SE,J06.9,nan,,,", "bad_timestamp:time;non_numeric:value"),
]


def _with_row(tmp_path, table, row):
    base = {"persons": list(PERSONS), "encounters": list(ENCOUNTERS), "events": list(EVENTS)}
    base[table].append(row)
    return write_extract(tmp_path / "x", **base)


@pytest.mark.parametrize(("table", "row", "codes"), CASES, ids=[f"{t}-{c}" for t, _, c in CASES])
def test_each_reason_code(tmp_path, table, row, codes):
    ex = open_extract(_with_row(tmp_path, table, row), quarantine_dir=tmp_path / "q")
    c = ex.counts[table]
    assert c.quarantined == 1 and c.read == c.accepted + c.quarantined
    q = pd.read_parquet(tmp_path / "q" / f"{table}.parquet")
    assert list(q.columns[:3]) == ["source_row", "reason_code", "reason"]
    assert q["reason_code"].tolist() == [codes]
    assert q["source_row"].tolist() == [len({"persons": PERSONS, "encounters": ENCOUNTERS, "events": EVENTS}[table]) + 1]
    assert q["reason"][0] and "P1" not in q["reason"][0] and "P404" not in q["reason"][0]  # no identifiers in reasons
    for code in codes.split(";"):
        assert c.reasons[code] == 1
    # only the table with the bad row has a quarantine file
    assert sorted(p.name for p in (tmp_path / "q").iterdir()) == [f"{table}.parquet"]


def test_quarantined_parent_cascades_and_originals_kept(tmp_path):
    d = write_extract(
        tmp_path / "x",
        persons=[*PERSONS, "P3,1970-02-30,F,,,"],  # invalid date -> P3 quarantined
        encounters=[*ENCOUNTERS, "E3,P3,2025-03-01,,primary_care,x,", "E4,P1,2025-03-01,,akut,x,"],
        events=[*EVENTS, "P3,E3,2025-03-01,diagnosis,X,A,,,,", "P1,E4,2025-03-01,diagnosis,X,B,,,,"],
    )
    ex = open_extract(d)  # no quarantine_dir: DuckDB tables quarantine_<table>
    assert ex.to_pandas("quarantine_persons")["birth_date"].tolist() == ["1970-02-30"]  # as read
    enc = ex.to_pandas("quarantine_encounters").set_index("source_row")["reason_code"].to_dict()
    assert enc == {3: "unknown_person", 4: "unknown_setting"}
    ev = ex.to_pandas("quarantine_events").set_index("source_row")["reason_code"].to_dict()
    assert ev == {5: "unknown_person;unknown_encounter", 6: "unknown_encounter"}
    assert ex.quarantined_rows == 5


def test_duplicate_key_keeps_first_by_source_row(tmp_path):
    d = write_extract(tmp_path / "x", persons=[*PERSONS, "P1,1999-09-09,M,,,"])
    ex = open_extract(d)
    p = ex.to_pandas("persons")
    assert p["sex"].tolist() == ["F", "M"] and str(p["birth_date"][0])[:10] == "1950-01-01"


def test_reconciliation_and_summary_counts(tmp_path):
    d = write_extract(
        tmp_path / "x",
        persons=[*PERSONS, "P1,1950-01-01,F,,,", "P5,x,F,,,"],
        encounters=[*ENCOUNTERS, "E1,P1,2025-03-01,,primary_care,x,", "E7,P5,2025-03-01,,home,x,"],
        events=[*EVENTS, EVENTS[0], EVENTS[0], "P5,E7,2025-03-01,lab,NPU,X,1,,,", "P1,E1,2025-03-01,lab,NPU,X,x,,,"],
    )
    ex = open_extract(d, quarantine_dir=tmp_path / "q")
    for t, c in ex.counts.items():
        files = {"persons": 4, "encounters": 4, "events": 8}
        assert c.read == files[t] == c.accepted + c.quarantined
        n_q = len(pd.read_parquet(tmp_path / "q" / f"{t}.parquet"))
        assert n_q == c.quarantined
        assert ex.con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] == c.accepted
    assert (ex.counts["persons"].quarantined, ex.counts["encounters"].quarantined, ex.counts["events"].quarantined) == (2, 2, 4)
    s = ex.summary()
    assert "read = accepted + quarantined" in s
    assert any(line.split()[:4] == ["events", "8", "4", "4"] for line in s.splitlines())
    assert "duplicate_row 2" in s
    for pid in ("P1", "P2", "P5", "E1", "E7"):
        assert pid not in s  # counts only, no identifiers


def test_stale_quarantine_file_removed_and_output_deterministic(tmp_path):
    d = write_extract(tmp_path / "x", events=[*EVENTS, EVENTS[0], "P1,E1,x,diagnosis,X,A,,,,"])
    q = tmp_path / "q"
    q.mkdir()
    (q / "persons.parquet").write_bytes(b"stale")
    a = open_extract(d, quarantine_dir=q)
    assert not (q / "persons.parquet").exists()
    out1 = a.con.execute("SELECT * FROM events").fetchall()
    b = open_extract(d, quarantine_dir=q)
    assert b.con.execute("SELECT * FROM events").fetchall() == out1 and a.fingerprint == b.fingerprint
    assert pq.read_table(q / "events.parquet").column("source_row").to_pylist() == [5, 6]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from([*EVENTS, "P1,E2,2025-03-01,lab,NPU,X,1,,,", "P1,E1,2025-03-01,lab,NPU,X,1;2,,,",
                                  "P3,,2025-03-01,lab,NPU,X,,,,", "P1,E1,,lab,NPU,X,,,,"]), max_size=30))
def test_reconciliation_property(tmp_path_factory, rows):
    d = write_extract(tmp_path_factory.mktemp("h"), events=rows)
    ex = open_extract(d)
    c = ex.counts["events"]
    assert c.read == len(rows) == c.accepted + c.quarantined
    q = ex.to_pandas("quarantine_events")
    assert len(q) == c.quarantined and q["source_row"].is_monotonic_increasing
    assert set(q["source_row"]).isdisjoint(range(0)) and q["source_row"].between(1, len(rows)).all()
