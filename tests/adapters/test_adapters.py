"""Adapters: Synthea, OMOP, MEDS, MIMIC-IV fixtures -> canonical extract -> open_extract and scan."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from lowvalue import scan
from lowvalue.data.adapters import convert, detect_format
from lowvalue.cli import main
from lowvalue.data.extract import open_extract
from lowvalue.errors import InputError

from . import fixtures as fx

WRITERS = {"synthea": fx.write_synthea, "omop": fx.write_omop, "meds": fx.write_meds, "mimic-iv": fx.write_mimic}


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Each fixture written and converted once: fmt -> (src, out, report)."""
    done = {}
    for fmt, write in WRITERS.items():
        base = tmp_path_factory.mktemp(fmt.replace("-", ""))
        src = write(base / "src")
        out = base / "out"
        done[fmt] = (src, out, convert(fmt, src, out))
    return done


def rows(path: Path, where: str = "true") -> list[dict]:
    df = duckdb.sql(f"SELECT * FROM read_parquet('{path}') WHERE {where}").df()
    return df.to_dict("records")


# --------------------------------------------------------------------------- all formats


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_detect_format(fmt, converted):
    src, out, _ = converted[fmt]
    assert detect_format(src) == fmt
    assert detect_format(out) is None  # a canonical extract is none of them


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_output_reads_cleanly_and_counts_reconcile(fmt, converted):
    _, out, report = converted[fmt]
    with open_extract(out) as ex:
        assert ex.quarantined_rows == 0, ex.summary()
        assert {t: c.accepted for t, c in ex.counts.items()} == report.canonical
    manifest = json.loads((out / "conversion.json").read_text())
    for name, t in manifest["tables"].items():
        if t["role"] == "data":
            assert t["read"] == t["written"] + t["quarantined"], name
            assert t["quarantined"] == sum(1 for _ in rows(out / "quarantine" / f"{name}.parquet")) if t["quarantined"] else True
    # every event has its source row, in events.parquet order
    n_events = duckdb.sql(f"SELECT count(*) FROM read_parquet('{out}/events.parquet')").fetchall()[0][0]
    sc = duckdb.sql(f"SELECT min(event_row), max(event_row), count(*) FROM read_parquet('{out}/source_codes.parquet')").fetchall()[0]
    assert sc == (1, n_events, n_events) or n_events == 0


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_no_direct_identifiers_anywhere(fmt, converted):
    _, out, _ = converted[fmt]
    blobs = []
    for f in out.rglob("*"):
        if f.suffix == ".parquet":
            blobs.append(duckdb.sql(f"SELECT CAST(list(t) AS VARCHAR) FROM read_parquet('{f}') t").fetchall()[0][0] or "")
        elif f.is_file():
            blobs.append(f.read_text(errors="replace"))
    text = "\n".join(blobs)
    for secret in fx.SECRETS:
        assert secret not in text, (fmt, secret)


# --------------------------------------------------------------------------- Synthea


