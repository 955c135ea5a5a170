"""Example-based tests of the reference evaluator: one construct, one hand-made timeline, an obvious answer.

Times are offsets from the reference time T = 2024-06-15 12:00 (as in rule test decks).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from lowvalue.engine.reference import age_on, evaluate
from lowvalue.rules.codes import CodeEntry, Units, ValueSet
from lowvalue.rules.library import RuleSet
from lowvalue.rules.model import Rule

T = datetime(2024, 6, 15, 12, 0)
DX = {"ICD-10-SE": ["A01"]}
RS = RuleSet(valuesets={"hb": ValueSet(name="hb", codes={"NPU": (CodeEntry.parse("NPU", "HB"),)},
                                       units=Units("g/L", {"g/dL": 10}))})


def at(days: float = 0, hours: float = 0, minutes: float = 0) -> datetime:
    return T + timedelta(days=days, hours=hours, minutes=minutes)


def ev(when: datetime, kind: str = "diagnosis", system: str = "ICD-10-SE", code: str = "A01", *,
       enc: str | None = None, value: float | None = None, unit: str | None = None,
       days_supply: int | None = None, person: str = "p1") -> dict[str, Any]:
    return {"person_id": person, "encounter_id": enc, "time": when, "kind": kind, "system": system, "code": code,
            "value": value, "unit": unit, "days_supply": days_supply}


def proc(when: datetime, **kw: Any) -> dict[str, Any]:
    """The index event of most tests: procedure KVÅ P1."""
    return ev(when, "procedure", "KVÅ", "P1", **kw)


def lab(when: datetime, value: float | None, unit: str | None = None, **kw: Any) -> dict[str, Any]:
    return ev(when, "lab", "NPU", "HB", value=value, unit=unit, **kw)


def med(when: datetime, days_supply: int | None, code: str = "C01", **kw: Any) -> dict[str, Any]:
    return ev(when, "medication", "ATC", code, days_supply=days_supply, **kw)


def enc(eid: str, when: datetime, setting: str, person: str = "p1", end: datetime | None = None) -> dict[str, Any]:
    return {"encounter_id": eid, "person_id": person, "start_time": when,
            "end_time": end or when + timedelta(hours=1), "setting": setting, "unit": "U1"}


def make_rule(conditions: dict[str, Any] | None = None, *, index: dict[str, Any] | None = None,
              population: dict[str, Any] | None = None, eligibility: list[str] | None = None,
              variants: dict[str, list[str]] | None = None) -> Rule:
    conditions = conditions or {}
    return Rule.model_validate({
        "id": "LV-TEST", "title": {"sv": "t", "en": "t"}, "rationale": {"sv": "r", "en": "r"},
        "population": population or {},
        "index": index or {"kind": "procedure", "codes": {"KVÅ": ["P1"]}},
        "conditions": conditions,
        "eligibility": list(conditions) if eligibility is None else eligibility,
        "variants": variants or {},
    })


def run(rule: Rule, events: list[dict], encounters: list[dict] | None = None,
        persons: list[dict] | None = None) -> pd.DataFrame:
    persons = persons or [{"person_id": "p1", "birth_date": date(1970, 1, 1), "sex": "F", "death_date": None}]
    p = pd.DataFrame(persons)
    e = pd.DataFrame(encounters or [], columns=["encounter_id", "person_id", "start_time", "end_time", "setting", "unit"])
    e["start_time"] = pd.to_datetime(e["start_time"]).astype("datetime64[us]")
    e["end_time"] = pd.to_datetime(e["end_time"]).astype("datetime64[us]")
    v = pd.DataFrame(events, columns=["person_id", "encounter_id", "time", "kind", "system", "code", "value", "unit",
                                      "days_supply"])
    v["time"] = pd.to_datetime(v["time"]).astype("datetime64[us]")
    return evaluate(p, e, v, rule, RS)


def holds(rule: Rule, events: list[dict], encounters: list[dict] | None = None, cond: str = "c") -> list[bool]:
    """The condition's value for each candidate, in output order."""
    return run(rule, events, encounters)[f"cond__{cond}"].tolist()


def require(**crit: Any) -> Rule:
    return make_rule({"c": {"require": crit}})


