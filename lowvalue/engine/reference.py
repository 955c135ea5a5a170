"""The reference evaluator: the rule language's semantics, in plain Python.

This module is the executable form of ``docs/rule-language.md``. It exists so
that the fast engine (:mod:`lowvalue.engine.sql`, SQL on DuckDB) can be checked
against something a person can read line by line: property-based tests draw
random extracts and rules and demand that both engines return the same rows
(the approach of OpenSAFELY ehrQL, whose in-memory engine defines what a
query means).

It is written for clarity, never for speed. One person's timeline is judged at
a time, candidate by candidate, event by event, and every concept of the page
has one small function named after it:

=========================  ===================================================
page section               function
=========================  ===================================================
Events the engine sees     :func:`timelines`, :func:`encounter_pseudo_event`
Candidates                 :func:`candidates`, :func:`age_on`,
                           :func:`in_population`, :func:`passes_index`
Windows                    :func:`day_offset`, :func:`hour_offset`,
                           :func:`in_window`, :func:`anchor_of`
Conditions                 :func:`condition_holds`, :func:`criterion_holds`,
                           :func:`matching_events`, :func:`is_first_in`,
                           :func:`usable_value`, :func:`threshold_of`,
                           :func:`value_test_holds`, :func:`most_recent`,
                           :func:`covered_day_offsets`
Tiers                      :func:`tiers`
Target trial (anchor)      :func:`trial`, :func:`treatment_time`
=========================  ===================================================

Where the page is silent, the choice made here is marked ``READING:`` in the
docstring, so it can be promoted to the page (or changed) deliberately.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, replace
from datetime import date, timedelta
from fractions import Fraction
from typing import Any, Callable, Iterable

import pandas as pd

from lowvalue.rules.codes import ValueSet, unit_factor  # READING: a code set without units takes values as they are
from lowvalue.rules.library import RuleSet
from lowvalue.rules.model import Condition, Criterion, Population, Rule, ValueTest
from lowvalue.rules.windows import Window

INDEX_COLUMNS = [
    "person_id",
    "encounter_id",
    "index_time",
    "index_system",
    "index_code",
    "index_value",
    "index_unit",
    "index_days_supply",
]
TIER_COLUMNS = ["eligible", "sensitive", "specific"]
SORT_COLUMNS = ["person_id", "index_time", "index_system", "index_code", "encounter_id", "index_value"]

_MICROSECONDS_PER_HOUR = 3_600 * 1_000_000


# --------------------------------------------------------------------------------------------------
# Missing values
# --------------------------------------------------------------------------------------------------


def _missing(x: Any) -> bool:
    """Whether a cell is null: ``None``, ``NaN``, ``NaT`` or ``pd.NA`` all mean "not recorded"."""
    if x is None:
        return True
    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):
        return False


def _or_none(x: Any) -> Any:
    return None if _missing(x) else x


# --------------------------------------------------------------------------------------------------
# Events the engine sees
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    person_id: str
    birth_date: date
    sex: str
    death_date: date | None


@dataclass(frozen=True)
class Event:
    """One row of ``events`` (or one encounter pseudo-event), with its encounter's setting attached."""

    person_id: str
    encounter_id: str | None
    time: pd.Timestamp
    kind: str
    system: str
    code: str
    value: float | None
    unit: str | None
    days_supply: int | None
    setting: str | None
    encounter_end: pd.Timestamp | None = None
    """The end (discharge) of the event's encounter; None without an encounter, for an unknown one or no end time."""
    encounter_start: pd.Timestamp | None = None
    """The start (admission) of the event's encounter; None without an encounter or for an unknown one."""
    present_on_admission: str | None = None

    @property
    def date(self) -> date:
        """The calendar date: day windows, first_in and coverage ignore the time of day."""
        return self.time.date()


def _as_date(x: Any) -> date | None:
    return None if _missing(x) else pd.Timestamp(x).date()


def _as_timestamp(x: Any) -> pd.Timestamp:
    return pd.Timestamp(x)


