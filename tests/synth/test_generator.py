"""Tests of the synthetic-data generator (lowvalue.data.synth).

The core check is an independent, deliberately naive pandas implementation of
the first nine rules in docs/patterns.md (``classify`` below). It evaluates every
event carrying an index code and must agree exactly with truth/interventions:
same sensitive set and same specific set per rule. The rules planted later are
checked by scanning a small region with every shipped rule (the engine's own
test decks pin its semantics) and demanding recall and precision 1.0 per rule.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from lowvalue.data.schema import ENCOUNTERS, EVENTS, PERSONS
import lowvalue
from lowvalue.data.synth import PATTERN_IDS, generate
from lowvalue.engine.truth import compare_with_truth
from lowvalue.data.synth.region import UNIT_MULTIPLIER

ROOT = Path(__file__).resolve().parents[2]
ORIGINAL = PATTERN_IDS[:9]
"""The rules with an independent pandas definition below."""
UNPLANTABLE: frozenset[str] = frozenset()
"""Rules in rules/ the generator cannot plant (docs/patterns.md lists them with the reason)."""


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("small")
    summary = generate(persons=3000, seed=7, out=out, chunk_size=1000)
    return out, summary


@pytest.fixture(scope="module")
def medium(tmp_path_factory):
    out = tmp_path_factory.mktemp("medium")
    summary = generate(persons=30000, seed=11, out=out, chunk_size=10000)
    return out, summary


def load(out: Path) -> dict[str, pd.DataFrame]:
    names = {"persons": "persons", "encounters": "encounters", "events": "events", "iv": "truth/interventions", "ae": "truth/adverse_events"}
    return {k: pd.read_parquet(out / f"{v}.parquet") for k, v in names.items()}


# ------------------------------------------------------------------ independent rule check
def _norm(s: pd.Series) -> pd.Series:
    return s.astype(str).str.replace(".", "", regex=False)


def codes_match(codes: pd.Series, spec: list[str]) -> pd.Series:
    """``C00-C97`` range on the leading characters, ``J01*`` prefix, ``M54.5`` prefix without dots."""
    c = _norm(codes)
    hit = pd.Series(False, index=codes.index)
    for item in spec:
        item = item.rstrip("*")
        if re.fullmatch(r"[A-Z]\d{2}(\.\d+)?-[A-Z]\d{2}(\.\d+)?", item):  # a range, not a local code like DT-LRYGG
            a, b = (x.replace(".", "") for x in item.split("-"))
            head = c.str[: len(a)]
            hit |= (head >= a) & (head <= b)
        else:
            hit |= c.str.startswith(item.replace(".", ""))
    return hit


def exists(idx: pd.DataFrame, ev: pd.DataFrame, kind: str, spec: list[str], lo, hi, unit: str = "d") -> pd.Series:
    """Per index row: is there an event of ``kind`` matching ``spec`` in ``[lo, hi]`` relative to the index?"""
    ctx = ev[(ev.kind == kind) & codes_match(ev.code, spec)][["person_id", "time", "code"]]
    m = idx[["rid", "person_id", "time"]].merge(ctx, on="person_id", suffixes=("", "_c"))
    if unit == "d":
        diff = (m.time_c.dt.normalize() - m.time.dt.normalize()).dt.days
    else:
        diff = (m.time_c - m.time) / pd.Timedelta(hours=1)
    ok = m[(diff >= lo) & (diff <= hi)].rid.unique()
    return idx.rid.isin(ok)


def se_codes(name: str) -> list[str]:
    """The ICD-10-SE entries of a code set, read straight from its YAML (long source lists, e.g. CEVR's)."""
    import yaml

    return [str(c) for c in yaml.safe_load((ROOT / "rules" / "valuesets" / f"{name}.yaml").read_text(encoding="utf-8"))["codes"]["ICD-10-SE"]]


def coverage(idx: pd.DataFrame, ev: pd.DataFrame, spec: list[str], lo: int, hi: int) -> pd.Series:
    """Per index row: the number of days in ``[lo, hi]`` covered by ``days_supply`` of medications matching ``spec``."""
    med = ev[(ev.kind == "medication") & codes_match(ev.code, spec)][["person_id", "time", "days_supply"]]
    m = idx[["rid", "person_id", "time"]].merge(med, on="person_id", suffixes=("", "_p"))
    covered = {}
    for rid, g in m.groupby("rid"):
        t0 = g.time.iloc[0].normalize()
        days = set()
        for t, s in zip(g.time_p, g.days_supply):
            start = (t.normalize() - t0).days
            days.update(x for x in range(start, start + max(int(s), 1)) if lo <= x <= hi)
        covered[rid] = len(days)
    cov = pd.Series(covered, dtype=float).reindex(idx.rid).fillna(0)
    cov.index = idx.index
    return cov


def age(idx: pd.DataFrame) -> pd.Series:
    b, t = idx.birth_date, idx.time
    years = t.dt.year - b.dt.year
    before = (t.dt.month < b.dt.month) | ((t.dt.month == b.dt.month) & (t.dt.day < b.dt.day))
    return years - before.astype(int)


CANCER = ["C00-C97"]
ABX_EXCL = {
    "competing": ["J01", "J02", "J03", "J12-J18", "H66", "N39.0", "L00-L08"],
    "comorbidity": ["J43-J44", "D80-D84", "B20-B24", "C00-C97", "E84"],
}
INDEX = {
    "LV-IMG-001": ("procedure", ["RTG-LRYGG", "DT-LRYGG", "MR-LRYGG"]),
    "LV-ABX-003": ("medication", ["J01*"]),
    "LV-ABX-004": ("medication", ["J01*"]),
    "LV-SCR-008": ("lab", ["NPU08669"]),
    "LV-RX-022": ("medication", ["N05BA*", "N05CD*", "N05CF*"]),
    "LV-PRE-013": ("procedure", ["RTG-THORAX"]),
    "LV-HOSP-027": ("procedure", ["DR029"]),
    "LV-LAB-011": ("lab", ["NPU10267"]),
    "LV-RX-026": ("medication", ["A02BC*"]),
}
ROUTINE = ["primary_care", "outpatient"]


def classify(d: dict[str, pd.DataFrame], pattern: str) -> pd.DataFrame:
    """Every index event of ``pattern`` with ``sensitive`` and ``specific`` computed from docs/patterns.md."""
    ev = d["events"]
    kind, spec = INDEX[pattern]
    idx = ev[(ev.kind == kind) & codes_match(ev.code, spec)].copy()
    idx = idx.merge(d["persons"][["person_id", "birth_date", "sex"]], on="person_id")
    idx = idx.merge(d["encounters"][["encounter_id", "setting"]], on="encounter_id", how="left")
    idx["birth_date"] = pd.to_datetime(idx.birth_date)
    idx = idx.reset_index(drop=True)
    idx["rid"] = idx.index
    a = age(idx)
    routine = idx.setting.isin(ROUTINE)
    E = lambda k, s, lo, hi, u="d": exists(idx, ev, k, s, lo, hi, u)  # noqa: E731
    if pattern == "LV-IMG-001":
        sens = (a >= 18) & E("diagnosis", ["M54.5", "M54.4", "M54.9"], -42, 0)
        lbp = ev[(ev.kind == "diagnosis") & codes_match(ev.code, ["M54.5", "M54.4", "M54.9"])][["person_id", "time"]]
        m = idx[["rid", "person_id", "time"]].merge(lbp, on="person_id", suffixes=("", "_d"))
        m = m[((m.time_d.dt.normalize() - m.time.dt.normalize()).dt.days.between(-42, 0))]
        m2 = m.merge(lbp, on="person_id", suffixes=("", "_p"))
        gap = (m2.time_d.dt.normalize() - m2.time_p.dt.normalize()).dt.days
        not_first = m2[gap.between(1, 180)].set_index(["rid", "time_d"]).index.unique()
        first = ~m.set_index(["rid", "time_d"]).index.isin(not_first)
        has_first = idx.rid.isin(m[first].rid)
        red = E("diagnosis", se_codes("back_imaging_red_flags"), -365, 0)
        spec_ = sens & has_first & routine & ~red
    elif pattern in ("LV-ABX-003", "LV-ABX-004"):
        dx = ["J00", "J06.9"] if pattern == "LV-ABX-003" else ["J20*", "J40"]
        sens = (a >= 1) & E("diagnosis", dx, -3, 0)
        spec_ = sens & ~E("medication", ["J01*"], -30, -1) & ~E("diagnosis", ABX_EXCL["competing"], -3, 3)
        spec_ &= ~E("diagnosis", ABX_EXCL["comorbidity"], -365, 0)
    elif pattern == "LV-SCR-008":
        sens = (idx.sex == "M") & (a >= 75)
        spec_ = sens & routine & ~E("diagnosis", ["C61", "D07.5", "D40.0", "Z85.4"], -3650, 0) & ~E("diagnosis", ["R97.2"], -365, 0)
        spec_ &= ~E("medication", ["G04CB*", "G04CA51", "G04CA52", "G04CA55"], -365, 0)
        spec_ &= ~E("diagnosis", ["R30-R39", "N40"], -90, 0)
    elif pattern == "LV-RX-022":
        avoid = E("medication", ["N05BA01", "N05CD02", "N05CD03", "N05CD05"], 0, 0)
        sens = (a >= 75) & (avoid | (coverage(idx, ev, ["N05BA*", "N05CD*", "N05CF*"], -28, 0) >= 29))
        spec_ = sens & ~E("diagnosis", ["Z51.5", "G40", "G41"], -365, 0) & ~E("diagnosis", ["F10.3", "F10.4"], -30, 0)
    elif pattern == "LV-PRE-013":
        sens = (a >= 18) & E("procedure", ["CJE20", "JAB30", "JKA21"], 0, 30)
        spec_ = sens & routine & ~E("diagnosis", ["J12-J18", "J44", "I50", "C34", "R06.0", "R05"], -30, 0)
    elif pattern == "LV-HOSP-027":
        hb = ev[(ev.kind == "lab") & (ev.code == "NPU28309")][["person_id", "time", "value", "unit"]]
        m = idx[["rid", "person_id", "time"]].merge(hb, on="person_id", suffixes=("", "_h"))
        h = (m.time_h - m.time) / pd.Timedelta(hours=1)
        m = m[(h >= -24) & (h <= 0)].sort_values(["rid", "time_h"])
        last = m.groupby("rid").tail(1).set_index("rid")
        gl = np.where(last.unit == "g/dL", last.value * 10, last.value)
        value = pd.Series(gl, index=last.index).reindex(idx.rid)
        value.index = idx.index
        sens = (a >= 18) & (idx.setting == "inpatient") & (value >= 70)
        bleed = ["K92.0-K92.2", "D62", "R58", "I85.0", "K25.0", "K26.0", "K27.0"]
        spec_ = sens & (value >= 80) & ~E("diagnosis", bleed, -7, 0) & ~E("diagnosis", ["I20.0", "I21", "I22"], -30, 0)
        spec_ &= ~E("diagnosis", ["C81-C96"], -365, 0) & ~E("diagnosis", ["Z51.1"], -90, 0)
    elif pattern == "LV-LAB-011":
        sens = a >= 18
        spec_ = sens & routine & ~E("diagnosis", se_codes("vitamin_d_risk_chronic"), -3650, 0)
        spec_ &= ~E("diagnosis", se_codes("vitamin_d_risk_recent"), -90, 0) & ~E("diagnosis", se_codes("vitamin_d_risk_fracture"), -365, 0)
        spec_ &= ~E("diagnosis", se_codes("vitamin_d_risk_pregnancy_obesity"), 0, 0)
    elif pattern == "LV-RX-026":
        ppi = ev[(ev.kind == "medication") & codes_match(ev.code, ["A02BC*"])][["person_id", "time", "days_supply"]]
        m = idx[["rid", "person_id", "time"]].merge(ppi, on="person_id", suffixes=("", "_p"))
        covered = []
        for rid, g in m.groupby("rid"):
            t0 = g.time.iloc[0].normalize()
            days = set()
            for t, s in zip(g.time_p, g.days_supply):
                start = (t.normalize() - t0).days
                days.update(x for x in range(start, start + int(s)) if -90 <= x <= -1)
            covered.append((rid, len(days)))
        cov = pd.Series(dict(covered)).reindex(idx.rid).fillna(0)
        cov.index = idx.index
        sens = (a >= 18) & (cov >= 56)
        drugs = ["M01A*", "B01AC06", "B01AC04", "B01AC22", "B01AC24", "B01AA*", "B01AE07", "B01AF*", "H02AB*"]
        spec_ = sens & ~E("diagnosis", ["K21", "K22.7", "K22.1", "K25-K28"], -1825, 0) & ~E("medication", drugs, -90, 0)
    idx["sensitive"], idx["specific"] = sens.fillna(False).astype(bool), spec_.fillna(False).astype(bool)
    return idx


def _keys(df: pd.DataFrame) -> set:
    return set(zip(df.person_id, df.time, df.code))


# ------------------------------------------------------------------ tests
def test_schemas(small):
    out, _ = small
    for name, table in (("persons", PERSONS), ("encounters", ENCOUNTERS), ("events", EVENTS)):
        schema = pq.read_schema(out / f"{name}.parquet")
        assert schema.names == table.schema.names
        assert [f.type for f in schema] == [f.type for f in table.schema]
    assert (out / "truth" / "effects.json").exists()


def test_integrity(small):
    d = load(small[0])
    p, e, v = d["persons"], d["encounters"], d["events"]
    assert p.person_id.is_unique and e.encounter_id.is_unique
    assert p.person_id.str.fullmatch(r"P\d{7}").all() and e.encounter_id.str.fullmatch(r"E\d{8}").all()
    assert v.encounter_id.notna().all()
    j = v.merge(e[["encounter_id", "person_id"]], on="encounter_id", how="left", suffixes=("", "_e"))
    assert (j.person_id == j.person_id_e).all()
    assert set(e.person_id) <= set(p.person_id)
    j = v.merge(p, on="person_id")
    day = j.time.dt.normalize()
    assert (day >= pd.to_datetime(j.birth_date)).all()
    dead = j.death_date.notna()
    assert (day[dead] < pd.to_datetime(j.death_date[dead])).all()
    assert v.time.between("2022-01-01", "2025-01-01").all()
    assert (v.time.dt.hour + v.time.dt.minute > 0).mean() > 0.99
    assert (e.cost >= 0).all() and (v.cost.dropna() >= 0).all() and v.cost.isna().mean() > 0.8
    assert set(v.system) == {"ICD-10-SE", "KVÅ", "ATC", "NPU", "LOKAL-RIS", "LOKAL-KLINFYS", "LOKAL-LAB"}
    assert set(e.setting) <= {"primary_care", "outpatient", "emergency", "inpatient", "digital", "home"}
    hb = v[v.code == "NPU28309"]
    assert 0.05 < (hb.unit == "g/dL").mean() < 0.15
    med = v[v.kind == "medication"]
    assert med.days_supply.notna().all()
    age = (pd.Timestamp("2022-01-01") - pd.to_datetime(p.birth_date)).dt.days / 365.25
    assert 0.20 < (age >= 65).mean() < 0.30 and (age >= 75).mean() > 0.08
    ends = e.merge(v.groupby("encounter_id").time.max().rename("last"), left_on="encounter_id", right_index=True)
    assert (ends.end_time >= ends["last"]).all()


def test_index_codes_only_from_planters(small):
    d = load(small[0])
    iv = d["iv"]
    for pattern in ORIGINAL:
        kind, spec = INDEX[pattern]
        ev = d["events"]
        hits = ev[(ev.kind == kind) & codes_match(ev.code, spec)]
        assert _keys(hits) <= _keys(iv), pattern


@pytest.mark.parametrize("fixture", ["small", "medium"])
def test_truth_matches_definitions(fixture, request):
    """Independent check per rule: planted = specific, lookalikes fail it; sensitive flags agree too."""
    out, summary = request.getfixturevalue(fixture)
    d = load(out)
    iv = d["iv"]
    for pattern in ORIGINAL:
        got = classify(d, pattern)
        truth = iv[iv.pattern == pattern]
        assert _keys(got[got.specific]) == _keys(truth[truth.low_value]), pattern
        assert _keys(got[got.sensitive]) == _keys(truth[truth.sensitive]), pattern
        assert truth.low_value.sum() >= 3 and (~truth.low_value).sum() >= 3, pattern
        assert (truth.reason[truth.low_value] == "planted").all()


def test_edges_and_exclusion_groups_present(medium):
    iv = load(medium[0])["iv"]
    reasons = set(iv.reason)
    for needle in ["outside window day 43", "age 74", "age 17", "Hb 72 g/L", "Hb 79 g/L", "Hb measured 25 h before",
                   "coverage 55 days", "operation day 31", "diagnosis day -4", "setting emergency", "setting outpatient"]:
        assert needle in reasons, needle
    for prefix in ["red flag C", "red flag S32", "red flag M80", "red flag G83.4", "red flag M46", "red flag R50", "red flag R63.4",
                   "competing J01", "competing J02", "competing J18", "competing H66", "competing N39.0", "competing L03",
                   "comorbidity J44", "comorbidity D84", "comorbidity B20", "comorbidity C34", "comorbidity E84",
                   "prostate cancer C61", "prostate cancer Z85.4", "5-ARI G04CB", "raised PSA", "urinary symptoms R3", "urinary symptoms N40",
                   "palliative Z51.5", "epilepsy G40", "epilepsy G41", "alcohol F10.3", "alcohol F10.4",
                   "cardiopulmonary J18", "cardiopulmonary I50", "cardiopulmonary R05", "cardiopulmonary C34",
                   "bleeding K92", "bleeding D62", "acs I21", "haem cancer C9", "chemo Z51.1",
                   "risk condition E55", "risk condition N18", "risk condition K5", "risk condition E2",
                   "indication K21", "indication K2", "gastroprotection drug M01A", "gastroprotection drug B01AC06",
                   "gastroprotection drug B01AA", "gastroprotection drug B01AF", "gastroprotection drug H02AB",
                   "gastroprotection drug B01AC04", "gastroprotection drug B01AC24", "gastroprotection drug B01AE07",
                   "antibiotic day -30", "LBP diagnosis"]:
        assert any(r.startswith(prefix) for r in reasons), prefix


def test_window_edges_inside(medium):
    """Planted instances sit exactly on the inner edges too (day 42, Hb 80, 24 h, coverage 56, age 75)."""
    d = load(medium[0])
    ev, iv = d["events"], d["iv"]
    img = classify(d, "LV-IMG-001")
    lbp = ev[ev.code.str.startswith("M54")][["person_id", "time"]]
    m = img[img.specific].merge(lbp, on="person_id", suffixes=("", "_d"))
    assert ((m.time.dt.normalize() - m.time_d.dt.normalize()).dt.days == 42).any()
    hosp = iv[(iv.pattern == "LV-HOSP-027") & iv.low_value]
    hb = ev[ev.code == "NPU28309"].merge(hosp[["person_id", "time"]], on="person_id", suffixes=("", "_t"))
    assert ((hb.time_t - hb.time) == pd.Timedelta(hours=24)).any()
    assert ((hb.value == 80) | ((hb.value == 8.0) & (hb.unit == "g/dL"))).any()
    ppi = ev[ev.code.str.startswith("A02BC") & (ev.days_supply == 28)]
    assert len(ppi) > 0
    rx = iv[(iv.pattern == "LV-RX-022") & iv.low_value].merge(d["persons"], on="person_id")
    b = pd.to_datetime(rx.birth_date)
    assert ((rx.time - b).dt.days // 365.25 == 75).any()


def test_unit_rates(medium):
    d = load(medium[0])
    iv = d["iv"][~d["iv"].reason.str.startswith("context")]
    j = iv.merge(d["encounters"][["encounter_id", "unit", "setting"]], on="encounter_id")
    j = j[j.setting == "primary_care"]
    rate = j.groupby("unit").low_value.mean()
    mult = rate.index.map(UNIT_MULTIPLIER)
    hi, lo = rate[mult >= 2.5].mean(), rate[mult <= 0.5].mean()
    assert hi > lo + 0.15
    assert np.corrcoef(np.log(mult), rate)[0, 1] > 0.6


TRIGGER_CODES = {"TR-CDIFF": ["A04.7"], "TR-FALL-FRACTURE": ["S72.0"], "TR-HAI": ["A41.9", "T80.2"]}


def _outcomes(d, pattern, trigger):
    ev, iv = d["events"], d["iv"]
    c = iv[(iv.pattern == pattern) & ~iv.reason.str.startswith("context") & (iv.reason != "setting outpatient")].copy()
    c = c.reset_index(drop=True)
    c["rid"] = c.index
    ae = ev[(ev.kind == "diagnosis") & ev.code.isin(TRIGGER_CODES[trigger])][["person_id", "time"]]
    m = c[["rid", "person_id", "time"]].merge(ae, on="person_id", suffixes=("", "_a"))
    m = m[(m.time_a > m.time) & (m.time_a <= m.time + pd.Timedelta(days=30))]
    c["event"] = c.rid.isin(m.rid)
    return c


def mantel_haenszel(c: pd.DataFrame, strata: int = 10) -> tuple[float, float, float]:
    """MH risk ratio over frailty strata with the Greenland-Robins variance; returns (rr, log se, crude rr)."""
    c = c.assign(s=pd.qcut(c.frailty, strata, labels=False, duplicates="drop"))
    num = den = var_num = 0.0
    for _, g in c.groupby("s"):
        n1, n0 = g.low_value.sum(), (~g.low_value).sum()
        a, b = g.event[g.low_value].sum(), g.event[~g.low_value].sum()
        n = n1 + n0
        if n1 == 0 or n0 == 0:
            continue
        num += a * n0 / n
        den += b * n1 / n
        var_num += (n1 * n0 * (a + b) - a * b * n) / n**2
    rr = num / den
    se = math.sqrt(var_num / (num * den))
    crude = c.event[c.low_value].mean() / c.event[~c.low_value].mean()
    return rr, se, crude


def test_risk_ratios(medium):
    out, _ = medium
    d = load(out)
    eff = json.loads((out / "truth" / "effects.json").read_text())["patterns"]
    crude_over = []
    for pattern, e in eff.items():
        c = _outcomes(d, pattern, e["trigger"])
        rr, se, crude = mantel_haenszel(c)
        truth = e["true_risk_ratio"]
        assert abs(math.log(rr) - math.log(truth)) < 2.6 * se + 0.05, (pattern, rr, se, truth)
        assert c.frailty[c.low_value].mean() > c.frailty[~c.low_value].mean()
        crude_over.append(math.log(crude) - math.log(rr))
        # events written for the truth table are the ones found in the data
        ae = d["ae"][(d["ae"].candidate_pattern == pattern)]
        assert len(ae) == c.event.sum()
    assert np.mean(crude_over) > 0.05  # confounding by frailty inflates the crude ratio


def test_deterministic(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate(persons=1500, seed=3, out=a, chunk_size=700)
    generate(persons=1500, seed=3, out=b, chunk_size=700)
    generate(persons=1500, seed=4, out=c, chunk_size=700)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 6 + len(list((a / "region-codes").glob("*.yaml")))
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    assert (a / "events.parquet").read_bytes() != (c / "events.parquet").read_bytes()


def test_summary(small):
    _, s = small
    text = s.describe()
    for p in PATTERN_IDS:
        assert p in text and s.planted(p) > 0 and s.lookalikes(p) > 0
    assert s.rows["persons"] == 3000


def test_example_folder_is_current():
    ex = ROOT / "examples" / "synthetic_data"
    if not (ex / "persons.parquet").exists():
        pytest.skip("example not generated")
    size = sum(p.stat().st_size for p in ex.rglob("*") if p.is_file())
    assert size < 3_000_000
    eff = json.loads((ex / "truth" / "effects.json").read_text())
    assert eff["persons"] == 2000 and eff["seed"] == 42
    iv = pd.read_parquet(ex / "truth" / "interventions.parquet")
    counts = iv.groupby("pattern").low_value.agg(["sum", "count"])
    assert (counts["sum"] >= 3).all() and ((counts["count"] - counts["sum"]) >= 3).all() and len(counts) == len(PATTERN_IDS)


def test_every_rule_is_planted_in_the_example():
    """Every rule in rules/ (except the unplantable ones) has planted instances and lookalikes in the bundled
    region, including sensitive-only lookalikes (which exercise the specific variant's exclusions)."""
    ex = ROOT / "examples" / "synthetic_data"
    if not (ex / "persons.parquet").exists():
        pytest.skip("example not generated")
    rules = {p.stem for p in (ROOT / "rules").glob("LV-*.yaml")}
    assert rules - UNPLANTABLE <= set(PATTERN_IDS)
    iv = pd.read_parquet(ex / "truth" / "interventions.parquet")
    for rule in sorted(rules - UNPLANTABLE):
        t = iv[iv.pattern == rule]
        assert t.low_value.sum() >= 3, rule
        assert (t.sensitive & ~t.low_value).sum() >= 2, rule


def test_scan_recall_precision_all_rules(small):
    """Every shipped rule, run on the region, flags exactly the truth: recall and precision 1.0 per rule and
    tier, and no rule flags anything in a region where it is not planted."""
    out, _ = small
    result = lowvalue.scan(out, codes=out / "region-codes", features=False)
    agreement = compare_with_truth(result.flags, out / "truth")
    bad = agreement[(agreement.recall != 1.0) | (agreement.precision != 1.0)]
    assert bad.empty, bad.to_string()
    assert set(result.flags.rule_id) <= set(agreement.rule_id)
    assert set(agreement.rule_id) == set(PATTERN_IDS)


def test_cross_rule_truth_rows(medium):
    """Index events one planter writes for another rule carry that rule's labels (diazepam -> LV-RX-023, the PPI
    planter's NSAID -> LV-RX-025, the daily-Hb transfusion -> LV-HOSP-027), and the edges of the new rules appear."""
    iv = load(medium[0])["iv"]
    rx23 = iv[(iv.pattern == "LV-RX-023") & (iv.code == "N05BA01")]
    assert rx23.low_value.any() and (~rx23.sensitive).any()
    rx25 = iv[(iv.pattern == "LV-RX-025") & iv.reason.str.contains("LV-RX-026")]
    assert len(rx25) > 0
    hosp = iv[(iv.pattern == "LV-HOSP-027") & iv.reason.str.contains("LV-HOSP-028")]
    assert len(hosp) > 0 and hosp.sensitive.all() and not hosp.low_value.any()
    for pattern in PATTERN_IDS[9:]:  # every new pattern has lookalikes outside eligibility (window or age edge) too
        t = iv[(iv.pattern == pattern) & ~iv.reason.str.startswith("context")]
        assert (~t.sensitive).sum() >= 3, pattern
    reasons = set(iv.reason)
    for needle in ["operation day 31", "operation day 0", "diagnosis day -31", "diagnosis day -2", "age 85", "age 70", "age 64",
                   "age 49", "age 2", "TSH day -1", "within 48 h of admission", "transfusion within 48 h", "N18.2"]:
        assert any(needle in r for r in reasons), needle


def test_planted_trials_match_their_rules(small):
    """Each planted target trial (adverse.TRIALS) is the trial its rule's anchor describes: the primary harm's trigger,
    the grace period, a declared negative control, and outcome days after the grace period inside the harm windows;
    the truth file records every one with both arms present."""
    from lowvalue.data.synth.adverse import TRIALS
    from lowvalue.rules.library import load_library

    lib = load_library()
    assert len(TRIALS) >= 3
    for rid, tr in TRIALS.items():
        rule = lib.rules[rid]
        assert rule.anchor is not None, rid
        harm, grace = rule.harms[0], rule.anchor.grace_period
        assert harm.trigger == tr.trigger and (grace.unit, grace.amount) == ("d", tr.grace), rid
        nc = {h.trigger: h for h in rule.anchor.negative_controls}
        assert tr.nc_trigger in nc, rid
        for (lo, hi), window in ((tr.outcome_days, harm.window), (tr.nc_days, nc[tr.nc_trigger].window)):
            w_lo, w_hi = window.int_bounds()
            assert window.unit == "d" and tr.grace < lo and w_lo <= lo and hi <= w_hi, (rid, lo, hi, window)
    out, _ = small
    truth = json.loads((out / "truth" / "effects.json").read_text())["trials"]
    assert set(truth) == set(TRIALS)
    for rid, t in truth.items():
        assert t["counts"]["anchors_treated"] > 0 and t["counts"]["anchors_untreated"] > 0, rid
        assert t["true_risk_ratio"] == TRIALS[rid].rr and t["negative_control"]["true_risk_ratio"] == 1.0
