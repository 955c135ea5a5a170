"""Reading an extract: locating files, formats, encodings, columns, fatal errors."""

from __future__ import annotations

import gzip

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from extract_fixtures import ENCOUNTERS, EVENTS, PERSONS, write_extract

from lowvalue.data.extract import open_extract
from lowvalue.data.schema import TABLES
from lowvalue.errors import InputError

CANONICAL_TYPES = {"string": "VARCHAR", "date32[day]": "DATE", "timestamp[us]": "TIMESTAMP", "double": "DOUBLE", "int32": "INTEGER"}


def test_clean_csv_extract_has_canonical_tables(tmp_path):
    ex = open_extract(write_extract(tmp_path / "x"))
    for name, table in TABLES.items():
        described = ex.con.execute(f"DESCRIBE {name}").fetchall()
        assert [(r[0], r[1]) for r in described] == [(f.name, CANONICAL_TYPES[str(f.type)]) for f in table.schema]
    assert ex.quarantined_rows == 0
    assert {t: (c.read, c.accepted) for t, c in ex.counts.items()} == {"persons": (2, 2), "encounters": (2, 2), "events": (4, 4)}
    ev = ex.to_pandas("events")
    assert ev["days_supply"].tolist()[1] == 10 and ev["cost"].tolist()[1] == 85.5
    assert ex.sources["events"].endswith("events.csv")
    assert len(ex.fingerprint) == 64


def test_missing_file_names_expected_file(tmp_path):
    d = write_extract(tmp_path / "x")
    (d / "events.csv").unlink()
    with pytest.raises(InputError) as err:
        open_extract(d)
    msg = err.value.one_line()
    assert f"{d}/events.(parquet|csv" in msg and "file not found" in msg


def test_missing_folder(tmp_path):
    with pytest.raises(InputError, match="extract folder not found"):
        open_extract(tmp_path / "nope")


def test_missing_required_column_names_file_and_column(tmp_path):
    d = write_extract(tmp_path / "x", headers={"events": "person_id,encounter_id,time,kind,system,kod,value,unit,days_supply,cost"})
    with pytest.raises(InputError) as err:
        open_extract(d)
    msg = err.value.one_line()
    assert msg.startswith(f"{d}/events.csv:")
    assert "column 'code': required column missing (found:" in msg and "kod" in msg


def test_column_names_normalised_extra_ignored_optional_absent(tmp_path):
    d = write_extract(
        tmp_path / "x",
        headers={"persons": "\ufeff Person_ID ,BIRTH_DATE,Sex,Extra"},
        persons=["P1,1950-01-01,F,x", "P2,1960-05-05,M,y"],
    )
    ex = open_extract(d)
    assert ex.counts["persons"].accepted == 2
    assert ex.to_pandas("persons")["municipality"].isna().all()
    s = ex.summary()
    assert "persons: extra columns ignored: extra" in s
    assert "persons: optional columns absent (NULL): municipality, listing_unit, death_date" in s


def test_unreadable_encoding_utf16_without_bom_names_file_and_line(tmp_path):
    d = write_extract(tmp_path / "x")
    text = (d / "events.csv").read_text()
    (d / "events.csv").write_bytes(text.encode("utf-16-le"))
    with pytest.raises(InputError) as err:
        open_extract(d)
    assert err.value.one_line().startswith(f"{d}/events.csv:1:")
    assert "unreadable encoding" in str(err.value) and "line 1" in str(err.value)


def test_unreadable_encoding_binary_garbage_reports_line(tmp_path):
    d = write_extract(tmp_path / "x")
    good = (d / "events.csv").read_bytes()
    (d / "events.csv").write_bytes(good + b"P1,E1,2025-03-01,diagnosis,ICD-10-SE,\x81\x00\x90junk,,,,\n")
    with pytest.raises(InputError) as err:
        open_extract(d)
    assert err.value.row == 6  # header + 4 rows, the garbage is on line 6
    assert "unreadable encoding" in err.value.one_line()


def test_utf8_bom_and_utf16_bom_read(tmp_path):
    d = write_extract(tmp_path / "x", encoding="utf-8-sig")
    ex = open_extract(d)
    assert ex.counts["persons"].accepted == 2 and ex.to_pandas("persons")["listing_unit"][0] == "VC Gränby"
    d2 = write_extract(tmp_path / "y", encoding="utf-16")
    assert open_extract(d2).to_pandas("persons")["listing_unit"][0] == "VC Gränby"


