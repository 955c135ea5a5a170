"""The model card (Mitchell et al. 2019) with the TRIPOD+AI items a training run can fill in itself.

Rendered from ``metrics.json`` only, so every number in the card is one the
run computed; nothing is typed by hand.
"""

from __future__ import annotations

from typing import Any

HEADLINE_MIN_EVENTS = 10
"""A rule enters the per-rule headline with at least this many validation events (and a scored subgroup row); with
fewer, an AUROC or a calibration figure is noise, so the card names the rule as having too few events instead."""

POOLED_LABEL = "pooled over rules (mixes between-rule differences in base rate)"


LEAKAGE_EXEMPT: dict[str, str] = {
    "flag_specific": "the rule's own judgement of the intervention (specific variant)",
    "flag_sensitive": "the rule's own judgement of the intervention (sensitive variant)",
}
"""Features the leakage test (``tests/risk/test_features_leakage.py``) does *not* hold fixed, and which it imports from
here, so the card cannot claim a different set. They are the rule's verdict, and a rule's exclusions and indications
may look past the index (the antibiotic rules accept a competing diagnosis up to 3 days after it), so they can carry
post-index information."""

LEAKAGE_PERTURBED = ("charlson", "frailty_markers", "chronic_conditions", "prior_triggers_365d", "n_drugs_90d",
                     "hb_last", "creatinine_last")
"""Features whose inputs the leakage test actually adds at and after the index (a dementia, heart-failure, fall and
C. difficile diagnosis, a drug, a creatinine and a haemoglobin result). The other non-exempt features are asserted
unchanged but no event that would move them is added (no encounter, no glucose result), and age, sex, setting and
unit come from the index contact itself."""


TRIPOD_AI_NOT_REPORTED: tuple[str, ...] = (
    "2 abstract: no structured abstract (TRIPOD+AI for Abstracts).",
    "3a health-care context: no account of current practice for choosing flags to review, or of existing models.",
    "6c treatments received during follow-up: not reported (the intervention itself is the index).",
    "Data preparation and pre-processing: lab unit handling, implausible values and code-map versions are in the code "
    "(lowvalue/risk/features.py, the rule library), not described here.",
    "Outcome assessment blinding: triggers are coded, not assessed; whether coders knew of the intervention is "
    "unknown.",
    "Sample-size justification: none (no minimum sample size, e.g. Riley et al., was computed for the development or "
    "the per-rule validation sets).",
    "Fairness: subgroups are sex, age band and unit only; no country of birth, socio-economic group or other "
    "inequality axis, and no fairness criterion or mitigation.",
    "Model output to decision: no risk threshold is recommended; the workload table describes options, not a choice.",
    "Differences between development and validation data: the slices are given by n and period only, with no "
    "comparison of predictor, outcome and rule mix between them.",
    "Participant flow and characteristics: no flow diagram and no table of characteristics per slice.",
    "Calibration curve: quantile bins with Wilson intervals, pooled over rules; no smoothed (LOESS or spline) curve "
    "and no per-rule curve.",
    "Model updating and monitoring: no plan for recalibration or for code-system changes over time.",
    "Ethics approval, funding, conflicts of interest, protocol and registration: not stated.",
    "Data and code availability: the code is the lowvalue repository; the data's availability is not stated.",
    "Patient and public involvement: none.",
    "Risk of bias: no PROBAST+AI assessment.",
    "External (geographic) validation: none; temporal validation in one region only.",
)
"""TRIPOD+AI content this card does not (fully) report. Item numbers are given only where the checklist numbering was
verified (items 1 to 6, /work/shared/reference/adverse-events-and-ml-standards.md); the rest is by topic."""


def leakage_statement() -> str:
    """The card's account of what the leakage test covers, from :data:`LEAKAGE_EXEMPT` and :data:`LEAKAGE_PERTURBED`."""
    from lowvalue.risk.features import FEATURES

    held = [f for f in FEATURES if f not in LEAKAGE_EXEMPT]
    idle = [f for f in held if f not in LEAKAGE_PERTURBED]
    code = lambda fs: ", ".join(f"`{f}`" for f in fs)  # noqa: E731
    return (f"- Timing (tested by `tests/risk/test_features_leakage.py`, which adds events at, 1 minute after and "
            f"2 days after each sampled person's latest index and asserts that features do not move): the test holds "
            f"fixed "
            f"{len(held)} of {len(FEATURES)} features: {code(held)}. Of these, it adds events that feed "
            f"{code(LEAKAGE_PERTURBED)}; {code(idle)} are held fixed but no event that would move them is added "
            f"(no encounter, no glucose result; age, sex, setting and unit come from the index contact).\n"
            f"- **Exempt from the leakage test:** {code(LEAKAGE_EXEMPT)}. They are the rule's own verdict on the "
            f"intervention, and a rule's exclusions and indications may look past the index (the antibiotic rules "
            f"accept a competing diagnosis up to 3 days after it), so they can carry post-index information; they are "
            f"not claimed to be pre-index. `rule_id` (the rule itself) is known at the index.")


