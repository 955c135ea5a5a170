"""The Spark engine gives the same rows as the reference evaluator and the DuckDB engine.

Spark has a high cost per query (seconds: planning, stages) and a low cost per row, so these tests batch:
every deck case of every rule is one person of one extract, loaded once; random rules are checked many per
extract. ``LOWVALUE_SPARK_EXAMPLES=N`` sets the number of hypothesis examples (each: RULES_PER_EXAMPLE random
rules on the union of their random extracts); ``LOWVALUE_HYPOTHESIS_SHRINK=1`` shrinks a failure (slow on Spark).
"""

from __future__ import annotations

import os
import shutil

import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

pytest.importorskip("pyspark")
if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
    pytest.skip("the Spark engine needs Java 17 (java on PATH or JAVA_HOME)", allow_module_level=True)

try:  # `tests/engine` on sys.path (pytest's default rootdir insertion) or `tests` as a package
    from strategies import cases, rule_yaml, ruleset
    from test_crosscheck import (_by_content, _first_difference, _rows, _sinusitis_trial_extract, _timeline,
                                 trial_cases)
except ImportError:  # pragma: no cover
    from tests.engine.strategies import cases, rule_yaml, ruleset
    from tests.engine.test_crosscheck import (_by_content, _first_difference, _rows, _sinusitis_trial_extract,
                                              _timeline, trial_cases)

from lowvalue.data.validation import rowid_relation
from lowvalue.engine import reference, spark, sql
from lowvalue.rules import decks
from lowvalue.rules.library import load_library

EXAMPLES = int(os.environ.get("LOWVALUE_SPARK_EXAMPLES", "4"))
RULES_PER_EXAMPLE = 12
WORKERS = 3
SHRINK = os.environ.get("LOWVALUE_HYPOTHESIS_SHRINK", "0") == "1"
RULESET = ruleset()


@pytest.fixture(scope="module")
def session():
    return spark.session()


@pytest.fixture(scope="module")
def library():
    return load_library(None)


def test_every_deck_on_spark(session, library):
    rules = [r for r in sorted(library.rules.values(), key=lambda r: r.id) if r.tests]
    assert any(r.type == "trigger" for r in rules) and any(r.type != "trigger" for r in rules)
    n, failures = decks.run_decks_batched(rules, library, spark.load_frames, spark.evaluate, "spark",
                                          workers=WORKERS)
    assert n == sum(len(r.tests) for r in rules) and n > 400
    assert not failures, "\n".join(map(str, failures))


def test_batched_decks_equal_per_case_on_duckdb(library):
    """Batching is sound: the same cases, one extract, give the expected flags on DuckDB too."""
    rules = [r for r in sorted(library.rules.values(), key=lambda r: r.id) if r.tests]
    n, failures = decks.run_decks_batched(rules, library, *decks.frames_engine(sql.evaluate_frames), "duckdb")
    assert n > 400 and not failures, "\n".join(map(str, failures))


