"""Explain one flag to a clinician or an ethics-support group (etikstöd): the rule, its evidence, the model's
estimated risk with grouped SHAP contributions and their probability translation, and what the case needs to be
weighed. One function, :func:`explain`, builds the text; ``lowvalue explain`` prints all of it and the review app's case
page shows its ``risk`` and ``context`` sections (the page shows the rule and the evidence in its own layout).

* **Horizon.** The risk is the model's: a linked adverse-event trigger (skademarkör) within the model's horizon
  (``horizon_days`` in the model's ``metrics.json``), not within the rule's own harm window. A rule whose window is
  longer says so in a sentence; the text never states a horizon the model does not have.
* **Scale.** SHAP values come from LightGBM's exact TreeSHAP (``pred_contrib``) on the **log-odds** scale, where they
  add up exactly (with Platt calibration: the calibrated log-odds). A group's contribution is the sum of its
  features' SHAP values (additivity), so grouping loses nothing.
* **Groups** (:data:`GROUPS`). The rule id and the rule's own flag columns are not patient characteristics: together
  they set the rule's starting point and are never listed as a patient-level contributor. Correlated measures of
  illness burden (Charlson index, chronic conditions, frailty markers, drug count; Spearman 0.3–0.7 in the bundled
  example) form one group, prior care use another, so SHAP's arbitrary split of credit between correlated features
  does not decide the "main driver".
* **Probability translation.** Log-odds contributions do not add on the probability scale. Each patient-level group
  is translated *one at a time from the rule's starting point*: P(start + contribution) − P(start), in percentage
  points; the rule's own group as P(baseline + contribution) − P(baseline). The text states this method.
* **Context.** The rule's review status and unverified codes, the exclusions that were checked and found absent, what
  coded data cannot show, the model's within-rule discrimination (from its metrics; "not available" otherwise) and
  the rule's population-level estimate, an *estimated excess of triggers (adjusted association)*, with its cautions.

The text is rendered from computed numbers only, by templates, and says that SHAP describes the model, not causes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lowvalue.errors import InputError, LowvalueError
from lowvalue.report.i18n import Numbers
from lowvalue.risk.model import MODEL_FILE, AdverseEventRiskModel
from lowvalue.risk.results import Results, load_results

GROUPS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("rule", ("rule_id", "flag_specific", "flag_sensitive"), False),
    ("context", ("setting", "unit"), False),
    ("age", ("age",), True),
    ("sex", ("sex_male",), True),
    ("burden", ("charlson", "chronic_conditions", "frailty_markers", "n_drugs_90d"), True),
    ("care_use", ("visits_365d", "inpatient_stays_365d"), True),
    ("prior_triggers", ("prior_triggers_365d",), True),
    ("hb", ("hb_last",), True),
    ("creatinine", ("creatinine_last",), True),
    ("glucose", ("glucose_last",), True),
)
"""(group, features, patient-level) over the model's features (``rule_id`` + :data:`lowvalue.risk.features.FEATURES`).