def test_swedish_export_semicolon_decimal_comma_cp1252(tmp_path):
    d = write_extract(
        tmp_path / "se",
        headers={
            "persons": "person_id;birth_date;sex;municipality;listing_unit;death_date",
            "encounters": "encounter_id;person_id;start_time;end_time;setting;unit;cost",
            "events": "person_id;encounter_id;time;kind;system;code;value;unit;days_supply;cost",
        },
        persons=["P1;19500101;K;Åmål;Vårdcentral Åmål;", "P2;19600505;M;Växjö;Hälsocentral Öster;20250630"],
        encounters=[
            "E1;P1;20250301 0900;20250301 0930;primary_care;Vårdcentral Åmål;1 250,50",
            "E2;P2;20250302 1000;;Outpatient ;Ortopedkliniken Växjö;",
        ],
        events=[
            "P1;E1;20250301 0910;diagnosis;ICD-10-SE;J06.9;;;;",
            "P1;E1;20250301;procedure;KVÅ;AF012;;;;",
            "P2;E2;20250302 1005;lab;NPU;NPU02319;12,5;g/dL;;",
            "P2;E2;20250302 1010;medication;ATC;J01CE02;;;10;85,5",
        ],
        encoding="cp1252",
    )
    ex = open_extract(d)
    assert ex.quarantined_rows == 0
    p = ex.to_pandas("persons")
    assert p["listing_unit"].tolist() == ["Vårdcentral Åmål", "Hälsocentral Öster"]
    assert p["sex"].tolist() == ["F", "M"]
    assert str(p["birth_date"][0])[:10] == "1950-01-01"
    enc = ex.to_pandas("encounters")
    assert enc["cost"][0] == 1250.5 and enc["setting"][1] == "outpatient"
    assert enc["unit"][1] == "Ortopedkliniken Växjö"
    ev = ex.to_pandas("events")
    assert ev["system"][1] == "KVÅ"
    assert ev["value"][2] == 12.5 and ev["cost"][3] == 85.5
    assert str(ev["time"][0]) == "2025-03-01 09:10:00" and str(ev["time"][1]) == "2025-03-01 00:00:00"
    assert "cp1252" in ex.summary() and "';'" in ex.summary()


def test_cp1252_byte_after_first_chunk_is_found(tmp_path):
    rows = [f"P1,E1,2025-03-01 09:10,diagnosis,ICD-10-SE,J06.{i % 10},,,," for i in range(40000)]
    rows.append("P1,E1,2025-03-01 09:10,procedure,KVÅ,AF012,,,,")
    d = write_extract(tmp_path / "x", events=rows, encoding="cp1252")
    ex = open_extract(d)
    assert ex.con.execute("SELECT system FROM events WHERE code = 'AF012'").fetchone()[0] == "KVÅ"


def test_timestamp_and_date_formats(tmp_path):
    d = write_extract(
        tmp_path / "x",
        events=[
            "P1,,2025-03-01 14:05,diagnosis,X,A,,,,",
            "P1,,2025-03-01 14:05:30,diagnosis,X,B,,,,",
            "P1,,2025-03-01T14:05:00Z,diagnosis,X,C,,,,",
            "P1,,2025-03-01T14:05:00+01:00,diagnosis,X,D,,,,",
            "P1,,2025-03-01T14:05:00-0230,diagnosis,X,E,,,,",
            "P1,,20250301 1405,diagnosis,X,F,,,,",
            "P1,,2025-03-01,diagnosis,X,G,,,,",
            "P1,,2025/03/01,diagnosis,X,H,,,,",
            "P1,,20250301,diagnosis,X,I,,,,",
        ],
        persons=["P1,1950/01/01,female,,,", "P2,19600505,man,,,"],
    )
    ex = open_extract(d)
    assert ex.quarantined_rows == 0
    got = dict(ex.con.execute("SELECT code, strftime(time, '%Y-%m-%d %H:%M:%S') FROM events").fetchall())
    assert got == {
        "A": "2025-03-01 14:05:00", "B": "2025-03-01 14:05:30", "C": "2025-03-01 14:05:00",
        "D": "2025-03-01 13:05:00", "E": "2025-03-01 16:35:00", "F": "2025-03-01 14:05:00",
        "G": "2025-03-01 00:00:00", "H": "2025-03-01 00:00:00", "I": "2025-03-01 00:00:00",
    }


