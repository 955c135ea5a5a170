"""Issue 12 part 4: adapters fail loudly, never silently.

1. values: MEDS reads ``numeric_value`` or ``value``; no value column is said in conversion.json (and warned about
   when labs are present); a missing required column is an InputError naming file and column, in every adapter.
2. nothing vanishes: only rows duplicated in the source count as duplicates; source tables present but not
   converted are listed in conversion.json with the reason.
3. adapter CSV reading is the canonical reader's: UTF-8 with/without BOM, cp1252, ``; , TAB |``, .csv.gz, and
   its one-line errors.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from adapters import fixtures as fx
from lowvalue.cli import main
from lowvalue.data.adapters import convert, detect_format
from lowvalue.errors import InputError


def manifest(out: Path) -> dict:
    return json.loads((out / "conversion.json").read_text())


def events(out: Path, where: str = "true") -> list[dict]:
    return duckdb.sql(f"SELECT * FROM read_parquet('{out}/events.parquet') WHERE {where}").df().to_dict("records")


def rewrite_csv(path: Path, *, encoding: str = "utf-8", delimiter: str = ",", edit=None) -> None:
    """Rewrite a fixture CSV (plain or .gz) in another encoding / delimiter, optionally editing its rows."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    if edit:
        rows = edit(rows)
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    with opener(path, "wb") as f:
        f.write(buf.getvalue().encode(encoding))


def rename_column(path: Path, old: str, new: str) -> None:
    rewrite_csv(path, edit=lambda rows: [[new if c == old else c for c in rows[0]], *rows[1:]])


# --------------------------------------------------------------------------- 1. values and required columns


def _meds_rename(src: Path, old: str, new: str | None) -> None:
    for f in sorted((src / "data").rglob("*.parquet")):
        t = pq.read_table(f)
        t = t.drop([old]) if new is None else t.rename_columns([new if n == old else n for n in t.column_names])
        pq.write_table(t, f)


def test_meds_reads_value_column_when_numeric_value_is_absent(tmp_path):
    src = fx.write_meds(tmp_path / "src")
    _meds_rename(src, "numeric_value", "value")          # as MIMIC-IV demo MEDS exports name it
    convert("meds", src, tmp_path / "out")
    hb = events(tmp_path / "out", "code = '718-7'")
    assert sorted(r["value"] for r in hb) == [13.5, 120.0]   # LOINC//718-7 has no unit; LAB//51222//g/dL is converted
    assert any("'value'" in n for n in manifest(tmp_path / "out")["notes"])


def test_meds_without_any_value_column_says_so_and_warns(tmp_path):
    src = fx.write_meds(tmp_path / "src")
    _meds_rename(src, "numeric_value", None)
    report = convert("meds", src, tmp_path / "out")
    m = manifest(tmp_path / "out")
    assert any("no numeric_value" in n for n in m["notes"])
    assert any("lab" in w and "without values" in w for w in m["warnings"])
    assert "warning:" in report.summary()


def test_meds_with_values_has_no_warning(tmp_path):
    src = fx.write_meds(tmp_path / "src")
    convert("meds", src, tmp_path / "out")
    assert manifest(tmp_path / "out")["warnings"] == []


@pytest.mark.parametrize("fmt, file, column", [
    ("synthea", "observations.csv", "VALUE"),
    ("synthea", "imaging_studies.csv", "PROCEDURE_CODE"),
    ("omop", "measurement.csv", "value_as_number"),
    ("mimic-iv", "hosp/labevents.csv.gz", "valuenum"),
    ("mimic-iv", "hosp/prescriptions.csv.gz", "drug"),
])
def test_missing_required_column_is_an_error_naming_file_and_column(tmp_path, fmt, file, column):
    src = {"synthea": fx.write_synthea, "omop": fx.write_omop, "mimic-iv": fx.write_mimic}[fmt](tmp_path / "src")
    if column == "PROCEDURE_CODE":  # imaging needs a procedure code or a modality
        rename_column(src / file, "PROCEDURE_CODE", "PROC")
        rename_column(src / file, "MODALITY_CODE", "MOD")
    else:
        rename_column(src / file, column, "renamed")
    with pytest.raises(InputError) as e:
        convert(fmt, src, tmp_path / "out")
    msg = str(e.value)
    assert Path(file).name in msg and f"'{column}'" in msg and "\n" not in msg