# ---- output shape --------------------------------------------------------------------------------


def test_columns_and_order_and_raw_index_values():
    rule = make_rule({"b": {"index_setting": ["inpatient"]}, "a": {"require": {"kind": "diagnosis", "codes": DX,
                                                                              "window": "[-1d, 0d]"}}},
                     index={"kind": "lab", "codes": "hb"})
    out = run(rule, [lab(at(1), 1.2, "g/dL", enc="e1"), lab(at(0), 120, None)], [enc("e1", at(1), "inpatient")])
    assert list(out.columns) == ["person_id", "encounter_id", "index_time", "index_system", "index_code", "index_value",
                                 "index_unit", "index_days_supply", "eligible", "sensitive", "specific", "cond__b",
                                 "cond__a"]
    assert out["index_time"].tolist() == [pd.Timestamp(at(0)), pd.Timestamp(at(1))]
    assert out["index_value"].tolist() == [120.0, 1.2]  # raw, not converted
    assert out["index_unit"].tolist() == [None, "g/dL"]
    assert out["encounter_id"].tolist() == [None, "e1"]
    assert out["cond__b"].tolist() == [False, True]


def test_empty_output_keeps_columns():
    out = run(make_rule({"c": {"index_setting": ["home"]}}), [ev(at(0))])
    assert len(out) == 0 and "cond__c" in out.columns


def test_multiple_candidates_are_judged_independently():
    rule = require(kind="diagnosis", codes=DX, window="[-7d, 0d]")
    events = [proc(at(-10)), ev(at(-3)), proc(at(0)), proc(at(5))]
    assert holds(rule, events) == [False, True, False]


def test_candidates_of_several_persons():
    persons = [{"person_id": p, "birth_date": date(1970, 1, 1), "sex": "F", "death_date": None} for p in ("p1", "p2")]
    rule = require(kind="diagnosis", codes=DX, window="[-7d, 0d]")
    out = run(rule, [proc(at(0), person="p2"), proc(at(0)), ev(at(-1), person="p2")], persons=persons)
    assert out["person_id"].tolist() == ["p1", "p2"]
    assert out["cond__c"].tolist() == [False, True]


# ---- windows -------------------------------------------------------------------------------------


@pytest.mark.parametrize("window, offsets, expected", [
    ("[-42d, 0d]", [-42], True),
    ("(-42d, 0d]", [-42], False),
    ("[-42d, 0d]", [-43], False),
    ("[-42d, 0d]", [0], True),
    ("[-42d, 0d)", [0], False),
    ("[-42d, 0d)", [-1], True),
    ("[0d, 0d]", [0], True),
    ("[0d, 0d]", [1], False),
    ("[1d, 7d]", [0], False),
])
def test_day_window_edges(window, offsets, expected):
    rule = require(kind="diagnosis", codes=DX, window=window)
    assert holds(rule, [proc(at(0))] + [ev(at(o)) for o in offsets]) == [expected]


def test_day_window_uses_calendar_dates_not_24h_periods():
    # index at 00:10, diagnosis the evening before, only 20 minutes earlier: offset −1 day
    rule = require(kind="diagnosis", codes=DX, window="[0d, 0d]")
    idx = datetime(2024, 6, 15, 0, 10)
    assert holds(rule, [proc(idx), ev(idx - timedelta(minutes=20))]) == [False]
    # and 23 h 59 min before on the same date: offset 0
    idx = datetime(2024, 6, 15, 23, 59)
    assert holds(rule, [proc(idx), ev(datetime(2024, 6, 15, 0, 0))]) == [True]


@pytest.mark.parametrize("window, event, expected", [
    ("[-24h, 0h]", at(hours=-24), True),
    ("[-24h, 0h]", at(hours=-24, minutes=-1), False),
    ("(-24h, 0h]", at(hours=-24), False),
    ("(-24h, 0h]", at(hours=-24, minutes=1), True),
    ("[-24h, 0h]", at(0), True),
    ("[-24h, 0h)", at(0), False),
    ("[-24h, 0h)", at(minutes=-1), True),
    ("[0h, 1h]", at(hours=1), True),
    ("[0h, 1h)", at(hours=1), False),
    ("[0h, 1h]", at(hours=1, minutes=1), False),
])
def test_hour_window_edges(window, event, expected):
    rule = require(kind="diagnosis", codes=DX, window=window)
    assert holds(rule, [proc(at(0)), ev(event)]) == [expected]