``rule``: what the rule and its flag tier add on average, not something about the patient. ``context``: the care
setting and unit, the organisation rather than the patient (listed, marked as such). ``burden``: comorbidity
(Charlson, chronic conditions), frailty markers and the drug count, which measure overlapping illness burden.
``care_use``: contacts and inpatient stays in the last year (contacts also correlate with the burden group, about
0.7 with chronic conditions in the example; the groups then share credit). A model feature no group names becomes a
group of its own, so the groups always add up to the whole."""

NAMES = {
    "sv": {"age": "Ålder {v:.0f} år", "sex_male": "{sex}", "setting": "Vårdform {v}", "unit": "Enhet {v}",
           "rule_id": "Regel {v}", "charlson": "Charlsonindex {v:.0f}", "chronic_conditions": "{v:.0f} kroniska sjukdomar",
           "frailty_markers": "{v:.0f} skörhetsmarkörer", "n_drugs_90d": "{v:.0f} olika läkemedel senaste 90 dagarna",
           "inpatient_stays_365d": "{v:.0f} slutenvårdstillfällen senaste året",
           "visits_365d": "{v:.0f} vårdkontakter senaste året",
           "prior_triggers_365d": "{v:.0f} tidigare skademarkörer senaste året", "hb_last": "Senaste Hb {v:.0f} g/L",
           "creatinine_last": "Senaste kreatinin {v:.0f} µmol/L", "glucose_last": "Senaste glukos {v:.1f} mmol/L",
           "flag_specific": "{flag}", "flag_sensitive": "{flag}"},
    "en": {"age": "Age {v:.0f} years", "sex_male": "{sex}", "setting": "Setting {v}", "unit": "Unit {v}",
           "rule_id": "Rule {v}", "charlson": "Charlson index {v:.0f}", "chronic_conditions": "{v:.0f} chronic conditions",
           "frailty_markers": "{v:.0f} frailty markers", "n_drugs_90d": "{v:.0f} distinct drugs in the last 90 days",
           "inpatient_stays_365d": "{v:.0f} inpatient stays in the last year",
           "visits_365d": "{v:.0f} care contacts in the last year",
           "prior_triggers_365d": "{v:.0f} earlier adverse-event triggers in the last year",
           "hb_last": "Last Hb {v:.0f} g/L", "creatinine_last": "Last creatinine {v:.0f} µmol/L",
           "glucose_last": "Last glucose {v:.1f} mmol/L", "flag_specific": "{flag}", "flag_sensitive": "{flag}"},
}
MISSING = {"sv": {"hb_last": "Inget Hb mätt senaste 30 dagarna", "creatinine_last": "Inget kreatinin mätt senaste 30 dagarna",
                  "glucose_last": "Inget glukos mätt senaste 30 dagarna"},
           "en": {"hb_last": "No Hb measured in the last 30 days", "creatinine_last": "No creatinine measured in the last 30 days",
                  "glucose_last": "No glucose measured in the last 30 days"}}
WORDS = {
    "sv": {"up": "höjer den skattade risken", "down": "sänker den skattade risken", "male": "Man", "female": "Kvinna",
           "flag_specific": ("Flaggad som lågvärdevård (specifik)", "Inte flaggad som specifik lågvärdevård"),
           "flag_sensitive": ("Flaggad som trolig lågvärdevård", "Inte flaggad som trolig lågvärdevård"),
           "risk": "Skattad risk för en skademarkör ({outcome}) inom {h} dagar efter åtgärden (modellens horisont): "
                   "{p} (baslinje {b}, percentil {pct} inom regeln)",
           "risk_no_horizon": "Skattad risk för en skademarkör ({outcome}): {p} (baslinje {b}, percentil {pct} inom "
                              "regeln); modellens horisont är inte angiven (metrics.json saknas bredvid modellen)",
           "longer": "Regelns eget fönster är längre ({windows}); modellen skattar bara de första {h} dagarna.",
           "start": "Utgångsläge för regeln: {p} (baslinje {b} och {rule}: {s})",
           "contrib": "Bidrag till risken", "contrib_head": "Bidrag till risken (patientens egenskaper, grupperade):",
           "rest": "Övriga grupper (var för sig under {m} log-odds): {s}",
           "pp": "procentenheter", "logodds": "log-odds",
           "method": "Procentenheter: sannolikheten vid regelns utgångsläge plus gruppens bidrag minus sannolikheten "
                     "vid utgångsläget, en grupp i taget (för regelns egen grupp: från baslinjen). De summerar inte "
                     "exakt till skillnaden mellan utgångsläget och den skattade risken, eftersom log-odds inte adderas "
                     "på sannolikhetsskalan.",
           "scale": "Bidragen är SHAP-värden på log-odds-skalan (kalibrerad), summerade per grupp; de beskriver "
                    "modellen, inte orsaker.",
           "group_rule": "Regel och flaggnivå (ingen patientegenskap)",
           "group_context": "Vårdform och enhet (vårdens organisation, ingen patientegenskap)",
           "group_burden": "Sjuklighetsbörda",
           "group_care_use": "Tidigare vårdkontakter",
           "rule": "Regel", "why": "Motivering", "source": "Källa", "evidence": "Underlag",
           "require": "krav uppfyllt", "exclude": "uteslutningsgrund finns",
           "low value": "lågvärdevård", "likely low value": "trolig lågvärdevård",
           "context": "Att väga in:",
           "governance": "Regelstatus: {status} (kliniskt ansvarig: {owner}); {unverified} av {codes} koder ännu inte "
                         "kontrollerade mot officiell källa{list}.",
           "not_assigned": "inte utsedd",
           "checked": "Kontrollerade uteslutningar som inte fanns i data:",
           "checked_none": "Regeln har inga uteslutningar för denna nivå.",
           "not_specific": "Specifik nivå ej uppfylld: villkoret {name} höll inte ({what}); övriga villkor i den "
                           "specifika nivån redovisas inte.",
           "not_specific_unknown": "Specifik nivå ej uppfylld: vilket villkor som inte höll är inte registrerat.",
           "failed_exclude": "en uteslutningsgrund fanns", "failed_require": "ett krav var inte uppfyllt",
           "none_of": "ingen av: ", "no_event": "ingen {kind} ({codes}) {window}",
           "kind_diagnosis": "diagnos", "kind_procedure": "åtgärd", "kind_medication": "läkemedelshändelse",
           "kind_lab": "labbvärde", "kind_observation": "observation", "kind_encounter": "vårdkontakt",
           "window": "från {a} till {b}", "at_index": "åtgärdstillfället", "at_index_day": "åtgärdsdagen",
           "before": "{n} {u} före åtgärden", "after": "{n} {u} efter åtgärden", "from_discharge": " (räknat från utskrivning)",
           "days": "dagar", "day": "dag", "hours": "timmar", "hour": "timme",
           "setting_primary_care": "primärvård", "setting_outpatient": "specialiserad öppenvård",
           "setting_emergency": "akutmottagning", "setting_inpatient": "slutenvård",
           "setting_digital": "digital vårdkontakt", "setting_home": "hemsjukvård",
           "cannot": "Kodade data kan inte visa: indikationer som bara finns i journaltext, patientens önskemål och "
                     "värderingar, beslut som fattats gemensamt med patienten, eller annat som inte kodats. "
                     "Flaggan är en fråga att pröva, inte ett avgörande.",
           "perf": "Modellens förmåga att skilja inom regeln (AUROC, tidsvalidering): {auc} (95 % KI {lo}–{hi}; "
                   "n = {n}, {events} händelser).",
           "perf_pooled": "Den sammanslagna AUROC över alla regler ({auc}) mäter också skillnaden mellan reglerna och "
                          "beskriver inte rangordningen inom regeln.",
           "perf_none": "Modellens förmåga att skilja inom regeln: inte tillgänglig ({why}).",
           "perf_missing": "modellens mått saknar uppgift per regel",
           "perf_few": "för få fall eller inga händelser i valideringen",
           "excess": "Skattat överskott av skademarkörer (justerat samband) för regeln: {per1000} per 1 000 "
                     "ankarhändelser (95 % KI {lo} till {hi}); justerad riskkvot {rr} ({rr_lo} till {rr_hi}); "
                     "utfall: {window}.",
           "excess_caveat": "Förbehåll: ett justerat samband i regelns population, inte en orsakseffekt och inget om "
                            "denna patient; skademarkörer är kodade markörer, inte granskade skador; gäller endast "
                            "om inga okända störfaktorer finns.",
           "excess_cautions": "Varningar för skattningen: {c}.",
           "excess_none": "Skattat överskott av skademarkörer (justerat samband) för regeln: inte tillgängligt ({why}).",
           "excess_nofile": "ingen excess_risk.parquet bredvid resultaten; kör `lowvalue risk excess`",
           "excess_norule": "regeln finns inte i excess_risk.parquet",
           "excess_small": "undertryckt: färre än {k} personer eller händelser i en arm",
           "excess_stale": "filen hör till en annan skanning",
           "caution_imprecise": "osäker: färre än 10 händelser i en arm", "caution_overlap": "dålig överlappning",
           "caution_balance": "störfaktorerna inte balanserade efter viktning",
           "not_estimated": "inte skattat: för få personer eller händelser i en arm",
           },
    "en": {"up": "raises the estimated risk", "down": "lowers the estimated risk", "male": "Male", "female": "Female",
           "flag_specific": ("Flagged as low value (specific)", "Not flagged as specific low value"),
           "flag_sensitive": ("Flagged as likely low value", "Not flagged as likely low value"),
           "risk": "Estimated risk of an adverse-event trigger ({outcome}) within {h} days after the intervention "
                   "(the model's horizon): {p} (baseline {b}, percentile {pct} within the rule)",
           "risk_no_horizon": "Estimated risk of an adverse-event trigger ({outcome}): {p} (baseline {b}, percentile "
                              "{pct} within the rule); the model's horizon is not recorded (no metrics.json beside it)",
           "longer": "The rule's own window is longer ({windows}); the model estimates the first {h} days only.",
           "start": "Starting point for the rule: {p} (baseline {b} and {rule}: {s})",
           "contrib": "Contributions to the risk",
           "contrib_head": "Contributions to the risk (patient characteristics, grouped):",
           "rest": "Other groups (each below {m} log-odds): {s}",
           "pp": "percentage points", "logodds": "log-odds",
           "method": "Percentage points: the probability at the rule's starting point plus the group's contribution "
                     "minus the probability at the starting point, one group at a time (for the rule's own group: from "
                     "the baseline). They do not add up exactly to the difference between the starting point and the "
                     "estimated risk, because log-odds do not add on the probability scale.",
           "scale": "Contributions are SHAP values on the log-odds scale (calibrated), summed per group; they describe "
                    "the model, not causes.",
           "group_rule": "Rule and flag tier (not a patient characteristic)",
           "group_context": "Care setting and unit (the organisation, not a patient characteristic)",
           "group_burden": "Illness burden",
           "group_care_use": "Earlier care contacts",
           "rule": "Rule", "why": "Rationale", "source": "Source", "evidence": "Evidence",
           "require": "required, present", "exclude": "exclusion present",
           "low value": "low value", "likely low value": "likely low value",
           "context": "To weigh:",
           "governance": "Rule status: {status} (clinical owner: {owner}); {unverified} of {codes} codes not yet "
                         "verified against an official source{list}.",
           "not_assigned": "not assigned",
           "checked": "Exclusions checked and not found in the data:",
           "checked_none": "The rule has no exclusions for this tier.",
           "not_specific": "Specific tier not met: the condition {name} did not hold ({what}); the specific tier's "
                           "other conditions are not reported.",
           "not_specific_unknown": "Specific tier not met: which condition failed is not recorded.",
           "failed_exclude": "an exclusion was present", "failed_require": "a requirement was not met",
           "none_of": "none of: ", "no_event": "no {kind} ({codes}) {window}",
           "kind_diagnosis": "diagnosis", "kind_procedure": "procedure", "kind_medication": "medication event",
           "kind_lab": "lab result", "kind_observation": "observation", "kind_encounter": "care contact",
           "window": "from {a} to {b}", "at_index": "the intervention", "at_index_day": "the day of the intervention",
           "before": "{n} {u} before the intervention", "after": "{n} {u} after the intervention",
           "from_discharge": " (counted from discharge)",
           "days": "days", "day": "day", "hours": "hours", "hour": "hour",
           "setting_primary_care": "primary care", "setting_outpatient": "specialist outpatient care",
           "setting_emergency": "emergency department", "setting_inpatient": "inpatient care",
           "setting_digital": "digital contact", "setting_home": "home care",
           "cannot": "Coded data cannot show: indications recorded only in free text, the patient's preferences and "
                     "values, decisions shared with the patient, or anything else not coded. The flag is a question "
                     "to examine, not a verdict.",
           "perf": "The model's discrimination within the rule (AUROC, temporal validation): {auc} (95 % CI {lo}–{hi}; "
                   "n = {n}, {events} events).",
           "perf_pooled": "The pooled AUROC over all rules ({auc}) also measures the differences between rules and "
                          "does not describe the ranking within the rule.",
           "perf_none": "The model's discrimination within the rule: not available ({why}).",
           "perf_missing": "the model's metrics hold no per-rule figure",
           "perf_few": "too few cases or no events in the validation period",
           "excess": "Estimated excess of triggers (adjusted association) for the rule: {per1000} per 1,000 "
                     "anchor events (95 % CI {lo} to {hi}); adjusted risk ratio {rr} ({rr_lo} to {rr_hi}); "
                     "outcome: {window}.",
           "excess_caveat": "Caveats: an adjusted association in the rule's population, not a causal effect and nothing "
                            "about this patient; triggers are coded markers, not reviewed harm; valid only if there is "
                            "no unmeasured confounding.",
           "excess_cautions": "Cautions on the estimate: {c}.",
           "excess_none": "Estimated excess of triggers (adjusted association) for the rule: not available ({why}).",
           "excess_nofile": "no excess_risk.parquet beside the results; run `lowvalue risk excess`",
           "excess_norule": "the rule is not in excess_risk.parquet",
           "excess_small": "suppressed: fewer than {k} people or events in an arm",
           "excess_stale": "the file belongs to another scan",
           "caution_imprecise": "imprecise: fewer than 10 events in an arm", "caution_overlap": "poor overlap",
           "caution_balance": "confounders not balanced after weighting",
           "not_estimated": "not estimated: too few people or events in an arm",
           },
}
assert WORDS["sv"].keys() == WORDS["en"].keys()
CAUTIONS = (("imprecise", "caution_imprecise"), ("poor overlap", "caution_overlap"), ("not balanced", "caution_balance"))
"""Known cautions of ``excess_risk.parquet`` (substring → WORDS key); an unknown one is shown as written."""
SECTIONS = ("case", "risk", "context")


def evidence_line(e: dict[str, Any], lang: str) -> str:
    """One evidence event as a clinician reads it: when, what code, the value, and which condition it met."""
    nums = Numbers(lang)  # type: ignore[arg-type]
    when = str(e.get("time", ""))[:16].replace("T", " ")
    value = f" = {nums.num(e['value'], 1)} {e.get('unit') or ''}".rstrip() if e.get("value") is not None else ""
    return f"{when}  {e.get('code')} ({e.get('system')}){value}  [{e.get('condition')}: {WORDS[lang].get(e.get('role', ''), e.get('role'))}]"


@dataclass
class ModelMeta:
    """What the text needs from the model's folder besides the model: its horizon and its metrics."""

    horizon_days: int | None
    metrics: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, model_dir: Path | str | None) -> "ModelMeta":
        """``metrics.json`` beside ``model.json`` (``train`` writes both); an empty meta when there is none."""
        if model_dir is None:
            return cls(None)
        d = Path(model_dir)
        f = (d if d.is_dir() else d.parent) / "metrics.json"
        if not f.is_file():
            return cls(None)
        try:
            m = json.loads(f.read_text())
        except json.JSONDecodeError as err:
            raise InputError(str(f), f"is not valid JSON ({err.msg})") from None
        h = m.get("horizon_days")
        return cls(int(h) if isinstance(h, (int, float)) and not isinstance(h, bool) else None, m)

    def rule_performance(self, rule_id: str) -> dict[str, Any] | None:
        """The validation metrics of the rule's rows (``subgroups`` with factor ``rule_id``, or a ``per_rule`` list)."""
        rows = [s for s in self.metrics.get("per_rule") or [] if s.get("rule_id") == rule_id]
        rows += [s for s in self.metrics.get("subgroups") or [] if s.get("factor") == "rule_id" and s.get("level") == rule_id]
        return rows[0] if rows else None


