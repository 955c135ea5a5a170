"""MIMIC-IV v2.x (hosp/ and icu/ folders of .csv.gz, .csv or .parquet) -> canonical extract.

Identifiers: person_id = subject_id, encounter_id = hadm_id (strings; ``123.0`` -> ``123``).

Persons (hosp/patients): birth_date = 1 January of (anchor_year - anchor_age), so that the engine's age at an
event equals MIMIC's own definition anchor_age + (year of event - anchor_year); sex = gender; death_date = dod.
Dates are shifted into the 22nd century by MIMIC: they are kept as they are (consistent per patient, so windows
and ages are right; calendar months in reports are not real months). ``conversion.json`` says
``"dates_shifted": true``, so reading the extract does not quarantine them as after today.

Encounters (hosp/admissions): one per hadm_id, start admittime, end dischtime, setting from admission_type
(mappings/settings.csv; any admission with an ICU stay in icu/icustays is inpatient), unit = first ICU care
unit when there is one. icu/icustays rows are counted as written when their admission exists. ED stays
(edregtime) are not made into separate encounters.

Events: diagnoses_icd (dated by the admission's admittime; ICD-10-CM / ICD-9-CM), procedures_icd (chartdate;
ICD-10-PCS / ICD-9-CM-Proc), prescriptions (starttime; drug name -> ATC by mappings/drug_names_atc.csv, NDC by
drug_codes_atc.csv; unmapped -> system MIMIC-DRUG with the drug name as code; days_supply = whole days from
starttime to stoptime), labevents (charttime; itemid -> LOINC by mappings/lab_items.csv, value = valuenum, units
normalised by mappings/units.csv; unmapped -> system MIMIC-LAB; labs without valuenum are kept without value),
hcpcsevents (chartdate; CPT when the code is five digits, else HCPCS), icu/inputevents (starttime; itemid 225168
packed red cells -> ICD-10-PCS 30233N1 procedure per mappings/icu_items.csv; other items -> MIMIC-ICU-ITEM
medication with amount/amountuom). Not converted: chartevents (very large; haemoglobin comes from labevents),
emar, pharmacy, poe, microbiologyevents, transfers, services, omr.
"""

from __future__ import annotations

from lowvalue.data.adapters.common import (
    Run, build_drug_map, day_sql, default_setting, ident_sql, num_sql, q, setting_sql, text, ts_sql, unit_join,
)

FORMAT = "mimic"
FOLDERS = ("", "hosp", "icu")
NOT_CONVERTED = {
    "chartevents": "very large; haemoglobin comes from hosp/labevents",
    "d_labitems": "dictionary: lab itemids are mapped by the shipped mappings/lab_items.csv",
    "d_items": "dictionary: ICU itemids are mapped by the shipped mappings/icu_items.csv",
    "d_icd_diagnoses": "dictionary: ICD codes are kept as they are",
    "d_icd_procedures": "dictionary: ICD codes are kept as they are",
}