def test_index_event_itself_is_in_a_window_containing_zero():
    rule = make_rule({"c": {"require": {"kind": "procedure", "codes": {"KVÅ": ["P1"]}, "window": "[-1d, 0d]"}},
                      "d": {"require": {"kind": "procedure", "codes": {"KVÅ": ["P1"]}, "window": "[-730d, -1d]"}}})
    out = run(rule, [proc(at(0))])
    assert out["cond__c"].tolist() == [True]
    assert out["cond__d"].tolist() == [False]


# ---- population ----------------------------------------------------------------------------------


def test_age_arithmetic():
    assert age_on(date(2006, 6, 15), date(2024, 6, 15)) == 18
    assert age_on(date(2006, 6, 16), date(2024, 6, 15)) == 17
    assert age_on(date(2000, 2, 29), date(2023, 2, 28)) == 22
    assert age_on(date(2000, 2, 29), date(2023, 3, 1)) == 23
    assert age_on(date(2000, 2, 29), date(2024, 2, 29)) == 24


@pytest.mark.parametrize("birth, index_day, population, expected", [
    (date(2006, 6, 15), date(2024, 6, 15), {"age_min": 18}, True),    # 18th birthday
    (date(2006, 6, 16), date(2024, 6, 15), {"age_min": 18}, False),   # day before
    (date(1959, 6, 15), date(2024, 6, 15), {"age_max": 64}, False),   # 65th birthday
    (date(1959, 6, 16), date(2024, 6, 15), {"age_max": 64}, True),
    (date(2005, 2, 29 - 1), date(2023, 2, 28), {"age_min": 18}, True),
    (date(2004, 2, 29), date(2022, 2, 28), {"age_min": 18}, False),   # 29 Feb birth, common year
    (date(2004, 2, 29), date(2022, 3, 1), {"age_min": 18}, True),
    (date(1970, 1, 1), date(2024, 6, 15), {"sex": ["M"]}, False),
    (date(1970, 1, 1), date(2024, 6, 15), {"sex": ["F", "U"]}, True),
])
def test_population(birth, index_day, population, expected):
    rule = make_rule(population=population)
    # the index at 23:59 to show the time of day does not matter
    when = datetime(index_day.year, index_day.month, index_day.day, 23, 59)
    out = run(rule, [proc(when)], persons=[{"person_id": "p1", "birth_date": birth, "sex": "F", "death_date": None}])
    assert len(out) == (1 if expected else 0)


# ---- index ---------------------------------------------------------------------------------------


def test_index_settings_require_an_encounter_in_the_setting():
    rule = make_rule(index={"kind": "procedure", "codes": {"KVÅ": ["P1"]}, "settings": ["inpatient"]})
    events = [proc(at(0), enc="e1"), proc(at(1), enc="e2"), proc(at(2)), proc(at(3), enc="e-missing")]
    out = run(rule, events, [enc("e1", at(0), "inpatient"), enc("e2", at(1), "outpatient")])
    assert out["index_time"].tolist() == [pd.Timestamp(at(0))]


def test_index_value_threshold_after_unit_conversion():
    rule = make_rule(index={"kind": "lab", "codes": "hb", "value": {"op": ">=", "threshold": 100}})
    events = [lab(at(0), 9.5, "g/dL"), lab(at(1), 10.5, "G/DL"), lab(at(2), 120, "mmol/L"), lab(at(3), None),
              lab(at(4), 100, None)]
    out = run(rule, events)
    assert out["index_time"].tolist() == [pd.Timestamp(at(1)), pd.Timestamp(at(4))]


