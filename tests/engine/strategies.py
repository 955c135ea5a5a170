"""Hypothesis strategies: small random extracts and small random rules.

Both are drawn from deliberately *tiny* alphabets so that the interesting cases
happen often rather than once in a million examples:

* times sit on a few anchor days at a few clock times (00:00, 11:00, 11:59,
  12:00, 12:01, 13:00, 23:59), so differences between events are often exactly
  a window bound, or a bound ± 1 day, ± 1 hour, ± 1 minute;
* window bounds are drawn from the same offsets the anchor days use;
* codes come from a handful of ICD-10-SE, ATC, KVÅ and NPU codes that overlap
  (``A01`` / ``A01.1`` / ``a011``; prefixes and ranges in the rules);
* lab values are exactly representable binary fractions and the unit factor is
  10, so unit conversion never depends on float rounding order;
* birth dates sit on, just before and just after the population's age bounds
  (and on 29 February).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd
from hypothesis import assume
from hypothesis import strategies as st
from pydantic import ValidationError

from lowvalue.data.schema import SETTINGS
from lowvalue.rules.codes import CodeEntry, Units, ValueSet
from lowvalue.rules.library import RuleSet
from lowvalue.rules.model import Rule
from lowvalue.rules.windows import Window

# --------------------------------------------------------------------------------------------------
# Shared alphabets
# --------------------------------------------------------------------------------------------------

ANCHOR = date(2024, 3, 1)
"""Day 0 of every timeline: the day after a 29 February."""

DAY_OFFSETS = [-43, -42, -41, -31, -30, -8, -7, -2, -1, 0, 1, 2, 7]
CLOCKS = [(0, 0), (11, 0), (11, 59), (12, 0), (12, 1), (13, 0), (23, 59)]
DAY_BOUNDS = [-42, -30, -7, -1, 0, 1, 7]
HOUR_BOUNDS = [-48, -24, -12, -1, 0, 1, 12, 24]
AGE_BOUNDS_MIN = [18, 65]
AGE_BOUNDS_MAX = [17, 64, 80]

# (kind, system, codes as they appear in the data)
DATA_CODES: dict[str, tuple[str, list[str]]] = {
    "diagnosis": ("ICD-10-SE", ["A01", "A01.1", "a011", "A02", "B10"]),
    "procedure": ("KVÅ", ["P1", "P2"]),
    "medication": ("ATC", ["X01", "X02"]),
    "lab": ("NPU", ["L1", "L2"]),
}
# code-set entries a rule may use, per kind
RULE_CODES: dict[str, tuple[str, list[str]]] = {
    "diagnosis": ("ICD-10-SE", ["A01", "A01.1", "A0*", "A01-A02", "B10"]),
    "procedure": ("KVÅ", ["P1", "P2", "P*"]),
    "medication": ("ATC", ["X01", "X02", "X0*"]),
    "lab": ("NPU", ["L1", "L2"]),
}

LAB_VALUESET = "lab_l1"
"""The one named code set: NPU L1 and L2, canonical unit ``u``, ``alt`` × 10."""

ONSET_HOURS = [0, 1, 23, 24, 47, 48, 49, 72]
VALUES = [0.0, 0.5, 1.0, 5.0, 7.0, 7.5, 10.0, 14.0, 70.0, 75.0]
UNITS = [None, None, "u", "U", "alt", "ALT", "zz"]
THRESHOLDS = [0.5, 1.0, 5.0, 7.0, 7.5, 10.0, 70.0]
RATIOS = [0.5, 1.0, 2.0]


def ruleset() -> RuleSet:
    """The small library random rules may name."""
    lab = ValueSet(
        name=LAB_VALUESET,
        codes={"NPU": (CodeEntry.parse("NPU", "L1"), CodeEntry.parse("NPU", "L2"))},
        units=Units("u", {"alt": 10}),
    )
    return RuleSet(valuesets={LAB_VALUESET: lab})


# --------------------------------------------------------------------------------------------------
# Extracts
# --------------------------------------------------------------------------------------------------


def _years_before(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year - years)
    except ValueError:  # 29 February in a common year
        return d.replace(year=d.year - years, day=28)


@st.composite
def birth_dates(draw: st.DrawFn) -> date:
    """Birth dates whose age on an anchor day is a bound, bound − 1, ± one day around a birthday."""
    if draw(st.integers(0, 5)) == 0:
        return draw(st.sampled_from([date(1956, 2, 29), date(2000, 2, 29), date(2006, 2, 28), date(2006, 3, 1)]))
    age = draw(st.sampled_from(sorted(set(AGE_BOUNDS_MIN + AGE_BOUNDS_MAX + [b + 1 for b in AGE_BOUNDS_MAX]
                                          + [b - 1 for b in AGE_BOUNDS_MIN]))))
    day = ANCHOR + timedelta(days=draw(st.sampled_from(DAY_OFFSETS)))
    return _years_before(day, age) + timedelta(days=draw(st.sampled_from([-1, 0, 1])))


@st.composite
def times(draw: st.DrawFn) -> datetime:
    h, m = draw(st.sampled_from(CLOCKS))
    day = ANCHOR + timedelta(days=draw(st.sampled_from(DAY_OFFSETS)))
    return datetime(day.year, day.month, day.day, h, m)


@st.composite
def extracts(draw: st.DrawFn, kinds: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(persons, encounters, events) in the canonical columns, 1–4 persons.

    ``kinds``: event kinds a rule looks at; events are mostly drawn from these
    so that candidates and matches are common.
    """
    favoured = sorted(k for k in (kinds or []) if k in DATA_CODES)
    persons, encounters, events = [], [], []
    n_enc = 0
    for p in range(draw(st.integers(1, 4))):
        pid = f"p{p + 1}"
        persons.append({
            "person_id": pid,
            "birth_date": draw(birth_dates()),
            "sex": draw(st.sampled_from(["F", "M", "U"])),
            "death_date": draw(st.none() | st.just(ANCHOR + timedelta(days=draw(st.sampled_from(DAY_OFFSETS))))),
        })
        enc_ids, start_of = [], {}
        for _ in range(draw(st.integers(0, 4))):
            n_enc += 1
            start = draw(times())
            enc_ids.append(f"e{n_enc}")
            start_of[f"e{n_enc}"] = start
            # the end (discharge) the same hour, later that day, or days later; now and then missing
            stay = draw(st.sampled_from([0, 1, 1, 11, 12, 23, 24, 25, 48, 168]))
            encounters.append({
                "encounter_id": f"e{n_enc}", "person_id": pid, "start_time": start,
                "end_time": None if draw(st.integers(0, 9)) == 0 else start + timedelta(hours=stay),
                "setting": draw(st.sampled_from(SETTINGS)), "unit": "U1",
            })
        for _ in range(draw(st.integers(0, 12))):
            pool = favoured if favoured and draw(st.integers(0, 3)) > 0 else sorted(DATA_CODES)
            kind = draw(st.sampled_from(pool))
            system, codes = DATA_CODES[kind]
            # an encounter id not in `encounters` now and then: same id, no setting
            enc = draw(st.sampled_from([None, None, *enc_ids, "e-unknown"] if enc_ids else [None, None, "e-unknown"]))
            value = unit = supply = None
            if kind == "lab":
                value = draw(st.none() | st.sampled_from(VALUES))
                unit = draw(st.sampled_from(UNITS + [""]))
            if kind == "medication":
                supply = draw(st.none() | st.just(0) | st.integers(1, 60))
            # now and then at a set time into its stay, around the hospital-onset anchors
            time = (start_of[enc] + timedelta(hours=draw(st.sampled_from(ONSET_HOURS)))
                    if enc in start_of and draw(st.integers(0, 2)) == 0 else draw(times()))
            events.append({
                "person_id": pid, "encounter_id": enc, "time": time, "kind": kind, "system": system,
                "code": draw(st.sampled_from(codes)), "value": value, "unit": unit, "days_supply": supply,
                "present_on_admission": draw(st.sampled_from([None, None, None, "Y", "N", "U", "W"])),
            })
    return frames(persons, encounters, events)


