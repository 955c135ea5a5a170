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
    """The card as Markdown. It is shared beyond the analysts, so counts below 5 show as "<5" and a rate or metric
    built on fewer than 5 events is left out (:class:`lowvalue.report.suppress.Suppressor`)."""
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
                       f"{_ci(r, 'brier', 4)} | {r['mean_predicted']['estimate']:.3f} / {r['event_rate']['estimate']:.3f} |")
        else:
            note = r.get("note") or f"fewer than {sup.threshold} events: not shown"
            sub.append(f"| {r['factor']} | {r['level']} | {c(r['n'])} | {c(r['events'])} | – | – | {note} |")
    dca = "\n".join(f"| {r['threshold']:.2f} | {r['share_acted_on']:.1%} | {r['net_benefit_model']:.4f} | "
                    f"{r['net_benefit_all']:.4f} | 0 |" for r in metrics.get("decision_curve", []))
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

- Predictors (TRIPOD+AI 8): rule, age, sex, setting, unit, Charlson index, chronic-condition count, frailty markers,
  distinct drugs (90 d), inpatient stays and visits (365 d), prior triggers (365 d), last Hb / creatinine / glucose
  (30 d), and the rule's own flags (specific, sensitive). All strictly before the index time (tested).
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

## Clinical utility: decision curve (TRIPOD+AI 23), validation slice
Net benefit of reviewing the flags whose predicted risk is at least the threshold, against reviewing all of them or none. A
threshold of 0.10 means one caught trigger is worth nine needless reviews; the model helps where its net benefit is
above both other columns.

| threshold | share reviewed | net benefit: model | review all | review none |
|---|---|---|---|---|
{dca}

## Results by subgroup (TRIPOD+AI 3c, 23b): validation slice
| factor | level | n | events | AUROC (95 % CI) | Brier (95 % CI) | mean predicted / observed |
|---|---|---|---|---|---|---|
{chr(10).join(sub)}

Groups with few events have wide CIs; do not read differences between them as real without more data.

## Global explanation
{'![SHAP beeswarm](shap_beeswarm.png)' if plots else ''}

SHAP values (LightGBM TreeSHAP, path-dependent) on the calibrated log-odds scale. They describe what the *model* uses,
not causes: a high value for `flag_specific` may stand in for frailty the features miss.

## Known limits and ethical considerations (TRIPOD+AI 27)
- Outcome misclassification: triggers have limited sensitivity and PPV; no reviewed (MJG) sample yet.
- Confounding by indication: the risk is a prediction, not the harm caused by the low-value intervention.
- Single region; no external (geographic) validation; code systems change yearly.
- Deaths within the window are not censored; persons with several interventions are not clustered in the CIs.
- Not yet assessed with PROBAST+AI; no patient and public involvement; no decision-curve analysis yet.
- If trained on the synthetic region: the figures describe the generator, not real care.
"""