def test_meds_missing_code_column_names_it(tmp_path):
    src = fx.write_meds(tmp_path / "src")
    _meds_rename(src, "code", "kod")
    with pytest.raises(InputError) as e:
        convert("meds", src, tmp_path / "out")
    assert "'code'" in str(e.value) and "data" in str(e.value)


def test_meds_unreadable_parquet_is_one_line_error(tmp_path):
    src = fx.write_meds(tmp_path / "src")
    (src / "data" / "train" / "9.parquet").write_bytes(b"PAR1 this is not parquet")
    res = CliRunner().invoke(main, ["convert", "--from", "meds", str(src), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    assert "9.parquet" in res.output and "Traceback" not in res.output


# --------------------------------------------------------------------------- 2. duplicates and unconverted tables


def test_rows_differing_in_the_source_are_not_duplicates(tmp_path):
    src = fx.write_mimic(tmp_path / "src")

    def edit(rows):
        first = rows[1]
        twin = ["7", *first[1:]]            # same lab, time and value, another labevent_id: not a duplicate
        return [*rows, twin, list(twin)]    # ... but the second twin is an exact copy of the first: a duplicate
    rewrite_csv(src / "hosp" / "labevents.csv.gz", edit=edit)
    report = convert("mimic-iv", src, tmp_path / "out")
    lab = report.tables["labevents"]
    assert lab.read == 8 and lab.reasons == {"after_death": 1, "duplicate_row": 1}
    assert lab.written == 6 and lab.repairs.get("identical_event_merged") == 1
    assert len(events(tmp_path / "out", "code = '718-7' AND value = 85.0")) == 1


def test_diagnoses_with_another_seq_num_are_not_duplicates(tmp_path):
    src = fx.write_mimic(tmp_path / "src")
    rewrite_csv(src / "hosp" / "diagnoses_icd.csv.gz", edit=lambda rows: [*rows, ["10000001", "20000001", "3", "N179", "10"]])
    report = convert("mimic-iv", src, tmp_path / "out")
    t = report.tables["diagnoses_icd"]
    assert "duplicate_row" not in t.reasons and t.written == 3 and t.read == t.written + t.quarantined


def test_present_but_unconverted_tables_are_listed_with_reason(tmp_path):
    src = fx.write_mimic(tmp_path / "src")
    fx._csv(src / "hosp" / "emar.csv.gz", ["subject_id", "emar_id"], [["10000001", "1"]], gz=True)
    fx._csv(src / "icu" / "chartevents.csv.gz", ["subject_id", "itemid"], [["10000001", "220228"]], gz=True)
    fx._csv(src / "hosp" / "d_labitems.csv.gz", ["itemid", "label"], [["51222", "Hemoglobin"]], gz=True)
    convert("mimic-iv", src, tmp_path / "out")
    nc = manifest(tmp_path / "out")["not_converted"]
    assert set(nc) == {"hosp/emar.csv.gz", "icu/chartevents.csv.gz", "hosp/d_labitems.csv.gz"}
    assert nc["hosp/emar.csv.gz"] == "not used by lowvalue" and "labevents" in nc["icu/chartevents.csv.gz"]


def test_synthea_unconverted_tables_include_empty_ones(tmp_path):
    src = fx.write_synthea(tmp_path / "src")
    fx._csv(src / "careplans.csv", ["Id", "START", "PATIENT"], [["c-1", "2020-01-01", "p-1"]])
    report = convert("synthea", src, tmp_path / "out")
    nc = manifest(tmp_path / "out")["not_converted"]
    assert set(nc) == {"allergies.csv", "careplans.csv"} and nc["careplans.csv"] == "not used by lowvalue"
    assert "not converted" in report.summary()


# --------------------------------------------------------------------------- 3. encodings and delimiters


def _quarantined(out: Path, table: str) -> list[dict]:
    return duckdb.sql(f"SELECT * FROM read_parquet('{out}/quarantine/{table}.parquet')").df().to_dict("records")


@pytest.mark.parametrize("encoding, delimiter", [("cp1252", ";"), ("utf-8-sig", ","), ("utf-8-sig", "\t"), ("cp1252", "|")])
def test_synthea_encodings_and_delimiters_like_the_canonical_reader(tmp_path, encoding, delimiter):
    src = fx.write_synthea(tmp_path / "src")
    for f in src.glob("*.csv"):
        if f.stat().st_size:
            edit = (lambda rows: [*rows, ["2021-05-02", "", "p-99", "e-4", "1", "Sjögren – syndrom"]]) if f.name == "conditions.csv" else None
            rewrite_csv(f, encoding=encoding, delimiter=delimiter, edit=edit)
    report = convert("synthea", src, tmp_path / "out")
    reference = convert("synthea", fx.write_synthea(tmp_path / "ref"), tmp_path / "ref_out")
    assert report.canonical == reference.canonical
    assert report.tables["conditions"].read == 6
    assert "Sjögren – syndrom" in {r["DESCRIPTION"] for r in _quarantined(tmp_path / "out", "conditions")}
    assert detect_format(src) == "synthea"


def test_mimic_cp1252_semicolon_csv_gz(tmp_path):
    src = fx.write_mimic(tmp_path / "src")
    rewrite_csv(src / "hosp" / "prescriptions.csv.gz", encoding="cp1252", delimiter=";",
                edit=lambda rows: [*rows, ["10000001", "20000001", "3", "2150-05-02 08:00:00", "", "MAIN", "Ibuprofén €", "", "0",
                                           "", "", "", "PO"]])
    report = convert("mimic-iv", src, tmp_path / "out")
    assert report.tables["prescriptions"].read == 3 and report.tables["prescriptions"].quarantined == 0
    assert "ibuprofén €" in {r["code"] for r in events(tmp_path / "out", "kind = 'medication'")}


def test_invalid_utf8_after_the_first_mebibyte_falls_back_to_cp1252(tmp_path):
    src = fx.write_synthea(tmp_path / "src")
    row = ["2021-05-01T09:00:00Z", "p-2", "e-3", "vital-signs", "8302-2", "Body Height", "180.1", "cm", "numeric"]
    many = 15_000  # > 1 MiB of clean UTF-8 before the first cp1252 byte
    rewrite_csv(src / "observations.csv", edit=lambda rows: [*rows, *[row] * many])
    with (src / "observations.csv").open("ab") as f:
        f.write("2021-05-01T09:00:00Z,p-2,e-3,survey,72166-2,Rökare,Never,,text\r\n".encode("cp1252"))
    assert (src / "observations.csv").stat().st_size > 1 << 20
    report = convert("synthea", src, tmp_path / "out")
    assert report.tables["observations"].read == 7 + many + 1


def test_undecodable_bytes_are_one_line_error_with_line(tmp_path):
    src = fx.write_synthea(tmp_path / "src")
    with (src / "conditions.csv").open("ab") as f:
        f.write(b"2021-05-02,,p-2,e-3,1,bad \x81 byte\n")
    res = CliRunner().invoke(main, ["convert", "--from", "synthea", str(src), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert "\n" not in line and "conditions.csv:7" in line and "unreadable encoding" in line


def test_malformed_csv_is_one_line_error(tmp_path):
    src = fx.write_mimic(tmp_path / "src")
    with gzip.open(src / "hosp" / "diagnoses_icd.csv.gz", "ab") as f:
        f.write(b'10000001,20000001,4,"N17\n')
    res = CliRunner().invoke(main, ["convert", "--from", "mimic-iv", str(src), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    assert "diagnoses_icd.csv.gz" in res.output and "malformed CSV" in res.output and "Traceback" not in res.output