@dataclass
class Explanation:
    flag_id: str
    lang: str
    rule_id: str
    title: str
    rationale: str
    sources: list[str]
    evidence: list[dict[str, Any]]
    risk: float
    base_risk: float
    scale: str
    contributions: pd.DataFrame  # feature, value, shap; ranked by |shap|
    groups: pd.DataFrame = field(default_factory=pd.DataFrame)  # group, label, shap, pp, patient; ranked by |shap|
    horizon_days: int | None = None
    start_risk: float = float("nan")
    sections: dict[str, list[str]] = field(default_factory=dict)

    @property
    def lines(self) -> list[str]:
        return [line for s in SECTIONS for line in self.sections.get(s, [])]

    def text(self, sections: tuple[str, ...] = SECTIONS) -> str:
        return "\n".join(line for s in sections for line in self.sections.get(s, []))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA


def _phrase(feature: str, value: Any, lang: str) -> str:
    w = WORDS[lang]
    if _missing(value):
        return MISSING[lang].get(feature, f"{feature}: –")
    if feature == "sex_male":
        return w["male"] if int(value) == 1 else w["female"]
    if feature in ("flag_specific", "flag_sensitive"):
        return w[feature][0] if int(value) == 1 else w[feature][1]
    if feature == "setting":
        value = w.get(f"setting_{value}", value)
    tmpl = NAMES[lang].get(feature, feature + " {v}")
    try:
        return tmpl.format(v=value)
    except (ValueError, TypeError):
        return tmpl.replace(":.0f", "").replace(":.1f", "").format(v=value)


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def group_contributions(contrib: pd.DataFrame, base_logodds: float, lang: str) -> pd.DataFrame:
    """One row per group of :data:`GROUPS` (and per model feature no group names): the summed SHAP value, a label with
    the patient's values, and its probability translation in percentage points (see the module docstring)."""
    by_feature = contrib.set_index("feature")
    known = {f for _, fs, _ in GROUPS for f in fs}
    groups = [(g, tuple(f for f in fs if f in by_feature.index), patient) for g, fs, patient in GROUPS]
    groups += [(f, (f,), True) for f in contrib.feature if f not in known]
    rule_features = next((fs for g, fs, _ in groups if g == "rule"), ())
    start = base_logodds + float(sum(by_feature.shap[f] for f in rule_features))
    w = WORDS[lang]
    rows = []
    for g, fs, patient in groups:
        if not fs:
            continue
        s = float(sum(by_feature.shap[f] for f in fs))
        # a specific flag is also sensitive: name the tier once
        said = [f for f in fs if not (f == "flag_sensitive" and "flag_specific" in fs
                                      and not _missing(by_feature.value["flag_specific"])
                                      and int(by_feature.value["flag_specific"]) == 1)]
        parts = "; ".join(_phrase(f, by_feature.value[f], lang) for f in said)
        name = w.get(f"group_{g}")
        label = parts if name is None else f"{name}: {parts}"
        ref = base_logodds if g == "rule" else start
        rows.append({"group": g, "features": ",".join(fs), "label": label, "shap": s, "patient": patient,
                     "pp": 100 * (_sigmoid(ref + s) - _sigmoid(ref))})
    out = pd.DataFrame(rows).assign(_a=lambda d: d.shap.abs())
    return out.sort_values(["_a", "group"], ascending=[False, True]).drop(columns="_a").reset_index(drop=True)