def test_synthea_rows_codes_and_quarantine(converted):
    _, out, report = converted["synthea"]
    t = report.tables
    assert (t["patients"].read, t["patients"].quarantined) == (5, 2)
    assert t["patients"].reasons == {"duplicate_key": 1, "missing:birth_date": 1}
    assert t["encounters"].reasons == {"unknown_person": 1}
    assert t["encounters"].repairs["end_before_start_end_set_null"] == 1
    assert t["encounters"].repairs["setting_defaulted"] == 1
    assert t["conditions"].reasons == {"unknown_person": 1, "missing:time": 1}
    assert t["conditions"].repairs["encounter_not_found_set_null"] == 1
    assert t["observations"].reasons == {"after_death": 2}
    assert t["medications"].reasons == {"duplicate_row": 1}
    assert (t["imaging_studies"].read, t["imaging_studies"].written, t["imaging_studies"].canonical_rows["events"]) == (3, 3, 1)
    assert t["immunizations"].read == 0 and "allergies" not in t
    enc = {r["encounter_id"]: r for r in rows(out / "encounters.parquet")}
    assert enc["e-1"]["setting"] == "primary_care" and enc["e-3"]["setting"] == "inpatient"
    assert enc["e-2"]["setting"] == "primary_care" and enc["e-6"]["setting"] == "outpatient"
    assert str(enc["e-5"]["start_time"]) == "2021-06-01 06:00:00"  # +02:00 converted to UTC
    assert enc["e-5"]["end_time"] is None or str(enc["e-5"]["end_time"]) == "NaT"
    med = rows(out / "events.parquet", "kind = 'medication'")
    codes = {(r["system"], r["code"]) for r in med}
    assert ("ATC", "J01CR02") in codes                   # amoxicillin/clavulanate by name
    assert ("RxNorm", "857005") in codes                 # hydrocodone combination stays RxNorm (opioids code set)
    assert ("RxNorm", "999999") in codes                 # ophthalmic erythromycin is not a systemic antibiotic
    hb = rows(out / "events.parquet", "code = '718-7'")
    assert [(r["value"], r["unit"]) for r in hb] == [(85.0, "g/L")]
    assert rows(out / "events.parquet", "code = '2160-0'")[0]["unit"] == "umol/L"
    assert report.codes["RxNorm"]["mapped_to"] == {"ATC": 1}
    src = rows(out / "source_codes.parquet", "mapped")
    assert [(r["source_table"], r["source_system"], r["source_code"]) for r in src] == [("medications", "RxNorm", "562251")]


def test_synthea_scan_finds_antibiotics_for_bronchitis(converted):
    _, out, _ = converted["synthea"]
    flags = scan(out, only=["LV-ABX-004"]).flags
    assert list(flags["person_id"]) == ["p-1"] and list(flags["variant"]) == ["specific"]


# --------------------------------------------------------------------------- OMOP


def test_omop_concepts_ids_and_visits(converted):
    _, out, report = converted["omop"]
    persons = {r["person_id"] for r in rows(out / "persons.parquet")}
    assert persons == {"1", "2"}                          # "1.0" -> "1"; person 3 has no birth
    ev = rows(out / "events.parquet")
    by = {(r["system"], r["code"]) for r in ev}
    assert ("ICD-10-CM", "J20.9") in by                  # source concept preferred (rule system)
    assert ("SNOMED-CT", "44054006") in by               # standard concept when the source is 0
    assert ("ATC", "J01CA04") in by                      # RxNorm clinical drug -> ATC by concept name
    assert ("OMOP", "40000001") in by and ("OMOP-source", "XYZ-LOCAL") in by
    hb = [r for r in ev if r["code"] == "718-7"][0]
    assert (hb["value"], hb["unit"]) == (85.0, "g/L")
    t = report.tables
    assert t["condition_occurrence"].repairs["encounter_not_found_set_null"] == 1
    assert t["person"].reasons == {"missing:birth_date": 1}
    assert t["procedure_occurrence"].read == 0
    assert t["visit_occurrence"].repairs["setting_defaulted"] == 1
    assert report.codes["OMOP"]["unmapped"] == 1
    flags = scan(out, only=["LV-ABX-004"]).flags
    assert list(flags["person_id"]) == ["1"]


# --------------------------------------------------------------------------- MEDS


def test_meds_codes_persons_and_scan(converted):
    _, out, report = converted["meds"]
    persons = {r["person_id"]: r for r in rows(out / "persons.parquet")}
    assert set(persons) == {"1", "2"} and persons["1"]["sex"] == "F" and str(persons["2"]["death_date"])[:10] == "2023-01-01"
    ev = rows(out / "events.parquet")
    assert all(r["encounter_id"] is None or r["encounter_id"] != r["encounter_id"] for r in ev)
    by = {(r["system"], r["code"], r["kind"]) for r in ev}
    assert ("ICD-10-CM", "J20.9", "diagnosis") in by and ("ICD-10-CM", "J209", "diagnosis") in by
    assert ("ATC", "J01CA04", "medication") in by
    lab = [r for r in ev if r["value"] == 120.0][0]
    assert (lab["system"], lab["code"], lab["unit"]) == ("LOINC", "718-7", "g/L")   # LAB//51222//g/dL
    assert report.tables["data"].reasons.get("no_birth_date") == 1
    assert report.tables["data"].reasons.get("static_row") == 1
    flags = scan(out, only=["LV-ABX-004"]).flags
    assert sorted(flags["person_id"]) == ["1", "2"]


