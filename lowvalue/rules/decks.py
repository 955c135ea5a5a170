"""Run the test decks that every rule file carries.

A deck case is a tiny timeline and the exact flags it must produce, in the
manner of Bonnie's test decks for eCQMs and ehrQL's assurance data. Each case
runs on the DuckDB engine and on the reference evaluator; both must give the
expected flags, so a deck checks the rule *and* the engines.

Engines with a high cost per query (Spark) run decks batched
(:func:`run_decks_batched`): every case becomes one person (``deck-<i>``, its
encounter ids prefixed ``deck-<i>/``) of one extract, loaded once; each rule is
evaluated once and its flags are split per person.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Callable

import pandas as pd

from lowvalue.rules.library import RuleSet
from lowvalue.rules.model import Rule, TestCase
from lowvalue.rules.windows import Duration

REFERENCE_TIME = datetime(2024, 6, 15, 12, 0)
PERSON_ID = "deck-person"


def at(d: Duration) -> datetime:
    return REFERENCE_TIME + (timedelta(days=d.amount) if d.unit == "d" else timedelta(hours=d.amount))


def _birth_date(case: TestCase) -> date:
    if case.person.birth_date is not None:
        return case.person.birth_date
    age = case.person.age if case.person.age is not None else 50
    ref = REFERENCE_TIME.date()
    return ref.replace(year=ref.year - age) - timedelta(days=182)


def case_frames(case: TestCase, person_id: str = PERSON_ID, encounter_prefix: str = "") -> dict[str, pd.DataFrame]:
    """The canonical tables for one deck case (as person ``person_id``, encounter ids prefixed)."""
    def enc(x: str | None) -> str | None:
        return x if x is None else encounter_prefix + x

    persons = pd.DataFrame([{"person_id": person_id, "birth_date": _birth_date(case), "sex": case.person.sex,
                             "death_date": case.person.death_date}])
    encounters = pd.DataFrame(
        [{"encounter_id": enc(e.id), "person_id": person_id, "start_time": at(e.at),
          "end_time": at(e.at) + timedelta(hours=e.hours), "setting": e.setting, "unit": e.unit}
         for e in case.encounters],
        columns=["encounter_id", "person_id", "start_time", "end_time", "setting", "unit"],
    )
    events = pd.DataFrame(
        [{"person_id": person_id, "encounter_id": enc(e.encounter), "time": at(e.at), "kind": e.kind,
          "system": e.system, "code": e.code, "value": e.value, "unit": e.unit, "days_supply": e.days_supply,
          "present_on_admission": e.present_on_admission}
         for e in case.events],
        columns=["person_id", "encounter_id", "time", "kind", "system", "code", "value", "unit", "days_supply",
                 "present_on_admission"],
    )
    return {"persons": persons, "encounters": encounters, "events": events}


Evaluator = Callable[[pd.DataFrame, pd.DataFrame, pd.DataFrame, Rule, RuleSet], pd.DataFrame]


def _engines() -> dict[str, Evaluator]:
    from lowvalue.engine import sql

    engines: dict[str, Evaluator] = {"duckdb": sql.evaluate_frames}
    try:
        from lowvalue.engine import reference
    except ImportError:  # pragma: no cover - the reference ships with the package
        return engines
    engines["reference"] = reference.evaluate
    return engines


def _flags_of(df: pd.DataFrame) -> list[tuple[datetime, str]]:
    got = df[df.sensitive | df.specific]
    return sorted((pd.Timestamp(t).to_pydatetime(), "specific" if s else "sensitive")
                  for t, s in zip(got.index_time, got.specific))


@dataclass
class DeckFailure:
    rule_id: str
    case: str
    engine: str
    expected: list[tuple[datetime, str]]
    got: list[tuple[datetime, str]]

    def __str__(self) -> str:
        fmt = lambda fl: ", ".join(f"{(t - REFERENCE_TIME)} {v}" for t, v in fl) or "no flag"  # noqa: E731
        return f"{self.rule_id} / {self.case} [{self.engine}]: expected {fmt(self.expected)}; got {fmt(self.got)}"


def run_deck(rule: Rule, rs: RuleSet) -> tuple[int, list[DeckFailure]]:
    """Run every case of one rule on every engine; returns (cases run, failures)."""
    failures = []
    for case in rule.tests:
        frames = case_frames(case)
        expected = sorted((at(e.at), e.variant) for e in case.expect)
        for name, evaluate in _engines().items():
            got = _flags_of(evaluate(frames["persons"], frames["encounters"], frames["events"], rule, rs))
            if got != expected:
                failures.append(DeckFailure(rule.id, case.name, name, expected, got))
    return len(rule.tests), failures


Loader = Callable[[pd.DataFrame, pd.DataFrame, pd.DataFrame, Any], None]
"""``load(persons, encounters, events, code_sets)``: make the frames an engine's tables, with those code sets matched."""
RuleEvaluator = Callable[[Rule, RuleSet], pd.DataFrame]


def batch_frames(cases: list[TestCase]) -> dict[str, pd.DataFrame]:
    """All cases as one extract: case ``i`` is person ``deck-<i>``, its encounter ids prefixed ``deck-<i>/``."""
    parts = [case_frames(c, f"deck-{i}", f"deck-{i}/") for i, c in enumerate(cases)]
    if not parts:
        raise ValueError("no deck cases to batch")
    return {name: pd.concat([p[name] for p in parts], ignore_index=True) for name in ("persons", "encounters", "events")}


def run_decks_batched(rules: list[Rule], rs: RuleSet, load: Loader, evaluate: RuleEvaluator, engine: str,
                      workers: int = 1) -> tuple[int, list[DeckFailure]]:
    """Every case of ``rules`` in one extract, loaded once; each rule evaluated once, its flags split per person.

    ``workers`` > 1 evaluates that many rules at a time (threads; for engines whose queries may run concurrently).
    """
    from concurrent.futures import ThreadPoolExecutor

    from lowvalue.engine.sql import code_sets

    items = [(rule, case) for rule in rules for case in rule.tests]
    frames = batch_frames([case for _, case in items])
    load(frames["persons"], frames["encounters"], frames["events"], code_sets(rs, rules))
    with ThreadPoolExecutor(max(workers, 1)) as pool:
        judged = list(pool.map(lambda rule: evaluate(rule, rs), rules))
    got = {rule.id: {pid: _flags_of(part) for pid, part in df.groupby("person_id", sort=False)}
           for rule, df in zip(rules, judged)}
    failures = []
    for i, (rule, case) in enumerate(items):
        expected = sorted((at(e.at), e.variant) for e in case.expect)
        flags = got[rule.id].get(f"deck-{i}", [])
        if flags != expected:
            failures.append(DeckFailure(rule.id, case.name, engine, expected, flags))
    return len(items), failures


def frames_engine(evaluate: Evaluator) -> tuple[Loader, RuleEvaluator]:
    """``(load, evaluate)`` for :func:`run_decks_batched` from a frames evaluator (DuckDB, the reference)."""
    held: dict[str, pd.DataFrame] = {}

    def load(persons: pd.DataFrame, encounters: pd.DataFrame, events: pd.DataFrame, sets: Any = None) -> None:
        held.update(persons=persons, encounters=encounters, events=events)

    return load, lambda rule, rs: evaluate(held["persons"], held["encounters"], held["events"], rule, rs)
