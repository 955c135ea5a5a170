"""OMOP CDM v5.3/v5.4 (one CSV, CSV.gz or Parquet file per table, lower-case columns) -> canonical extract.

Identifiers: person_id, visit_occurrence_id as strings (``123.0`` -> ``123``). ``person_source_value`` is
never carried over (often a hospital record number).

Codes go through the ``concept`` table (vocabulary_id + concept_code; vocabulary ids -> canonical systems by
mappings/vocabularies.csv). For each row the *source* concept is used when its vocabulary is one the rules
code in (ICD-10-CM, ICD-10, ICD-10-PCS, CPT, ATC, LOINC, NPU, KVÅ, ICD-10-SE), else the standard concept
(SNOMED conditions, RxNorm drugs, LOINC measurements), else the source concept. Drugs are then mapped to ATC:
through ``concept_ancestor`` to an ATC 5th-level ancestor when that table is present, else by RxNorm code or
concept name (mappings/drug_*). A concept id missing from ``concept`` (or no ``concept`` table at all) keeps
system ``OMOP`` and the concept id as code; concept id 0 keeps the ``*_source_value`` under system
``OMOP-source``. Both count as unmapped.

Visits: visit_concept_id -> setting (mappings/settings.csv; unknown -> outpatient, counted). Events whose
visit_occurrence_id is not in visit_occurrence keep the event with encounter_id NULL (counted). Persons:
birth_datetime, else year/month/day of birth (missing month/day -> 1, so ages may be overstated by < 1
year); death from the ``death`` table. Tables read: person, visit_occurrence, condition_occurrence,
procedure_occurrence, drug_exposure, measurement, observation, death (device_exposure, visit_detail, cost and
the era tables are not converted).
"""

from __future__ import annotations

from lowvalue.data.adapters.common import (
    Run, SourceTable, build_drug_map, day_sql, default_setting, ident_sql, num_sql, q, setting_sql, text, ts_sql, unit_join,
)

FORMAT = "omop"
FOLDERS = ("",)
NOT_CONVERTED = {
    "concept_relationship": "not needed: codes are resolved through concept (and concept_ancestor for ATC)",
    "visit_detail": "not needed: settings come from visit_occurrence",
    "observation_period": "not used by lowvalue (rules look at events, not observation periods)",
}
RULE_SYSTEMS = ("ICD-10-CM", "ICD-10", "ICD-10-PCS", "CPT", "ATC", "LOINC", "NPU", "KVÅ", "ICD-10-SE")


def _concepts(run: Run) -> bool:
    st = run.register(run.source.table("concept"), role="reference")
    if st is None or st.fmt == "empty":
        run.sql("CREATE TABLE cpt (concept_id VARCHAR, system VARCHAR, code VARCHAR, name VARCHAR, concept_class_id VARCHAR)")
        run.notes.append("no concept table: concept ids are kept under system OMOP (unmapped)")
        return False
    st.need("concept_id", "vocabulary_id", "concept_code")
    c = st.col
    run.sql(f"""
        CREATE TABLE cpt AS
        SELECT {ident_sql(c('concept_id'))} AS concept_id,
               COALESCE(v.system, {text(c('vocabulary_id'))}) AS system, {text(c('concept_code'))} AS code,
               {text(c('concept_name'))} AS name, {text(c('concept_class_id'))} AS concept_class_id
        FROM {st.scan()} s LEFT JOIN map_vocab_u v ON v.vocabulary = upper({text(c('vocabulary_id'))})""")
    return True


def _pick(std: str, src: str) -> str:
    """SQL choosing (system, code) per the module rule; ``std``/``src`` are aliases of joined ``cpt`` rows."""
    rule = ", ".join(q(s) for s in RULE_SYSTEMS)
    return (f"CASE WHEN {src}.system IN ({rule}) THEN 'src' WHEN {std}.system IS NOT NULL THEN 'std' "
            f"WHEN {src}.system IS NOT NULL THEN 'src' ELSE NULL END")