def _signed(x: float, digits: int, lang: str) -> str:
    t = Numbers(lang).num(x, digits)  # type: ignore[arg-type]
    return t if t.startswith(("\u2212", "-")) or round(x, digits) == 0 else "+" + t


def _group_line(row: pd.Series, lang: str) -> str:
    w = WORDS[lang]
    verb = w["up"] if row.shap > 0 else w["down"]
    return (f"{row.label} {verb} ({_signed(row.shap, 2, lang)} {w['logodds']}; "
            f"{_signed(row.pp, 1, lang)} {w['pp']})")


def _offset(n: int, unit: str, lang: str, day_window: bool) -> str:
    w = WORDS[lang]
    if n == 0:
        return w["at_index_day"] if day_window else w["at_index"]
    u = w["day" if abs(n) == 1 else "days"] if unit == "d" else w["hour" if abs(n) == 1 else "hours"]
    return (w["before"] if n < 0 else w["after"]).format(n=abs(n), u=u)


def window_text(window: Any, lang: str) -> str:
    """A criterion's window relative to the index, in words (``[-365d, 0d]`` → "from 365 days before the intervention
    to the day of the intervention"); exact inclusive bounds for day windows."""
    day = window.unit == "d"
    lo, hi = window.int_bounds() if day else (window.start, window.end)
    return WORDS[lang]["window"].format(a=_offset(lo, window.unit, lang, day), b=_offset(hi, window.unit, lang, day))


