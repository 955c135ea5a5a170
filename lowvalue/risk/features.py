"""Pre-index features for every judged intervention, computed in SQL by the engine.

Every feature looks only at events *strictly before* the index timestamp: an
adverse event coded the same minute as the transfusion must not explain the
transfusion's risk. A test adds events at and after the index and checks that
no feature moves.

The comorbidity burden is the Charlson index with Quan et al.'s (2005) ICD-10
categories and the updated weights of Quan et al. (2011), at 3-character level
(a few 4-character codes are approximated by their category). Frailty is a count
of frailty-marker groups, a light version of the Hospital Frailty Risk Score.
"""

from __future__ import annotations

import duckdb

from lowvalue.engine.sql import DUCKDB, Dialect, codeset_key, match_sql, value_sql
from lowvalue.rules.codes import ValueSet
from lowvalue.rules.library import RuleSet

ICD = ("ICD-10-SE", "ICD-10-CM", "ICD-10")

CHARLSON: dict[str, tuple[int, list[str]]] = {
    "heart_failure": (2, ["I09.9", "I11.0", "I13.0", "I13.2", "I25.5", "I42.0", "I42.5-I42.9", "I43", "I50", "P29.0"]),
    "dementia": (2, ["F00-F03", "F05.1", "G30", "G31.1"]),
    "chronic_pulmonary": (1, ["I27.8", "I27.9", "J40-J47", "J60-J67", "J68.4", "J70.1", "J70.3"]),
    "rheumatic": (1, ["M05", "M06", "M31.5", "M32-M34", "M35.1", "M35.3", "M36.0"]),
    "mild_liver": (2, ["B18", "K70.0-K70.3", "K70.9", "K71.3-K71.5", "K71.7", "K73", "K74", "K76.0", "K76.2-K76.4",
                       "K76.8", "K76.9", "Z94.4"]),
    "diabetes_complicated": (1, ["E10.2-E10.5", "E10.7", "E11.2-E11.5", "E11.7", "E13.2-E13.5", "E13.7", "E14.2-E14.5", "E14.7"]),
    "hemiplegia": (2, ["G04.1", "G11.4", "G80.1", "G80.2", "G81", "G82", "G83.0-G83.4", "G83.9"]),
    "renal": (1, ["I12.0", "I13.1", "N03.2-N03.7", "N05.2-N05.7", "N18", "N19", "N25.0", "Z49", "Z94.0", "Z99.2"]),
    "malignancy": (2, ["C00-C26", "C30-C34", "C37-C41", "C43", "C45-C58", "C60-C76", "C81-C85", "C88", "C90-C97"]),
    "severe_liver": (4, ["I85.0", "I85.9", "I86.4", "I98.2", "K70.4", "K71.1", "K72.1", "K72.9", "K76.5-K76.7"]),
    "metastatic": (6, ["C77-C80"]),
    "hiv": (4, ["B20-B22", "B24"]),
}
FRAILTY: dict[str, list[str]] = {
    "dementia_delirium": ["F00-F05", "G30"],
    "falls": ["W00-W19", "R29.6", "Z91.81"],
    "dependency": ["Z74", "Z99.3", "R26"],
    "pressure_ulcer": ["L89"],
    "incontinence": ["R32", "R15", "N39.4"],
    "malnutrition": ["E40-E46", "R63.4", "R63.6"],
    "parkinsonism": ["G20-G22"],
    "fracture_hip_or_pelvis": ["S72", "S32"],
}
# Multimorbidity: distinct long-term conditions (a plain count, as in the multimorbidity literature). Charlson weights
# mortality and misses common conditions (hypertension, uncomplicated diabetes, atrial fibrillation, depression,
# hypothyroidism, osteoarthritis) that still mark frailty and so confound every low-value-care/harm comparison.
CHRONIC: dict[str, list[str]] = {
    "hypertension": ["I10-I15"],
    "diabetes": ["E10-E14"],
    "heart_failure": ["I50"],
    "ischaemic_heart_disease": ["I20-I25"],
    "atrial_fibrillation": ["I48"],
    "copd_asthma": ["J44", "J45"],
    "dementia": ["F00-F03", "G30"],
    "chronic_kidney_disease": ["N18"],
    "depression": ["F32", "F33"],
    "hypothyroidism": ["E03"],
    "osteoarthritis": ["M15-M19"],
    "stroke": ["I63", "I64", "I69"],
}
LABS = {"hb_last": "haemoglobin", "creatinine_last": "creatinine", "glucose_last": "glucose"}
FEATURES = (["age", "sex_male", "setting", "unit", "charlson", "n_drugs_90d", "inpatient_stays_365d", "visits_365d",
             "prior_triggers_365d", "frailty_markers", "chronic_conditions"] + list(LABS) + ["flag_specific", "flag_sensitive"])


