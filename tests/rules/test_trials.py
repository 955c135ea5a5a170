"""Every shipped rule with linked harms has a target trial (``anchor``) or says why not (``no_trial``); the lint
refuses one with neither; each shipped anchor judged on small hand-made persons by the reference evaluator and
DuckDB alike: who is an anchor, who is eligible at time zero, who is treated within the grace period."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from lowvalue.engine import reference, sql
from lowvalue.rules.decks import case_frames
from lowvalue.rules.library import load_library
from lowvalue.rules.lint import lint
from lowvalue.rules.model import Rule
from lowvalue.rules.model import TestCase as Case

LIBRARY = load_library()


def test_every_rule_with_harms_has_a_trial_or_a_reason() -> None:
    for rule in LIBRARY.do_not_do:
        if rule.harms:
            assert (rule.anchor is None) != (rule.no_trial is None), rule.id
        if rule.no_trial is not None:
            assert rule.no_trial.reason.sv and rule.no_trial.reason.en and rule.no_trial.reason.sv != rule.no_trial.reason.en


RULE = """
id: T-1
title: {sv: t, en: t}
rationale: {sv: t, en: t}
index: {kind: medication, codes: {ATC: [J01CA04]}}
"""
TRIGGER = """
id: TR-T
type: trigger
title: {sv: t, en: t}
rationale: {sv: t, en: t}
index: {kind: diagnosis, codes: {ICD-10-SE: [A04.7]}}
"""


def _lint(tmp_path: Path, extra: str) -> list[str]:
    (tmp_path / "valuesets").mkdir()
    (tmp_path / "triggers").mkdir()
    (tmp_path / "triggers" / "TR-T.yaml").write_text(textwrap.dedent(TRIGGER))
    (tmp_path / "T-1.yaml").write_text(textwrap.dedent(RULE) + textwrap.dedent(extra))
    return [p.one_line() for p in lint(tmp_path)[1]]


def test_lint_refuses_harms_without_anchor_or_no_trial(tmp_path: Path) -> None:
    harms = "harms: [{trigger: TR-T, window: '[1d, 30d]'}]\n"
    msgs = _lint(tmp_path, harms)
    assert any("has harms but neither 'anchor'" in m for m in msgs), msgs


def test_lint_accepts_a_reason_or_an_anchor(tmp_path: Path) -> None:
    harms = "harms: [{trigger: TR-T, window: '[1d, 30d]'}]\n"
    reason = "no_trial: {reason: {sv: ingen jämförelsegrupp, en: no comparators}}\n"
    anchor = "anchor: {kind: diagnosis, codes: {ICD-10-SE: [J20]}, grace_period: 3d}\n"
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    assert _lint(tmp_path / "a", harms + reason) == []
    assert _lint(tmp_path / "b", harms + anchor) == []
    assert any("has no harms" in m for m in _lint(tmp_path / "c", reason))


def test_an_anchor_value_takes_a_plain_threshold() -> None:
    base = {"id": "T", "title": {"sv": "t", "en": "t"}, "rationale": {"sv": "r", "en": "r"},
            "index": {"kind": "procedure", "codes": {"KVÅ": ["DR029"]}}}
    anchor = {"kind": "lab", "codes": "haemoglobin", "grace_period": "24h"}
    with pytest.raises(ValidationError, match="plain 'threshold'"):
        Rule.model_validate({**base, "anchor": {**anchor, "value": {"op": ">=", "index_ratio": 1.0}}})
    with pytest.raises(ValidationError, match="plain 'threshold'"):
        Rule.model_validate({**base, "anchor": {**anchor, "value": {"of": "most_recent", "op": ">=", "threshold": 70}}})
    rule = Rule.model_validate({**base, "anchor": {**anchor, "value": {"op": ">=", "threshold": 70, "unit": "g/L"}}})
    assert rule.trial_rule().index.value == rule.anchor.value


# Per anchored rule: hand-made cases (deck format) and the expected anchors as (offset of the anchor, eligible,
# treated). A case with no expected anchor shows what is not an anchor at all.
def _c(name: str, events: list[dict], expect: list[tuple[str, bool, bool]], age: int = 40, sex: str = "F",
       encounters: list[dict] | None = None) -> tuple[Case, list[tuple[str, bool, bool]]]:
    return Case.model_validate({"name": name, "person": {"age": age, "sex": sex}, "encounters": encounters or [],
                                    "events": events, "expect": []}), expect


def _dx(at: str, code: str, enc: str | None = None) -> dict:
    return {"at": at, "kind": "diagnosis", "system": "ICD-10-SE", "code": code, "encounter": enc}


def _rx(at: str, code: str) -> dict:
    return {"at": at, "kind": "medication", "system": "ATC", "code": code, "days_supply": 7}


def _hb(at: str, value: float, enc: str | None = "s1", unit: str = "g/L") -> dict:
    return {"at": at, "kind": "lab", "system": "NPU", "code": "NPU28309", "value": value, "unit": unit, "encounter": enc}


def _tx(at: str, enc: str | None = "s1") -> dict:
    return {"at": at, "kind": "procedure", "system": "KVÅ", "code": "DR029", "encounter": enc}


STAY = [{"id": "s1", "at": "-2d", "setting": "inpatient", "hours": 240}]
CASES: dict[str, list] = {
    "LV-ABX-003": [
        _c("antibiotic two days after a cold", [_dx("0d", "J06.9"), _rx("2d", "J01CA04")], [("0d", True, True)]),
        _c("antibiotic on day 4: not within the grace period", [_dx("0d", "J00"), _rx("4d", "J01CA04")],
           [("0d", True, False)]),
        _c("a course 10 days before: not eligible", [_rx("-10d", "J01CE02"), _dx("0d", "J06.9")], [("0d", False, False)]),
        _c("COPD in the year before: not eligible", [_dx("-200d", "J44.9"), _dx("0d", "J06.9"), _rx("1d", "J01CA04")],
           [("0d", False, True)]),
        _c("under 1 year: not an anchor", [_dx("0d", "J06.9")], [], age=0),
    ],
    "LV-ABX-004": [
        _c("antibiotic on the day of acute bronchitis", [_dx("0d", "J20.9"), _rx("0d", "J01AA02")], [("0d", True, True)]),
        _c("no antibiotic", [_dx("0d", "J40")], [("0d", True, False)]),
        _c("a course 30 days before: not eligible", [_rx("-30d", "J01CA04"), _dx("0d", "J20.9")], [("0d", False, False)]),
        _c("a course 31 days before does not matter", [_rx("-31d", "J01CA04"), _dx("0d", "J20.9")], [("0d", True, False)]),
    ],
    "LV-ABX-006": [
        _c("antibiotic three days after tonsillitis", [_dx("0d", "J03.9"), _rx("3d", "J01CE02")], [("0d", True, True)]),
        _c("antibiotic four days after: not within the grace period", [_dx("0d", "J02.9"), _rx("4d", "J01CE02")],
           [("0d", True, False)]),
        _c("age 2: not an anchor", [_dx("0d", "J02.9")], [], age=2),
    ],
    "LV-HOSP-027": [
        _c("transfused 10 hours after an Hb of 85", [_hb("0d", 85), _tx("10h")], [("0d", True, True)], encounters=STAY),
        _c("transfused 25 hours after: not within the grace period", [_hb("0d", 85), _tx("25h")], [("0d", True, False)],
           encounters=STAY),
        _c("an Hb of 65 is not an anchor, 7.5 g/dL (75 g/L) is",
           [_hb("0d", 65), _hb("1d", 7.5, unit="g/dL"), _tx("30h")], [("1d", True, True)], encounters=STAY),
        _c("an outpatient Hb is not an anchor", [_hb("0d", 90, enc="o1")], [],
           encounters=[{"id": "o1", "at": "0d", "setting": "outpatient"}]),
        _c("bleeding 7 days before: not eligible", [_dx("-7d", "K92.2"), _hb("0d", 90), _tx("2h")], [("0d", False, True)],
           encounters=STAY),
        _c("bleeding 8 days before does not matter", [_dx("-8d", "K92.2"), _hb("0d", 90)], [("0d", True, False)],
           encounters=STAY),
        _c("chemotherapy 90 days before: not eligible", [_dx("-90d", "Z51.1"), _hb("0d", 90)], [("0d", False, False)],
           encounters=STAY),
        _c("age 17: not an anchor", [_hb("0d", 90), _tx("2h")], [], age=17, encounters=STAY),
    ],
    "LV-RX-002": [
        _c("opioid six weeks after a first low back pain diagnosis",
           [_dx("0d", "M54.5"), _rx("42d", "N02AX02")], [("0d", True, True)]),
        _c("opioid on day 43: not within the grace period", [_dx("0d", "M54.5"), _rx("43d", "N02AX02")],
           [("0d", True, False)]),
        _c("an opioid 90 days before: not eligible", [_rx("-90d", "N02AJ06"), _dx("0d", "M54.4")], [("0d", False, False)]),
        _c("an NSAID the week before: not eligible", [_rx("-7d", "M01AE01"), _dx("0d", "M54.5"), _rx("1d", "N02AX02")],
           [("0d", False, True)]),
        _c("back pain 100 days before the episode: not a first episode",
           [_dx("-100d", "M54.5"), _dx("0d", "M54.5")], [("-100d", True, False), ("0d", False, False)]),
        _c("a second visit within the episode is also an anchor", [_dx("0d", "M54.5"), _dx("20d", "M54.5")],
           [("0d", True, False), ("20d", True, False)]),
    ],
}


def _anchors(df: pd.DataFrame) -> list[tuple[pd.Timestamp, bool, bool]]:
    return sorted((pd.Timestamp(r.anchor_time), bool(r.eligible), bool(r.treated)) for r in df.itertuples())


def test_every_anchored_rule_has_hand_made_cases() -> None:
    anchored = {r.id for r in LIBRARY.do_not_do if r.anchor is not None} - {"LV-ABX-005"}  # tests/engine/test_crosscheck
    assert anchored == set(CASES)


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_anchors_on_the_reference_and_duckdb(rule_id: str) -> None:
    from lowvalue.rules.decks import at
    from lowvalue.rules.windows import Duration

    rule = LIBRARY.rules[rule_id]
    for case, expect in CASES[rule_id]:
        f = case_frames(case)
        ref = reference.trial(f["persons"], f["encounters"], f["events"], rule, LIBRARY)
        got = sql.trial_frames(f["persons"], f["encounters"], f["events"], rule, LIBRARY)
        want = sorted((pd.Timestamp(at(Duration.parse(a))), e, t) for a, e, t in expect)
        assert _anchors(ref) == want, case.name
        assert _anchors(got) == want, case.name