def _criterion_text(crit: Any, rs: Any, lang: str) -> str:
    w = WORDS[lang]
    vs = rs.valueset(crit.codes)
    codes = vs.title if lang == "en" and vs.title else vs.name
    text = w["no_event"].format(kind=w.get(f"kind_{crit.kind}", crit.kind), codes=codes, window=window_text(crit.window, lang))
    return text + (w["from_discharge"] if crit.anchor == "discharge" else "")


def exclusion_lines(rule: Any, rs: Any, variant: str, first_failed: Any, lang: str) -> list[str]:
    """The exclude conditions the flag's tier passed (so: checked and found absent in the data), and for a flag of the
    sensitive tier, the first condition of the specific tier that did not hold (the only one the scan records)."""
    w = WORDS[lang]
    tier = "specific" if variant == "specific" else "sensitive"
    names = [n for n in rule.conditions_of(tier) if rule.conditions[n].role == "exclude"]
    out = [w["checked"] if names else w["checked_none"]]
    for n in names:
        c = rule.conditions[n]
        texts = [_criterion_text(cr, rs, lang) for cr in c.criteria]
        out.append(f"  - {n}: " + (w["none_of"] + "; ".join(texts) if c.any_of else texts[0]))
    if tier == "sensitive":
        if isinstance(first_failed, str) and first_failed in rule.conditions:
            role = rule.conditions[first_failed].role
            out.append(w["not_specific"].format(name=first_failed,
                                                what=w["failed_exclude" if role == "exclude" else "failed_require"]))
        else:
            out.append(w["not_specific_unknown"])
    return out