def _merge(examples: list) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The union of several random extracts, each's person and encounter ids prefixed so they stay apart."""
    parts = []
    for j, (_, (p, e, v)) in enumerate(examples):
        pre = lambda s: s.map(lambda x: x if x is None or pd.isna(x) else f"c{j}-{x}")  # noqa: E731
        p, e, v = p.copy(), e.copy(), v.copy()
        p["person_id"] = pre(p["person_id"])
        e["person_id"], e["encounter_id"] = pre(e["person_id"]), pre(e["encounter_id"])
        v["person_id"], v["encounter_id"] = pre(v["person_id"]), pre(v["encounter_id"]).astype(object)
        parts.append((p, e, v))
    return tuple(pd.concat([x[k] for x in parts], ignore_index=True) for k in range(3))  # type: ignore[return-value]


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          phases=[p for p in Phase if p not in (Phase.explain, *(() if SHRINK else (Phase.shrink,)))],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(cases(), min_size=RULES_PER_EXAMPLE, max_size=RULES_PER_EXAMPLE))
def test_spark_agrees_with_reference(session, examples):
    from concurrent.futures import ThreadPoolExecutor

    persons, encounters, events = _merge(examples)
    rules = [rule for rule, _ in examples]
    spark.load_frames(persons, encounters, events, sql.code_sets(RULESET, rules))
    with ThreadPoolExecutor(WORKERS) as pool:
        got_all = list(pool.map(lambda r: spark.evaluate(r, RULESET)[sql.frame_columns(r)], rules))
    for rule, got in zip(rules, got_all):
        expected = reference.evaluate(persons, encounters, events, rule, RULESET)
        context = f"\n\nrule:\n{rule_yaml(rule)}\n{_timeline(persons, encounters, events)}\n"
        assert list(got.columns) == list(expected.columns), context
        ref_rows, got_rows = _rows(expected), _rows(got)
        a, b = _by_content(ref_rows), _by_content(got_rows)
        assert a == b, (f"{len(a)} reference rows, {len(b)} spark rows; "
                        f"{_first_difference(a, b, list(expected.columns)).replace('duckdb:', 'spark: ')}{context}")
        keys = [expected.columns.get_loc(c) for c in reference.SORT_COLUMNS]
        assert [tuple(r[k] for k in keys) for r in got_rows] == [tuple(r[k] for k in keys) for r in ref_rows], \
            f"same rows, different order{context}"


def test_literals_and_number_text_match_duckdb(session):
    """String literals survive quotes and backslashes; a double's text (in candidate ids) is DuckDB's."""
    import duckdb

    texts = ["it's", "back\\slash", "a''b", "ÅÄÖ é", "%Y"]
    values = [0.0, -0.0, 7.0, 0.5, 9.9, 0.1, 140.0, 0.0001, 1e-05, -2.5e-07, 12345678.5, 1e14, 1e15, 1e16, 3.5e20,
              -3.25, 1 / 3]
    lits = ", ".join(f"{sql.SPARK['str'](t)} AS s{i}" for i, t in enumerate(texts))
    assert list(session.sql(f"SELECT {lits}").collect()[0]) == texts
    rows = ", ".join(f"({sql.SPARK['number'](v)})" for v in values)
    got = [r[0] for r in session.sql(f"SELECT {sql.SPARK['text']('v', 'double')} FROM VALUES {rows} AS t(v)").collect()]
    con = duckdb.connect()
    want = [con.execute(f"SELECT {sql.DUCKDB['text']('?::DOUBLE', 'double')}", [v]).fetchone()[0] for v in values]
    assert got == want


TRIALS_PER_EXAMPLE = 8
TRIAL_EXAMPLES = int(os.environ.get("LOWVALUE_SPARK_TRIAL_EXAMPLES", "3"))


def _spark_trial(session, rule, rs) -> pd.DataFrame:
    """:func:`sql.compile_trial` rendered for Spark, on the loaded frames; DuckDB's dtypes."""
    import duckdb

    con = duckdb.connect()
    try:
        return con.from_arrow(spark._to_arrow(session.sql(sql.compile_trial(rule, rs, sql.SPARK)))).df()
    finally:
        con.close()


