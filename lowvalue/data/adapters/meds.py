"""MEDS (Medical Event Data Standard: ``data/**/*.parquet`` with subject_id, time, code, numeric_value) -> canonical extract.

Identifiers: person_id = subject_id as a string.

Codes ``VOCAB//CODE``: the prefix gives the system and the kind (mappings/vocabularies.csv: ``ICD10CM//J20.9`` ->
ICD-10-CM diagnosis, ``ATC//J01CA04`` -> ATC medication, ``LOINC//718-7`` -> LOINC lab, ``RXNORM//...`` RxNorm
medication mapped to ATC when mappings/drug_codes_atc.csv knows it, ...). MEDS-ETL MIMIC-style codes are
understood too: ``DIAGNOSIS//ICD//10//J209``, ``PROCEDURE//ICD//10//...``, ``LAB//<itemid>//<unit>`` (itemid ->
LOINC by mappings/lab_items.csv, unit from the code). Anything else keeps system ``MEDS`` with the whole code
(kind observation), counted as unmapped.

Values: ``numeric_value`` (the MEDS name), else ``value`` (as MIMIC-IV demo MEDS exports name it; noted in
conversion.json). With neither, events are written without values: conversion.json says so and, when lab events
are present, warns, because value-based rules (e.g. a haemoglobin threshold) then find nothing. The unit comes from a ``unit`` column when present, else from a
``LAB//itemid//unit`` code; without a unit, the engine reads a value in the code set's canonical unit.

Persons: birth from the ``MEDS_BIRTH`` row (its time), death from ``MEDS_DEATH``, sex from a static
``GENDER//F`` / ``SEX//M`` row (else U). Subjects without a MEDS_BIRTH row cannot be aged: their rows are
quarantined with ``no_birth_date``. Other rows without time are quarantined as ``static_row``.

Encounters: MEDS has none. Events are written without encounter_id and ``encounters.parquet`` is empty, so
rules that need a setting (e.g. LV-HOSP-027 inpatient) are not evaluable on MEDS data; the others run.
"""

from __future__ import annotations

from lowvalue.data.adapters.common import Run, ident_sql, num_sql, text, ts_sql, unit_join
from lowvalue.errors import InputError

FORMAT = "meds"
FOLDERS = ("", "metadata")
NOT_CONVERTED = {
    "codes": "MEDS metadata: codes are mapped by their vocabulary prefix",
    "subject_splits": "MEDS metadata: train/tuning/held-out splits do not matter to a scan",
}
VALUE_COLUMNS = ("numeric_value", "value")