def _governance_line(rule: Any, rs: Any, lang: str) -> str:
    from lowvalue.rules.governance import STATUS_TEXT, governance

    g = governance(rule, rs)
    per_set: dict[str, list[str]] = {}
    for ref in rule.code_refs():  # a code set counted once, as governance() counts them
        vs = rs.valueset(ref)
        if vs.unverified and vs.name not in per_set:
            per_set[vs.name] = sorted(vs.unverified)
    shown = "; ".join(f"{name} {', '.join(c[:8])}{' …' if len(c) > 8 else ''}" for name, c in per_set.items())
    return WORDS[lang]["governance"].format(status=STATUS_TEXT[lang][g.status],
                                            owner=g.clinical_owner or WORDS[lang]["not_assigned"],
                                            unverified=g.unverified_codes, codes=g.codes,
                                            list=f" ({shown})" if shown else "")


def _performance_line(meta: ModelMeta, rule_id: str, lang: str) -> str:
    w, nums = WORDS[lang], Numbers(lang)  # type: ignore[arg-type]
    p = meta.rule_performance(rule_id)
    auc = (p or {}).get("auroc")
    if not isinstance(auc, dict) or auc.get("estimate") is None:
        return w["perf_none"].format(why=w["perf_few"] if p else w["perf_missing"])
    line = w["perf"].format(auc=nums.num(auc["estimate"], 2), lo=nums.num(auc.get("ci_low"), 2),
                            hi=nums.num(auc.get("ci_high"), 2), n=nums.int(p.get("n")), events=nums.int(p.get("events")))
    pooled = (meta.metrics.get("validation") or {}).get("auroc")
    if isinstance(pooled, dict) and pooled.get("estimate") is not None:
        line += " " + w["perf_pooled"].format(auc=nums.num(pooled["estimate"], 2))
    return line