def _clinical(run: Run, table: str, *, concept: str, source_concept: str, source_value: str, date: str, datetime: str,
              kind: str, extra=None) -> None:
    st = run.register(run.source.table(table))
    if st is None or st.fmt == "empty":
        return
    st.need("person_id", concept)
    c = st.col
    if not (st.has(date) or st.has(datetime)):
        st.need(date)
    cid, scid = ident_sql(c(concept)), ident_sql(c(source_concept))
    t = f"COALESCE({ts_sql(c(datetime))}, {ts_sql(c(date))})"
    pick = _pick("k1", "k2")
    system = (f"CASE {pick} WHEN 'src' THEN k2.system WHEN 'std' THEN k1.system "
              f"ELSE CASE WHEN {cid} IN ('0', '') OR {cid} IS NULL THEN 'OMOP-source' ELSE 'OMOP' END END")
    code = (f"CASE {pick} WHEN 'src' THEN k2.code WHEN 'std' THEN k1.code "
            f"ELSE CASE WHEN {cid} IN ('0', '') OR {cid} IS NULL THEN {text(c(source_value))} ELSE {cid} END END")
    name = f"CASE {pick} WHEN 'src' THEN k2.name WHEN 'std' THEN k1.name END"
    joins = (f"LEFT JOIN cpt k1 ON k1.concept_id = {cid} AND {cid} <> '0' "
             f"LEFT JOIN cpt k2 ON k2.concept_id = {scid} AND {scid} <> '0'")
    extra = extra(st) if extra else {}
    value, unit, ds = extra.get("value", "NULL"), extra.get("unit", "NULL"), extra.get("days_supply", "NULL")
    joins += " " + extra.get("joins", "")
    # the resolved code before drug / unit mapping
    run.sql(f"""
        CREATE OR REPLACE TEMP TABLE _res AS
        SELECT s.src_row, {ident_sql(c('person_id'))} AS person_id, {ident_sql(c('visit_occurrence_id'))} AS encounter_id,
               {t} AS time, {system} AS system, {code} AS code, {name} AS name, {cid} AS cid, {value} AS value, {unit} AS unit,
               {ds} AS days_supply
        FROM {st.scan()} s {joins}""")
    if kind == "medication":
        build_drug_map(run.con, "SELECT system, code, name FROM _res", "dm_omop")
        anc = "NULL"
        if run.tables.get("concept_ancestor") is not None:
            anc = "a.atc"
            anc_join = "LEFT JOIN atc_anc a ON a.cid = r.cid"
        else:
            anc_join = ""
        run.sql(f"""
            INSERT INTO st_events
            SELECT {q(table)}, r.src_row, 1, r.person_id, r.encounter_id, r.time, 'medication',
                   CASE WHEN COALESCE({anc}, dm.atc) IS NOT NULL THEN 'ATC' ELSE r.system END,
                   COALESCE({anc}, dm.atc, r.code), r.value, r.unit, r.days_supply, NULL, r.system, r.code, false, NULL
            FROM _res r {anc_join}
            LEFT JOIN dm_omop dm ON dm.system IS NOT DISTINCT FROM r.system AND dm.code IS NOT DISTINCT FROM r.code
                                AND dm.name IS NOT DISTINCT FROM r.name""")
    elif kind == "lab":
        run.sql(f"""
            INSERT INTO st_events
            SELECT {q(table)}, r.src_row, 1, r.person_id, r.encounter_id, r.time, 'lab', r.system, r.code,
                   CASE WHEN u.factor IS NOT NULL THEN r.value * u.factor ELSE r.value END, COALESCE(u.to_unit, r.unit),
                   NULL, NULL, r.system, r.code, u.factor IS NOT NULL AND u.from_unit <> lower(u.to_unit), NULL
            FROM _res r {unit_join('u', 'r.system', 'r.code', 'r.unit')}""")
    else:
        run.sql(f"""
            INSERT INTO st_events
            SELECT {q(table)}, r.src_row, 1, r.person_id, r.encounter_id, r.time, {q(kind)}, r.system, r.code, r.value, r.unit,
                   NULL, NULL, r.system, r.code, false, NULL
            FROM _res r""")