def frames(persons: list[dict], encounters: list[dict], events: list[dict]) -> tuple[pd.DataFrame, ...]:
    """Canonical DataFrames (types as the readers produce them) from lists of dicts."""
    p = pd.DataFrame(persons, columns=["person_id", "birth_date", "sex", "death_date"])
    p["birth_date"] = pd.to_datetime(p["birth_date"]).dt.date
    p["death_date"] = [None if pd.isna(d) else pd.Timestamp(d).date() for d in p["death_date"]]
    e = pd.DataFrame(encounters, columns=["encounter_id", "person_id", "start_time", "end_time", "setting", "unit"])
    e["start_time"] = pd.to_datetime(e["start_time"]).astype("datetime64[us]")
    e["end_time"] = pd.to_datetime(e["end_time"]).astype("datetime64[us]")
    v = pd.DataFrame(events, columns=["person_id", "encounter_id", "time", "kind", "system", "code", "value", "unit",
                                      "days_supply", "present_on_admission"])
    v["time"] = pd.to_datetime(v["time"]).astype("datetime64[us]")
    v["value"] = v["value"].astype("float64")
    v["days_supply"] = v["days_supply"].astype("Int32")
    v["encounter_id"] = v["encounter_id"].astype(object)
    v["unit"] = v["unit"].astype(object)
    v["present_on_admission"] = v["present_on_admission"].astype(object)
    return p, e, v