def encounter_pseudo_event(row: dict[str, Any]) -> Event:
    """An encounter seen as an event, so rules can ask for "an inpatient stay in the last 30 days".

    Kind ``encounter``, system ``setting``, code = the setting, time = the start,
    no value, unit or days_supply.
    """
    return Event(
        person_id=str(row["person_id"]),
        encounter_id=str(row["encounter_id"]),
        time=_as_timestamp(row["start_time"]),
        kind="encounter",
        system="setting",
        code=str(row["setting"]),
        value=None,
        unit=None,
        days_supply=None,
        setting=str(row["setting"]),
        encounter_end=None if _missing(row.get("end_time")) else _as_timestamp(row["end_time"]),
        encounter_start=_as_timestamp(row["start_time"]),
    )


def timelines(encounters: pd.DataFrame, events: pd.DataFrame) -> dict[str, list[Event]]:
    """Every person's events, pseudo-events included, each carrying its encounter's setting.

    READING: an event whose ``encounter_id`` is not in ``encounters`` keeps that
    id (``same_encounter`` compares ids) but has no setting (null), exactly like
    an event without an encounter for ``index.settings`` and ``index_setting``.
    Exact duplicate rows are *not* removed: each row is an event (and, if it
    matches the index, a candidate of its own).
    """
    setting_of: dict[str, str] = {}
    end_of: dict[str, pd.Timestamp | None] = {}
    start_of: dict[str, pd.Timestamp] = {}
    by_person: dict[str, list[Event]] = {}
    for row in encounters.to_dict("records"):
        setting_of[str(row["encounter_id"])] = str(row["setting"])
        pseudo = encounter_pseudo_event(row)
        end_of[str(row["encounter_id"])] = pseudo.encounter_end
        start_of[str(row["encounter_id"])] = pseudo.time
        by_person.setdefault(pseudo.person_id, []).append(pseudo)
    for row in events.to_dict("records"):
        enc = _or_none(row.get("encounter_id"))
        enc = None if enc is None else str(enc)
        value = _or_none(row.get("value"))
        unit = _or_none(row.get("unit"))
        supply = _or_none(row.get("days_supply"))
        e = Event(
            person_id=str(row["person_id"]),
            encounter_id=enc,
            time=_as_timestamp(row["time"]),
            kind=str(row["kind"]),
            system=str(row["system"]),
            code=str(row["code"]),
            value=None if value is None else float(value),
            unit=None if unit is None else str(unit),
            days_supply=None if supply is None else int(supply),
            setting=setting_of.get(enc) if enc is not None else None,
            encounter_end=end_of.get(enc) if enc is not None else None,
            encounter_start=start_of.get(enc) if enc is not None else None,
            present_on_admission=_or_none(row.get("present_on_admission")),
        )
        by_person.setdefault(e.person_id, []).append(e)
    return by_person


def _persons(persons: pd.DataFrame) -> dict[str, Person]:
    out = {}
    for row in persons.to_dict("records"):
        p = Person(
            person_id=str(row["person_id"]),
            birth_date=_as_date(row["birth_date"]),  # type: ignore[arg-type]
            sex=str(row["sex"]),
            death_date=_as_date(row.get("death_date")),
        )
        out[p.person_id] = p
    return out


# --------------------------------------------------------------------------------------------------
# Candidates
# --------------------------------------------------------------------------------------------------


def has_code(event: Event, kind: str, codes: ValueSet) -> bool:
    """Kind equal and code in the code set (matching rules of :mod:`lowvalue.rules.codes`)."""
    return event.kind == kind and codes.matches(event.system, event.code)


def age_on(birth: date, d: date) -> int:
    """Completed years on date ``d``: the birthday counts from its own day.

    Someone born on 29 February turns a year older on 1 March in a common year
    (on 28 February, (2, 28) < (2, 29) still holds).
    """
    return d.year - birth.year - ((d.month, d.day) < (birth.month, birth.day))