def stage(run: Run) -> None:
    src = run.source
    person = run.register(src.table("person", required=True, need=("person_id", "gender_concept_id")))
    visit = run.register(src.table("visit_occurrence", required=True, need=("visit_occurrence_id", "person_id", "visit_concept_id")))
    assert person is not None and visit is not None
    has_concept = _concepts(run)
    anc = run.register(src.table("concept_ancestor"), role="reference")
    if anc is not None and anc.fmt != "empty" and has_concept:
        anc.need("ancestor_concept_id", "descendant_concept_id")
        drug = src.table("drug_exposure")
        if drug is not None and drug.fmt != "empty":
            run.sql(f"""
                CREATE TABLE atc_anc AS
                SELECT {ident_sql(anc.col('descendant_concept_id'))} AS cid, min(k.code) AS atc
                FROM {anc.scan()} s JOIN cpt k ON k.concept_id = {ident_sql(anc.col('ancestor_concept_id'))}
                 AND k.system = 'ATC' AND length(k.code) = 7
                WHERE {ident_sql(anc.col('descendant_concept_id'))} IN
                      (SELECT DISTINCT {ident_sql(drug.col('drug_concept_id'))} FROM {drug.scan()} s)
                GROUP BY 1""")
        else:
            run.tables.pop("concept_ancestor", None)
    else:
        run.tables.pop("concept_ancestor", None)

    p = person.col
    born = (f"COALESCE(CAST({ts_sql(p('birth_datetime'))} AS DATE), "
            f"TRY_CAST(make_date(CAST({num_sql(p('year_of_birth'))} AS INTEGER), "
            f"CAST(COALESCE({num_sql(p('month_of_birth'))}, 1) AS INTEGER), CAST(COALESCE({num_sql(p('day_of_birth'))}, 1) AS INTEGER)) AS DATE))")
    death = run.register(src.table("death"))
    death_sql = "NULL"
    if death is not None and death.fmt != "empty":
        death.need("person_id")
        d = death.col
        run.sql(f"""CREATE TABLE _death AS SELECT {ident_sql(d('person_id'))} AS person_id,
                    min(COALESCE(CAST({ts_sql(d('death_datetime'))} AS DATE), {day_sql(d('death_date'))})) AS death_date
                    FROM {death.scan()} s GROUP BY 1""")
        run.sql(f"""INSERT INTO st_aux SELECT 'death', s.src_row, 1, {ident_sql(d('person_id'))},
                    CASE WHEN COALESCE({ts_sql(d('death_datetime'))}, {day_sql(d('death_date'))}) IS NULL THEN 'missing:death_date' END
                    FROM {death.scan()} s""")
        death_sql = f"(SELECT dd.death_date FROM _death dd WHERE dd.person_id = {ident_sql(p('person_id'))})"
    gender = ident_sql(p("gender_concept_id"))
    run.sql(f"""
        INSERT INTO st_persons
        SELECT 'person', s.src_row, 1, {ident_sql(p('person_id'))}, {born},
               CASE WHEN {gender} = '8532' THEN 'F' WHEN {gender} = '8507' THEN 'M'
                    WHEN upper({text(p('gender_source_value'))}) IN ('F', 'FEMALE') THEN 'F'
                    WHEN upper({text(p('gender_source_value'))}) IN ('M', 'MALE') THEN 'M' ELSE 'U' END,
               NULL, {ident_sql(p('care_site_id'))}, {death_sql}, NULL
        FROM {person.scan()} s""")

    v = visit.col
    dflt = default_setting(run.con, FORMAT)
    setting = setting_sql(FORMAT, ident_sql(v("visit_concept_id")))
    run.sql(f"""
        INSERT INTO st_encounters
        SELECT 'visit_occurrence', s.src_row, 1, {ident_sql(v('visit_occurrence_id'))}, {ident_sql(v('person_id'))},
               COALESCE({ts_sql(v('visit_start_datetime'))}, {ts_sql(v('visit_start_date'))}),
               COALESCE({ts_sql(v('visit_end_datetime'))}, {ts_sql(v('visit_end_date'))}),
               COALESCE({setting}, {q(dflt)}), {ident_sql(v('care_site_id'))}, NULL, {setting} IS NULL, NULL
        FROM {visit.scan()} s""")

    _clinical(run, "condition_occurrence", concept="condition_concept_id", source_concept="condition_source_concept_id",
              source_value="condition_source_value", date="condition_start_date", datetime="condition_start_datetime",
              kind="diagnosis")
    _clinical(run, "procedure_occurrence", concept="procedure_concept_id", source_concept="procedure_source_concept_id",
              source_value="procedure_source_value", date="procedure_date", datetime="procedure_datetime", kind="procedure")
    def drug_extra(st: SourceTable) -> dict[str, str]:
        d = num_sql(st.col("days_supply"))
        return {"days_supply": f"CASE WHEN round({d}) = {d} THEN CAST({d} AS INTEGER) END"}

    def meas_extra(st: SourceTable) -> dict[str, str]:
        st.need("value_as_number")  # without it every measurement would silently lose its value
        if not st.has("unit_concept_id"):
            st.need("unit_source_value")
        return {"value": num_sql(st.col("value_as_number")),
                "unit": f"COALESCE({text(st.col('unit_source_value'))}, ku.code)",
                "joins": f"LEFT JOIN cpt ku ON ku.concept_id = {ident_sql(st.col('unit_concept_id'))}"}

    _clinical(run, "drug_exposure", concept="drug_concept_id", source_concept="drug_source_concept_id",
              source_value="drug_source_value", date="drug_exposure_start_date", datetime="drug_exposure_start_datetime",
              kind="medication", extra=drug_extra)
    _clinical(run, "measurement", concept="measurement_concept_id", source_concept="measurement_source_concept_id",
              source_value="measurement_source_value", date="measurement_date", datetime="measurement_datetime", kind="lab",
              extra=meas_extra)
    _clinical(run, "observation", concept="observation_concept_id", source_concept="observation_source_concept_id",
              source_value="observation_source_value", date="observation_date", datetime="observation_datetime",
              kind="observation", extra=lambda st: {"value": num_sql(st.col("value_as_number"))})
