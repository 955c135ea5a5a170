"""Scan outputs on small hand-made extracts: flags with evidence, waterfall, determinism, evaluability, manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import lowvalue
from lowvalue.rules.decks import case_frames
from lowvalue.rules.library import load_library

RS = load_library()


def _frames(rule_id: str, case: int | str) -> dict[str, pd.DataFrame]:
    """A deck case's tables, by index or by name."""
    tests = RS.rules[rule_id].tests
    return case_frames(next(t for t in tests if t.name == case) if isinstance(case, str) else tests[case])


def _two_people() -> dict[str, pd.DataFrame]:
    """Person A: transfusion at Hb 85 (low value). Person B: the same with a GI bleed (likely low value)."""
    a, b = _frames("LV-HOSP-027", 0), _frames("LV-HOSP-027", "gastrointestinal bleeding justifies transfusion")
    for tables, pid in ((a, "A"), (b, "B")):
        for df in tables.values():
            df["person_id"] = pid
        tables["encounters"]["encounter_id"] = pid + "-s"
        tables["events"]["encounter_id"] = tables["events"]["encounter_id"].map(lambda e: e and pid + "-s")
    return {k: pd.concat([a[k], b[k]], ignore_index=True) for k in a}


def test_flags_tiers_and_evidence():
    r = lowvalue.scan(_two_people(), RS, only=["LV-HOSP-027"])
    f = r.flags.set_index("person_id")
    assert f.loc["A", "variant"] == "specific" and f.loc["A", "tier"] == "low value"
    assert f.loc["B", "variant"] == "sensitive" and f.loc["B", "tier"] == "likely low value"
    assert f.loc["A", "cost"] == 2500.0
    ev = json.loads(f.loc["B", "evidence"])
    hb = [e for e in ev if e["condition"] == "hb_at_least_80"]
    assert hb and hb[0]["value"] == 85 and hb[0]["code"] == "NPU28309"
    bleed = [e for e in ev if e["condition"] == "no_bleeding"]
    assert bleed and bleed[0]["role"] == "exclude" and bleed[0]["code"] == "K92.2"
    cand = r.candidates.set_index("person_id")
    assert cand.loc["B", "first_failed"] == "no_bleeding" and pd.isna(cand.loc["A", "first_failed"])


def test_waterfall_counts_each_step():
    r = lowvalue.scan(_two_people(), RS, only=["LV-HOSP-027"])
    w = r.waterfall.set_index("condition")["remaining"]
    assert w["hb_at_least_70"] == 2 and w["hb_at_least_80"] == 2 and w["no_bleeding"] == 1
    assert r.waterfall.set_index("stage").loc["flagged", "remaining"] == 2


def test_denominators_by_unit_and_month():
    r = lowvalue.scan(_two_people(), RS, only=["LV-HOSP-027"])
    total = r.denominators[r.denominators.unit.isna()].iloc[0]
    assert (total.candidates, total.eligible, total.eligible_persons, total.flagged, total.flagged_specific) == (2, 2, 2, 2, 1)