def test_encounter_index_is_its_pseudo_event():
    rule = make_rule({"c": {"require": {"kind": "diagnosis", "codes": DX, "window": "[0d, 0d]",
                                        "same_encounter": True}}},
                     index={"kind": "encounter", "codes": {"setting": ["emergency"]}})
    out = run(rule, [ev(at(hours=2), enc="e1")],
              [enc("e1", at(0), "emergency"), enc("e2", at(0), "inpatient"), enc("e3", at(1), "emergency")])
    assert out[["encounter_id", "index_system", "index_code"]].values.tolist() == [
        ["e1", "setting", "emergency"], ["e3", "setting", "emergency"]]
    assert out["index_value"].isna().all()
    assert out["cond__c"].tolist() == [True, False]


def test_encounter_pseudo_events_as_criterion():
    rule = require(kind="encounter", codes={"setting": ["inpatient"]}, window="[-30d, -1d]")
    encs = [enc("e1", at(-30), "inpatient"), enc("e2", at(-2), "outpatient")]
    assert holds(rule, [proc(at(0))], encs) == [True]
    assert holds(rule, [proc(at(1))], encs) == [False]


# ---- conditions ----------------------------------------------------------------------------------


def test_index_setting_condition():
    rule = make_rule({"c": {"index_setting": ["emergency", "inpatient"]}})
    out = run(rule, [proc(at(0), enc="e1"), proc(at(1), enc="e2"), proc(at(2))],
              [enc("e1", at(0), "emergency"), enc("e2", at(1), "primary_care")])
    assert out["cond__c"].tolist() == [True, False, False]


def test_exclude_is_the_negation():
    rule = make_rule({"c": {"exclude": {"kind": "diagnosis", "codes": DX, "window": "[-7d, 0d]"}}})
    assert holds(rule, [proc(at(0)), ev(at(-7))]) == [False]
    assert holds(rule, [proc(at(0)), ev(at(-8))]) == [True]


# ---- any of several criteria ---------------------------------------------------------------------

ANY_OF = [{"kind": "diagnosis", "codes": DX, "window": "[-30d, 0d]"},
          {"kind": "lab", "codes": "hb", "window": "[-7d, 0d]",
           "value": {"of": "most_recent", "op": ">", "threshold": 50, "unit": "g/L"}}]


@pytest.mark.parametrize("events, either", [
    ([], False),
    ([ev(at(-30))], True),                                  # the diagnosis branch
    ([ev(at(-31))], False),
    ([lab(at(-7), 6, "g/dL")], True),                       # the lab branch (60 g/L)
    ([lab(at(-7), 4, "g/dL")], False),
    ([lab(at(-8), 60)], False),
    ([ev(at(-1)), lab(at(-1), 60)], True),                  # both
])
def test_require_any_and_exclude_any(events, either):
    req = make_rule({"c": {"require_any": ANY_OF}})
    exc = make_rule({"c": {"exclude_any": ANY_OF}})
    assert holds(req, [proc(at(0)), *events]) == [either]
    assert holds(exc, [proc(at(0)), *events]) == [not either]


def test_any_of_one_criterion_is_the_plain_form():
    crit = {"kind": "diagnosis", "codes": DX, "window": "[-7d, 0d]", "at_least": 2}
    events = [proc(at(0)), ev(at(-1)), ev(at(-2)), proc(at(7))]
    assert holds(make_rule({"c": {"require_any": [crit]}}), events) == holds(require(**crit), events) == [True, False]


@pytest.mark.parametrize("cond, message", [
    ({"require_any": []}, "conditions.c.require_any: List should have at least 1 item"),
    ({"exclude_any": []}, "conditions.c.exclude_any: List should have at least 1 item"),
    ({"require": ANY_OF[0], "require_any": ANY_OF}, "give exactly one of 'require', 'exclude', 'require_any', "
                                                     "'exclude_any', 'index_setting', 'hospital_onset'. Got ['require', 'require_any']"),
    ({"exclude_any": ANY_OF, "index_setting": ["inpatient"]}, "Got ['exclude_any', 'index_setting']"),
    ({"require_any": [{**ANY_OF[0], "window": "[1d, 0d]"}]}, "conditions.c.require_any.0.window: is empty"),
])
def test_any_of_validation_is_located(cond, message):
    import yaml

    from lowvalue.errors import RuleError
    from lowvalue.rules.library import parse_rule

    import json

    text = yaml.safe_dump(json.loads(json.dumps({"id": "T-1", "title": {"sv": "t", "en": "t"}, "rationale": {"sv": "r", "en": "r"},
                                         "index": {"kind": "procedure", "codes": {"KVÅ": ["P1"]}}, "conditions": {"c": cond}})))
    assert "&" not in text  # rule files may not use YAML aliases: the test writes each value out
    with pytest.raises(RuleError) as err:
        parse_rule(text, "t.yaml")
    assert message in err.value.one_line() and "t.yaml:" in err.value.one_line()