def stage(run: Run) -> None:
    data = run.src / "data"
    files = sorted(data.rglob("*.parquet")) if data.is_dir() else []
    if not files:
        raise InputError(str(data), "no MEDS data files (expected data/**/*.parquet)")
    st = run.source.files_table("data", files, "parquet", str(data))
    st.need("subject_id", "time", "code")
    run.register(st)
    c = st.col
    value_col = next((v for v in VALUE_COLUMNS if st.has(v)), None)
    if value_col is None:
        run.notes.append("data: no numeric_value (or value) column: events are written without values")
    elif value_col != "numeric_value":
        run.notes.append(f"data: values read from column '{value_col}' (no numeric_value column)")
    code = text(c("code"))
    pid = ident_sql(c("subject_id"))
    t = ts_sql(c("time"))
    run.sql(f"""
        CREATE TABLE _m AS
        SELECT s.src_row, {pid} AS person_id, {t} AS time, {code} AS code, {num_sql(c(value_col or 'numeric_value'))} AS value,
               {text(c('unit'))} AS unit_col, string_split({code}, '//') AS parts
        FROM {st.scan()} s""")
    run.sql("""
        CREATE TABLE _born AS SELECT person_id, min(src_row) AS src_row, min(CAST(time AS DATE)) AS birth_date
        FROM _m WHERE code = 'MEDS_BIRTH' GROUP BY person_id""")
    run.sql("""
        CREATE TABLE _sex AS SELECT person_id, min(CASE WHEN upper(parts[2]) IN ('F', 'FEMALE') THEN 'F'
                                                    WHEN upper(parts[2]) IN ('M', 'MALE') THEN 'M' ELSE 'U' END) AS sex
        FROM _m WHERE upper(parts[1]) IN ('GENDER', 'SEX') GROUP BY person_id""")
    run.sql("CREATE TABLE _dead AS SELECT person_id, min(CAST(time AS DATE)) AS death_date FROM _m WHERE code = 'MEDS_DEATH' GROUP BY 1")
    # persons: every MEDS_BIRTH row (a second one for a subject is quarantined as duplicate_key)
    run.sql("""
        INSERT INTO st_persons
        SELECT 'data', m.src_row, 1, m.person_id, CAST(m.time AS DATE), COALESCE(x.sex, 'U'), NULL, NULL, d.death_date,
               CASE WHEN m.time IS NULL THEN 'no_birth_date' END
        FROM _m m LEFT JOIN _sex x ON x.person_id = m.person_id LEFT JOIN _dead d ON d.person_id = m.person_id
        WHERE m.code = 'MEDS_BIRTH'""")
    run.sql("""
        INSERT INTO st_aux
        SELECT 'data', m.src_row, 1, m.person_id, CASE WHEN b.person_id IS NULL THEN 'no_birth_date' END
        FROM _m m LEFT JOIN _born b ON b.person_id = m.person_id
        WHERE m.code = 'MEDS_DEATH' OR upper(m.parts[1]) IN ('GENDER', 'SEX')""")
    # events: everything else
    run.sql("""
        CREATE TEMP TABLE _ev AS
        SELECT m.*, upper(m.parts[1]) AS p1,
               CASE WHEN upper(m.parts[1]) IN ('DIAGNOSIS', 'PROCEDURE') AND upper(m.parts[2]) = 'ICD' THEN
                         CASE WHEN upper(m.parts[1]) = 'DIAGNOSIS' THEN (CASE m.parts[3] WHEN '9' THEN 'ICD-9-CM' ELSE 'ICD-10-CM' END)
                              ELSE (CASE m.parts[3] WHEN '9' THEN 'ICD-9-CM-Proc' ELSE 'ICD-10-PCS' END) END
                    WHEN upper(m.parts[1]) = 'LAB' AND len(m.parts) >= 2 THEN 'MIMIC-LAB'
                    WHEN len(m.parts) >= 2 THEN COALESCE(v.system, m.parts[1])
                    ELSE 'MEDS' END AS src_system,
               CASE WHEN upper(m.parts[1]) IN ('DIAGNOSIS', 'PROCEDURE') AND upper(m.parts[2]) = 'ICD' THEN m.parts[4]
                    WHEN upper(m.parts[1]) = 'LAB' AND len(m.parts) >= 2 THEN m.parts[2]
                    WHEN len(m.parts) >= 2 THEN array_to_string(m.parts[2:], '//')
                    ELSE m.code END AS src_code,
               CASE WHEN upper(m.parts[1]) = 'DIAGNOSIS' THEN 'diagnosis' WHEN upper(m.parts[1]) = 'PROCEDURE' THEN 'procedure'
                    WHEN upper(m.parts[1]) = 'LAB' THEN 'lab' WHEN upper(m.parts[1]) = 'MEDICATION' THEN 'medication'
                    WHEN len(m.parts) >= 2 THEN COALESCE(v.kind, 'observation') ELSE 'observation' END AS kind,
               COALESCE(m.unit_col, CASE WHEN upper(m.parts[1]) = 'LAB' AND len(m.parts) >= 3 THEN m.parts[3] END) AS unit0,
               b.person_id IS NOT NULL AS has_birth
        FROM _m m LEFT JOIN map_vocab_u v ON v.vocabulary = upper(m.parts[1])
        LEFT JOIN _born b ON b.person_id = m.person_id
        WHERE m.code IS DISTINCT FROM 'MEDS_BIRTH' AND m.code IS DISTINCT FROM 'MEDS_DEATH'
          AND upper(m.parts[1]) NOT IN ('GENDER', 'SEX')""")
    run.sql(f"""
        INSERT INTO st_events
        SELECT 'data', e.src_row, 1, e.person_id, NULL, e.time, e.kind,
               CASE WHEN lm.loinc IS NOT NULL THEN 'LOINC' WHEN dc.atc IS NOT NULL THEN 'ATC' ELSE e.src_system END,
               COALESCE(lm.loinc, dc.atc, e.src_code),
               CASE WHEN u.factor IS NOT NULL THEN e.value * u.factor ELSE e.value END, COALESCE(u.to_unit, e.unit0),
               NULL, NULL, e.src_system, e.src_code, u.factor IS NOT NULL AND u.from_unit <> lower(u.to_unit),
               CASE WHEN NOT e.has_birth THEN 'no_birth_date' WHEN e.time IS NULL THEN 'static_row' END
        FROM _ev e
        LEFT JOIN map_lab_items lm ON e.src_system = 'MIMIC-LAB' AND lm.source = 'mimic_lab' AND lm.itemid = e.src_code
        LEFT JOIN map_drug_codes_atc dc ON dc.system = e.src_system AND dc.code = e.src_code
        {unit_join('u', "COALESCE(CASE WHEN lm.loinc IS NOT NULL THEN 'LOINC' END, e.src_system)", 'COALESCE(lm.loinc, e.src_code)', 'e.unit0')}""")
    if value_col is None:
        labs = run.con.execute("SELECT count(*) FROM st_events WHERE kind = 'lab'").fetchone()[0]
        if labs:
            run.warnings.append(f"data: {labs:,} lab events written without values (no numeric_value or value column)")
