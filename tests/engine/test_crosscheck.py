"""The DuckDB engine agrees with the reference evaluator on random extracts and random rules.

The reference (:mod:`lowvalue.engine.reference`) defines the semantics; any
disagreement is a bug in one of them (or a gap in ``docs/rule-language.md``).
A failure prints the rule as YAML, the timeline and the first differing row:
enough to write the regression test by hand.

``LOWVALUE_HYPOTHESIS_EXAMPLES=5000 pytest tests/engine/test_crosscheck.py -k many``
runs a longer, randomised search. Shrinking a failure to a minimal timeline
can take minutes (every example opens a DuckDB connection);
``LOWVALUE_HYPOTHESIS_SHRINK=0`` reports the first failing example unshrunk.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings

try:  # `tests/engine` on sys.path (pytest's default rootdir insertion) or `tests` as a package
    from strategies import _subset, cases, code_refs, extracts, rule_dicts, rule_kinds, rule_yaml, ruleset, value_tests
except ImportError:  # pragma: no cover
    from tests.engine.strategies import (_subset, cases, code_refs, extracts, rule_dicts, rule_kinds, rule_yaml,
                                         ruleset, value_tests)
from hypothesis import assume
from hypothesis import strategies as st
from pydantic import ValidationError

from lowvalue.data.schema import SETTINGS
from lowvalue.rules.model import Rule

from lowvalue.engine import reference, sql

RULESET = ruleset()
EXTRA_EXAMPLES = int(os.environ.get("LOWVALUE_HYPOTHESIS_EXAMPLES", "0"))
PHASES = [p for p in Phase if p is not Phase.shrink or os.environ.get("LOWVALUE_HYPOTHESIS_SHRINK", "1") != "0"]
PHASES = [p for p in PHASES if p is not Phase.explain]  # the "explain" phase re-runs examples: slow, little gain here


def _cell(x: Any) -> Any:
    """A comparable Python value: every null is None, numbers are floats, times are Timestamps.

    Only representation is normalised (dtype, null marker); values are compared exactly.
    """
    if x is None or pd.isna(x):
        return None
    if hasattr(x, "item") and not isinstance(x, pd.Timestamp):  # numpy scalar
        x = x.item()
    if isinstance(x, bool):
        return x
    if isinstance(x, (int, float)):
        return float(x)
    if isinstance(x, pd.Timestamp) or hasattr(x, "isoformat"):
        return pd.Timestamp(x).as_unit("us")
    return str(x)


def _rows(df: pd.DataFrame) -> list[tuple]:
    return [tuple(_cell(v) for v in row) for row in df.itertuples(index=False, name=None)]


def _by_content(rows: list[tuple]) -> list[tuple]:
    """Rows in a total order (candidates equal on the documented sort keys may come in any order)."""
    return sorted(rows, key=lambda r: tuple((v is None, repr(type(v)), v if v is not None else 0) for v in r))


def _timeline(persons: pd.DataFrame, encounters: pd.DataFrame, events: pd.DataFrame) -> str:
    def table(df: pd.DataFrame) -> str:
        return df.to_string(index=False) if len(df) else "(none)"

    ev = events.sort_values(["person_id", "time"], kind="stable")
    return f"persons:\n{table(persons)}\n\nencounters:\n{table(encounters)}\n\nevents:\n{table(ev)}"


def _first_difference(ref: list[tuple], got: list[tuple], columns: list[str]) -> str:
    for i in range(max(len(ref), len(got))):
        a = ref[i] if i < len(ref) else None
        b = got[i] if i < len(got) else None
        if a != b:
            def show(r: tuple | None) -> str:
                return "(no row)" if r is None else ", ".join(f"{c}={v!r}" for c, v in zip(columns, r))
            cols = [c for c, x, y in zip(columns, a or (), b or ()) if x != y]
            return (f"first differing row #{i} (differing columns: {cols or 'all'}):\n"
                    f"  reference: {show(a)}\n  duckdb:    {show(b)}")
    return "(no difference)"


def check_agreement(rule: Any, extract: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> None:
    persons, encounters, events = extract
    expected = reference.evaluate(persons, encounters, events, rule, RULESET)
    got = sql.evaluate_frames(persons, encounters, events, rule, RULESET)
    context = f"\n\nrule:\n{rule_yaml(rule)}\n{_timeline(persons, encounters, events)}\n"

    assert list(got.columns) == list(expected.columns), f"columns differ: {list(got.columns)}{context}"
    ref_rows, sql_rows = _rows(expected), _rows(got)
    ref_sorted, sql_sorted = _by_content(ref_rows), _by_content(sql_rows)
    if ref_sorted != sql_sorted:
        raise AssertionError(f"{len(ref_rows)} reference rows, {len(sql_rows)} duckdb rows; "
                             f"{_first_difference(ref_sorted, sql_sorted, list(expected.columns))}{context}")
    # same rows; now the documented order (only its keys are determined)
    keys = [expected.columns.get_loc(c) for c in reference.SORT_COLUMNS]
    ref_keys = [tuple(r[k] for k in keys) for r in ref_rows]
    sql_keys = [tuple(r[k] for k in keys) for r in sql_rows]
    assert sql_keys == ref_keys, f"same rows, different order on {reference.SORT_COLUMNS}{context}"


@settings(max_examples=300, deadline=None, derandomize=True, phases=PHASES, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_duckdb_agrees_with_reference(case):
    rule, extract = case
    check_agreement(rule, extract)


@pytest.mark.skipif(EXTRA_EXAMPLES <= 0, reason="set LOWVALUE_HYPOTHESIS_EXAMPLES=N to run N more random examples")
@settings(max_examples=max(EXTRA_EXAMPLES, 1), deadline=None, derandomize=False, phases=PHASES,
          suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_duckdb_agrees_with_reference_many(case):
    rule, extract = case
    check_agreement(rule, extract)


def test_any_of_evidence_is_the_holding_criteria_events_capped():
    """``require_any``/``exclude_any`` in DuckDB: evidence lists the events of the criteria that hold, at most 3."""
    import duckdb

    from lowvalue.rules.model import Rule

    try:
        from strategies import frames
    except ImportError:  # pragma: no cover
        from tests.engine.strategies import frames

    rule = Rule.model_validate({
        "id": "LV-ANY", "title": {"sv": "t", "en": "t"}, "rationale": {"sv": "r", "en": "r"},
        "index": {"kind": "procedure", "codes": {"KVÅ": ["P1"]}},
        "conditions": {"any": {"require_any": [
            {"kind": "diagnosis", "codes": {"ICD-10-SE": ["A01"]}, "window": "[-7d, 0d]", "at_least": 3},
            {"kind": "lab", "codes": {"NPU": ["L1"]}, "window": "[-7d, 0d]"},
            {"kind": "medication", "codes": {"ATC": ["X01"]}, "window": "[-7d, 0d]"}]}},
        "eligibility": ["any"]})
    t0 = pd.Timestamp("2024-03-01 12:00")

    def event(days: int, kind: str, system: str, code: str) -> dict:
        return {"person_id": "p1", "encounter_id": None, "time": t0 + pd.Timedelta(days=days), "kind": kind,
                "system": system, "code": code, "value": None, "unit": None, "days_supply": None}

    events = [event(0, "procedure", "KVÅ", "P1"), event(-1, "diagnosis", "ICD-10-SE", "A01"),  # 1 of 3: no
              event(-2, "lab", "NPU", "L1"), event(-3, "lab", "NPU", "L1"),                   # holds
              event(-4, "medication", "ATC", "X01"), event(-5, "medication", "ATC", "X01")]  # holds
    persons, encounters, ev = frames([{"person_id": "p1", "birth_date": "1970-01-01", "sex": "F", "death_date": None}],
                                     [], events)
    con = duckdb.connect()
    sql.load_frames(con, persons, encounters, ev)
    sql.prepare(con)
    out = sql.evaluate(con, rule, RULESET)
    assert out["cond__any"].tolist() == [True]
    evidence = [(e["code"], e["time"][:10], e["role"]) for e in out["evidence"][0]]
    assert evidence == [("L1", "2024-02-28", "require"), ("L1", "2024-02-27", "require"),
                        ("X01", "2024-02-26", "require")]
    check_agreement(rule, (persons, encounters, ev))


# --------------------------------------------------------------------------------------------------
# Target trial (anchor): reference.trial vs sql.compile_trial
# --------------------------------------------------------------------------------------------------


@st.composite
def trial_cases(draw: st.DrawFn) -> tuple[Rule, tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]]:
    """A random rule with a random anchor (kind, codes, settings, value, grace period) whose eligibility names the rule's
    conditions that look at time zero and before only; an extract biased towards the kinds both look at."""
    data = draw(rule_dicts())
    kind = draw(st.sampled_from(["diagnosis", "procedure", "medication", "lab", "encounter"]))
    anchor: dict[str, Any] = {"kind": kind, "codes": draw(code_refs(kind)),
                              "grace_period": draw(st.sampled_from(["0d", "1d", "2d", "7d", "0h", "12h", "24h"]))}
    if draw(st.integers(0, 3)) == 0:
        anchor["settings"] = _subset(draw, list(SETTINGS))
    if kind == "lab" and draw(st.booleans()):  # a lab anchor with a threshold on its own value (Hb >= 70 g/L)
        anchor["value"] = draw(value_tests(plain=True))
    baseline = []
    for name in data["conditions"]:
        try:
            Rule.model_validate({**data, "anchor": {**anchor, "eligibility": [name]}})
            baseline.append(name)
        except ValidationError:
            pass
    anchor["eligibility"] = _subset(draw, baseline, min_size=0) if baseline else []
    try:
        rule = Rule.model_validate({**data, "anchor": anchor})
    except ValidationError:
        assume(False)
        raise
    return rule, draw(extracts(rule_kinds(rule) + [kind]))


def check_trial_agreement(rule: Rule, extract: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> None:
    persons, encounters, events = extract
    expected = reference.trial(persons, encounters, events, rule, RULESET)
    got = sql.trial_frames(persons, encounters, events, rule, RULESET)
    context = f"\n\nrule:\n{rule_yaml(rule)}\nanchor: {rule.anchor}\n{_timeline(persons, encounters, events)}\n"
    assert list(got.columns) == list(expected.columns), f"columns differ: {list(got.columns)}{context}"
    ref_rows, sql_rows = _by_content(_rows(expected)), _by_content(_rows(got))
    assert ref_rows == sql_rows, (f"{len(ref_rows)} reference rows, {len(sql_rows)} duckdb rows; "
                                  f"{_first_difference(ref_rows, sql_rows, list(expected.columns))}{context}")


@settings(max_examples=60 + EXTRA_EXAMPLES, deadline=None, derandomize=True, phases=PHASES,
          suppress_health_check=[HealthCheck.too_slow])
@given(trial_cases())
def test_trial_duckdb_agrees_with_reference(case):
    """Anchors, baseline eligibility and the grace period: reference vs DuckDB. 60 derandomised examples keep
    ``make test`` in its budget (about 0.27 s each); ``LOWVALUE_HYPOTHESIS_EXAMPLES=N`` adds N more."""
    rule, extract = case
    check_trial_agreement(rule, extract)


def test_trial_anchor_eligibility_rejects_a_look_after_time_zero():
    """A trial's eligibility may use data up to time zero only: a condition whose window ends after 0 is refused."""
    base = {"id": "LV-T", "title": {"sv": "t", "en": "t"}, "rationale": {"sv": "r", "en": "r"},
            "index": {"kind": "medication", "codes": {"ATC": ["X01"]}},
            "conditions": {"later": {"exclude": {"kind": "diagnosis", "codes": {"ICD-10-SE": ["A01"]}, "window": "[-3d, 3d]"}},
                           "before": {"exclude": {"kind": "diagnosis", "codes": {"ICD-10-SE": ["A01"]}, "window": "[-3d, 1d)"}}}}
    anchor = {"kind": "diagnosis", "codes": {"ICD-10-SE": ["B10"]}, "grace_period": "3d"}
    with pytest.raises(ValidationError, match="looks after time zero"):
        Rule.model_validate({**base, "anchor": {**anchor, "eligibility": ["later"]}})
    assert Rule.model_validate({**base, "anchor": {**anchor, "eligibility": ["before"]}}).anchor.grace_period.amount == 3