# ---- windows from discharge ----------------------------------------------------------------------


def test_discharge_anchor_day_window_counts_from_the_end_of_the_index_encounter():
    rule = require(kind="diagnosis", codes=DX, window="[1d, 30d]", **{"from": "discharge"})
    stay = [enc("e1", at(0), "inpatient", end=at(5, hours=3))]   # discharged on day 5 at 15:00
    for day, expected in ((5, False), (6, True), (35, True), (36, False), (1, False)):
        assert holds(rule, [proc(at(0), enc="e1"), ev(at(day))], stay) == [expected], day
    # the same rule from the index: day 1 counts, day 35 does not
    plain = require(kind="diagnosis", codes=DX, window="[1d, 30d]")
    assert holds(plain, [proc(at(0), enc="e1"), ev(at(1))], stay) == [True]
    assert holds(plain, [proc(at(0), enc="e1"), ev(at(35))], stay) == [False]


def test_discharge_anchor_hour_window_is_exact():
    rule = require(kind="diagnosis", codes=DX, window="(0h, 24h]", **{"from": "discharge"})
    stay = [enc("e1", at(0), "inpatient", end=at(2))]
    assert holds(rule, [proc(at(0), enc="e1"), ev(at(2))], stay) == [False]
    assert holds(rule, [proc(at(0), enc="e1"), ev(at(2, minutes=1))], stay) == [True]
    assert holds(rule, [proc(at(0), enc="e1"), ev(at(3))], stay) == [True]
    assert holds(rule, [proc(at(0), enc="e1"), ev(at(3, minutes=1))], stay) == [False]


def test_discharge_anchor_without_a_known_end_cannot_hold():
    req = require(kind="diagnosis", codes=DX, window="[-30d, 30d]", **{"from": "discharge"})
    exc = make_rule({"c": {"exclude": {"kind": "diagnosis", "codes": DX, "window": "[-30d, 30d]", "from": "discharge"}}})
    no_end = {**enc("e1", at(0), "inpatient"), "end_time": None}
    for events, encounters in (([proc(at(0)), ev(at(1))], []),                      # no encounter
                               ([proc(at(0), enc="e9"), ev(at(1))], []),            # unknown encounter
                               ([proc(at(0), enc="e1"), ev(at(1))], [no_end])):     # no end time
        assert holds(req, events, encounters) == [False]
        assert holds(exc, events, encounters) == [True]


def test_discharge_anchor_of_an_encounter_index_and_with_coverage():
    rule = make_rule({"c": {"require": {"kind": "medication", "codes": {"ATC": ["C01"]}, "window": "[0d, 9d]",
                                        "coverage": {"min_days": 10}, "from": "discharge"}}},
                     index={"kind": "encounter", "codes": {"setting": ["inpatient"]}})
    stay = [enc("e1", at(0), "inpatient", end=at(4))]
    assert holds(rule, [med(at(4), 10)], stay) == [True]    # days 4..13: offsets 0..9 from the discharge day
    assert holds(rule, [med(at(3), 10)], stay) == [False]   # offsets -1..8: 9 days in the window
    assert holds(rule, [med(at(4), 9)], stay) == [False]
    assert holds(rule.model_copy(update={"conditions": {"c": make_rule({"c": {"require": {
        "kind": "medication", "codes": {"ATC": ["C01"]}, "window": "[0d, 9d]", "coverage": {"min_days": 10}}}}
    ).conditions["c"]}}), [med(at(0), 10)], stay) == [True]  # the same from the index (day 0)


