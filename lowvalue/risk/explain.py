"""Explain one flag: the rule, its evidence, the predicted risk and the SHAP contributions in words and as a plot.

SHAP values come from LightGBM's exact TreeSHAP (``pred_contrib``) and are
shown on the **log-odds** scale, where they add up exactly (with Platt
calibration: the calibrated log-odds). The text is rendered from computed
numbers only, by templates, and says that SHAP describes the model, not causes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lowvalue.errors import LowvalueError
from lowvalue.report.i18n import Numbers
from lowvalue.risk.model import AdverseEventRiskModel
from lowvalue.risk.results import Results, load_results

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
    "sv": {"up": "höjer risken", "down": "sänker risken", "male": "Man", "female": "Kvinna",
           "flag_specific": ("Flaggad som lågvärdevård (specifik)", "Inte flaggad som specifik lågvärdevård"),
           "flag_sensitive": ("Flaggad som trolig lågvärdevård", "Inte flaggad som trolig lågvärdevård"),
           "risk": "Predicerad risk för {outcome} inom {h} dagar: {p} (baslinje {b}, percentil {pct})",
           "scale": "Bidragen är SHAP-värden på log-odds-skalan (kalibrerad); de beskriver modellen, inte orsaker.",
           "rule": "Regel", "why": "Motivering", "source": "Källa", "evidence": "Underlag", "contrib": "Bidrag till risken",
           "logodds": "log-odds", "require": "krav uppfyllt", "exclude": "uteslutningsgrund finns",
           "low value": "lågvärdevård", "likely low value": "trolig lågvärdevård"},
    "en": {"up": "raises the risk", "down": "lowers the risk", "male": "Male", "female": "Female",
           "flag_specific": ("Flagged as low value (specific)", "Not flagged as specific low value"),
           "flag_sensitive": ("Flagged as likely low value", "Not flagged as likely low value"),
           "risk": "Predicted risk of {outcome} within {h} days: {p} (baseline {b}, percentile {pct})",
           "scale": "Contributions are SHAP values on the log-odds scale (calibrated); they describe the model, not causes.",
           "rule": "Rule", "why": "Rationale", "source": "Source", "evidence": "Evidence", "contrib": "Contributions to the risk",
           "logodds": "log-odds", "require": "required, present", "exclude": "exclusion present",
           "low value": "low value", "likely low value": "likely low value"},
}


def evidence_line(e: dict[str, Any], lang: str) -> str:
    """One evidence event as a clinician reads it: when, what code, the value, and which condition it met."""
    nums = Numbers(lang)  # type: ignore[arg-type]
    when = str(e.get("time", ""))[:16].replace("T", " ")
    value = f" = {nums.num(e['value'], 1)} {e.get('unit') or ''}".rstrip() if e.get("value") is not None else ""
    return f"{when}  {e.get('code')} ({e.get('system')}){value}  [{e.get('condition')}: {WORDS[lang].get(e.get('role', ''), e.get('role'))}]"


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
    contributions: pd.DataFrame  # feature, value, shap, text; ranked by |shap|
    lines: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(self.lines)


def _phrase(feature: str, value: Any, lang: str) -> str:
    w = WORDS[lang]
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return MISSING[lang].get(feature, f"{feature}: –")
    if feature == "sex_male":
        return w["male"] if int(value) == 1 else w["female"]
    if feature in ("flag_specific", "flag_sensitive"):
        return w[feature][0] if int(value) == 1 else w[feature][1]
    tmpl = NAMES[lang].get(feature, feature + " {v}")
    try:
        return tmpl.format(v=value)
    except (ValueError, TypeError):
        return tmpl.replace(":.0f", "").replace(":.1f", "").format(v=value)


def explain(flag_id: str, results: Results | Path | str, model: AdverseEventRiskModel | Path | str, *,
            lang: str = "sv", top: int = 6, min_abs: float = 0.02, horizon_days: int | None = None) -> Explanation:
    """Everything needed to discuss one flag; see :func:`waterfall_plot` for the figure."""
    if lang not in WORDS:
        raise LowvalueError(f"The 'lang' parameter of explain must be a str among {{'sv', 'en'}}. Got {lang!r} instead.")
    results = results if isinstance(results, Results) else load_results(results)
    m = model if isinstance(model, AdverseEventRiskModel) else AdverseEventRiskModel.load(model)
    flag = results.flags[results.flags.flag_id == flag_id]
    if flag.empty:
        raise LowvalueError(f"no flag {flag_id!r} in {results.path}/flags.parquet")
    flag = flag.iloc[0]
    rule = results.rules.rules[flag.rule_id]
    feats = results.features[results.features.candidate_id == flag_id]
    X = feats[list(m.feature_names_in_)]
    phi, base, scale = m.contributions(X)
    risk = float(m.predict_proba(X)[0, 1])
    base_risk = float(1 / (1 + np.exp(-base[0])))
    w = WORDS[lang]
    rows = []
    for f in m.feature_names_in_:
        v = X.iloc[0][f]
        s = float(phi.iloc[0][f])
        rows.append({"feature": f, "value": v, "shap": s,
                     "text": f"{_phrase(f, v, lang)} {w['up'] if s > 0 else w['down']} "
                             f"({'+' if s > 0 else ''}{Numbers(lang).num(s, 2)} {w['logodds']})"})  # type: ignore[arg-type]
    contrib = pd.DataFrame(rows).assign(_a=lambda d: d.shap.abs()).sort_values(["_a", "feature"], ascending=[False, True])
    contrib = contrib.drop(columns="_a").reset_index(drop=True)
    pct = "–"
    scored = results.path / "flags_scored.parquet"
    if scored.is_file():
        from lowvalue.results import read_derived

        s = read_derived(scored, results.path, made_by="lowvalue risk score RESULTS --model MODEL")
        hit = s[s.flag_id == flag_id]
        pct = f"{hit.risk_percentile.iloc[0]:.0f}" if len(hit) and pd.notna(hit.risk_percentile.iloc[0]) else "–"
    outcome = ", ".join(h.trigger for h in rule.harms) or "?"
    h = horizon_days or (rule.harms[0].window.end if rule.harms else 30)
    evidence = json.loads(flag.evidence) if isinstance(flag.evidence, str) else list(flag.evidence)
    srcs = [f"{s.body}: {s.reference} ({s.year})" for s in rule.sources]
    nums = Numbers(lang)  # type: ignore[arg-type]
    lines = [f"{w['rule']}: {rule.id} – {getattr(rule.title, lang)} ({w.get(flag.tier, flag.tier)})",
             f"{w['why']}: {getattr(rule.rationale, lang)}",
             *[f"{w['source']}: {s}" for s in srcs],
             f"{w['evidence']}:",
             *[f"  - {evidence_line(e, lang)}" for e in evidence],
             w["risk"].format(outcome=outcome, h=h, p=nums.pct(risk, 1), b=nums.pct(base_risk, 1), pct=pct),
             f"{w['contrib']}:"]
    shown = contrib[contrib.shap.abs() >= min_abs].head(top)
    lines += [f"  {i + 1}. {t}" for i, t in enumerate(shown.text)]
    lines.append(w["scale"] if scale == "calibrated log-odds" else w["scale"].replace("(calibrated)", f"({scale})"))
    return Explanation(flag_id, lang, rule.id, getattr(rule.title, lang), getattr(rule.rationale, lang), srcs,
                       evidence, risk, base_risk, scale, contrib, lines)


def waterfall_plot(ex: Explanation, path: Path | str, top: int = 10) -> Path:
    """Horizontal waterfall from the base log-odds to the case's log-odds (PNG or SVG by suffix)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = ex.contributions.head(top)
    rest = float(ex.contributions.shap.iloc[top:].sum())
    labels = [_phrase(f, v, ex.lang) for f, v in zip(c.feature, c.value)] + (
        ["övriga" if ex.lang == "sv" else "other features"] if len(ex.contributions) > top else [])
    vals = list(c.shap) + ([rest] if len(ex.contributions) > top else [])
    start = float(np.log(ex.base_risk / (1 - ex.base_risk)))
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(vals) + 1.6))
    pos = start
    for i, (lab, v) in enumerate(zip(labels, vals)):
        ax.barh(len(vals) - 1 - i, v, left=pos, color="#c0392b" if v > 0 else "#2471a3")
        ax.text(pos + v, len(vals) - 1 - i, f" {v:+.2f}", va="center", ha="left" if v > 0 else "right", fontsize=8)
        pos += v
    ax.axvline(start, color="grey", lw=0.8, ls=":")
    ax.axvline(pos, color="black", lw=0.8)
    ax.set_yticks(range(len(vals)))
    ax.set_yticklabels(labels[::-1], fontsize=8)
    ax.set_xlabel(f"log-odds ({ex.scale}); base {ex.base_risk:.1%} → {ex.risk:.1%}")
    ax.set_title(f"{ex.rule_id} {ex.flag_id}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
