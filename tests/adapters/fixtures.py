"""Small source folders in each external format, written from the column lists in shared/formats/README.md.

Each has a handful of patients, one planted low-value pattern, and the usual imperfections.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

# direct identifiers planted in the sources: none of these may appear anywhere in the output
SECRETS = ("999-12-3456", "Zelda", "Quixworth", "42 Nowhere Lane", "S99912345", "X12345678X", "Mrs.", "Springfieldia",
           "MRN-77-SECRET")


def _csv(path: Path, header: list[str], rows: list[list], *, gz: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if gz else open
    with opener(path, "wt", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for r in rows:
            w.writerow(["" if v is None else v for v in r])


# --------------------------------------------------------------------------- Synthea

SYN_PAT = ["Id", "BIRTHDATE", "DEATHDATE", "SSN", "DRIVERS", "PASSPORT", "PREFIX", "FIRST", "LAST", "SUFFIX", "MAIDEN",
           "MARITAL", "RACE", "ETHNICITY", "GENDER", "BIRTHPLACE", "ADDRESS", "CITY", "STATE", "COUNTY", "ZIP", "LAT", "LON",
           "HEALTHCARE_EXPENSES", "HEALTHCARE_COVERAGE"]


def _syn_patient(pid, birth, gender, death=""):
    return [pid, birth, death, "999-12-3456", "S99912345", "X12345678X", "Mrs.", "Zelda", "Quixworth", "", "", "M", "white",
            "nonhispanic", gender, "Springfieldia", "42 Nowhere Lane", "Springfieldia", "MA", "Suffolk", "02101", "42.1", "-71.0",
            "1000", "200"]


def write_synthea(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    _csv(root / "patients.csv", SYN_PAT, [
        _syn_patient("p-1", "1985-04-02", "F"),
        _syn_patient("p-2", "1950-01-20", "M"),
        _syn_patient("p-3", "1940-06-01", "M", "2019-12-31"),
        _syn_patient("p-1", "1985-04-02", "F"),            # duplicate id -> quarantined
        _syn_patient("p-4", "not a date", "F"),             # bad birth date -> quarantined
    ])
    enc_h = ["Id", "START", "STOP", "PATIENT", "ORGANIZATION", "PROVIDER", "PAYER", "ENCOUNTERCLASS", "CODE", "DESCRIPTION",
             "BASE_ENCOUNTER_COST", "TOTAL_CLAIM_COST", "PAYER_COVERAGE", "REASONCODE", "REASONDESCRIPTION"]
    _csv(root / "encounters.csv", enc_h, [
        ["e-1", "2020-03-01T09:00:00Z", "2020-03-01T09:30:00Z", "p-1", "org-1", "prov-1", "pay-1", "ambulatory", "185345009",
         "Encounter for symptom", "129.16", "129.16", "0", "10509002", "Acute bronchitis (disorder)"],
        ["e-2", "2020-03-02T10:00:00Z", "2020-03-02T10:20:00Z", "p-1", "org-1", "prov-1", "pay-1", "urgentcare", "702927004",
         "Urgent care clinic", "", "90", "0", "", ""],
        ["e-3", "2021-05-01T08:00:00Z", "2021-05-05T08:00:00Z", "p-2", "org-2", "prov-2", "pay-1", "inpatient", "32485007",
         "Hospital admission", "", "10000", "0", "", ""],
        ["e-4", "2021-05-01T08:00:00Z", "2021-05-01T09:00:00Z", "p-99", "org-2", "prov-2", "pay-1", "emergency", "50849002",
         "Emergency", "", "500", "0", "", ""],                               # unknown patient -> quarantined
        ["e-5", "2021-06-01T08:00:00+02:00", "2021-06-01T05:00:00+02:00", "p-2", "org-1", "prov-1", "pay-1", "wellness",
         "162673000", "General examination", "", "50", "0", "", ""],          # ends before start -> end set null
        ["e-6", "2021-07-01T08:00:00", "", "p-2", "org-1", "prov-1", "pay-1", "spaceship", "1", "x", "", "1", "0", "", ""],  # unknown class
    ])
    _csv(root / "conditions.csv", ["START", "STOP", "PATIENT", "ENCOUNTER", "CODE", "DESCRIPTION"], [
        ["2020-03-01", "2020-03-15", "p-1", "e-1", "10509002", "Acute bronchitis (disorder)"],
        ["2021-05-01", "", "p-2", "e-3", "44054006", "Diabetes"],
        ["2021-05-02", "", "p-2", "e-gone", "195662009", "Acute viral pharyngitis"],   # missing encounter -> encounter null
        ["2021-05-02", "", "p-99", "e-4", "195662009", "Acute viral pharyngitis"],     # unknown patient
        ["", "", "p-2", "e-3", "195662009", "no date"],                                   # missing time
    ])
    med_h = ["START", "STOP", "PATIENT", "PAYER", "ENCOUNTER", "CODE", "DESCRIPTION", "BASE_COST", "PAYER_COVERAGE", "DISPENSES",
             "TOTALCOST", "REASONCODE", "REASONDESCRIPTION"]
    _csv(root / "medications.csv", med_h, [
        ["2020-03-02T10:10:00Z", "2020-03-12T10:10:00Z", "p-1", "pay-1", "e-2", "562251",
         "Amoxicillin 250 MG / Clavulanate 125 MG Oral Tablet", "10", "0", "1", "10", "10509002", "Acute bronchitis (disorder)"],
        ["2021-05-02T10:00:00Z", "", "p-2", "pay-1", "e-3", "857005", "Hydrocodone Bitartrate 10 MG / Acetaminophen 325 MG Oral Tablet",
         "5", "0", "1", "5", "", ""],
        ["2021-05-03T10:00:00Z", "", "p-2", "pay-1", "e-3", "999999", "Erythromycin 5 MG/ML Ophthalmic Ointment", "5", "0", "1", "5", "", ""],
        ["2021-05-03T10:00:00Z", "", "p-2", "pay-1", "e-3", "999999", "Erythromycin 5 MG/ML Ophthalmic Ointment", "5", "0", "1", "5", "", ""],
    ])
    _csv(root / "observations.csv", ["DATE", "PATIENT", "ENCOUNTER", "CATEGORY", "CODE", "DESCRIPTION", "VALUE", "UNITS", "TYPE"], [
        ["2021-05-01T09:00:00Z", "p-2", "e-3", "laboratory", "718-7", "Hemoglobin", "8.5", "g/dL", "numeric"],
        ["2021-05-01T09:00:00Z", "p-2", "e-3", "laboratory", "2160-0", "Creatinine", "1.0", "mg/dL", "numeric"],
        ["2021-05-01T09:00:00Z", "p-2", "e-3", "laboratory", "2339-0", "Glucose", "", "mg/dL", "numeric"],   # no value
        ["2021-05-01T09:00:00Z", "p-2", "e-3", "survey", "72166-2", "Tobacco smoking status", "Never smoked", "", "text"],
        ["2021-05-01T09:00:00Z", "p-2", "e-3", "vital-signs", "8302-2", "Body Height", "180.1", "cm", "numeric"],
        ["2020-01-05T09:00:00Z", "p-3", "", "laboratory", "718-7", "Hemoglobin", "13", "g/dL", "numeric"],
        ["2020-02-05T09:00:00Z", "p-3", "", "laboratory", "718-7", "Hemoglobin", "13", "g/dL", "numeric"],  # after death
    ])
    # an older Synthea version: procedures with DATE instead of START/STOP
    _csv(root / "procedures.csv", ["DATE", "PATIENT", "ENCOUNTER", "CODE", "DESCRIPTION", "BASE_COST", "REASONCODE", "REASONDESCRIPTION"], [
        ["2021-05-02T12:00:00Z", "p-2", "e-3", "180256009", "Subcutaneous immunotherapy", "100", "", ""],
    ])
    img_h = ["Id", "DATE", "PATIENT", "ENCOUNTER", "SERIES_UID", "BODYSITE_CODE", "BODYSITE_DESCRIPTION", "MODALITY_CODE",
             "MODALITY_DESCRIPTION", "INSTANCE_UID", "SOP_CODE", "SOP_DESCRIPTION", "PROCEDURE_CODE"]
    _csv(root / "imaging_studies.csv", img_h, [
        ["img-1", "2021-05-02T11:00:00Z", "p-2", "e-3", "s1", "51185008", "Thorax", "CR", "Computed Radiography", f"i{k}",
         "1.2.840", "CR Image Storage", "399208008"] for k in range(3)
    ])
    (root / "allergies.csv").write_text("")  # an empty file: ignored
    _csv(root / "immunizations.csv", ["DATE", "PATIENT", "ENCOUNTER", "CODE", "DESCRIPTION", "BASE_COST"], [])  # header only
    return root


# --------------------------------------------------------------------------- OMOP

def write_omop(root: Path, *, parquet_person: bool = False) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    person_h = ["person_id", "gender_concept_id", "year_of_birth", "month_of_birth", "day_of_birth", "birth_datetime",
                "race_concept_id", "ethnicity_concept_id", "location_id", "provider_id", "care_site_id", "person_source_value",
                "gender_source_value"]
    _csv(root / "person.csv", person_h, [
        ["1.0", "8532", "1980", "5", "", "", "0", "0", "", "", "", "MRN-77-SECRET", "F"],   # id as float
        ["2", "8507", "1940", "", "", "1940-03-03 00:00:00", "0", "0", "", "", "", "MRN-77-SECRET", "M"],
        ["3", "0", "", "", "", "", "0", "0", "", "", "", "", ""],                          # no birth -> quarantined
    ])
    visit_h = ["visit_occurrence_id", "person_id", "visit_concept_id", "visit_start_date", "visit_start_datetime",
               "visit_end_date", "visit_end_datetime", "visit_type_concept_id", "provider_id", "care_site_id",
               "visit_source_value", "preceding_visit_occurrence_id"]
    _csv(root / "visit_occurrence.csv", visit_h, [
        ["10.0", "1.0", "9202", "2022-01-10", "", "2022-01-10", "", "44818517", "", "", "", ""],
        ["11", "2", "9201", "2022-02-01", "2022-02-01 08:00:00", "2022-02-05", "", "44818517", "", "", "", ""],
        ["12", "2", "123456", "2022-03-01", "", "2022-03-01", "", "44818517", "", "", "", ""],   # unknown visit concept
    ])
    cond_h = ["condition_occurrence_id", "person_id", "condition_concept_id", "condition_start_date", "condition_start_datetime",
              "condition_end_date", "condition_end_datetime", "condition_type_concept_id", "visit_occurrence_id",
              "condition_source_value", "condition_source_concept_id"]
    _csv(root / "condition_occurrence.csv", cond_h, [
        ["100", "1.0", "260139", "2022-01-10", "", "", "", "32020", "10.0", "J20.9", "45591524"],   # bronchitis, ICD10CM source
        ["101", "2", "201826", "2022-02-01", "", "", "", "32020", "999", "E11.9", "0"],               # visit 999 absent
        ["102", "2", "0", "2022-02-02", "", "", "", "32020", "11", "XYZ-LOCAL", "0"],                # no concept
        ["103", "3", "260139", "2022-02-02", "", "", "", "32020", "", "J20.9", "45591524"],          # person quarantined
    ])
    drug_h = ["drug_exposure_id", "person_id", "drug_concept_id", "drug_exposure_start_date", "drug_exposure_start_datetime",
              "drug_exposure_end_date", "drug_exposure_end_datetime", "quantity", "days_supply", "refills", "route_concept_id",
              "visit_occurrence_id", "drug_source_value", "drug_source_concept_id"]
    _csv(root / "drug_exposure.csv", drug_h, [
        ["200", "1.0", "19073183", "2022-01-11", "", "2022-01-18", "", "21", "7.0", "0", "", "10.0", "amoxicillin 500", "0"],
        ["201", "2", "40000001", "2022-02-02", "", "2022-02-03", "", "1", "", "0", "", "11", "x", "0"],  # concept not in concept table
    ])
    meas_h = ["measurement_id", "person_id", "measurement_concept_id", "measurement_date", "measurement_datetime",
              "operator_concept_id", "value_as_number", "value_as_concept_id", "unit_concept_id", "range_low", "range_high",
              "visit_occurrence_id", "measurement_source_value", "unit_source_value"]
    _csv(root / "measurement.csv", meas_h, [
        ["300", "2", "3000963", "2022-02-02", "2022-02-02 06:00:00", "", "8.5", "", "8713", "", "", "11", "HGB", ""],
        ["301", "2", "3016723", "2022-02-02", "", "", "", "", "8840", "", "", "11", "CREAT", ""],   # no value
    ])
    _csv(root / "procedure_occurrence.csv", ["procedure_occurrence_id", "person_id", "procedure_concept_id", "procedure_date",
                                              "procedure_datetime", "quantity", "visit_occurrence_id", "procedure_source_value",
                                              "procedure_source_concept_id"], [])     # empty table
    _csv(root / "death.csv", ["person_id", "death_date", "death_datetime", "death_type_concept_id"], [["2", "2024-01-01", "", ""]])
    concept_h = ["concept_id", "concept_name", "domain_id", "vocabulary_id", "concept_class_id", "standard_concept", "concept_code",
                 "valid_start_date", "valid_end_date", "invalid_reason"]
    _csv(root / "concept.csv", concept_h, [
        ["260139", "Acute bronchitis", "Condition", "SNOMED", "Clinical Finding", "S", "10509002", "", "", ""],
        ["45591524", "Acute bronchitis, unspecified", "Condition", "ICD10CM", "5-char billing code", "", "J20.9", "", "", ""],
        ["201826", "Type 2 diabetes mellitus", "Condition", "SNOMED", "Clinical Finding", "S", "44054006", "", "", ""],
        ["19073183", "Amoxicillin 250 MG Oral Capsule", "Drug", "RxNorm", "Clinical Drug", "S", "308182", "", "", ""],
        ["3000963", "Hemoglobin [Mass/volume] in Blood", "Measurement", "LOINC", "Lab Test", "S", "718-7", "", "", ""],
        ["3016723", "Creatinine [Mass/volume] in Serum or Plasma", "Measurement", "LOINC", "Lab Test", "S", "2160-0", "", "", ""],
        ["8713", "gram per deciliter", "Unit", "UCUM", "Unit", "S", "g/dL", "", "", ""],
        ["8840", "milligram per deciliter", "Unit", "UCUM", "Unit", "S", "mg/dL", "", "", ""],
    ])
    return root


# --------------------------------------------------------------------------- MEDS

def write_meds(root: Path) -> Path:
    from datetime import datetime as dt
    (root / "data" / "train").mkdir(parents=True, exist_ok=True)
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    (root / "metadata" / "dataset.json").write_text('{"dataset_name": "fixture", "meds_version": "0.3"}')
    schema = pa.schema([("subject_id", pa.int64()), ("time", pa.timestamp("us")), ("code", pa.string()),
                        ("numeric_value", pa.float32()), ("text_value", pa.string())])
    rows0 = [
        (1, dt(1980, 5, 1), "MEDS_BIRTH", None, None),
        (1, None, "GENDER//F", None, None),
        (1, dt(2022, 1, 10, 9), "ICD10CM//J20.9", None, None),
        (1, dt(2022, 1, 11, 10), "ATC//J01CA04", None, None),
        (1, dt(2022, 1, 11, 11), "LOINC//718-7", 13.5, None),
        (1, dt(2022, 1, 12, 11), "LAB//51222//g/dL", 12.0, None),
        (1, None, "SOMETHING_STATIC", None, None),               # static row -> quarantined
    ]
    rows1 = [
        (2, dt(1950, 1, 1), "MEDS_BIRTH", None, None),
        (2, None, "SEX//M", None, None),
        (2, dt(2022, 3, 1), "DIAGNOSIS//ICD//10//J209", None, None),
        (2, dt(2022, 3, 2), "RXNORM//723", None, None),
        (2, dt(2022, 3, 3), "LOCAL_THING", 1.0, None),
        (2, dt(2023, 1, 1), "MEDS_DEATH", None, None),
        (3, dt(2022, 3, 1), "ICD10CM//J20.9", None, None),       # subject without MEDS_BIRTH -> quarantined
    ]
    for i, rows in enumerate((rows0, rows1)):
        cols = list(zip(*rows))
        pq.write_table(pa.table({n: pa.array(v, type=schema.field(n).type) for n, v in zip(schema.names, cols)}),
                       root / "data" / "train" / f"{i}.parquet")
    return root


# --------------------------------------------------------------------------- MIMIC-IV

def write_mimic(root: Path) -> Path:
    hosp, icu = root / "hosp", root / "icu"
    _csv(hosp / "patients.csv.gz", ["subject_id", "gender", "anchor_age", "anchor_year", "anchor_year_group", "dod"], [
        ["10000001", "F", "70", "2150", "2011 - 2013", ""],
        ["10000002", "M", "55", "2160", "2014 - 2016", "2161-01-01"],
    ], gz=True)
    adm_h = ["subject_id", "hadm_id", "admittime", "dischtime", "deathtime", "admission_type", "admission_location",
             "discharge_location", "insurance", "language", "marital_status", "race", "edregtime", "edouttime",
             "hospital_expire_flag"]
    _csv(hosp / "admissions.csv.gz", adm_h, [
        ["10000001", "20000001", "2150-05-01 10:00:00", "2150-05-08 12:00:00", "", "EW EMER.", "EMERGENCY ROOM", "HOME",
         "Medicare", "ENGLISH", "MARRIED", "WHITE", "", "", "0"],
        ["10000002", "20000002", "2160-06-01 10:00:00", "2160-06-02 12:00:00", "", "EU OBSERVATION", "EMERGENCY ROOM", "HOME",
         "Other", "ENGLISH", "SINGLE", "WHITE", "", "", "0"],
    ], gz=True)
    _csv(hosp / "diagnoses_icd.csv.gz", ["subject_id", "hadm_id", "seq_num", "icd_code", "icd_version"], [
        ["10000001", "20000001", "1", "N179", "10"],
        ["10000001", "20000001", "2", "4280", "9"],
        ["10000001", "29999999", "1", "J189", "10"],           # admission not in admissions -> quarantined
    ], gz=True)
    _csv(hosp / "prescriptions.csv.gz", ["subject_id", "hadm_id", "pharmacy_id", "starttime", "stoptime", "drug_type", "drug",
                                         "gsn", "ndc", "prod_strength", "dose_val_rx", "dose_unit_rx", "route"], [
        ["10000001", "20000001", "1", "2150-05-02 08:00:00", "2150-05-05 08:00:00", "MAIN", "Pantoprazole", "", "0", "40mg",
         "40", "mg", "PO"],
        ["10000001", "20000001", "2", "2150-05-02 08:00:00", "2150-05-03 08:00:00", "MAIN", "Sodium Chloride 0.9%  Flush", "",
         "0", "", "3", "mL", "IV"],
    ], gz=True)
    _csv(hosp / "labevents.csv.gz", ["labevent_id", "subject_id", "hadm_id", "specimen_id", "itemid", "charttime", "value",
                                     "valuenum", "valueuom", "ref_range_lower", "ref_range_upper", "flag", "priority"], [
        ["1", "10000001", "20000001", "1", "51222", "2150-05-03 06:00:00", "8.5", "8.5", "g/dL", "12", "16", "abnormal", "ROUTINE"],
        ["2", "10000001", "20000001", "2", "50912", "2150-05-03 06:00:00", "1.1", "1.1", "mg/dL", "", "", "", "ROUTINE"],
        ["3", "10000001", "", "3", "50931", "2150-04-01 06:00:00", "90", "90", "mg/dL", "", "", "", "ROUTINE"],  # outpatient lab
        ["4", "10000001", "20000001", "4", "51279", "2150-05-03 06:00:00", "3.1", "3.1", "m/uL", "", "", "", "ROUTINE"],  # unmapped
        ["5", "10000001", "20000001", "5", "51222", "2150-05-03 07:00:00", "___", "", "g/dL", "", "", "", "ROUTINE"],   # no value
        ["6", "10000002", "20000002", "6", "51222", "2161-02-01 07:00:00", "9", "9", "g/dL", "", "", "", "ROUTINE"],  # after death
    ], gz=True)
    _csv(icu / "icustays.csv.gz", ["subject_id", "hadm_id", "stay_id", "first_careunit", "last_careunit", "intime", "outtime", "los"], [
        ["10000001", "20000001", "30000001", "Medical Intensive Care Unit (MICU)", "Medical Intensive Care Unit (MICU)",
         "2150-05-02 00:00:00", "2150-05-06 00:00:00", "4"],
    ], gz=True)
    _csv(icu / "inputevents.csv.gz", ["subject_id", "hadm_id", "stay_id", "starttime", "endtime", "itemid", "amount", "amountuom",
                                      "rate", "ordercategoryname"], [
        ["10000001", "20000001", "30000001", "2150-05-03 10:00:00", "2150-05-03 12:00:00", "225168", "350", "ml", "", "Blood Products"],
        ["10000001", "20000001", "30000001", "2150-05-03 10:00:00", "2150-05-03 12:00:00", "225158", "1000", "ml", "", "Crystalloids"],
    ], gz=True)
    return root
