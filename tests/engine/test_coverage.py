"""Evaluability from the data: code-set coverage, orphan codes, and the statuses they lead to."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

import lowvalue
from lowvalue.rules.library import load_library

RS = load_library()


def _extract(events: list[tuple], settings: tuple[str, ...] = ("inpatient",)) -> dict[str, pd.DataFrame]:
    """One person aged 84, one encounter per setting, and ``events`` as (kind, system, code, value, unit) at one time."""
    t = datetime(2024, 6, 15, 12)
    persons = pd.DataFrame([{"person_id": "p", "birth_date": datetime(1940, 1, 1).date(), "sex": "M"}])
    encounters = pd.DataFrame([{"encounter_id": s, "person_id": "p", "start_time": t.replace(hour=1),
                                "end_time": t.replace(hour=23), "setting": s, "unit": "U"} for s in settings])
    ev = pd.DataFrame([{"person_id": "p", "encounter_id": settings[0], "time": t, "kind": k, "system": s, "code": c,
                        "value": v, "unit": u, "days_supply": None} for k, s, c, v, u in events])
    return {"persons": persons, "encounters": encounters, "events": ev}


SWEDISH = [("procedure", "KVÅ", "DR029", None, None), ("lab", "NPU", "NPU28309", 95.0, "g/L"),
           ("diagnosis", "ICD-10-SE", "I10", None, None), ("procedure", "LOKAL-RIS", "MR-LRYGG", None, None),
           ("diagnosis", "ICD-10-SE", "M54.5", None, None)]


def test_an_index_code_set_that_matches_nothing_is_not_evaluable_and_names_the_fix():
    r = lowvalue.scan(_extract(SWEDISH), RS, only=["LV-IMG-001", "LV-HOSP-027"], features=False)
    ev = r.evaluability.set_index("rule_id")
    assert ev.loc["LV-IMG-001", "status"] == "not_evaluable"
    reason = ev.loc["LV-IMG-001", "reason"]
    assert "code set 'lumbar_spine_imaging' matches no procedure event" in reason
    assert "KVÅ, LOKAL-RIS" in reason and "--codes" in reason and "codes template" in reason
    assert ev.loc["LV-HOSP-027", "status"] == "evaluable"


def test_coverage_counts_codes_and_events_per_system():
    r = lowvalue.scan(_extract(SWEDISH), RS, only=["LV-HOSP-027"], features=False)
    cov = r.codeset_coverage.set_index(["rule_id", "condition", "system"])
    idx = cov.loc[("LV-HOSP-027", "index", "KVÅ")]
    assert (idx.codeset, idx.codes_matched, idx.events_matched) == ("red_cell_transfusion", 1, 1)
    assert cov.loc[("LV-HOSP-027", "index", "LOKAL-RIS")].events_matched == 0  # a system of the extract, no codes
    assert cov.loc[("LV-HOSP-027", "index", "CPT")].system_events == 0  # a system of the set, no data
    hb = cov.loc[("LV-HOSP-027", "hb_at_least_70", "NPU")]
    assert hb.events_matched == hb.events_with_value == 1


def test_swedish_hb_95_g_per_l_before_a_transfusion_is_flagged():
    r = lowvalue.scan(_extract(SWEDISH[:2]), RS, only=["LV-HOSP-027"], features=False)
    assert list(r.flags.variant) == ["specific"]


def test_an_exclusion_without_codes_in_a_classification_the_extract_uses_is_limited():
    """KSH97-P diagnoses (Swedish primary care's classification): the bleeding, coronary and cancer exclusions cannot see them."""
    events = SWEDISH[:2] + [("diagnosis", "KSH97-P", "I10", None, None)] * 3
    r = lowvalue.scan(_extract(events), RS, only=["LV-HOSP-027"], features=False)
    ev = r.evaluability.set_index("rule_id").loc["LV-HOSP-027"]
    assert ev.status == "limited", ev.reason
    assert "code set 'active_bleeding' has no KSH97-P codes" in ev.reason and "flags may overstate" in ev.reason


def test_icd9_diagnoses_no_longer_limit_the_transfusion_exclusions():
    """MIMIC-IV's older admissions (ICD-9-CM): the exclusions' code sets now hold ICD-9-CM codes."""
    events = SWEDISH[:2] + [("diagnosis", "ICD-9-CM", "4019", None, None)] * 3
    r = lowvalue.scan(_extract(events), RS, only=["LV-HOSP-027"], features=False)
    reason = r.evaluability.set_index("rule_id").loc["LV-HOSP-027", "reason"]
    assert "has no ICD-9-CM codes" not in str(reason)


def test_a_local_catalogue_alone_does_not_limit_every_exclusion():
    r = lowvalue.scan(_extract(SWEDISH), RS, only=["LV-HOSP-028"], features=False)
    assert "LOKAL-RIS" not in r.evaluability.set_index("rule_id").loc["LV-HOSP-028", "reason"]


def test_a_trigger_that_never_occurred_is_limited_not_unevaluable():
    r = lowvalue.scan(_extract(SWEDISH), RS, only=["LV-HOSP-027"], features=False)
    ev = r.evaluability.set_index("rule_id").loc["TR-HAI"]
    assert ev.status == "limited" and "none occurred, or the region codes it otherwise" in ev.reason


def test_orphan_codes_share_a_category_with_the_set_or_sit_in_a_system_it_lacks():
    events = SWEDISH + [("diagnosis", "ICD-10-SE", "K92.9", None, None)]  # K92.0-K92.2 bleed; K92.9 is not
    r = lowvalue.scan(_extract(events), RS, only=["LV-HOSP-027", "LV-IMG-001"], features=False)
    o = r.orphan_codes
    bleed = o[o.codeset == "active_bleeding"]
    assert list(bleed.code) == ["K92.9"] and bleed.relation.iloc[0] == "same category as a code of the set"
    lumbar = o[o.codeset == "lumbar_spine_imaging"]
    assert "MR-LRYGG" in set(lumbar.code) and "DR029" not in set(lumbar.code)  # DR029 belongs to another set


def _stay(dx_at: str, poa: str | None = None) -> dict[str, pd.DataFrame]:
    """An inpatient stay from 01:00 with sepsis (A41.9) at ``dx_at``: "start" (the admission time) or "day3"."""
    frames = _extract([("diagnosis", "ICD-10-SE", "A41.9", None, None)])
    start = frames["encounters"].start_time.iloc[0]
    frames["encounters"]["end_time"] = start + pd.Timedelta(days=6)
    frames["events"]["time"] = start if dx_at == "start" else start + pd.Timedelta(hours=60)
    frames["events"]["present_on_admission"] = poa
    return frames


def test_hospital_onset_triggers_need_timed_diagnoses_or_a_present_on_admission_flag():
    """Swedish patient-administrative data date diagnoses at the contact: a 48-hour anchor can never fire there."""
    contact = lowvalue.scan(_stay("start"), RS, only=["LV-HOSP-027"], features=False)
    ev = contact.evaluability.set_index("rule_id").loc["TR-HAI"]
    assert ev.status == "not_evaluable" and "100% of the diagnosis events in inpatient stays are dated at the contact" in ev.reason
    assert "present_on_admission" in ev.reason
    flagged = lowvalue.scan(_stay("start", "N"), RS, only=["LV-HOSP-027"], features=False)
    assert flagged.evaluability.set_index("rule_id").loc["TR-HAI", "status"] == "evaluable"
    assert list(flagged.triggers.trigger_id) == ["TR-HAI"]  # POA N: hospital-acquired although dated at admission
    timed = lowvalue.scan(_stay("day3"), RS, only=["LV-HOSP-027"], features=False)
    assert timed.evaluability.set_index("rule_id").loc["TR-HAI", "status"] == "evaluable"
    assert list(timed.triggers.trigger_id) == ["TR-HAI"]