def test_discharge_anchor_is_written_from():
    import yaml

    from lowvalue.errors import RuleError
    from lowvalue.rules.library import parse_rule

    base = {"id": "T-1", "title": {"sv": "t", "en": "t"}, "rationale": {"sv": "r", "en": "r"},
            "index": {"kind": "procedure", "codes": {"KVÅ": ["P1"]}}}
    crit = {"kind": "diagnosis", "codes": DX, "window": "[1d, 30d]", "from": "admission"}
    with pytest.raises(RuleError, match=r"conditions\.c\.require\.from: Input should be 'index' or 'discharge'"):
        parse_rule(yaml.safe_dump({**base, "conditions": {"c": {"require": crit}}}), "t.yaml")
    rule = parse_rule(yaml.safe_dump({**base, "conditions": {"c": {"require": {**crit, "from": "discharge"}}}}))
    assert rule.conditions["c"].criterion.anchor == "discharge"  # type: ignore[union-attr]


def test_code_matching_icd_prefix_and_dot():
    rule = require(kind="diagnosis", codes={"ICD-10-SE": ["A01.1"]}, window="[-7d, 0d]")
    assert holds(rule, [proc(at(0)), ev(at(-1), code="a0112")]) == [True]
    assert holds(rule, [proc(at(0)), ev(at(-1), code="A01")]) == [False]
    # the kind must match too
    assert holds(rule, [proc(at(0)), ev(at(-1), kind="observation", code="A01.1")]) == [False]


def test_at_least():
    rule = require(kind="diagnosis", codes=DX, window="[-7d, 0d]", at_least=2)
    assert holds(rule, [proc(at(0)), ev(at(-1))]) == [False]
    assert holds(rule, [proc(at(0)), ev(at(-1)), ev(at(-8))]) == [False]
    assert holds(rule, [proc(at(0)), ev(at(-1)), ev(at(-1))]) == [True]  # duplicates each count


def test_same_encounter():
    rule = require(kind="diagnosis", codes=DX, window="[-7d, 7d]", same_encounter=True)
    encs = [enc("e1", at(0), "inpatient"), enc("e2", at(0), "inpatient")]
    assert holds(rule, [proc(at(0), enc="e1"), ev(at(1), enc="e1")], encs) == [True]
    assert holds(rule, [proc(at(0), enc="e1"), ev(at(1), enc="e2")], encs) == [False]
    assert holds(rule, [proc(at(0)), ev(at(1))], encs) == [False]  # null is not "the same encounter"
    # an id missing from `encounters` still identifies the encounter
    assert holds(rule, [proc(at(0), enc="x"), ev(at(1), enc="x")], encs) == [True]


def test_first_in():
    rule = require(kind="diagnosis", codes=DX, window="[-7d, 0d]", first_in="30d")
    # an earlier diagnosis 30 days before the one in the window: not first
    assert holds(rule, [proc(at(0)), ev(at(-2)), ev(at(-32))]) == [False]
    # 31 days before: outside the washout, first
    assert holds(rule, [proc(at(0)), ev(at(-2)), ev(at(-33))]) == [True]
    # same-day repeats: both first (at_least 2 satisfied by them)
    rule2 = require(kind="diagnosis", codes=DX, window="[-7d, 0d]", first_in="30d", at_least=2)
    assert holds(rule2, [proc(at(0)), ev(at(-2, hours=-3)), ev(at(-2, hours=3))]) == [True]
    # a repeat the next day is not first, so only one first event
    assert holds(rule2, [proc(at(0)), ev(at(-2)), ev(at(-1))]) == [False]
    # the earlier event counts in any encounter and any window (here: after the window's start... and before)
    assert holds(rule, [proc(at(0)), ev(at(0)), ev(at(-29), enc="zz")]) == [False]


def test_first_in_ignores_same_encounter_for_history():
    rule = require(kind="diagnosis", codes=DX, window="[-7d, 0d]", first_in="7d", same_encounter=True)
    assert holds(rule, [proc(at(0), enc="e1"), ev(at(0), enc="e1"), ev(at(-3), enc="e9")]) == [False]
    assert holds(rule, [proc(at(0), enc="e1"), ev(at(0), enc="e1"), ev(at(-8), enc="e9")]) == [True]


# ---- values --------------------------------------------------------------------------------------