# --------------------------------------------------------------------------- MIMIC-IV


def test_mimic_rows_and_mappings(converted):
    _, out, report = converted["mimic-iv"]
    persons = {r["person_id"]: r for r in rows(out / "persons.parquet")}
    assert str(persons["10000001"]["birth_date"])[:10] == "2080-01-01"      # anchor_year 2150 - anchor_age 70
    enc = {r["encounter_id"]: r for r in rows(out / "encounters.parquet")}
    assert enc["20000001"]["setting"] == "inpatient" and enc["20000001"]["unit"].startswith("Medical Intensive")
    assert enc["20000002"]["setting"] == "emergency"
    ev = rows(out / "events.parquet")
    by = {(r["system"], r["code"]) for r in ev}
    assert {("ICD-10-PCS", "30233N1"), ("LOINC", "718-7"), ("LOINC", "2160-0"), ("LOINC", "2345-7"), ("ATC", "A02BC02"),
            ("MIMIC-LAB", "51279"), ("ICD-9-CM", "4280")} <= by
    creat = [r for r in ev if r["code"] == "2160-0"][0]
    assert (round(creat["value"], 2), creat["unit"]) == (97.24, "umol/L")
    assert [r["encounter_id"] for r in ev if r["code"] == "2345-7"] in ([None], [float("nan")]) or str([r["encounter_id"] for r in ev if r["code"] == "2345-7"]) == "[nan]"  # outpatient lab
    t = report.tables
    assert t["diagnoses_icd"].reasons["unknown_admission"] == 1
    assert t["labevents"].reasons == {"after_death": 1}
    assert t["labevents"].repairs["lab_without_value_kept"] == 1
    assert report.codes["MIMIC-LAB"]["mapped_to"] == {"LOINC": 4}
    q = rows(out / "quarantine" / "labevents.parquet")
    assert [r["source_row"] for r in q] == [6] and q[0]["itemid"] == "51222"


def test_mimic_scan_finds_transfusion_at_high_haemoglobin(converted):
    _, out, _ = converted["mimic-iv"]
    flags = scan(out, only=["LV-HOSP-027"]).flags
    assert list(flags["person_id"]) == ["10000001"] and list(flags["variant"]) == ["specific"]


# --------------------------------------------------------------------------- errors and CLI


def test_wrong_format_is_one_line_input_error(tmp_path):
    src = fx.write_meds(tmp_path / "meds")
    with pytest.raises(InputError) as e:
        convert("synthea", src, tmp_path / "out")
    assert "patients" in str(e.value) and "\n" not in str(e.value)


def test_missing_required_column_names_file_and_column(tmp_path):
    src = fx.write_synthea(tmp_path / "syn")
    text = (src / "encounters.csv").read_text().replace("ENCOUNTERCLASS", "CLASS")
    (src / "encounters.csv").write_text(text)
    with pytest.raises(InputError) as e:
        convert("synthea", src, tmp_path / "out")
    assert "encounters.csv" in str(e.value) and "ENCOUNTERCLASS" in str(e.value)


def test_cli_convert(tmp_path):
    src = fx.write_mimic(tmp_path / "mimic")
    res = CliRunner().invoke(main, ["convert", "--from", "mimic-iv", str(src), "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert "labevents" in res.output and (tmp_path / "out" / "events.parquet").exists()
    res = CliRunner().invoke(main, ["convert", str(src), "--out", str(tmp_path / "out2")])  # detected
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["convert", "--from", "omop", str(src), "--out", str(tmp_path / "out3")])
    assert res.exit_code == 2 and "person" in res.output