def test_denominators_agree_with_counting_the_candidates_in_pandas():
    """Every level (rule; rule and unit; rule, unit and month) recounted from the candidates: the SQL sums the finest
    level's counts and counts eligible persons apart, so a person eligible in two months must count once per rule."""
    example = Path(__file__).parents[2] / "examples" / "synthetic_data"
    r = lowvalue.scan(example, RS, features=False)
    c = r.candidates.assign(month=r.candidates.index_time.dt.strftime("%Y-%m"),
                            flagged=r.candidates.sensitive | r.candidates.specific)
    rows = []
    for keys in (["rule_id"], ["rule_id", "unit"], ["rule_id", "unit", "month"]):
        for key, g in c.groupby(keys, dropna=False):
            key = dict(zip(keys, key))
            rows.append({"rule_id": key["rule_id"], "unit": key.get("unit"), "month": key.get("month"),
                         "candidates": len(g), "eligible": int(g.eligible.sum()),
                         "eligible_persons": g.loc[g.eligible, "person_id"].nunique(),
                         "flagged": int(g.flagged.sum()), "flagged_specific": int(g.specific.sum())})
    expected = pd.DataFrame(rows)
    got = r.denominators
    assert len(got) == len(expected) and got.unit.notna().any() and (got.groupby("rule_id").size() > 2).all()
    on = ["rule_id", "unit", "month"]
    merged = got.fillna({"unit": "<none>", "month": "<none>"}).merge(
        expected.fillna({"unit": "<none>", "month": "<none>"}), on=on, suffixes=("", "_pandas"), validate="one_to_one")
    assert len(merged) == len(expected)
    for col in ("candidates", "eligible", "eligible_persons", "flagged", "flagged_specific"):
        assert (merged[col] == merged[f"{col}_pandas"]).all(), col
    persons = c[c.eligible].groupby("rule_id").person_id.agg(["size", "nunique"])
    assert (persons["size"] > persons["nunique"]).any()  # some person is eligible more than once: the distinct count is tested


def test_same_input_gives_byte_identical_files(tmp_path):
    for out in ("a", "b"):
        lowvalue.scan(_two_people(), RS).write(tmp_path / out)
    for name in ("flags", "candidates", "denominators", "waterfall", "triggers", "evaluability"):
        assert (tmp_path / "a" / f"{name}.parquet").read_bytes() == (tmp_path / "b" / f"{name}.parquet").read_bytes(), name


@pytest.mark.parametrize("path", ["view", "split", "ranges"])
def test_person_partitions_do_not_change_the_outputs(tmp_path, monkeypatch, path):
    """A scan in ranges of persons (bounded memory) writes the same bytes as one pass over everyone, also with
    ``SPLIT_FROM`` reached (the candidates gathered into one table): with the extract split into files ("split"),
    or read through the ranges because it is in person order ("ranges": blocks small enough to tell)."""
    from lowvalue.engine import sql
    from lowvalue.engine.scan import ScanResult

    example = Path(__file__).parents[2] / "examples" / "synthetic_data"
    one = lowvalue.scan(example, RS, codes=example / "region-codes", partitions=1)
    monkeypatch.setattr(sql, "SPLIT_FROM", 12 if path == "view" else 4)
    if path == "ranges":
        monkeypatch.setattr(sql, "BLOCK_ROWS", 1000)
    written: list[list[str]] = []
    split_persons = sql.split_persons
    monkeypatch.setattr(sql, "split_persons", lambda *a: written.append(split_persons(*a)) or written[-1])
    four = lowvalue.scan(example, RS, codes=example / "region-codes", partitions=4)
    assert written == [{"view": [], "split": ["events", "encounters"], "ranges": []}[path]]
    assert one.manifest["person_partitions"] == 1 and four.manifest["person_partitions"] == 4
    kind = four.con.execute("SELECT table_type FROM information_schema.tables WHERE table_name = 'lv_candidates'").fetchall()
    assert kind == [("VIEW" if path == "view" else "LOCAL TEMPORARY",)]
    assert len(one.flags) > 500 and len(one.features) > 500
    one.write(tmp_path / "one")
    four.write(tmp_path / "four")
    for name in ScanResult.TABLES:
        assert (tmp_path / "one" / f"{name}.parquet").read_bytes() == (tmp_path / "four" / f"{name}.parquet").read_bytes(), name


def test_evaluability_reports_missing_data_instead_of_zero():
    frames = _frames("LV-RX-022", 0)  # medications only: no diagnoses, labs or procedures
    r = lowvalue.scan(frames, RS)
    status = r.evaluability.set_index("rule_id")["status"]
    assert status["LV-IMG-001"] == "not_evaluable"
    assert status["LV-RX-022"] == "limited"  # exclusions are diagnoses, which this extract lacks
    assert "LV-IMG-001" not in set(r.flags.rule_id)
    assert len(r.flags[r.flags.rule_id == "LV-RX-022"]) == 1


