"""Validation on Spark (``lowvalue.data.spark_extract``) gives DuckDB's outcome: the same accepted rows, quarantine
(reason codes, reasons, source columns), counts and warnings, from the same SQL rendered for each engine.

One extract with a value for every check, read as CSV (Windows-1252, so the encoding is sniffed on the driver) and as
typed Parquet (events split over two files, so source rows run on across files), opened by both engines; Spark
reads the CSV extract through a ``file://`` URI.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extract_fixtures import ENCOUNTERS, EVENTS, PERSONS, write_extract  # noqa: E402

pytest.importorskip("pyspark")
if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
    pytest.skip("the Spark engine needs Java 17 (java on PATH or JAVA_HOME)", allow_module_level=True)

from lowvalue.data import spark_extract  # noqa: E402
from lowvalue.data.extract import open_extract  # noqa: E402
from lowvalue.engine import spark  # noqa: E402
from lowvalue.errors import InputError  # noqa: E402

PERSONS_BAD = [
    "P1,1950-01-01,F,Uppsala,VC Gränby,",  # duplicate key
    "P3,1950-13-01,X,Uppsala,,",  # bad date, unknown sex
    "P4,19500101,kvinna,Gävle,,1949-01-01",  # compact date; death before birth
    "P5,1850-01-01,okänd,Gävle,,",  # implausible date
    ",1960-01-01,M,Gävle,,",  # missing key
    "P6,1960/02/03,MAN,Gävle,,2099-01-01",  # slashes; death in the future
    "P7,1960-2-3 10:00,U,Gävle,,",  # a date with a time (dropped), one-digit month
    "P8,2025,F,Gävle,,",  # a year alone is not a date
]
ENCOUNTERS_BAD = [
    "E3,P9,2025-03-01 09:00,,primary_care,VC Gränby,-5",  # unknown person, negative cost
    "E4,P1,2025-03-01T10:00:00+01:00,2025-03-01 08:00,inpatient,Medicin,\"1 234,5\"",  # offset; end before start
    "E5,P1,20250301 1405,,Outpatient,Ortopedi,\"12,5\"",  # compact time; decimal comma; setting in capitals
    "E6,P1,2025/03/01 14:05,,ward,Ortopedi,\"1,234\"",  # unknown setting; ambiguous number
    "E7,P2,2025-03-01 10:00:00Z,,emergency,Akuten,1e3",  # Z
    "E8,P1,1949-12-31 10:00,,outpatient,Ortopedi,",  # before birth
    "E9,P2,2025-07-01 10:00,,outpatient,Ortopedi,",  # after death
    "E10,P1,2025-03-01 25:00,,outpatient,Ortopedi,1d",  # bad time; Java's 1d is not a number
    "E11,P1,2025-03-01 10:00-0230,,outpatient,Ortopedi,NaN",
    "E1,P1,2025-03-01 09:00,2025-03-01 09:30,primary_care,VC Gränby,1200",  # duplicate key
]
EVENTS_BAD = [
    EVENTS[0],  # exact duplicate
    "P1,E1,not a time,diagnosis,ICD-10-SE,J06.9,,,,",
    "P1,E1,2025-03-01 09:20,lab,NPU,NPU01,<5,mmol/L,,",  # censored
    "P1,E1,2025-03-01 09:21,lab,NPU,NPU01,\"> 0,5\",mmol/L,,",  # censored with a decimal comma
    "P1,E1,2025-03-01 09:22,lab,NPU,NPU02,Ej påvisad.,,,",  # qualitative
    "P1,E1,2025-03-01 09:23,lab,NPU,NPU02,++,,,",
    "P1,E1,2025-03-01 09:24,lab,NPU,NPU03,12..5,,,",  # not a number
    "P1,E1,2025-03-01 09:25,lab,NPU,NPU03,hög,,,",
    "P1,E1,2025-03-01 09:26,lab,NPU,NPU03,\"1,234\",,,",  # ambiguous
    "P1,E1,2025-03-01 09:27,procedure,KVÅ,AB123,,,-1,",  # days supply out of range
    "P1,E1,2025-03-01 09:28,medication,ATC,J01,,,3651,1e-5",
    "P1,E1,2025-03-01 09:29,medication,ATC,J01,,,2.5,",  # not a whole number
    "P1,E2,2025-03-01 09:30,diagnosis,ICD-10-SE,J06.9,,,,",  # encounter of another person
    "P1,E99,2025-03-01 09:31,diagnosis,ICD-10-SE,J06.9,,,,",  # unknown encounter
    "P1,E1,2025-03-01 09:32,symptom,ICD-10-SE,J06.9,,,,",  # unknown kind
    "P1,E1,2025-03-01 09:33,diagnosis,ICD-10-SE,J\x0006.9,,,,",  # NUL byte
    "P2,E2,2025-07-01 10:00,diagnosis,ICD-10-SE,J06.9,,,,",  # after death
    "P1,,2025-03-01 09:34:05.123456,observation,LOCAL,BMI,\"  27,1 \",kg/m2,,",
    "P1,,2025-03-01T09:35:00+02,observation,LOCAL,BMI,27.1,kg/m2,,",  # an offset among times without
]


@pytest.fixture(scope="module")
def session():
    return spark.session()


def _pairs(extract, frames: bool) -> dict[str, list[dict]]:
    """Accepted rows of each table in source order (Spark: the accepted frames ordered by their row id)."""
    out = {}
    for t in ("persons", "encounters", "events"):
        if frames:
            table = spark._to_arrow(extract.frames[t].orderBy(spark_extract.ROWID).drop(spark_extract.ROWID), age=False)
        else:
            table = extract.con.execute(f"SELECT * FROM {t}").to_arrow_table()
        out[t] = table.to_pylist()
    return out


def _same(source: Path, session, tmp_path: Path, spark_source: str | None = None) -> None:
    duck = open_extract(source, quarantine_dir=tmp_path / "q-duckdb")
    sp = spark_extract.open_extract(session, spark_source or source, quarantine_dir=tmp_path / "q-spark")
    assert sp.sources == duck.sources
    assert {t: vars(c) for t, c in sp.counts.items()} == {t: vars(c) for t, c in duck.counts.items()}
    assert sp.warnings == duck.warnings
    assert sp.fingerprint == duck.fingerprint and sp.formats == duck.formats
    assert all(c.read == c.accepted + c.quarantined for c in sp.counts.values())
    assert _pairs(sp, True) == _pairs(duck, False)
    assert set(sp.quarantine_files) == set(duck.quarantine_files)
    for t in duck.quarantine_files:
        a, b = (pq.read_table(x.quarantine_files[t]) for x in (duck, sp))
        assert a.column_names == b.column_names
        assert [repr(r) for r in a.to_pylist()] == [repr(r) for r in b.to_pylist()], t  # repr: NaN equals NaN
    duck.close()
    sp.close()


def test_every_check_on_csv_gives_duckdbs_outcome(session, tmp_path):
    data = write_extract(tmp_path / "data", persons=PERSONS + PERSONS_BAD, encounters=ENCOUNTERS + ENCOUNTERS_BAD,
                         events=EVENTS + EVENTS_BAD, encoding="cp1252")
    duck = open_extract(data)
    reasons = {c for t in duck.counts.values() for c in t.reasons}
    assert duck.formats["events"].startswith("csv cp1252") and duck.warnings
    assert {"duplicate_key", "duplicate_row", "unknown_person", "unknown_encounter", "encounter_of_other_person",
            "before_birth", "after_death", "death_before_birth", "end_before_start", "negative_cost",
            "days_supply_out_of_range", "nul_byte:code", "ambiguous_number:value", "ambiguous_number:cost",
            "non_numeric:value", "bad_timestamp:start_time", "bad_date:birth_date", "implausible_date:birth_date",
            "missing:person_id", "unknown_sex", "unknown_setting", "unknown_kind"} <= reasons, reasons
    _same(data, session, tmp_path, spark_source=data.as_uri())  # Spark reads a file:// URI like the folder


def _typed_parquet(folder: Path) -> Path:
    folder.mkdir(parents=True)
    d, ts = pa.date32(), pa.timestamp("us")
    pq.write_table(pa.table({
        "person_id": ["P1", "P2", "P1", None, "P3"],
        "birth_date": pa.array([dt.date(1950, 1, 1), dt.date(1960, 5, 5), dt.date(1950, 1, 1), dt.date(1970, 1, 1),
                                dt.date(1800, 1, 1)], d),
        "sex": ["F", "m", "F", "K", "x"],
        "death_date": pa.array([None, dt.date(2025, 6, 30), None, None, None], d)}), folder / "persons.parquet")
    pq.write_table(pa.table({
        "encounter_id": ["E1", "E2", "E3"], "person_id": ["P1", "P2", "P9"],
        "start_time": pa.array([dt.datetime(2025, 3, 1, 9), dt.datetime(2025, 3, 2, 10), dt.datetime(2025, 3, 3)], ts),
        "end_time": pa.array([dt.datetime(2025, 3, 1, 8), None, None], ts),
        "setting": ["primary_care", "outpatient", "inpatient"], "unit": ["VC Gränby", "Ortopedi", None],
        "cost": pa.array([1200.0, -1.0, float("inf")], pa.float64())}), folder / "encounters.parquet")
    (folder / "events").mkdir()
    rows = {
        "person_id": ["P1", "P1", "P2", "P1", "P2", "P1"], "encounter_id": ["E1", "E1", "E2", None, "E1", "E1"],
        "time": pa.array([dt.datetime(2025, 3, 1, 9, 10)] * 2 + [dt.datetime(2025, 3, 2, 10, 5), None,
                                                                  dt.datetime(2025, 7, 1), dt.datetime(2025, 3, 1)], ts),
        "kind": ["diagnosis", "diagnosis", "lab", "lab", "lab", "medication"],
        "system": ["ICD-10-SE", "ICD-10-SE", "NPU", "NPU", "NPU", "ATC"],
        "code": ["J06.9", "J06.9", "NPU08669", "NPU08669", "NPU08669", "J01"],
        "value": pa.array([None, None, 5.2, float("nan"), 1.0, None], pa.float64()),
        "days_supply": pa.array([None, None, None, None, None, 9999], pa.int64())}
    table = pa.table(rows)
    pq.write_table(table.slice(0, 3), folder / "events" / "part-0.parquet")
    pq.write_table(table.slice(3), folder / "events" / "part-1.parquet")
    return folder


def test_typed_parquet_over_two_files_gives_duckdbs_outcome(session, tmp_path):
    data = _typed_parquet(tmp_path / "data")
    _same(data, session, tmp_path)


def test_a_csv_line_with_too_many_fields_is_one_line(session, tmp_path):
    data = write_extract(tmp_path / "data", events=EVENTS + ["P1,E1,2025-03-01 09:10,diagnosis,ICD-10-SE,J06.9,,,,,x"])
    with pytest.raises(InputError) as duck:
        open_extract(data)
    with pytest.raises(InputError) as sp:
        spark_extract.open_extract(session, data)
    assert "Expected Number of Columns" in str(sp.value) and "events.csv" in str(sp.value)
    assert "events.csv" in str(duck.value)


def test_a_remote_folder_spark_cannot_open_is_one_line(session):
    with pytest.raises(InputError) as err:
        spark_extract.open_extract(session, "s3a://no-such-bucket/region")
    assert "s3a://no-such-bucket/region" in str(err.value) and "\n" not in str(err.value)