def _excess_lines(results: Results, rule: Any, outcome_names: dict[str, str], lang: str) -> list[str]:
    """The rule's population-level estimate from ``excess_risk.parquet`` (its outcome: the rule's own harm windows),
    or why there is none; small arms suppressed as in ``excess_risk.md``."""
    from lowvalue.report.suppress import Suppressor
    from lowvalue.results import read_derived

    w, nums = WORDS[lang], Numbers(lang)  # type: ignore[arg-type]
    path = results.path / "excess_risk.parquet"
    if not path.is_file():
        return [w["excess_none"].format(why=w["excess_nofile"])]
    try:
        table = read_derived(path, results.path, made_by="lowvalue risk excess RESULTS")
    except InputError:
        return [w["excess_none"].format(why=w["excess_stale"])]
    rows = table[table.rule_id == rule.id] if "rule_id" in table else table.iloc[:0]
    if rows.empty:
        return [w["excess_none"].format(why=w["excess_norule"])]
    r = rows[rows.primary == True].iloc[0] if "primary" in rows and (rows.primary == True).any() else rows.iloc[0]  # noqa: E712
    sup = Suppressor()
    small = any(sup.is_small(int(r[k])) for k in ("n_treated", "n_control", "events_treated", "events_control")
                if k in r and pd.notna(r[k]))
    if small:
        return [w["excess_none"].format(why=w["excess_small"].format(k=sup.threshold))]
    if not str(r.get("status", "")).startswith("estimated") or pd.isna(r.get("excess_per_1000", np.nan)):
        return [w["excess_none"].format(why=w["not_estimated"])]
    window = "; ".join(f"{outcome_names[h.trigger]} {window_text(h.window, lang)}" for h in rule.harms)
    lines = [w["excess"].format(per1000=nums.num(r.excess_per_1000, 0), lo=nums.num(r.get("excess_per_1000_lo"), 0),
                                hi=nums.num(r.get("excess_per_1000_hi"), 0), rr=nums.num(r.get("rr"), 2),
                                rr_lo=nums.num(r.get("rr_lo"), 2), rr_hi=nums.num(r.get("rr_hi"), 2), window=window)]
    cautions = [c.strip() for c in str(r.get("cautions") or "").split(";") if c.strip() and c.strip() != "nan"]
    if cautions:
        said = [next((w[k] for sub, k in CAUTIONS if sub in c), c) for c in cautions]
        lines.append(w["excess_cautions"].format(c="; ".join(said)))
    lines.append(w["excess_caveat"])
    return lines


def explain(flag_id: str, results: Results | Path | str, model: AdverseEventRiskModel | Path | str, *,
            lang: str = "sv", top: int = 8, min_abs: float = 0.02, meta: ModelMeta | None = None) -> Explanation:
    """Everything needed to discuss one flag (see the module docstring); :func:`waterfall_plot` draws the figure.

    ``meta`` (the horizon and metrics) is read from the model's folder when ``model`` is a path; pass it with a
    loaded model. Without it the text says the horizon is not recorded instead of guessing one.
    """
    if lang not in WORDS:
        raise LowvalueError(f"The 'lang' parameter of explain must be a str among {{'sv', 'en'}}. Got {lang!r} instead.")
    results = results if isinstance(results, Results) else load_results(results)
    if meta is None:
        meta = ModelMeta.load(None if isinstance(model, AdverseEventRiskModel) else model)
    m = model if isinstance(model, AdverseEventRiskModel) else AdverseEventRiskModel.load(model)
    flag = results.flags[results.flags.flag_id == flag_id]
    if flag.empty:
        raise LowvalueError(f"no flag {flag_id!r} in {results.path}/flags.parquet")
    flag = flag.iloc[0]
    rs = results.rules
    rule = rs.rules[flag.rule_id]
    feats = results.features[results.features.candidate_id == flag_id]
    X = feats[list(m.feature_names_in_)]
    phi, base, scale = m.contributions(X)
    risk = float(m.predict_proba(X)[0, 1])
    base_lo = float(base[0])
    base_risk = _sigmoid(base_lo)
    contrib = pd.DataFrame([{"feature": f, "value": X.iloc[0][f], "shap": float(phi.iloc[0][f])}
                            for f in m.feature_names_in_])
    contrib = contrib.assign(_a=lambda d: d.shap.abs()).sort_values(["_a", "feature"], ascending=[False, True])
    contrib = contrib.drop(columns="_a").reset_index(drop=True)
    groups = group_contributions(contrib, base_lo, lang)
    rule_row = groups[groups.group == "rule"]
    rule_shap = float(rule_row.shap.sum())
    start_risk = _sigmoid(base_lo + rule_shap)

    pct = "–"
    scored = results.path / "flags_scored.parquet"
    if scored.is_file():
        from lowvalue.results import read_derived

        s = read_derived(scored, results.path, made_by="lowvalue risk score RESULTS --model MODEL")
        hit = s[s.flag_id == flag_id]
        pct = f"{hit.risk_percentile.iloc[0]:.0f}" if len(hit) and pd.notna(hit.risk_percentile.iloc[0]) else "–"
    w, nums = WORDS[lang], Numbers(lang)  # type: ignore[arg-type]
    names = {h.trigger: (getattr(rs.rules[h.trigger].title, lang) if h.trigger in rs.rules else h.trigger)
             for h in rule.harms}
    outcome = ", ".join(dict.fromkeys(names.values())) or "?"
    h = meta.horizon_days
    evidence = json.loads(flag.evidence) if isinstance(flag.evidence, str) else list(flag.evidence)
    srcs = [f"{s.body}: {s.reference} ({s.year})" for s in rule.sources]

    case = [f"{w['rule']}: {rule.id} – {getattr(rule.title, lang)} ({w.get(flag.tier, flag.tier)})",
            f"{w['why']}: {getattr(rule.rationale, lang)}",
            *[f"{w['source']}: {s}" for s in srcs],
            f"{w['evidence']}:",
            *[f"  - {evidence_line(e, lang)}" for e in evidence]]
    p, b = nums.pct(risk, 1), nums.pct(base_risk, 1)
    risk_lines = [w["risk"].format(outcome=outcome, h=h, p=p, b=b, pct=pct) if h is not None
                  else w["risk_no_horizon"].format(outcome=outcome, p=p, b=b, pct=pct)]
    longer = [f"{names[x.trigger]}: {window_text(x.window, lang)}" for x in rule.harms
              if h is not None and x.window.unit == "d" and x.window.int_bounds()[1] > h]
    if longer:
        risk_lines.append("  " + w["longer"].format(windows="; ".join(longer), h=h))
    if len(rule_row):
        rr = rule_row.iloc[0]
        risk_lines.append(w["start"].format(p=nums.pct(start_risk, 1), b=b, rule=rr.label,
                                            s=f"{_signed(rr.shap, 2, lang)} {w['logodds']}; "
                                              f"{_signed(rr.pp, 1, lang)} {w['pp']}"))
    listed = groups[groups.group != "rule"]
    shown = listed[listed.shap.abs() >= min_abs].head(top)
    rest = listed.drop(shown.index)
    risk_lines.append(w["contrib_head"])
    risk_lines += [f"  {i + 1}. {_group_line(r, lang)}" for i, (_, r) in enumerate(shown.iterrows())]
    if len(rest):
        risk_lines.append("  " + w["rest"].format(m=nums.num(min_abs, 2),
                                                  s=f"{_signed(float(rest.shap.sum()), 2, lang)} {w['logodds']}"))
    risk_lines.append(w["method"])
    risk_lines.append(w["scale"] if scale == "calibrated log-odds" else w["scale"].replace("(calibrated)", f"({scale})")
                      .replace("(kalibrerad)", f"({scale})"))

    cand = results.candidates[results.candidates.candidate_id == flag_id]
    first_failed = cand.first_failed.iloc[0] if len(cand) and "first_failed" in cand else None
    context = [w["context"],
               "  " + _governance_line(rule, rs, lang),
               *["  " + line for line in exclusion_lines(rule, rs, flag.variant, first_failed, lang)],
               "  " + w["cannot"],
               "  " + _performance_line(meta, rule.id, lang),
               *["  " + line for line in _excess_lines(results, rule, names, lang)]]
    return Explanation(flag_id, lang, rule.id, getattr(rule.title, lang), getattr(rule.rationale, lang), srcs,
                       evidence, risk, base_risk, scale, contrib, groups, h, start_risk,
                       {"case": case, "risk": risk_lines, "context": context})