def test_manifest_records_rules_data_and_versions():
    r = lowvalue.scan(_two_people(), RS)
    m = r.manifest
    assert m["rule_set"]["digest"] == RS.digest and len(m["data"]["fingerprint"]) == 64
    assert {"duckdb", "pandas", "pyarrow", "python"} <= set(m["versions"])
    assert set(m["timing_seconds"]["per_rule"]) >= {"LV-HOSP-027"}


def test_evaluability_of_any_of_conditions():
    """An exclude_any branch without data is a caveat; a require_any fails only when no branch has data."""
    import duckdb

    from lowvalue.engine import sql
    from lowvalue.engine.coverage import Coverage
    from lowvalue.engine.evaluability import check
    from lowvalue.rules.library import parse_rule

    rule = parse_rule("""
id: LV-TEST-ANY
title: {en: t, sv: t}
rationale: {en: r, sv: r}
sources: [{body: test, reference: test, year: 2026}]
index: {kind: medication, codes: systemic_antibiotics}
conditions:
  dx_or_lab:
    require_any:
      - {kind: diagnosis, codes: pharyngitis_tonsillitis, window: "[-3d, 0d]"}
      - {kind: lab, codes: group_a_strep_test, window: "[-3d, 0d]"}
  no_test:
    exclude_any:
      - {kind: lab, codes: group_a_strep_test, window: "[-3d, 3d]"}
      - {kind: procedure, codes: group_a_strep_test, window: "[-3d, 3d]"}
eligibility: [dx_or_lab, no_test]
variants: {sensitive: [], specific: []}
""")
    frames = _frames("LV-ABX-006", 0)  # diagnoses and medications, no labs or procedures
    with duckdb.connect() as con:
        sql.load_frames(con, frames["persons"], frames["encounters"], frames["events"])
        sql.prepare(con)
        v = check(Coverage.of(con, RS), rule, set())
        assert v["status"] == "limited", v  # the diagnosis branch has data; both test branches lack it
        assert v["reason"].count("exclusion no_test") == 2 and "dx_or_lab" not in v["reason"]
        con.execute("DELETE FROM events WHERE kind = 'diagnosis'")
        sql.prepare(con)
        v = check(Coverage.of(con, RS), rule, set())
        assert v["status"] == "not_evaluable" and "condition dx_or_lab" in v["reason"], v


def test_conditions_beyond_eligibility_for_eligible_candidates_only_change_no_output():
    """The scan judges the conditions beyond eligibility for eligible candidates only: for every rule of the library,
    what a scan appends (candidates with first failed condition, flags with evidence, triggers, waterfall counts) is
    what judging every condition for every candidate gives."""
    from lowvalue.data.extract import open_extract
    from lowvalue.engine import outputs, sql
    from lowvalue.engine.scan import STORED, _collect, start_outputs

    example = Path(__file__).parents[2] / "examples" / "synthetic_data"
    with open_extract(example) as x:
        sql.prepare(x.con)
        sql.ensure_sets(x.con, sql.code_sets(RS))
        sql.build_hits(x.con)
        tested = 0
        for rule in RS.rules.values():
            if not rule.eligibility:  # then both ways compile to the same SQL
                continue
            outs = []
            for every in (True, False):
                judged = sql.compile_rule(rule, RS, ordered=False, every_condition=every)
                x.con.execute(f"CREATE OR REPLACE TEMP TABLE lv_rows AS {outputs.rows_sql(rule, f'({judged})')}")
                start_outputs(x.con)
                counts = _collect(x.con, [rule], "lv_rows")
                outs.append([counts] + [x.con.execute(f"SELECT * FROM {t} ORDER BY ALL").df() for t, *_ in STORED.values()])
            assert outs[0][0] == outs[1][0], rule.id
            for a, b in zip(outs[0][1:], outs[1][1:]):
                pd.testing.assert_frame_equal(a, b, obj=rule.id)
            candidates = outs[0][1]
            tested += bool(rule.eligibility) and not candidates["eligible"].all()
        assert tested >= 10  # rules with eligibility conditions and ineligible candidates