def test_value_any_with_unit_conversion_and_unknown_units():
    rule = require(kind="lab", codes="hb", window="[-7d, 0d]", value={"of": "any", "op": ">=", "threshold": 100})
    assert holds(rule, [proc(at(0)), lab(at(-1), 10.5, "g/dL")]) == [True]      # 105 g/L
    assert holds(rule, [proc(at(0)), lab(at(-1), 10.5, "G/DL")]) == [True]      # case-insensitive
    assert holds(rule, [proc(at(0)), lab(at(-1), 120, "G/L")]) == [True]
    assert holds(rule, [proc(at(0)), lab(at(-1), 9.5, "g/dL")]) == [False]      # 95 g/L
    assert holds(rule, [proc(at(0)), lab(at(-1), 120, None)]) == [True]         # missing unit: canonical
    assert holds(rule, [proc(at(0)), lab(at(-1), 120, "mmol/L")]) == [False]    # unknown unit: no usable value
    assert holds(rule, [proc(at(0)), lab(at(-1), None, "g/L")]) == [False]      # no value


def test_value_any_at_least_counts_satisfying_values_only():
    rule = require(kind="lab", codes="hb", window="[-7d, 0d]", at_least=2,
                   value={"of": "any", "op": "<", "threshold": 80})
    assert holds(rule, [proc(at(0)), lab(at(-1), 70), lab(at(-2), 90)]) == [False]
    assert holds(rule, [proc(at(0)), lab(at(-1), 70), lab(at(-2), 7.9, "g/dL")]) == [True]


def test_most_recent_judges_only_the_latest_usable_value():
    rule = require(kind="lab", codes="hb", window="[-24h, 0h]", value={"of": "most_recent", "op": ">=", "threshold": 70})
    assert holds(rule, [proc(at(0)), lab(at(hours=-5), 60), lab(at(hours=-20), 90)]) == [False]
    assert holds(rule, [proc(at(0)), lab(at(hours=-5), 90), lab(at(hours=-20), 60)]) == [True]
    # the latest has an unknown unit: it is dropped, the one before judged
    assert holds(rule, [proc(at(0)), lab(at(hours=-5), 60, "mmol/L"), lab(at(hours=-20), 90)]) == [True]
    # the latest has no value at all
    assert holds(rule, [proc(at(0)), lab(at(hours=-5), None), lab(at(hours=-20), 90)]) == [True]
    # outside the window: nothing to judge
    assert holds(rule, [proc(at(0)), lab(at(hours=-25), 90)]) == [False]


def test_most_recent_ties_any_may_satisfy():
    rule = require(kind="lab", codes="hb", window="[-24h, 0h]", value={"of": "most_recent", "op": ">=", "threshold": 70})
    assert holds(rule, [proc(at(0)), lab(at(hours=-5), 60), lab(at(hours=-5), 7.5, "g/dL")]) == [True]
    assert holds(rule, [proc(at(0)), lab(at(hours=-5), 60), lab(at(hours=-5), 65)]) == [False]
    # as an exclusion: excluded if any tied latest value satisfies
    ex = make_rule({"c": {"exclude": {"kind": "lab", "codes": "hb", "window": "[-24h, 0h]",
                                      "value": {"of": "most_recent", "op": ">=", "threshold": 70}}}})
    assert holds(ex, [proc(at(0)), lab(at(hours=-5), 60), lab(at(hours=-5), 75)]) == [False]
    assert holds(ex, [proc(at(0))]) == [True]


def test_index_ratio():
    # a baseline at most half the index value (creatinine doubled)
    rule = make_rule({"c": {"require": {"kind": "lab", "codes": "hb", "window": "[-7d, -1d]",
                                        "value": {"op": "<=", "index_ratio": 0.5}}}},
                     index={"kind": "lab", "codes": "hb"})
    # (both labs are candidates; output is in time order: the baseline first, with nothing before it)
    assert holds(rule, [lab(at(0), 200), lab(at(-3), 100)]) == [False, True]
    assert holds(rule, [lab(at(0), 200), lab(at(-3), 101)]) == [False, False]
    # index value converted: 20 g/dL = 200 g/L
    assert holds(rule, [lab(at(0), 20, "g/dL"), lab(at(-3), 100)]) == [False, True]
    # index without a usable value: the comparison fails
    assert holds(rule, [lab(at(0), 200, "mmol/L"), lab(at(-3), 1)]) == [False, False]