def stage(run: Run) -> None:
    src = run.source
    run.dates_shifted = True  # 22nd-century dates are MIMIC's de-identification, not a fault (see open_extract)
    pats = run.register(src.table("patients", subdir="hosp", required=True, need=("subject_id", "gender", "anchor_age", "anchor_year")))
    adm = run.register(src.table("admissions", subdir="hosp", required=True, need=("subject_id", "hadm_id", "admittime", "admission_type")))
    assert pats is not None and adm is not None
    p = pats.col
    birth_year = f"CAST({num_sql(p('anchor_year'))} - {num_sql(p('anchor_age'))} AS INTEGER)"
    run.sql(f"""
        INSERT INTO st_persons
        SELECT 'patients', s.src_row, 1, {ident_sql(p('subject_id'))}, TRY_CAST(make_date({birth_year}, 1, 1) AS DATE),
               CASE upper({text(p('gender'))}) WHEN 'F' THEN 'F' WHEN 'M' THEN 'M' ELSE 'U' END, NULL, NULL,
               {day_sql(p('dod'))}, NULL
        FROM {pats.scan()} s""")

    icu = run.register(src.table("icustays", subdir="icu"))
    if icu is not None and icu.fmt != "empty":
        icu.need("subject_id", "hadm_id")
        i = icu.col
        run.sql(f"""CREATE TABLE _icu AS SELECT {ident_sql(i('hadm_id'))} AS hadm_id,
                    arg_min({text(i('first_careunit'))}, {ts_sql(i('intime'))}) AS careunit
                    FROM {icu.scan()} s GROUP BY 1""")
    else:
        run.sql("CREATE TABLE _icu (hadm_id VARCHAR, careunit VARCHAR)")

    a = adm.col
    dflt = default_setting(run.con, FORMAT)
    setting = setting_sql(FORMAT, a("admission_type"))
    hadm = ident_sql(a("hadm_id"))
    run.sql(f"""
        INSERT INTO st_encounters
        SELECT 'admissions', s.src_row, 1, {hadm}, {ident_sql(a('subject_id'))}, {ts_sql(a('admittime'))}, {ts_sql(a('dischtime'))},
               CASE WHEN i.hadm_id IS NOT NULL THEN 'inpatient' ELSE COALESCE({setting}, {q(dflt)}) END, i.careunit, NULL,
               i.hadm_id IS NULL AND {setting} IS NULL, NULL
        FROM {adm.scan()} s LEFT JOIN _icu i ON i.hadm_id = {hadm}""")
    run.sql(f"""CREATE TABLE _adm AS SELECT {hadm} AS hadm_id, min({ts_sql(a('admittime'))}) AS admittime
                FROM {adm.scan()} s GROUP BY 1""")
    if icu is not None and icu.fmt != "empty":
        i = icu.col
        run.sql(f"""INSERT INTO st_aux SELECT 'icustays', s.src_row, 1, {ident_sql(i('subject_id'))},
                    CASE WHEN NOT EXISTS (SELECT 1 FROM _adm WHERE _adm.hadm_id = {ident_sql(i('hadm_id'))}) THEN 'unknown_admission' END
                    FROM {icu.scan()} s""")

    def ev(key: str, st, *, time: str, kind: str, system: str, code: str, value="NULL", unit="NULL", days_supply="NULL",
           source_system=None, source_code=None, joins="", unit_normalised="false", problem="NULL") -> None:
        c = st.col
        run.sql(f"""
            INSERT INTO st_events
            SELECT {q(key)}, s.src_row, 1, {ident_sql(c('subject_id'))}, {ident_sql(c('hadm_id'))}, {time}, {kind}, {system}, {code},
                   {value}, {unit}, {days_supply}, NULL, {source_system or system}, {source_code or code}, {unit_normalised}, {problem}
            FROM {st.scan()} s {joins}""")

    version_sys = {"diagnoses_icd": ("ICD-10-CM", "ICD-9-CM"), "procedures_icd": ("ICD-10-PCS", "ICD-9-CM-Proc")}
    for name, kind in (("diagnoses_icd", "diagnosis"), ("procedures_icd", "procedure")):
        st = run.register(src.table(name, subdir="hosp"))
        if st is None or st.fmt == "empty":
            continue
        st.need("subject_id", "hadm_id", "icd_code", "icd_version")
        c = st.col
        ten, nine = version_sys[name]
        system = f"CASE WHEN {num_sql(c('icd_version'))} = 9 THEN {q(nine)} ELSE {q(ten)} END"
        joins = f"LEFT JOIN _adm ad ON ad.hadm_id = {ident_sql(c('hadm_id'))}"
        if name == "diagnoses_icd":
            time = "ad.admittime"
        else:
            time = f"COALESCE({ts_sql(c('chartdate'))}, ad.admittime)"
        ev(name, st, time=time, kind=q(kind), system=system, code=f"upper({text(c('icd_code'))})", joins=joins,
           problem=f"CASE WHEN {time} IS NULL AND ad.hadm_id IS NULL THEN 'unknown_admission' END")

    st = run.register(src.table("prescriptions", subdir="hosp"))
    if st is not None and st.fmt != "empty":
        st.need("subject_id", "starttime", "drug")
        c = st.col
        ndc = f"NULLIF(NULLIF({text(c('ndc'))}, '0'), '0.0')"
        build_drug_map(run.con, f"SELECT CASE WHEN {ndc} IS NULL THEN 'MIMIC-DRUG' ELSE 'NDC' END AS system, "
                                f"COALESCE({ndc}, lower({text(c('drug'))})) AS code, {text(c('drug'))} AS name FROM {st.scan()} s",
                       "dm_mimic")
        srcsys = f"CASE WHEN {ndc} IS NULL THEN 'MIMIC-DRUG' ELSE 'NDC' END"
        srccode = f"COALESCE({ndc}, lower({text(c('drug'))}))"
        start, stop = ts_sql(c("starttime")), ts_sql(c("stoptime"))
        ev("prescriptions", st, time=start, kind="'medication'",
           system=f"CASE WHEN dm.atc IS NOT NULL THEN 'ATC' ELSE {srcsys} END", code=f"COALESCE(dm.atc, {srccode})",
           source_system=srcsys, source_code=srccode,
           days_supply=f"CASE WHEN {stop} >= {start} THEN CAST(date_diff('day', {start}, {stop}) AS INTEGER) END",
           joins=f"LEFT JOIN dm_mimic dm ON dm.system = {srcsys} AND dm.code IS NOT DISTINCT FROM {srccode} "
                 f"AND dm.name IS NOT DISTINCT FROM {text(c('drug'))}")

    st = run.register(src.table("labevents", subdir="hosp"))
    if st is not None and st.fmt != "empty":
        st.need("subject_id", "itemid", "charttime", "valuenum", "valueuom")
        c = st.col
        item = ident_sql(c("itemid"))
        raw_unit = text(c("valueuom"))
        code = f"COALESCE(lm.loinc, {item})"
        value = num_sql(c("valuenum"))
        ev("labevents", st, time=ts_sql(c("charttime")), kind="'lab'",
           system="CASE WHEN lm.loinc IS NOT NULL THEN 'LOINC' ELSE 'MIMIC-LAB' END", code=code,
           value=f"CASE WHEN u.factor IS NOT NULL THEN {value} * u.factor ELSE {value} END", unit=f"COALESCE(u.to_unit, {raw_unit})",
           source_system="'MIMIC-LAB'", source_code=item,
           unit_normalised="u.factor IS NOT NULL AND u.from_unit <> lower(u.to_unit)",
           joins=f"LEFT JOIN map_lab_items lm ON lm.source = 'mimic_lab' AND lm.itemid = {item} "
                 + unit_join("u", "'LOINC'", "lm.loinc", raw_unit))

    st = run.register(src.table("hcpcsevents", subdir="hosp"))
    if st is not None and st.fmt != "empty":
        st.need("subject_id", "hadm_id", "hcpcs_cd")
        c = st.col
        code = f"upper({text(c('hcpcs_cd'))})"
        joins = f"LEFT JOIN _adm ad ON ad.hadm_id = {ident_sql(c('hadm_id'))}"
        time = f"COALESCE({ts_sql(c('chartdate'))}, ad.admittime)"
        ev("hcpcsevents", st, time=time, kind="'procedure'",
           system=f"CASE WHEN regexp_full_match({code}, '\\d{{4}}[0-9A-Z]') AND regexp_full_match({code}, '\\d{{5}}') THEN 'CPT' ELSE 'HCPCS' END",
           code=code, joins=joins)

    st = run.register(src.table("inputevents", subdir="icu"))
    if st is not None and st.fmt != "empty":
        st.need("subject_id", "hadm_id", "starttime", "itemid")
        c = st.col
        item = ident_sql(c("itemid"))
        ev("inputevents", st, time=ts_sql(c("starttime")), kind="COALESCE(im.kind, 'medication')",
           system="COALESCE(im.system, 'MIMIC-ICU-ITEM')", code=f"COALESCE(im.code, {item})",
           value=f"CASE WHEN im.code IS NULL THEN {num_sql(c('amount'))} END",
           unit=f"CASE WHEN im.code IS NULL THEN {text(c('amountuom'))} END",
           source_system="'MIMIC-ICU-ITEM'", source_code=item,
           joins=f"LEFT JOIN map_icu_items im ON im.source = 'mimic_icu_input' AND im.itemid = {item}")