def in_population(person: Person, index_date: date, population: Population) -> bool:
    """Age on the index *date* within the inclusive bounds, and sex in the list when given.

    READING: ``death_date`` plays no part (the page does not mention it), so
    events dated after a recorded death are still judged.
    """
    age = age_on(person.birth_date, index_date)
    if population.age_min is not None and age < population.age_min:
        return False
    if population.age_max is not None and age > population.age_max:
        return False
    if population.sex is not None and person.sex not in population.sex:
        return False
    return True


def passes_index(event: Event, rule: Rule, ruleset: RuleSet) -> bool:
    """Kind, code set, settings (an event without a setting never qualifies) and own value."""
    index = rule.index
    codes = ruleset.valueset(index.codes)
    if not has_code(event, index.kind, codes):
        return False
    if index.settings is not None and event.setting not in index.settings:
        return False
    if index.value is not None:
        v = usable_value(event, codes)
        if v is None or not compare(v, index.value.op, threshold_of(index.value, None, codes)):
            return False
    return True


def candidates(person: Person, timeline: list[Event], rule: Rule, ruleset: RuleSet) -> list[Event]:
    """Every event of the person that is the rule's index, for a person in the population on its date."""
    return [e for e in timeline if passes_index(e, rule, ruleset) and in_population(person, e.date, rule.population)]


# --------------------------------------------------------------------------------------------------
# Windows
# --------------------------------------------------------------------------------------------------


def day_offset(event: Event, index: Event) -> int:
    """Calendar days from the index date to the event date (time of day ignored)."""
    return (event.date - index.date).days


def hour_offset(event: Event, index: Event) -> Fraction:
    """Exact hours from the index timestamp to the event timestamp.

    A fraction, not a float, so an event 24 h 1 min before the index is
    exactly −24 − 1/60 h, and one 24 h before is exactly −24: edges are decided
    without rounding.
    """
    micros = (event.time - index.time) // pd.Timedelta(microseconds=1)
    return Fraction(int(micros), _MICROSECONDS_PER_HOUR)


def in_window(event: Event, index: Event, window: Window) -> bool:
    offset = day_offset(event, index) if window.unit == "d" else hour_offset(event, index)
    return window.contains(offset)


def anchor_of(criterion: Criterion, index: Event) -> Event | None:
    """What the criterion's window is measured from: the index event, or with ``from: discharge`` the index moved
    to the end of its encounter. None (the criterion cannot hold) when the index has no encounter, its encounter is
    not in ``encounters`` or has no end time."""
    if criterion.anchor == "index":
        return index
    return None if index.encounter_end is None else replace(index, time=index.encounter_end)


# --------------------------------------------------------------------------------------------------
# Matching events, first_in
# --------------------------------------------------------------------------------------------------


def same_encounter(event: Event, index: Event) -> bool:
    """The same *non-null* encounter id: two events without an encounter are not "the same encounter"."""
    return index.encounter_id is not None and event.encounter_id == index.encounter_id


def is_first_in(event: Event, timeline: list[Event], kind: str, codes: ValueSet, days: int) -> bool:
    """No event of the same kind and code set dated in ``[date(e) − N, date(e) − 1]``.

    Looks at the whole timeline (any window, any encounter, any value), so
    washout is a property of the person's history, not of the criterion's
    filters. Events on the same date do not count: same-day repeats all stay first.
    """
    lo, hi = event.date - timedelta(days=days), event.date - timedelta(days=1)
    return not any(has_code(other, kind, codes) and lo <= other.date <= hi for other in timeline)


def matching_events(criterion: Criterion, index: Event, timeline: list[Event], codes: ValueSet) -> list[Event]:
    """Events of the person, of the kind and code set, in the window, in the same encounter if asked,
    and first in their washout if asked. The index event itself is included when it qualifies."""
    anchor = anchor_of(criterion, index)
    if anchor is None:
        return []
    out = []
    for e in timeline:
        if not has_code(e, criterion.kind, codes):
            continue
        if not in_window(e, anchor, criterion.window):
            continue
        if criterion.same_encounter and not same_encounter(e, index):
            continue
        if criterion.first_in is not None and not is_first_in(e, timeline, criterion.kind, codes,
                                                              criterion.first_in.amount):
            continue
        out.append(e)
    return out