def clustering(metrics: dict[str, Any]) -> str:
    """How the CIs are clustered, from the bootstrap descriptions the run wrote."""
    pooled = (metrics.get("validation") or {}).get("bootstrap", "")
    sub = {r.get("bootstrap") for r in metrics.get("subgroups", []) if r.get("bootstrap")}
    if "persons resampled" in pooled and all("persons resampled" in b for b in sub):
        how = ("every CI (per-rule headline, pooled and subgroup) is a percentile bootstrap that resamples whole "
               f"persons ({pooled} for the pooled figures"
               + (f"; {', '.join(sorted(sub))} per rule and subgroup" if sub else "") + "), so a person's several "
               "interventions stay together")
    else:
        how = (f"CIs are percentile bootstraps ({pooled or 'replicates not recorded'}"
               + (f"; {', '.join(sorted(sub))} per rule and subgroup" if sub
                  else "; per rule and subgroup not recorded")
               + "); where rows rather than persons are resampled, a person's several interventions are treated as "
                 "independent and the CIs are too narrow")
    return (f"Clustering: {how}. Care units are not resampled, so the CIs do not allow for clustering of practice "
            "within a unit; the workload table has no CI.")


def _ci(m: dict[str, Any], k: str, digits: int = 3) -> str:
    v = m.get(k)
    if not isinstance(v, dict):
        return "n/a"
    return f"{v['estimate']:.{digits}f} ({v['ci_low']:.{digits}f} to {v['ci_high']:.{digits}f})"


def _oe(r: dict[str, Any]) -> str:
    """Observed / expected events (event rate over mean predicted risk); 1 is ideal."""
    o, e = (r.get("event_rate") or {}).get("estimate"), (r.get("mean_predicted") or {}).get("estimate")
    return f"{o / e:.2f}" if isinstance(o, (int, float)) and isinstance(e, (int, float)) and e > 0 else "n/a"


def per_rule_headline(metrics: dict[str, Any], small: Any = None) -> tuple[list[str], list[str]]:
    """(table rows, rules with too few events) for the headline: the validation metrics of each rule's own rows
    (``subgroups`` with factor ``rule_id``). ``small(count)`` says whether a count must be suppressed."""
    small = small or (lambda x: False)
    rows, few = [], []
    for r in metrics.get("subgroups", []):
        if r.get("factor") != "rule_id":
            continue
        if isinstance(r.get("auroc"), dict) and r["events"] >= HEADLINE_MIN_EVENTS and not small(r["events"]):
            rows.append(f"| {r['level']} | {r['n']} | {r['events']} | {_ci(r, 'auroc')} | "
                        f"{_ci(r, 'calibration_intercept')} | {_ci(r, 'calibration_slope')} | {_oe(r)} |")
        else:
            ev = "<5" if small(r["events"]) else str(r["events"])
            few.append(f"{r['level']} ({ev} events)")
    return rows, few