def test_index_ratio_with_a_non_lab_index_never_holds():
    rule = require(kind="lab", codes="hb", window="[-7d, 0d]", value={"op": ">=", "index_ratio": 0.0})
    assert holds(rule, [proc(at(0)), lab(at(-1), 5)]) == [False]


# ---- coverage ------------------------------------------------------------------------------------


def cov(min_days: int, window: str = "[-9d, 0d]", **kw: Any) -> Rule:
    return require(kind="medication", codes={"ATC": ["C01"]}, window=window, coverage={"min_days": min_days}, **kw)


def test_coverage_counts_distinct_covered_days():
    # two overlapping 5-day supplies on days −9..−5 and −7..−3: 7 distinct days
    events = [proc(at(0)), med(at(-9), 5), med(at(-7), 5)]
    assert holds(cov(7), events) == [True]
    assert holds(cov(8), events) == [False]


def test_coverage_from_a_dispensing_before_the_window():
    # dispensed on day −20 for 15 days: covers −20..−6, of which −9..−6 (4 days) are in the window
    assert holds(cov(4), [proc(at(0)), med(at(-20), 15)]) == [True]
    assert holds(cov(5), [proc(at(0)), med(at(-20), 15)]) == [False]


def test_coverage_supply_missing_or_zero_counts_one_day_and_window_end_is_clipped():
    assert holds(cov(2), [proc(at(0)), med(at(-1), None), med(at(-2), 0)]) == [True]
    assert holds(cov(3), [proc(at(0)), med(at(-1), None), med(at(-2), 0)]) == [False]
    # a 30-day supply on the index day covers only day 0 of [-9d, 0d]
    assert holds(cov(1), [proc(at(0)), med(at(0), 30)]) == [True]
    assert holds(cov(2), [proc(at(0)), med(at(0), 30)]) == [False]
    # an open end excludes day 0
    assert holds(cov(1, "[-9d, 0d)"), [proc(at(0)), med(at(0), 30)]) == [False]


def test_coverage_other_codes_and_same_encounter():
    assert holds(cov(1), [proc(at(0)), med(at(-1), 5, code="C02")]) == [False]
    encs = [enc("e1", at(0), "inpatient")]
    assert holds(cov(1, same_encounter=True), [proc(at(0), enc="e1"), med(at(-20), 30, enc="e1")], encs) == [True]
    assert holds(cov(1, same_encounter=True), [proc(at(0), enc="e1"), med(at(-20), 30)], encs) == [False]


# ---- tiers ---------------------------------------------------------------------------------------


def test_tiers():
    conds = {"a": {"index_setting": ["inpatient"]},
             "b": {"require": {"kind": "diagnosis", "codes": DX, "window": "[-1d, 0d]"}},
             "c": {"exclude": {"kind": "diagnosis", "codes": {"ICD-10-SE": ["B10"]}, "window": "[-1d, 0d]"}}}
    rule = make_rule(conds, eligibility=["a"], variants={"sensitive": ["b"], "specific": ["b", "c"]})
    encs = [enc("e1", at(0), "inpatient"), enc("e2", at(10), "outpatient")]
    events = [proc(at(0), enc="e1"), ev(at(0)), ev(at(0), code="B10"),   # eligible, sensitive, not specific
              proc(at(5), enc="e1"), ev(at(5)),                            # eligible, sensitive, specific
              proc(at(7), enc="e1"),                                       # eligible only
              proc(at(10), enc="e2"), ev(at(10))]                          # not eligible
    out = run(rule, events, encs)
    assert out[["eligible", "sensitive", "specific"]].values.tolist() == [
        [True, True, False], [True, True, True], [True, False, False], [False, False, False]]
    assert out["cond__b"].tolist() == [True, True, False, True]


def test_empty_lists_add_nothing():
    rule = make_rule({"c": {"index_setting": ["home"]}}, eligibility=[], variants={})
    out = run(rule, [proc(at(0))])
    assert out[["eligible", "sensitive", "specific", "cond__c"]].values.tolist() == [[True, True, True, False]]