# --------------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------------


def _subset(draw: st.DrawFn, items: list[str], min_size: int = 1) -> list[str]:
    return draw(st.lists(st.sampled_from(items), min_size=min_size, max_size=len(items), unique=True))


@st.composite
def code_refs(draw: st.DrawFn, kind: str) -> Any:
    """An inline code set for the kind, or (labs) the named code set with units."""
    if kind == "encounter":
        return {"setting": _subset(draw, list(SETTINGS))}
    if kind == "lab" and draw(st.booleans()):
        return LAB_VALUESET
    system, entries = RULE_CODES[kind]
    return {system: _subset(draw, entries)}


@st.composite
def windows(draw: st.DrawFn, unit: str | None = None) -> str:
    unit = unit or draw(st.sampled_from(["d", "h"]))
    bounds = DAY_BOUNDS if unit == "d" else HOUR_BOUNDS
    if draw(st.integers(0, 7)) == 0:
        return f"[0{unit}, 0{unit}]"
    a, b = sorted(draw(st.lists(st.sampled_from(bounds), min_size=2, max_size=2)))
    left, right = draw(st.sampled_from("[(")), draw(st.sampled_from("])"))
    w = Window(a, b, unit, left == "[", right == "]")  # type: ignore[arg-type]
    if w.is_empty():  # e.g. (0d, 1d): closed instead, so few random rules are rejected
        left, right = "[", "]"
    return f"{left}{a}{unit}, {b}{unit}{right}"


@st.composite
def value_tests(draw: st.DrawFn, allow_ratio: bool = True, plain: bool = False) -> dict:
    op = draw(st.sampled_from(["<", "<=", ">", ">=", "=="]))
    if plain:
        return {"op": op, "threshold": draw(st.sampled_from(THRESHOLDS))}
    test: dict[str, Any] = {"of": draw(st.sampled_from(["any", "most_recent"])), "op": op}
    if allow_ratio and draw(st.booleans()):
        test["index_ratio"] = draw(st.sampled_from(RATIOS))
    else:
        test["threshold"] = draw(st.sampled_from(THRESHOLDS))
        # the threshold's unit: omitted, canonical, or one the code set converts (`alt`; with an inline
        # code set, which has no units, every unit is taken as it is)
        test["unit"] = draw(st.sampled_from([None, None, "u", "alt"]))
    return test


@st.composite
def criteria(draw: st.DrawFn, index_kind: str | None = None) -> dict:
    """A criterion; with a lab index, lab criteria with ``index_ratio`` value tests are common."""
    kind = draw(st.sampled_from(["diagnosis", "procedure", "medication", "lab", "lab", "encounter"]))
    crit: dict[str, Any] = {"kind": kind, "codes": draw(code_refs(kind))}
    if draw(st.integers(0, 3)) == 0:
        crit["from"] = "discharge"
    if kind == "medication" and draw(st.integers(0, 2)) == 0:
        crit["window"] = draw(windows("d"))
        crit["coverage"] = {"min_days": draw(st.integers(1, 10))}
        if draw(st.booleans()):
            crit["same_encounter"] = True
        return crit
    crit["window"] = draw(windows())
    if draw(st.integers(0, 3)) == 0:
        crit["same_encounter"] = True
    if draw(st.integers(0, 3)) == 0:
        crit["first_in"] = f"{draw(st.sampled_from([1, 2, 7, 30]))}d"
    if draw(st.integers(0, 1 if kind == "lab" else 8)) == 0:
        crit["value"] = draw(value_tests(allow_ratio=index_kind == "lab"))
    if not (crit.get("value") or {}).get("of") == "most_recent" and draw(st.booleans()):
        crit["at_least"] = draw(st.integers(1, 3))
    return crit