def render(metrics: dict[str, Any], name: str, plots: bool = True) -> str:
    """The card as Markdown. It is shared beyond the analysts, so counts below 5 show as the suppression mark "–"
    (explained under the table) and a rate or metric built on fewer than 5 events is left out
    (:class:`lowvalue.report.suppress.Suppressor`)."""
    from lowvalue.report.suppress import Suppressor

    sup = Suppressor()
    c = lambda x: sup.label if sup.is_small(x) else f"{x}"  # noqa: E731 - a count as it may be shared
    d, s, v = metrics["data"], metrics["split"], metrics["validation"]
    rules = "\n".join(f"| {r['rule_id']} | {r['window']} | {c(r['followed'])} | {c(r['events'])} | "
                      f"{'–' if sup.is_small(r['events']) else format(r['event_rate'], '.3f')} | "
                      f"{c(r['excluded_short_follow_up'])} |" for r in d["per_rule"])
    head, few = per_rule_headline(metrics, sup.is_small)
    few_line = ("Rules with too few validation events for a figure (fewer than "
                f"{HEADLINE_MIN_EVENTS}, or no events): {', '.join(few)}." if few else
                "Every rule had enough validation events for a figure.")
    sub = []
    for r in metrics["subgroups"]:
        if r["factor"] == "rule_id":
            continue  # per rule: the headline table
        if "auroc" in r and not sup.is_small(r["events"]) and not sup.is_small(r["n"]):
            sub.append(f"| {r['factor']} | {r['level']} | {r['n']} | {r['events']} | {_ci(r, 'auroc')} | "
                       f"{_ci(r, 'calibration_intercept')} | {_ci(r, 'calibration_slope')} | {_ci(r, 'brier', 4)} | "
                       f"{r['mean_predicted']['estimate']:.3f} / {r['event_rate']['estimate']:.3f} |")
        else:
            note = r.get("note") or f"fewer than {sup.threshold} events: not shown"
            sub.append(f"| {r['factor']} | {r['level']} | {c(r['n'])} | {c(r['events'])} | – | – | – | – | "
                       f"{note} |")
    dca_rows, dca_all = [], "n/a"
    for r in metrics.get("decision_curve", []):
        if "triggers_found" not in r:  # metrics.json from before the workload columns
            dca_rows.append(f"| {r['threshold']:.2f} | n/a | {r['share_acted_on']:.1%} | n/a | n/a | n/a |")
            continue
        dca_all = f"{r['reviews_per_trigger_all']:.1f}"
        found = r["triggers_found"]
        per = "–" if sup.is_small(found) else f"{r['reviews_per_trigger']:.1f}"
        dca_rows.append(f"| {r['threshold']:.2f} | {c(r['n_reviewed'])} | {r['share_acted_on']:.1%} | {c(found)} | "
                        f"{'–' if sup.is_small(found) else format(r['share_of_triggers_found'], '.1%')} | {per} |")
    dca = "\n".join(dca_rows)
    p = metrics["params"]
    missing = ", ".join(f"{k} {n}" for k, n in metrics["missing_values"].items()) or "none"
    return f"""# Model card: risk model for adverse-event triggers `{name}`

*Development and temporal validation of a prediction model (TRIPOD+AI item 1): LightGBM predicting a linked adverse-event
trigger within {metrics['horizon_days']} days after a judged intervention, in eligible candidates of lowvalue rules with harms.*

## Model details
- `AdverseEventRiskModel` (lowvalue.risk.model): LightGBM gradient-boosted trees, {p['n_estimators']} trees, learning rate
  {p['learning_rate']}, {p['num_leaves']} leaves, min {p['min_child_samples']} rows per leaf, L2 {p['reg_lambda']},
  column sampling {p['colsample_bytree']}, seed {p['random_state']}; no class re-weighting (it miscalibrates by design).
- Calibration: {s['calibration']['method']} ({'Platt' if s['calibration']['method'] == 'sigmoid' else 'isotonic'}) fitted on a
  later time slice than the trees. Model file SHA-256 `{metrics['model_sha256']}`; same seed and data give the same file.

## Intended use (TRIPOD+AI 3b, 4)
- Prioritising flagged low-value interventions for review and for ethics-support / quality-improvement discussions:
  which flagged cases carry the highest predicted risk of an adverse-event trigger linked to the rule.
- **Out of scope:** individual treatment decisions; judging or appraising individual clinicians or units; claims that
  an intervention *caused* a harm (see `lowvalue risk excess` and its caveats); populations or code systems unlike the
  development data; any use on real patients before local validation.

## Data (TRIPOD+AI 5a, 5b, 6a, 6b)
- Source: `lowvalue scan` results; data period {d['start']} to {d['end']} ({d['end_source']}).
- Population: {metrics['population']}; {d['n']} index interventions in {d['persons']} persons; {d['events']} events
  (event rate {d['event_rate']:.3f}). A person can contribute several interventions.
- Outcome (TRIPOD+AI 7): a trigger linked to the rule (`harms:` in the rule YAML) in the window below, the end replaced
  by the horizon. Triggers are computed from coded data, not reviewed harms: they are not *vårdskador*.
- Candidates whose window runs past the end of the data are excluded (counted below). Deaths are not censored.

| rule | outcome window | followed | events | rate | excluded: short follow-up |
|---|---|---|---|---|---|
{rules}

{sup.footnote('en')}

- Predictors (TRIPOD+AI 8): rule, age, sex, setting, unit, Charlson index, chronic-condition count, frailty markers,
  distinct drugs (90 d), inpatient stays and visits (365 d), prior triggers (365 d), last Hb / creatinine / glucose
  (30 d), and the rule's own flags (specific, sensitive). Every feature except the flags is computed from events
  strictly before the index time (lowvalue/risk/features.py).
{leakage_statement()}
- Missing values (left to LightGBM's learned missing branch; SHAP then credits *missingness*): {missing}.

## Validation design (TRIPOD+AI 9, 12)
| slice | period | n |
|---|---|---|
| training (trees) | {s['train']['period'][0]} to {s['train']['period'][1]} | {s['train']['n']} |
| calibration | {s['calibration']['period'][0]} to {s['calibration']['period'][1]} | {s['calibration']['n']} |
| temporal validation | {s['validation']['period'][0]} to {s['validation']['period'][1]} | {s['validation']['n']} ({s['validation']['events']} events) |

No hyper-parameter search was run (fixed defaults), so the validation slice was never used for choices.

## Performance on the temporal validation slice (TRIPOD+AI 23): per rule, 95 % bootstrap CIs

The headline is per rule: the model ranks flags *within* a rule (a reviewer works through one rule's flags), so the
figure that matters is how well it separates cases inside each rule. {v.get('persons', '?')} persons; CIs from
{v.get('bootstrap', 'a bootstrap')} (a person's interventions are not independent).

| rule | n | events | AUROC (95 % CI) | calibration intercept (0 ideal) | calibration slope (1 ideal) | observed / expected |
|---|---|---|---|---|---|---|
{chr(10).join(head) or '| – | – | – | – | – | – | no rule had enough events |'}

{few_line}

### All rules together: {POOLED_LABEL}

The pooled AUROC can be well above every per-rule figure: part of it is the model telling rules apart (their base
rates differ); it does not describe how well flags are ranked within a rule.

| metric ({POOLED_LABEL}) | estimate (95 % CI) |
|---|---|
| AUROC | {_ci(v, 'auroc')} |
| AUPRC | {_ci(v, 'auprc')} (event rate {_ci(v, 'event_rate')}) |
| Brier score | {_ci(v, 'brier', 4)} |
| scaled Brier (1 − Brier/Brier_null) | {_ci(v, 'scaled_brier')} |
| calibration intercept (0 ideal) | {_ci(v, 'calibration_intercept')} |
| calibration slope (1 ideal) | {_ci(v, 'calibration_slope')} |
| mean predicted risk | {_ci(v, 'mean_predicted')} |

{'![calibration](calibration.png)' if plots else ''}

## Review workload and yield by risk threshold (decision curve), validation slice
What reviewing only the flags at or above a predicted-risk threshold would mean for the review team: how many flags
are reviewed, how many of the coded adverse-event triggers among them are found, and how many flags must be reviewed per
trigger found. This is review workload, not clinical net benefit: the threshold selects cases for retrospective review,
nothing is done to a patient, and a trigger is a coded marker, not a reviewed harm. (The net benefit in the
Vickers–Elkin sense is kept in `metrics.json` as `net_benefit_model`; read it, if at all, as "a trigger found is worth
(1 − threshold)/threshold needless reviews", not as benefit to patients.)

| risk threshold | flags reviewed | share of flags | triggers found | share of triggers found | flags reviewed per trigger found (all flags: {dca_all}) |
|---|---|---|---|---|---|
{dca}

## Results by subgroup (TRIPOD+AI 3c, 23b): validation slice
| factor | level | n | events | AUROC (95 % CI) | calibration intercept (0 ideal) | calibration slope (1 ideal) | Brier (95 % CI) | mean predicted / observed |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(sub)}

Per-rule figures are in the headline table above. Groups with few events have wide CIs (a calibration slope on a few
dozen events is barely estimable); do not read differences between them as real without more data.

## Global explanation
{'![SHAP beeswarm](shap_beeswarm.png)' if plots else ''}

SHAP values (LightGBM TreeSHAP, path-dependent) on the calibrated log-odds scale. They describe what the *model* uses,
not causes: a high value for `flag_specific` may stand in for frailty the features miss.

## TRIPOD+AI items not yet reported
This card fills in what a training run can report by itself. Still missing or only partly reported (item numbers
only where the checklist numbering was verified; the rest by topic):

{chr(10).join(f"- {t}" for t in TRIPOD_AI_NOT_REPORTED)}

## Known limits and ethical considerations (TRIPOD+AI 27)
- Outcome misclassification: triggers have limited sensitivity and PPV; no reviewed (MJG) sample yet.
- Confounding by indication: the risk is a prediction, not the harm caused by the low-value intervention.
- Single region; no external (geographic) validation; code systems change yearly.
- Deaths within the window are not censored (scan results do not show deaths).
- {clustering(metrics)}
- The flag features are exempt from the leakage test (above) and may carry post-index information.
- Not yet assessed with PROBAST+AI; no patient and public involvement.
- If trained on the synthetic region: the figures describe the generator, not real care.
"""