def _icd_set(name: str, entries: list[str]) -> ValueSet:
    return ValueSet.inline(name, {s: entries for s in ICD})


GROUPS: list[tuple[str, str, int, ValueSet]] = [
    (family, name, order, _icd_set(name, list(spec[1] if family == "charlson" else spec)))  # type: ignore[index]
    for family, groups in (("charlson", CHARLSON), ("frailty", FRAILTY), ("chronic", CHRONIC))
    for order, (name, spec) in enumerate(groups.items())
]
"""(family, group, order, code set): a diagnosis counts for the first group of a family it matches."""


def code_sets(rs: RuleSet) -> list[ValueSet]:
    """The code sets the features read from ``lv_hit``: the lab sets of :data:`LABS` the library has. The diagnosis
    groups are not among them (:func:`groups_sql`)."""
    return [rs.valuesets[n] for n in LABS.values() if n in rs.valuesets]


def groups_sql(d: Dialect = DUCKDB) -> str:
    """SELECT (system, code, family, grp): the extract's diagnosis codes (as written, from ``lv_code_raw``) with,
    per family, the first group of :data:`GROUPS` each matches.

    The features read the diagnosis groups from the candidates' own events joined with this small table, not from
    ``lv_hit``: a 730-day look-back over every diagnosis of a group (hypertension alone is 2.6 M events at
    1 000 000 persons) made these groups more than a quarter of ``lv_hit``'s rows, which every partition sorts.
    A code's first group in a family depends on the code only, so it is resolved here once."""
    q = d["str"]
    parts = [f"SELECT DISTINCT c.system, c.code, {q(f)} AS family, {q(n)} AS grp, {o} AS ord FROM lv_code_raw c "
             f"WHERE c.kind = 'diagnosis' AND {match_sql(vs, 'c', d)}" for f, n, o, vs in GROUPS]
    return f"""SELECT system, code, family, {d['arg_min']('grp', 'ord')} AS grp
               FROM ({' UNION ALL '.join(parts)}) m GROUP BY system, code, family"""


def compute(con: duckdb.DuckDBPyConnection, candidates: str, triggers: str, rs: RuleSet, *, append: bool = False) -> str:
    """Build (or with ``append``, add to) ``lv_features``: one row per candidate of ``candidates`` (``candidate_id``,
    ``rule_id``, :data:`FEATURES`); ``triggers`` is the scan's trigger table. Returns the SELECT that reads it in
    file order.

    Needs ``lv_hit`` with :func:`code_sets` matched for the candidates' persons, and their partition's events and
    encounters (:func:`lowvalue.engine.sql.ensure_sets`, :func:`~lowvalue.engine.sql.build_hits`); the diagnosis
    groups (``lv_groups``, :func:`groups_sql`) are matched on the first call. Everything runs in the engine: a
    candidate's history is joined by person, never loaded into Python.
    """
    con.execute(f"CREATE TEMP TABLE IF NOT EXISTS lv_groups AS {groups_sql()}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE lv_cand AS {cand_sql(candidates)}")
    con.execute(f"{'INSERT INTO lv_features' if append else 'CREATE OR REPLACE TEMP TABLE lv_features AS'} "
                f"{features_sql('lv_cand', triggers, rs, events='lv_part_events', encounters='lv_part_encounters')}")
    con.execute("DROP TABLE lv_cand")
    return "SELECT * FROM lv_features ORDER BY rule_id, candidate_id"


LOOKBACK_DAYS = (30, 90, 365, 730)
"""How far back the features look, in days (labs, drugs, contacts and triggers, diagnoses)."""


def cand_sql(candidates: str, d: Dialect = DUCKDB) -> str:
    """The candidates' columns the features need and, per look-back of :data:`LOOKBACK_DAYS`, the first moment it
    covers (``from_<n>d``: midnight ``n`` days before the index day).

    An event is in the look-back when ``from_<n>d <= time < index_time``: two comparisons of timestamps per
    candidate and event pair, the same pairs as "before the index and at most ``n`` days before its day", without
    converting each pair's times to days or microseconds."""
    since = "".join(f", CAST({d['add_days']('CAST(index_time AS DATE)', -n)} AS TIMESTAMP) AS from_{n}d" for n in LOOKBACK_DAYS)
    return f"""SELECT candidate_id, rule_id, person_id, index_time, age, sex, setting, unit, sensitive, specific,
                      {since[2:]} FROM {candidates}"""