@st.composite
def conditions(draw: st.DrawFn, index_kind: str | None = None) -> dict:
    role = draw(st.sampled_from(["require", "require", "exclude", "exclude", "index_setting",
                                 "require_any", "exclude_any", "hospital_onset"]))
    if role == "index_setting":
        return {"index_setting": _subset(draw, list(SETTINGS))}
    if role == "hospital_onset":
        return {"hospital_onset": {"after": draw(st.sampled_from(["0h", "24h", "48h", "2d"]))}}
    if role.endswith("_any"):
        return {role: draw(st.lists(criteria(index_kind), min_size=1, max_size=3))}
    return {role: draw(criteria(index_kind))}


@st.composite
def rule_dicts(draw: st.DrawFn) -> dict:
    kind = draw(st.sampled_from(["diagnosis", "procedure", "medication", "lab", "lab", "encounter"]))
    index: dict[str, Any] = {"kind": kind, "codes": draw(code_refs(kind))}
    if draw(st.integers(0, 3)) == 0:
        index["settings"] = _subset(draw, list(SETTINGS))
    if kind == "lab" and draw(st.booleans()):
        index["value"] = draw(value_tests(plain=True))
    population: dict[str, Any] = {}
    if draw(st.integers(0, 2)) == 0:
        population["age_min"] = draw(st.sampled_from(AGE_BOUNDS_MIN))
    if draw(st.integers(0, 2)) == 0:
        population["age_max"] = draw(st.sampled_from(AGE_BOUNDS_MAX))
    if draw(st.integers(0, 3)) == 0:
        population["sex"] = _subset(draw, ["F", "M", "U"])
    names = [f"c{i}" for i in range(draw(st.integers(1, 4)))]
    conds = {n: draw(conditions(kind)) for n in names}
    return {
        "id": "LV-PROP",
        "title": {"sv": "t", "en": "t"},
        "rationale": {"sv": "r", "en": "r"},
        "population": population,
        "index": index,
        "conditions": conds,
        "eligibility": _subset(draw, names, min_size=0),
        "variants": {"sensitive": _subset(draw, names, min_size=0), "specific": _subset(draw, names, min_size=0)},
    }


@st.composite
def rules(draw: st.DrawFn) -> Rule:
    """A random rule the schema accepts."""
    data = draw(rule_dicts())
    try:
        return Rule.model_validate(data)
    except ValidationError:
        assume(False)
        raise  # unreachable


def rule_yaml(rule: Rule) -> str:
    """The rule as YAML, the form an author would paste into a regression test."""
    import yaml

    data = rule.model_dump(mode="json", exclude_defaults=True, exclude={"tests"}, by_alias=True)

    # Window/Duration are dataclasses: dump them in their written form
    for name, cond in rule.conditions.items():
        for key in ("require", "exclude", "require_any", "exclude_any"):
            dumped = data["conditions"][name].get(key)
            if dumped is None:
                continue
            for c, out in zip(cond.criteria, dumped if isinstance(dumped, list) else [dumped]):
                out["window"] = str(c.window)
                if c.first_in is not None:
                    out["first_in"] = str(c.first_in)
    data.pop("harms", None)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def rule_kinds(rule: Rule) -> list[str]:
    """The event kinds a rule's index and criteria look at."""
    return [rule.index.kind] + [crit.kind for c in rule.conditions.values() for crit in c.criteria]


@st.composite
def cases(draw: st.DrawFn) -> tuple[Rule, tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]]:
    """A random rule and a random extract biased towards the kinds it looks at."""
    rule = draw(rules())
    return rule, draw(extracts(rule_kinds(rule)))