# --------------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------------

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq,
}


def compare(value: float, op: str, threshold: float | None) -> bool:
    """``value op threshold``; a missing threshold (no usable index value) makes every comparison fail."""
    if threshold is None:
        return False
    return _OPS[op](value, threshold)


def usable_value(event: Event, codes: ValueSet) -> float | None:
    """The event's value in the code set's canonical unit, or None (no value, or a unit we cannot convert)."""
    if event.value is None or (isinstance(event.value, float) and math.isnan(event.value)):
        return None
    factor = unit_factor(event.unit, codes)
    if factor is None:
        return None
    return event.value * factor


def threshold_of(test: ValueTest, index: Event | None, codes: ValueSet) -> float | None:
    """The number values are compared with, in the code set's canonical unit.

    ``threshold``: READING: it is written in ``test.unit`` (canonical when
    omitted) and converted with the code set's factors like any value; a unit
    the code set cannot convert is a rule error.

    ``index_ratio``: ratio × the index event's own value. READING: the index
    value is converted with the *criterion's* code set (the same scale as the
    values it is compared with), and it is ``ratio * converted_index_value`` in
    that order of multiplication. ``test.unit`` is ignored (a ratio has no unit).
    """
    if test.index_ratio is not None:
        base = usable_value(index, codes) if index is not None else None
        return None if base is None else test.index_ratio * base
    assert test.threshold is not None
    if test.unit is None:
        return float(test.threshold)
    factor = unit_factor(test.unit, codes)
    if factor is None:
        raise ValueError(f"threshold unit {test.unit!r} cannot be converted to code set {codes.name!r}")
    return test.threshold * factor


def most_recent(events: Iterable[Event], codes: ValueSet) -> list[Event]:
    """Among events with a usable value, all those at the latest timestamp (ties are all kept)."""
    usable = [e for e in events if usable_value(e, codes) is not None]
    if not usable:
        return []
    latest = max(e.time for e in usable)
    return [e for e in usable if e.time == latest]


def value_test_holds(test: ValueTest, at_least: int, matched: list[Event], index: Event, codes: ValueSet) -> bool:
    """``of: any``: at least ``at_least`` usable values satisfy; ``of: most_recent``: any latest one satisfies."""
    threshold = threshold_of(test, index, codes)
    if test.of == "most_recent":
        return any(compare(usable_value(e, codes), test.op, threshold) for e in most_recent(matched, codes))  # type: ignore[arg-type]
    satisfying = [e for e in matched
                  if (v := usable_value(e, codes)) is not None and compare(v, test.op, threshold)]
    return len(satisfying) >= at_least


# --------------------------------------------------------------------------------------------------
# Coverage
# --------------------------------------------------------------------------------------------------


def covered_day_offsets(criterion: Criterion, index: Event, timeline: list[Event], codes: ValueSet) -> set[int]:
    """Day offsets in the window covered by at least one dispensing of the code set.

    A dispensing covers ``[date, date + max(days_supply, 1) − 1]`` (a missing
    days_supply counts as 1), whatever its own date: a supply dispensed before
    the window still covers the days of it that lie inside. Overlaps are not
    carried forward: a day covered twice is one day.
    """
    lo, hi = criterion.window.int_bounds()
    covered: set[int] = set()
    anchor = anchor_of(criterion, index)
    if anchor is None:
        return covered
    for e in timeline:
        if not has_code(e, criterion.kind, codes):
            continue
        if criterion.same_encounter and not same_encounter(e, index):
            continue
        supply = e.days_supply if e.days_supply is not None and e.days_supply >= 1 else 1
        start = day_offset(e, anchor)
        for off in range(start, start + supply):
            if lo <= off <= hi:
                covered.add(off)
    return covered


# --------------------------------------------------------------------------------------------------
# Conditions
# --------------------------------------------------------------------------------------------------