def _sinusitis_trial_extract() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """LV-ABX-005's anchor on a few persons: treated on day 2, on day 4 (not within the grace period), earlier on the
    anchor's day, excluded by COPD or a recent course, 17 years old, and a person with two anchors."""
    t0 = pd.Timestamp("2024-06-15 12:00")
    rows, people = [], []

    def person(pid: str, age: int) -> None:
        people.append({"person_id": pid, "birth_date": t0 - pd.DateOffset(years=age, days=182), "sex": "F",
                       "death_date": None})

    def ev(pid: str, days: float, kind: str, system: str, code: str) -> None:
        rows.append({"person_id": pid, "encounter_id": None, "time": t0 + pd.Timedelta(days=days), "kind": kind,
                     "system": system, "code": code, "value": None, "unit": None, "days_supply": 7})

    for pid, age, abx in (("p1", 40, 2), ("p2", 40, 4), ("p3", 40, -0.1), ("p4", 70, 1), ("p5", 50, 0), ("p6", 17, 1),
                          ("p7", 30, None)):
        person(pid, age)
        ev(pid, 0, "diagnosis", "ICD-10-SE", "J01.9")
        if abx is not None:
            ev(pid, abx, "medication", "ATC", "J01CA04")
    ev("p4", -100, "diagnosis", "ICD-10-SE", "J44.9")  # COPD: not eligible
    ev("p5", -10, "medication", "ATC", "J01CE02")  # a course 10 days before: not eligible
    ev("p7", 60, "diagnosis", "ICD-10-SE", "J01.9")  # a second anchor, untreated
    enc = pd.DataFrame(columns=["encounter_id", "person_id", "start_time", "end_time", "setting", "unit"])
    return pd.DataFrame(people), enc, pd.DataFrame(rows)


def test_sinusitis_trial_on_duckdb_and_the_reference():
    """The shipped LV-ABX-005 anchor, row by row: who is eligible and treated within the grace period."""
    from lowvalue.rules.library import load_library

    rs = load_library(None)
    rule = rs.rules["LV-ABX-005"]
    persons, encounters, events = _sinusitis_trial_extract()
    ref = reference.trial(persons, encounters, events, rule, rs)
    got = sql.trial_frames(persons, encounters, events, rule, rs)
    assert _rows(ref) == _rows(got)
    by = ref.set_index("person_id")
    assert by.loc[["p1", "p2", "p3", "p4", "p5"], "treated"].tolist() == [True, False, True, True, True]
    assert by.loc[["p1", "p2", "p3", "p4", "p5"], "eligible"].tolist() == [True, True, True, False, False]
    assert "p6" not in by.index and (by.loc["p7", "treated"] == False).all() and len(by.loc["p7"]) == 2  # noqa: E712
