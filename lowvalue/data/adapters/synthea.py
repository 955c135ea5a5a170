"""Synthea CSV export -> canonical extract.

Identifiers: person_id = patients.Id / PATIENT, encounter_id = encounters.Id (Synthea UUIDs, as strings).
Direct identifiers (names, SSN, DRIVERS, PASSPORT, addresses, LAT/LON) are never read into the output.

Tables: patients -> persons; encounters -> encounters (ENCOUNTERCLASS -> setting via mappings/settings.csv,
unit = ORGANIZATION, cost = TOTAL_CLAIM_COST); conditions -> diagnosis (SNOMED-CT, or SYSTEM when the newer
column is present); procedures -> procedure (START, or DATE in older versions); medications -> medication
(RxNorm; mapped to ATC by code or DESCRIPTION name; days_supply = STOP - START in days when STOP is given;
cost = TOTALCOST); observations -> lab (CATEGORY laboratory) or observation (LOINC; numeric VALUE only,
text values kept without value; units normalised per mappings/units.csv); immunizations -> medication (CVX);
imaging_studies -> procedure (PROCEDURE_CODE SNOMED-CT, else DICOM modality), one event per study: the
instance rows of one study give identical events, merged and counted as written (``identical_event_merged``).
Other files of the export (allergies, careplans, claims, ...) are listed under ``not_converted`` in conversion.json.

REASONCODE of medications/procedures is not turned into extra diagnosis events: Synthea writes the reason as
a condition in conditions.csv already, and an extra event would double count it.
"""

from __future__ import annotations

from lowvalue.data.adapters.common import (
    Run, SourceTable, build_drug_map, day_sql, default_setting, ident_sql, num_sql, q, setting_sql, text, ts_sql, unit_join,
)

FORMAT = "synthea"
FOLDERS = ("",)
NOT_CONVERTED = {
    "organizations": "reference table: encounters carry the organisation id as their unit",
    "providers": "reference table, not needed by the rules",
    "payers": "reference table, not needed by the rules",
    "claims": "costs are taken from encounters and medications",
    "claims_transactions": "costs are taken from encounters and medications",
}


def _vocab(expr: str, default: str) -> str:
    """Canonical system from a Synthea SYSTEM value (newer exports), else ``default``."""
    t = text(expr)
    return (f"COALESCE((SELECT v.system FROM map_vocab_u v WHERE v.vocabulary = upper({t})), {t}, {q(default)})")


def _event_insert(run: Run, key: str, st: SourceTable, *, time: str, kind: str, system: str, code: str, value: str = "NULL",
                  unit: str = "NULL", days_supply: str = "NULL", cost: str = "NULL", source_system: str | None = None,
                  source_code: str | None = None, joins: str = "", unit_normalised: str = "false") -> None:
    c = st.col
    run.sql(f"""
        INSERT INTO st_events
        SELECT {q(key)}, s.src_row, 1, {ident_sql(c('PATIENT'))}, {ident_sql(c('ENCOUNTER'))}, {time}, {kind}, {system}, {code},
               {value}, {unit}, {days_supply}, {cost}, {source_system or system}, {source_code or code}, {unit_normalised}, NULL
        FROM {st.scan()} s {joins}""")


