"""The shipped rule library: it loads, lints clean, and every deck passes on every engine."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from lowvalue.errors import RuleError
from lowvalue.rules.decks import run_deck
from lowvalue.rules.library import load_library, parse_rule
from lowvalue.rules.lint import lint

LIBRARY = load_library()


def test_library_lints_clean():
    _, problems = lint()
    assert [p.one_line() for p in problems] == []


@pytest.mark.parametrize("rule_id", sorted(LIBRARY.rules))
def test_deck(rule_id):
    rule = LIBRARY.rules[rule_id]
    assert rule.tests, f"{rule_id} has no test deck"
    _, failures = run_deck(rule, LIBRARY)
    assert [str(f) for f in failures] == []


def test_every_exclusion_has_a_deck_case():
    """A deck case per exclusion: for each exclude condition, some case expects a sensitive-only flag."""
    for rule in LIBRARY.do_not_do:
        excludes = [n for n, c in rule.conditions.items() if c.exclude is not None]
        sensitive_cases = [c for c in rule.tests if any(e.variant == "sensitive" for e in c.expect)]
        assert len(sensitive_cases) >= min(1, len(excludes)), rule.id


BASE = """
id: T-1
title: {sv: t, en: t}
rationale: {sv: t, en: t}
index: {kind: procedure, codes: lumbar_spine_imaging}
"""


def _library(tmp_path: Path, rule_text: str) -> Path:
    (tmp_path / "valuesets").mkdir()
    (tmp_path / "valuesets" / "x.yaml").write_text("name: x\ncodes:\n  ICD-10-SE: [M54.5]\n")
    (tmp_path / "T-1.yaml").write_text(textwrap.dedent(rule_text))
    return tmp_path


def test_schema_error_has_line_and_column(tmp_path):
    root = _library(tmp_path, BASE + "conditions:\n  a:\n    require: {kind: diagnosis, codes: x, window: '[-42 days, 0d]'}\n")
    _, problems = lint(root)
    msgs = [p.one_line() for p in problems]
    assert any("T-1.yaml:8:50:" in m and "window" in m and "duration like '42d'" in m for m in msgs), msgs


def test_unknown_code_set_is_reported(tmp_path):
    root = _library(tmp_path, BASE)
    _, problems = lint(root)
    assert any("unknown code set 'lumbar_spine_imaging'" in p.one_line() for p in problems)


def test_malformed_code_is_reported(tmp_path):
    root = _library(tmp_path, BASE.replace("lumbar_spine_imaging", "x"))
    (tmp_path / "valuesets" / "x.yaml").write_text("name: x\ncodes:\n  ATC: [J1CA04]\n  NPU: [NPU0231]\n")
    _, problems = lint(root)
    msgs = " ".join(p.one_line() for p in problems)
    assert "'J1CA04' is not a well-formed ATC code" in msgs and "'NPU0231' is not a well-formed NPU code" in msgs


def test_contradictory_windows_are_reported(tmp_path):
    root = _library(tmp_path, BASE.replace("lumbar_spine_imaging", "x") + textwrap.dedent("""
        conditions:
          has_x: {require: {kind: diagnosis, codes: x, window: "[-42d, 0d]"}}
          no_x: {exclude: {kind: diagnosis, codes: x, window: "[-365d, 0d]"}}
        eligibility: [has_x]
        variants: {specific: [no_x]}
        """))
    _, problems = lint(root)
    assert any("no candidate can pass" in p.one_line() for p in problems)


def test_unknown_condition_in_variant():
    with pytest.raises(RuleError, match="unknown condition"):
        parse_rule(BASE + "variants: {specific: [nope]}\n", "t.yaml")


def test_empty_window_rejected():
    with pytest.raises(RuleError, match="is empty"):
        parse_rule(BASE + "conditions:\n  a: {require: {kind: lab, codes: x, window: '[0d, 0d)'}}\n", "t.yaml")


def test_docs_rules_md_is_generated_from_the_yaml():
    from lowvalue.rules.catalogue import catalogue, to_markdown

    doc = (Path(__file__).resolve().parents[2] / "docs" / "rules.md").read_text(encoding="utf-8")
    assert to_markdown(catalogue(LIBRARY)) in doc, "docs/rules.md is stale: regenerate with `lowvalue rules list --format markdown`"


def test_unconvertible_threshold_unit_is_reported(tmp_path):
    root = _library(tmp_path, BASE.replace("lumbar_spine_imaging", "x") + textwrap.dedent("""
        conditions:
          hb: {require: {kind: lab, codes: hb, window: "[-1d, 0d]", value: {op: ">=", threshold: 8, unit: mg/L}}}
        """))
    (tmp_path / "valuesets" / "hb.yaml").write_text("name: hb\nunits: {canonical: g/L, factors: {g/dL: 10}}\ncodes:\n  NPU: [NPU02319]\n")
    _, problems = lint(root)
    assert any("threshold unit 'mg/L' cannot be converted to code set 'hb'" in p.one_line() for p in problems)


def test_selecting_a_rule_keeps_every_trigger_it_links_to_negative_controls_included() -> None:
    """`scan --only LV-ABX-005` must still find the trial's negative-control outcome, or `risk excess` has none."""
    rs = load_library(None)
    rule = rs.rules["LV-ABX-005"]
    controls = {h.trigger for h in rule.anchor.negative_controls}
    assert controls and not controls & {h.trigger for h in rule.harms}  # the test means something
    assert set(rule.linked_triggers()) <= set(rs.select(["LV-ABX-005"]).rules)