def criterion_holds(criterion: Criterion, index: Event, timeline: list[Event], ruleset: RuleSet) -> bool:
    codes = ruleset.valueset(criterion.codes)
    if criterion.coverage is not None:
        return len(covered_day_offsets(criterion, index, timeline, codes)) >= criterion.coverage.min_days
    matched = matching_events(criterion, index, timeline, codes)
    if criterion.value is not None:
        return value_test_holds(criterion.value, criterion.at_least, matched, index, codes)
    return len(matched) >= criterion.at_least


def hospital_onset(after_hours: int, index: Event) -> bool:
    """The index arose in an inpatient stay: flagged not present on admission, or, with no flag (or ``U``),
    dated at least ``after_hours`` after the stay's start. ``Y``/``W``, no encounter or another setting: false."""
    if index.setting != "inpatient" or index.encounter_start is None:
        return False
    if index.present_on_admission in ("Y", "W"):
        return False
    if index.present_on_admission == "N":
        return True
    return index.time - index.encounter_start >= pd.Timedelta(hours=after_hours)


def condition_holds(condition: Condition, index: Event, timeline: list[Event], ruleset: RuleSet) -> bool:
    """``index_setting``: the candidate's setting is listed (no setting → false); ``hospital_onset``: see
    :func:`hospital_onset`;
    ``require``: the criterion holds; ``exclude``: it does not;
    ``require_any``: at least one of the criteria holds; ``exclude_any``: none of them holds."""
    if condition.index_setting is not None:
        return index.setting is not None and index.setting in condition.index_setting
    if condition.hospital_onset is not None:
        return hospital_onset(condition.hospital_onset.hours, index)
    any_holds = any(criterion_holds(c, index, timeline, ruleset) for c in condition.criteria)
    return any_holds if condition.role == "require" else not any_holds


# --------------------------------------------------------------------------------------------------
# Tiers
# --------------------------------------------------------------------------------------------------


def tiers(rule: Rule, passed: dict[str, bool]) -> dict[str, bool]:
    """Eligible: every eligibility condition (population and index hold for every candidate);
    sensitive / specific: eligible and every condition of that variant. An empty list adds nothing."""
    eligible = all(passed[c] for c in rule.eligibility)
    return {
        "eligible": eligible,
        "sensitive": eligible and all(passed[c] for c in rule.variants.sensitive),
        "specific": eligible and all(passed[c] for c in rule.variants.specific),
    }


# --------------------------------------------------------------------------------------------------
# Putting it together
# --------------------------------------------------------------------------------------------------


def judge(candidate: Event, timeline: list[Event], rule: Rule, ruleset: RuleSet) -> dict[str, Any]:
    """One output row: the candidate's raw index columns, its tiers and every condition."""
    passed = {name: condition_holds(cond, candidate, timeline, ruleset) for name, cond in rule.conditions.items()}
    row: dict[str, Any] = {
        "person_id": candidate.person_id,
        "encounter_id": candidate.encounter_id,
        "index_time": candidate.time,
        "index_system": candidate.system,
        "index_code": candidate.code,
        "index_value": candidate.value,
        "index_unit": candidate.unit,
        "index_days_supply": candidate.days_supply,
    }
    row.update(tiers(rule, passed))
    row.update({f"cond__{name}": passed[name] for name in rule.conditions})
    return row


def _sort_key(row: dict[str, Any]) -> tuple:
    """The documented order; nulls sort last (DuckDB's default for ascending order).

    READING: rows equal on the six documented keys are further ordered by
    index_unit and index_days_supply, so the order is total up to identical rows.
    """

    def nulls_last(x: Any) -> tuple:
        return (1, 0) if x is None else (0, x)

    return (row["person_id"], row["index_time"], row["index_system"], row["index_code"],
            nulls_last(row["encounter_id"]), nulls_last(row["index_value"]),
            nulls_last(row["index_unit"]), nulls_last(row["index_days_supply"]))


