"""Case explanations for etikstöd (issue 14, item 4), in Swedish and English.

The model's horizon, not the rule's harm window; "höjer/sänker den skattade risken"; the rule id and the flag columns
grouped out of the patient-level contributors; correlated burden measures grouped; the probability translation; the
context a clinician needs (governance, exclusions checked, what coded data cannot show, within-rule performance,
the population-level excess estimate with its cautions). Uses the session region and model of ``conftest.py``.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from lowvalue.report.i18n import Numbers
from lowvalue.results import read_manifest, stamp, write_table
from lowvalue.risk.explain import GROUPS, WORDS, ModelMeta, explain
from lowvalue.risk.model import AdverseEventRiskModel
from lowvalue.risk.results import load_results
from lowvalue.risk.train import MODEL_FEATURES

LANGS = ("sv", "en")


@pytest.fixture(scope="module")
def loaded(results: Path):  # type: ignore[no-untyped-def]
    return load_results(results)


def _flag(res, rule_id: str, variant: str = "specific") -> str:  # type: ignore[no-untyped-def]
    f = res.flags[(res.flags.rule_id == rule_id) & (res.flags.variant == variant)]
    assert len(f), f"the session region has no {variant} flag of {rule_id}"
    return str(f.sort_values("flag_id").flag_id.iloc[0])


def _contributor_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"^\s+\d+\. ", line)]


def _model_copy(trained: Path, tmp_path: Path, **metrics_changes) -> Path:  # type: ignore[no-untyped-def]
    d = Path(shutil.copytree(trained, tmp_path / "model"))
    m = json.loads((d / "metrics.json").read_text())
    for k, v in metrics_changes.items():
        if v is None:
            m.pop(k, None)
        else:
            m[k] = v
    (d / "metrics.json").write_text(json.dumps(m))
    return d


@pytest.mark.parametrize("lang", LANGS)
def test_horizon_is_the_models_not_the_rules_harm_window(loaded, trained: Path, tmp_path: Path, lang: str) -> None:
    rule = loaded.rules.rules["LV-ABX-005"]
    assert max(h.window.end for h in rule.harms) == 90  # the rule's own window is longer than the model's horizon
    horizon = json.loads((trained / "metrics.json").read_text())["horizon_days"]
    assert horizon == 30
    fid = _flag(loaded, "LV-ABX-005", "sensitive")
    ex = explain(fid, loaded, trained, lang=lang)
    assert ex.horizon_days == horizon
    risk_line = ex.sections["risk"][0]
    said = {"sv": f"inom {horizon} dagar efter åtgärden (modellens horisont)",
            "en": f"within {horizon} days after the intervention (the model's horizon)"}[lang]
    assert said in risk_line, risk_line
    assert re.findall(r"(?:inom|within) (\d+) (?:dagar|days)", ex.text()) == [str(horizon)]
    longer = {"sv": "Regelns eget fönster är längre", "en": "The rule's own window is longer"}[lang]
    assert longer in ex.text() and "90" in ex.sections["risk"][1]
    # the horizon follows the model's metadata, whatever the rule says
    other = _model_copy(trained, tmp_path, horizon_days=14)
    assert f"{'inom' if lang == 'sv' else 'within'} 14 " in explain(fid, loaded, other, lang=lang).sections["risk"][0]
    # a loaded model without its metadata: no horizon is guessed
    bare = explain(fid, loaded, AdverseEventRiskModel.load(trained), lang=lang)
    assert bare.horizon_days is None and not re.search(r"(?:inom|within) \d+ (?:dagar|days)", bare.text())
    assert {"sv": "modellens horisont är inte angiven", "en": "the model's horizon is not recorded"}[lang] in bare.text()
    assert explain(fid, loaded, AdverseEventRiskModel.load(trained), lang=lang,
                   meta=ModelMeta.load(trained)).text() == ex.text()


@pytest.mark.parametrize("lang", LANGS)
def test_sentences_say_raises_or_lowers_the_estimated_risk(loaded, trained: Path, lang: str) -> None:
    ex = explain(_flag(loaded, "LV-RX-022"), loaded, trained, lang=lang, min_abs=0.0)
    lines = _contributor_lines(ex.text())
    assert len(lines) >= 3
    up, down = WORDS[lang]["up"], WORDS[lang]["down"]
    assert (up, down) == {"sv": ("höjer den skattade risken", "sänker den skattade risken"),
                          "en": ("raises the estimated risk", "lowers the estimated risk")}[lang]
    for line, (_, g) in zip(lines, ex.groups[ex.groups.group != "rule"].iterrows()):
        assert (up if g.shap > 0 else down) in line, line
    old = {"sv": ("höjer risken", "sänker risken"), "en": ("raises the risk", "lowers the risk")}[lang]
    assert not any(o in ex.text() for o in old)
    assert {"sv": "inte orsaker", "en": "not causes"}[lang] in ex.text()


def test_groups_cover_every_model_feature_once() -> None:
    grouped = [f for _, fs, _ in GROUPS for f in fs]
    assert len(grouped) == len(set(grouped))
    assert set(grouped) == set(MODEL_FEATURES)
    patient = {g: p for g, _, p in GROUPS}
    assert patient["rule"] is False and patient["context"] is False
    burden = dict((g, fs) for g, fs, _ in GROUPS)["burden"]
    assert {"charlson", "chronic_conditions", "frailty_markers", "n_drugs_90d"} <= set(burden)


@pytest.mark.parametrize("lang", LANGS)
def test_rule_and_flag_are_not_patient_contributors_and_groups_add_up(loaded, trained: Path, lang: str) -> None:
    res = loaded
    for rule_id, variant in (("LV-RX-022", "specific"), ("LV-HOSP-028", "sensitive")):
        fid = _flag(res, rule_id, variant)
        ex = explain(fid, res, trained, lang=lang, min_abs=0.0, top=50)
        lines = _contributor_lines(ex.text())
        rule_word = {"sv": "Regel ", "en": "Rule "}[lang]
        assert not [ln for ln in lines if rule_id in ln or rule_word in ln or "flag" in ln.lower()], lines
        g = ex.groups.set_index("group")
        assert not g.loc["rule", "patient"]
        # the rule's group is the rule id and the two flag columns, stated once as not a patient characteristic
        c = ex.contributions.set_index("feature").shap
        assert g.loc["rule", "shap"] == pytest.approx(c["rule_id"] + c["flag_specific"] + c["flag_sensitive"])
        not_patient = {"sv": "Regel och flaggnivå (ingen patientegenskap)",
                       "en": "Rule and flag tier (not a patient characteristic)"}[lang]
        assert sum(not_patient in line for line in ex.lines) == 1
        # correlated burden measures are one group whose contribution is the sum of their SHAP values
        assert g.loc["burden", "shap"] == pytest.approx(sum(c[f] for f in ("charlson", "chronic_conditions",
                                                                             "frailty_markers", "n_drugs_90d")))
        assert len([ln for ln in lines if {"sv": "Charlsonindex", "en": "Charlson index"}[lang] in ln]) == 1
        # the care setting in the text's language, marked as not a patient characteristic
        setting = str(res.flags.set_index("flag_id").setting[fid])
        context = next(ln for ln in lines if {"sv": "Vårdform ", "en": "Setting "}[lang] in ln)
        assert WORDS[lang][f"setting_{setting}"] in context and setting not in context.replace(
            WORDS[lang][f"setting_{setting}"], "")
        assert {"sv": "ingen patientegenskap", "en": "not a patient characteristic"}[lang] in context
        # additivity: base + every group = the case's calibrated log-odds
        base = math.log(ex.base_risk / (1 - ex.base_risk))
        assert base + ex.groups.shap.sum() == pytest.approx(math.log(ex.risk / (1 - ex.risk)), abs=1e-6)
        assert ex.groups.shap.sum() == pytest.approx(ex.contributions.shap.sum())


@pytest.mark.parametrize("lang", LANGS)
def test_probability_translation_is_shown_with_its_method(loaded, trained: Path, lang: str) -> None:
    ex = explain(_flag(loaded, "LV-RX-022"), loaded, trained, lang=lang, min_abs=0.0, top=50)
    nums = Numbers(lang)  # type: ignore[arg-type]
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    base = math.log(ex.base_risk / (1 - ex.base_risk))
    g = ex.groups.set_index("group")
    start = base + g.loc["rule", "shap"]
    assert ex.start_risk == pytest.approx(sig(start))
    assert g.loc["rule", "pp"] == pytest.approx(100 * (sig(start) - sig(base)))
    for name, row in g.drop(index="rule").iterrows():
        assert row.pp == pytest.approx(100 * (sig(start + row.shap) - sig(start))), name
    text = ex.text()
    assert nums.pct(ex.risk, 1) in ex.sections["risk"][0] and nums.pct(ex.base_risk, 1) in ex.sections["risk"][0]
    assert nums.pct(ex.start_risk, 1) in text
    pp = {"sv": "procentenheter", "en": "percentage points"}[lang]
    top = g.drop(index="rule").assign(a=lambda d: d.shap.abs()).sort_values("a", ascending=False).iloc[0]
    first = _contributor_lines(text)[0]
    assert f"{nums.num(abs(top.pp), 1)} {pp}" in first, first
    method = {"sv": "sannolikheten vid regelns utgångsläge plus gruppens bidrag minus sannolikheten vid utgångsläget",
              "en": "the probability at the rule's starting point plus the group's contribution minus the "
                    "probability at the starting point"}[lang]
    assert method in text


def _excess_file(results: Path, dest: Path, cautions: str) -> Path:
    copy = Path(shutil.copytree(results, dest))
    t = pd.DataFrame({"rule_id": ["LV-RX-022"], "window": ["TR-FALL-FRACTURE in [1d, 30d]"], "status": ["estimated"],
                      "label": ["adjusted association, not a causal effect"], "n_treated": [400], "n_control": [300],
                      "events_treated": [60], "events_control": [30], "rr": [1.5], "rr_lo": [1.1], "rr_hi": [2.0],
                      "excess_per_1000": [48.0], "excess_per_1000_lo": [12.0], "excess_per_1000_hi": [80.0],
                      "cautions": [cautions]})
    write_table(t, copy / "excess_risk.parquet", stamp_of=stamp(read_manifest(copy)))
    return copy


@pytest.mark.parametrize("lang", LANGS)
def test_context_block_gives_what_a_clinician_needs(results: Path, trained: Path, tmp_path: Path, lang: str) -> None:
    res = load_results(results)
    fid = _flag(res, "LV-RX-022")
    ex = explain(fid, res, trained, lang=lang)
    ctx = "\n".join(ex.sections["context"])
    # governance: status and unverified codes
    assert {"sv": "Regelstatus: utkast", "en": "Rule status: draft"}[lang] in ctx
    assert {"sv": "ännu inte kontrollerade mot officiell källa", "en": "not yet verified"}[lang] in ctx
    # the exclusions of the specific tier, checked and absent
    assert {"sv": "Kontrollerade uteslutningar som inte fanns i data", "en": "Exclusions checked and not found"}[lang] in ctx
    for name in ("no_palliative_care", "no_epilepsy", "no_alcohol_withdrawal"):
        assert f"- {name}: " in ctx
    assert {"sv": "från 365 dagar före åtgärden till åtgärdsdagen",
            "en": "from 365 days before the intervention to the day of the intervention"}[lang] in ctx
    # what coded data cannot show
    for needle in {"sv": ("journaltext", "önskemål", "gemensamt"), "en": ("free text", "preferences", "shared")}[lang]:
        assert needle in ctx
    # within-rule performance, from the model's own metrics
    per_rule = next(s for s in json.loads((trained / "metrics.json").read_text())["subgroups"]
                    if s["factor"] == "rule_id" and s["level"] == "LV-RX-022")
    nums = Numbers(lang)  # type: ignore[arg-type]
    assert "AUROC" in ctx and nums.num(per_rule["auroc"]["estimate"], 2) in ctx
    pooled = json.loads((trained / "metrics.json").read_text())["validation"]["auroc"]["estimate"]
    assert {"sv": f"Den sammanslagna AUROC över alla regler ({nums.num(pooled, 2)})",
            "en": f"The pooled AUROC over all rules ({nums.num(pooled, 2)})"}[lang] in ctx
    no_metrics = _model_copy(trained, tmp_path, subgroups=None)
    other = "\n".join(explain(fid, res, no_metrics, lang=lang).sections["context"])
    assert {"sv": "inom regeln: inte tillgänglig", "en": "within the rule: not available"}[lang] in other
    # no excess file (other tests may write one into the session results): said, not invented
    bare = Path(shutil.copytree(results, tmp_path / "bare", ignore=shutil.ignore_patterns("excess_*")))
    last = explain(fid, load_results(bare), trained, lang=lang).sections["context"][-1]
    assert {"sv": "Skattat överskott av skademarkörer (justerat samband) för regeln: inte tillgängligt (ingen "
                  "excess_risk.parquet", "en": "Estimated excess of triggers (adjusted association) for the rule: "
                                               "not available (no excess_risk.parquet"}[lang] in last
    # with an excess file: the estimate, its cautions and its caveats
    copy = _excess_file(results, tmp_path / "r", "imprecise: < 10 events in an arm; poor overlap")
    ex2 = explain(fid, load_results(copy), trained, lang=lang)
    ctx2 = "\n".join(ex2.sections["context"])
    assert {"sv": "Skattat överskott av skademarkörer (justerat samband)",
            "en": "Estimated excess of triggers (adjusted association)"}[lang] in ctx2
    assert f"48 per 1{' ' if lang == 'sv' else ','}000" in ctx2 and Numbers(lang).num(1.5, 2) in ctx2  # type: ignore[arg-type]
    assert {"sv": "osäker: färre än 10 händelser i en arm; dålig överlappning",
            "en": "imprecise: fewer than 10 events in an arm; poor overlap"}[lang] in ctx2
    assert {"sv": "inte en orsakseffekt", "en": "not a causal effect"}[lang] in ctx2
    assert {"sv": "utfall: Fall med höftfraktur från 1 dag efter åtgärden till 30 dagar efter åtgärden",
            "en": "outcome: Fall with hip fracture from 1 day after the intervention to 30 days after the intervention"
            }[lang] in ctx2  # the trigger's own title, the rule's window in words
    assert "TR-FALL-FRACTURE" not in ex2.text()
    for bad in ("orsakar", "causes ", "vårdskad"):
        assert bad not in ex2.text().lower()


@pytest.mark.parametrize("lang", LANGS)
def test_a_likely_low_value_flag_names_the_condition_that_failed(loaded, trained: Path, lang: str) -> None:
    fid = _flag(loaded, "LV-ABX-005", "sensitive")
    failed = loaded.candidates.set_index("candidate_id").first_failed[fid]
    ctx = "\n".join(explain(fid, loaded, trained, lang=lang).sections["context"])
    assert {"sv": f"villkoret {failed} höll inte", "en": f"the condition {failed} did not hold"}[lang] in ctx
    # the outcome names are the triggers' titles in the language of the text
    risk = explain(fid, loaded, trained, lang=lang).sections["risk"][0]
    assert {"sv": "Clostridioides difficile-infektion", "en": "Clostridioides difficile infection"}[lang] in risk