def waterfall_plot(ex: Explanation, path: Path | str, top: int = 10) -> Path:
    """Horizontal waterfall from the base log-odds over the rule's group to the case's log-odds, one bar per group
    (the same groups as the text), PNG or SVG by suffix."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = pd.concat([ex.groups[ex.groups.group == "rule"], ex.groups[ex.groups.group != "rule"]])
    c = g.head(top)
    rest = float(g.shap.iloc[top:].sum())
    from lowvalue.messages import messages

    w = messages("explain", ex.lang)
    labels = list(c.label) + ([w["other_groups"]] if len(g) > top else [])
    vals = list(c.shap) + ([rest] if len(g) > top else [])
    start = float(np.log(ex.base_risk / (1 - ex.base_risk)))
    fig, ax = plt.subplots(figsize=(8.5, 0.45 * len(vals) + 1.6))
    pos = start
    for i, (lab, v) in enumerate(zip(labels, vals)):
        ax.barh(len(vals) - 1 - i, v, left=pos, color="#c0392b" if v > 0 else "#2471a3")
        ax.text(pos + v, len(vals) - 1 - i, f" {v:+.2f}", va="center", ha="left" if v > 0 else "right", fontsize=8)
        pos += v
    ax.axvline(start, color="grey", lw=0.8, ls=":")
    ax.axvline(pos, color="black", lw=0.8)
    ax.set_yticks(range(len(vals)))
    ax.set_yticklabels([lab if len(lab) <= 70 else lab[:67] + "…" for lab in labels][::-1], fontsize=7)
    horizon = f", {ex.horizon_days} {w['days']}" if ex.horizon_days else ""
    pct = Numbers(ex.lang).pct
    ax.set_xlabel(w["waterfall_axis"].format(scale=w.get(ex.scale, ex.scale), horizon=horizon,
                                             base=pct(ex.base_risk, 1), risk=pct(ex.risk, 1)))
    ax.set_title(f"{ex.rule_id} {ex.flag_id}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