def evaluate(persons: pd.DataFrame, encounters: pd.DataFrame, events: pd.DataFrame,
             rule: Rule, ruleset: RuleSet) -> pd.DataFrame:
    """Judge every candidate of ``rule`` in the extract: one row per candidate.

    Columns: the index columns (raw, unconverted values), ``eligible``,
    ``sensitive``, ``specific``, then ``cond__<name>`` per condition in the
    rule's order. Candidates are events of persons present in ``persons``
    (READING: events of unknown persons have no age and are never candidates).
    """
    people = _persons(persons)
    by_person = timelines(encounters, events)
    rows = []
    for person_id, timeline in by_person.items():
        person = people.get(person_id)
        if person is None:
            continue
        for candidate in candidates(person, timeline, rule, ruleset):
            rows.append(judge(candidate, timeline, rule, ruleset))
    rows.sort(key=_sort_key)
    columns = INDEX_COLUMNS + TIER_COLUMNS + [f"cond__{name}" for name in rule.conditions]
    out = pd.DataFrame({c: pd.Series([r[c] for r in rows], dtype=object) for c in columns}, columns=columns)
    out["index_time"] = pd.to_datetime(out["index_time"]).astype("datetime64[us]")
    out["index_value"] = out["index_value"].astype("float64")
    out["index_days_supply"] = out["index_days_supply"].astype("Int64")
    for c in columns[len(INDEX_COLUMNS):]:
        out[c] = out[c].astype(bool)
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# Target trial: anchors, baseline eligibility, the intervention within the grace period
# --------------------------------------------------------------------------------------------------

TRIAL_COLUMNS = ["person_id", "encounter_id", "anchor_time", "anchor_system", "anchor_code", "eligible",
                 "treated", "treatment_time"]
TRIAL_SORT_COLUMNS = ["person_id", "anchor_time", "anchor_system", "anchor_code", "encounter_id"]


def treatment_time(anchor: Event, timeline: list[Event], rule: Rule, ruleset: RuleSet) -> pd.Timestamp | None:
    """The earliest index intervention of the rule (kind, code set, settings, own value) whose offset from the anchor
    lies in the grace window ``[0, grace_period]`` (days: calendar dates, so an intervention earlier on the anchor's
    day counts; hours: exact), or None: the anchor's person was not treated within the grace period."""
    assert rule.anchor is not None
    grace = rule.anchor.grace_window
    times = [e.time for e in timeline if passes_index(e, rule, ruleset) and in_window(e, anchor, grace)]
    return min(times) if times else None


def trial(persons: pd.DataFrame, encounters: pd.DataFrame, events: pd.DataFrame,
          rule: Rule, ruleset: RuleSet) -> pd.DataFrame:
    """One row per anchor of ``rule``: the anchor's columns, ``eligible`` (every ``anchor.eligibility`` condition
    holds with the anchor as index), ``treated`` and ``treatment_time`` (:func:`treatment_time`), then
    ``cond__<name>`` per anchor eligibility condition. Anchors are the candidates of :meth:`Rule.trial_rule`."""
    trial_rule = rule.trial_rule()
    judged = evaluate(persons, encounters, events, trial_rule, ruleset)
    by_person = timelines(encounters, events)
    treated_at = []
    for row in judged.to_dict("records"):
        key = (row["index_time"], row["index_system"], row["index_code"], row["encounter_id"])
        anchor = next(e for e in by_person[str(row["person_id"])]
                      if (e.time, e.system, e.code, e.encounter_id) == key)
        treated_at.append(treatment_time(anchor, by_person[anchor.person_id], rule, ruleset))
    out = judged.rename(columns={"index_time": "anchor_time", "index_system": "anchor_system",
                                 "index_code": "anchor_code"})
    out["treated"] = pd.Series([t is not None for t in treated_at], dtype=bool)
    out["treatment_time"] = pd.Series(treated_at, dtype="datetime64[us]")
    conds = [f"cond__{n}" for n in trial_rule.conditions]
    return out[TRIAL_COLUMNS + conds].reset_index(drop=True)