def features_sql(cand: str, triggers: str, rs: RuleSet, d: Dialect = DUCKDB, events: str = "events",
                 encounters: str = "encounters", groups: str = "lv_groups") -> str:
    """SELECT one row of :data:`FEATURES` per candidate of ``cand`` (:func:`cand_sql`), in dialect ``d``; the
    candidates' events and encounters are read from ``events`` and ``encounters`` (a person partition's views), the
    diagnosis codes' groups from ``groups`` (:func:`groups_sql`)."""
    q = d["str"]
    weights = " ".join(f"WHEN {q(n)} THEN {w}" for n, (w, _) in CHARLSON.items())
    lab_ctes, lab_cols = [], []
    for feat, vs_name in LABS.items():
        vs = rs.valuesets.get(vs_name)
        if vs is None:
            lab_cols.append(f"CAST(NULL AS DOUBLE) AS {feat}")
            continue
        lab_ctes.append(f""", {feat} AS (
          SELECT c.candidate_id, {d['arg_max']('v', ['t_us', 'ev_id'])} AS {feat}
          FROM (SELECT c.candidate_id, e.t_us, e.ev_id, {value_sql(vs, 'e', d)} AS v
                FROM {cand} c JOIN lv_hit e ON e.person_id = c.person_id
                WHERE e.cs = {codeset_key(vs)} AND e.kind = 'lab' AND e.time < c.index_time AND e.time >= c.from_30d) c
          WHERE v IS NOT NULL GROUP BY c.candidate_id)""")
        lab_cols.append(f"{feat}.{feat}")
    lab_joins = " ".join(f"LEFT JOIN {feat} USING (candidate_id)" for feat in LABS if rs.valuesets.get(LABS[feat]))
    return f"""
    WITH dx AS (
      SELECT DISTINCT c.candidate_id, g.family, g.grp
      FROM {cand} c JOIN {events} e ON e.person_id = c.person_id JOIN {groups} g ON g.system = e.system AND g.code = e.code
      WHERE e.kind = 'diagnosis' AND e.time < c.index_time AND e.time >= c.from_730d
    ),
    charlson AS (
      SELECT candidate_id, sum(CASE grp {weights} ELSE 0 END) AS charlson
      FROM (SELECT DISTINCT candidate_id, grp FROM dx WHERE family = 'charlson') GROUP BY candidate_id
    ),
    frailty AS (
      SELECT candidate_id, count(DISTINCT grp) AS frailty_markers FROM dx WHERE family = 'frailty' GROUP BY candidate_id
    ),
    chronic AS (
      SELECT candidate_id, count(DISTINCT grp) AS chronic_conditions FROM dx WHERE family = 'chronic' GROUP BY candidate_id
    ),
    drugs AS (
      SELECT c.candidate_id, count(DISTINCT e.code) AS n_drugs_90d
      FROM {cand} c JOIN {events} e ON e.person_id = c.person_id
      WHERE e.kind = 'medication' AND e.time < c.index_time AND e.time >= c.from_90d
      GROUP BY c.candidate_id
    ),
    contacts AS (
      SELECT c.candidate_id, count(*) FILTER (WHERE upper(trim(e.setting)) = 'INPATIENT') AS inpatient_stays_365d,
             count(*) AS visits_365d
      FROM {cand} c JOIN {encounters} e ON e.person_id = c.person_id
      WHERE e.start_time < c.index_time AND e.start_time >= c.from_365d
      GROUP BY c.candidate_id
    ),
    prior_triggers AS (
      SELECT c.candidate_id, count(*) AS prior_triggers_365d
      FROM {cand} c JOIN {triggers} t ON t.person_id = c.person_id
      WHERE t.time < c.index_time AND t.time >= c.from_365d
      GROUP BY c.candidate_id
    ){''.join(lab_ctes)}
    SELECT c.candidate_id, c.rule_id, CAST(c.age AS INTEGER) AS age, CAST(c.sex = 'M' AS INTEGER) AS sex_male,
           c.setting, c.unit,
           CAST(coalesce(charlson.charlson, 0) AS DOUBLE) AS charlson, coalesce(drugs.n_drugs_90d, 0) AS n_drugs_90d,
           coalesce(contacts.inpatient_stays_365d, 0) AS inpatient_stays_365d,
           coalesce(contacts.visits_365d, 0) AS visits_365d,
           coalesce(prior_triggers.prior_triggers_365d, 0) AS prior_triggers_365d,
           coalesce(frailty.frailty_markers, 0) AS frailty_markers,
           coalesce(chronic.chronic_conditions, 0) AS chronic_conditions,
           {', '.join(lab_cols)},
           CAST(c.specific AS INTEGER) AS flag_specific, CAST(c.sensitive AS INTEGER) AS flag_sensitive
    FROM {cand} c
    LEFT JOIN charlson USING (candidate_id) LEFT JOIN frailty USING (candidate_id)
    LEFT JOIN chronic USING (candidate_id)
    LEFT JOIN drugs USING (candidate_id) LEFT JOIN contacts USING (candidate_id)
    LEFT JOIN prior_triggers USING (candidate_id) {lab_joins}"""