def _check_trial(got: pd.DataFrame, frames: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame], rule, rs) -> int:
    """Spark's trial rows equal DuckDB's (every column, trial ids and ``cond__`` columns included, in order) and the
    reference's (its columns, by content, and in its order on :data:`reference.TRIAL_SORT_COLUMNS`); returns the
    number of rows."""
    persons, encounters, events = frames
    duck = sql._on_frames(persons, encounters, events, lambda con: sql.evaluate_trial(con, rule, rs))
    context = f"\n\nrule:\n{rule_yaml(rule)}\nanchor: {rule.anchor}\n"
    assert list(got.columns) == list(duck.columns), f"columns differ: {list(got.columns)}{context}"
    assert list(got.dtypes) == list(duck.dtypes), f"dtypes differ: {list(got.dtypes)} {list(duck.dtypes)}{context}"
    a, b = _rows(duck), _rows(got)
    assert a == b, f"{len(a)} duckdb rows, {len(b)} spark rows; " + \
        _first_difference(a, b, list(duck.columns)).replace("reference:", "duckdb:").replace("duckdb:   ", "spark:    ") + context
    ref = reference.trial(persons, encounters, events, rule, rs)
    mine = got[list(ref.columns)]
    ref_rows, got_rows = _rows(ref), _rows(mine)
    assert _by_content(ref_rows) == _by_content(got_rows), \
        (f"{len(ref_rows)} reference rows, {len(got_rows)} spark rows; "
         f"{_first_difference(_by_content(ref_rows), _by_content(got_rows), list(ref.columns))}{context}")
    keys = [ref.columns.get_loc(c) for c in reference.TRIAL_SORT_COLUMNS]
    assert [tuple(r[k] for k in keys) for r in got_rows] == [tuple(r[k] for k in keys) for r in ref_rows], \
        f"same rows, different order{context}"
    return len(got)


def test_sinusitis_trial_on_spark_agrees(session):
    """The shipped LV-ABX-005 anchor compiled for Spark (the SPARK dialect table): the same rows as the reference
    and DuckDB (``test_crosscheck.py`` checks DuckDB on the same extract). Here, beside the other Spark tests, to share
    their JVM."""
    rs = load_library(None)
    rule = rs.rules["LV-ABX-005"]
    frames = _sinusitis_trial_extract()
    spark.load_frames(*frames, sql.code_sets(rs, [rule]))
    assert _check_trial(_spark_trial(session, rule, rs), frames, rule, rs) == 7


def test_trial_on_spark_agrees_on_the_example(session):
    """Every anchored rule's trial on the bundled synthetic region (with its region codes), as the risk layer judges
    it: Spark, DuckDB and the reference give the same rows, values and order."""
    from lowvalue.data.extract import open_extract
    from lowvalue.rules.overlay import load_rules

    rs = load_rules(None, "examples/synthetic_data/region-codes")
    anchored = [r for r in sorted(rs.rules.values(), key=lambda r: r.id) if r.anchor is not None]
    # one rule per kind of anchor (a diagnosis, a lab value with a threshold, ...): the hypothesis test below draws
    # the rest; every anchored rule on Spark would add a minute to the suite
    rules = list({(r.anchor.kind, r.anchor.value is not None): r for r in reversed(anchored)}.values())
    assert rules
    extract = open_extract("examples/synthetic_data")
    try:
        frames = tuple(extract.con.execute(f"SELECT * EXCLUDE (_lv_rowid) FROM {rowid_relation(t)} ORDER BY _lv_rowid").df()
                       for t in ("persons", "encounters", "events"))
    finally:
        extract.close()
    spark.load_frames(*frames, sql.code_sets(rs, rules))
    for rule in rules:
        got = _spark_trial(session, rule, rs)
        assert _check_trial(got, frames, rule, rs) > 20
        assert got.eligible.any() and got.treated.any() and (~got.treated).any(), rule.id


@settings(max_examples=TRIAL_EXAMPLES, deadline=None, derandomize=True,
          phases=[p for p in Phase if p not in (Phase.explain, *(() if SHRINK else (Phase.shrink,)))],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(st.lists(trial_cases(), min_size=TRIALS_PER_EXAMPLE, max_size=TRIALS_PER_EXAMPLE))
def test_trial_on_spark_agrees_with_reference_and_duckdb(session, examples):
    """Random anchors (kind, codes, settings, grace period, baseline eligibility) on random extracts: each example
    judges TRIALS_PER_EXAMPLE rules' trials on the union of their extracts, loaded once
    (``LOWVALUE_SPARK_TRIAL_EXAMPLES=N`` for more examples)."""
    frames = _merge(examples)
    rules = [rule for rule, _ in examples]
    spark.load_frames(*frames, sql.code_sets(RULESET, rules))
    for rule in rules:
        _check_trial(_spark_trial(session, rule, RULESET), frames, rule, RULESET)