def stage(run: Run) -> None:
    src = run.source
    pats = run.register(src.table("patients", required=True, need=("Id", "BIRTHDATE", "GENDER")))
    encs = run.register(src.table("encounters", required=True, need=("Id", "START", "PATIENT", "ENCOUNTERCLASS")))
    assert pats is not None and encs is not None
    p = pats.col
    run.sql(f"""
        INSERT INTO st_persons
        SELECT 'patients', s.src_row, 1, {ident_sql(p('Id'))}, {day_sql(p('BIRTHDATE'))},
               CASE upper({text(p('GENDER'))}) WHEN 'F' THEN 'F' WHEN 'M' THEN 'M' ELSE 'U' END,
               NULL, NULL, {day_sql(p('DEATHDATE'))}, NULL
        FROM {pats.scan()} s""")
    e = encs.col
    dflt = default_setting(run.con, FORMAT)
    setting = setting_sql(FORMAT, e("ENCOUNTERCLASS"))
    run.sql(f"""
        INSERT INTO st_encounters
        SELECT 'encounters', s.src_row, 1, {ident_sql(e('Id'))}, {ident_sql(e('PATIENT'))}, {ts_sql(e('START'))}, {ts_sql(e('STOP'))},
               COALESCE({setting}, {q(dflt)}), {text(e('ORGANIZATION'))}, COALESCE({num_sql(e('TOTAL_CLAIM_COST'))}, {num_sql(e('BASE_ENCOUNTER_COST'))}),
               {setting} IS NULL, NULL
        FROM {encs.scan()} s""")

    st = run.register(src.table("conditions", need=("START", "PATIENT", "CODE")))
    if st is not None and st.fmt != "empty":
        _event_insert(run, "conditions", st, time=ts_sql(st.col("START")), kind="'diagnosis'",
                      system=_vocab(st.col("SYSTEM"), "SNOMED-CT"), code=text(st.col("CODE")))

    st = run.register(src.table("procedures"))
    if st is not None and st.fmt != "empty":
        st.need("PATIENT", "CODE")
        if not (st.has("START") or st.has("DATE")):
            st.need("START")
        start = f"COALESCE({ts_sql(st.col('START'))}, {ts_sql(st.col('DATE'))})"
        _event_insert(run, "procedures", st, time=start, kind="'procedure'", system=_vocab(st.col("SYSTEM"), "SNOMED-CT"),
                      code=text(st.col("CODE")), cost=num_sql(st.col("BASE_COST")))

    st = run.register(src.table("medications", need=("START", "PATIENT", "CODE")))
    if st is not None and st.fmt != "empty":
        c = st.col
        build_drug_map(run.con, f"SELECT 'RxNorm' AS system, {text(c('CODE'))} AS code, {text(c('DESCRIPTION'))} AS name "
                                f"FROM {st.scan()} s", "dm_synthea")
        start, stop = ts_sql(c("START")), ts_sql(c("STOP"))
        _event_insert(run, "medications", st, time=start, kind="'medication'",
                      system="CASE WHEN dm.atc IS NOT NULL THEN 'ATC' ELSE 'RxNorm' END",
                      code=f"COALESCE(dm.atc, {text(c('CODE'))})", source_system="'RxNorm'", source_code=text(c("CODE")),
                      days_supply=f"CASE WHEN {stop} >= {start} THEN CAST(date_diff('day', {start}, {stop}) AS INTEGER) END",
                      cost=num_sql(c("TOTALCOST")),
                      joins=f"LEFT JOIN dm_synthea dm ON dm.code IS NOT DISTINCT FROM {text(c('CODE'))} "
                            f"AND dm.name IS NOT DISTINCT FROM {text(c('DESCRIPTION'))}")

    st = run.register(src.table("observations", need=("DATE", "PATIENT", "CODE", "VALUE", "UNITS")))
    if st is not None and st.fmt != "empty":
        c = st.col
        code, raw_unit = text(c("CODE")), text(c("UNITS"))
        numeric = f"(CASE WHEN lower(COALESCE({text(c('TYPE'))}, 'numeric')) = 'numeric' THEN {num_sql(c('VALUE'))} END)"
        _event_insert(run, "observations", st, time=ts_sql(c("DATE")),
                      kind=f"CASE WHEN lower({text(c('CATEGORY'))}) = 'laboratory' THEN 'lab' ELSE 'observation' END",
                      system="'LOINC'", code=code,
                      value=f"CASE WHEN u.factor IS NOT NULL THEN {numeric} * u.factor ELSE {numeric} END",
                      unit=f"COALESCE(u.to_unit, {raw_unit})", unit_normalised="u.factor IS NOT NULL AND u.from_unit <> lower(u.to_unit)",
                      joins=unit_join("u", "'LOINC'", code, raw_unit))

    st = run.register(src.table("immunizations", need=("DATE", "PATIENT", "CODE")))
    if st is not None and st.fmt != "empty":
        _event_insert(run, "immunizations", st, time=ts_sql(st.col("DATE")), kind="'medication'", system="'CVX'",
                      code=text(st.col("CODE")), cost=num_sql(st.col("BASE_COST")))

    st = run.register(src.table("imaging_studies", need=("DATE", "PATIENT")))
    if st is not None and st.fmt != "empty":
        if not (st.has("PROCEDURE_CODE") or st.has("MODALITY_CODE")):
            st.need("PROCEDURE_CODE")
        c = st.col
        proc = text(c("PROCEDURE_CODE"))
        # one row per instance: the rows of one study become identical events, merged into one by common.finish
        _event_insert(run, "imaging_studies", st, time=ts_sql(c("DATE")), kind="'procedure'",
                      system=f"CASE WHEN {proc} IS NOT NULL THEN 'SNOMED-CT' ELSE 'DICOM' END",
                      code=f"COALESCE({proc}, {text(c('MODALITY_CODE'))})")