def test_gzip_csv_and_txt_tab_and_pipe(tmp_path):
    d = write_extract(tmp_path / "x")
    raw = (d / "events.csv").read_bytes()
    (d / "events.csv").unlink()
    with gzip.open(d / "events.csv.gz", "wb") as fh:
        fh.write(raw)
    (d / "persons.csv").write_text((d / "persons.csv").read_text().replace(",", "\t"))
    (d / "persons.csv").rename(d / "persons.txt")
    (d / "encounters.csv").write_text((d / "encounters.csv").read_text().replace(",", "|"))
    ex = open_extract(d)
    assert ex.quarantined_rows == 0 and ex.counts["events"].accepted == 4
    assert ex.sources["persons"].endswith("persons.txt")


def test_malformed_csv_line_is_fatal_with_line(tmp_path):
    d = write_extract(tmp_path / "x", events=[*EVENTS, "P1,E1,2025-03-01,diagnosis,X,A,,,,,,EXTRA"])
    with pytest.raises(InputError) as err:
        open_extract(d)
    assert err.value.row == 6 and "malformed CSV on line 6" in str(err.value)


def _tables():
    def frame(header, rows):
        return pd.DataFrame([r.split(",") for r in rows], columns=header.split(",")).replace("", None)

    from extract_fixtures import ENCOUNTERS_HEADER, EVENTS_HEADER, PERSONS_HEADER

    return {
        "persons": frame(PERSONS_HEADER, PERSONS),
        "encounters": frame(ENCOUNTERS_HEADER, ENCOUNTERS),
        "events": frame(EVENTS_HEADER, EVENTS),
    }


def test_parquet_input_typed_and_string_columns(tmp_path):
    d = tmp_path / "pq"
    d.mkdir()
    frames = _tables()
    persons = pa.table({
        "person_id": ["P1", "P2"],
        "birth_date": pa.array([pd.Timestamp("1950-01-01").date(), pd.Timestamp("1960-05-05").date()], pa.date32()),
        "sex": ["F", "M"],
    })
    pq.write_table(persons, d / "persons.parquet")
    enc = frames["encounters"].copy()
    enc["start_time"] = pd.to_datetime(enc["start_time"])
    enc["cost"] = pd.to_numeric(enc["cost"])
    pq.write_table(pa.Table.from_pandas(enc, preserve_index=False), d / "encounters.parquet")
    (d / "events").mkdir()  # a folder of Parquet files, numbered across files by name
    ev = frames["events"]
    ev.loc[1, "value"] = "not a number"
    pq.write_table(pa.Table.from_pandas(ev.iloc[:2], preserve_index=False), d / "events" / "part-0.parquet")
    pq.write_table(pa.Table.from_pandas(ev.iloc[2:], preserve_index=False), d / "events" / "part-1.parquet")
    ex = open_extract(d)
    assert ex.counts["persons"].accepted == 2 and ex.counts["encounters"].accepted == 2
    assert ex.counts["events"].read == 4 and ex.counts["events"].quarantined == 1
    q = ex.to_pandas("quarantine_events")
    assert q["source_row"].tolist() == [2] and q["reason_code"].tolist() == ["non_numeric:value"]
    assert ex.to_pandas("events")["value"].tolist()[1] == 5.2
    assert ex.sources["events"] == str(d / "events")


def test_dataframe_and_arrow_input(tmp_path):
    frames = _tables()
    frames["events"] = pa.Table.from_pandas(frames["events"], preserve_index=False)
    ex = open_extract(frames)
    assert ex.sources == {"persons": "<DataFrame>", "encounters": "<DataFrame>", "events": "<DataFrame>"}
    assert ex.quarantined_rows == 0 and ex.counts["events"].accepted == 4
    assert ex.fingerprint == open_extract(_tables()).fingerprint  # the content, not the container
    changed = _tables()
    changed["events"].loc[0, "code"] = "J06.8"
    assert open_extract(changed).fingerprint != ex.fingerprint
    with pytest.raises(InputError, match="table 'events' missing"):
        open_extract({"persons": frames["persons"], "encounters": frames["encounters"]})


def test_given_connection_is_used(tmp_path):
    con = duckdb.connect()
    ex = open_extract(write_extract(tmp_path / "x"), con=con)
    assert ex.con is con
    assert con.execute("SELECT count(*) FROM events").fetchone()[0] == 4
    assert not [r for r in con.execute("SHOW ALL TABLES").fetchall() if r[2].startswith("_lv_")]


def test_fingerprint_depends_on_bytes(tmp_path):
    a = open_extract(write_extract(tmp_path / "a")).fingerprint
    b = open_extract(write_extract(tmp_path / "b")).fingerprint
    c = open_extract(write_extract(tmp_path / "c", events=EVENTS[:3])).fingerprint
    assert a == b != c
