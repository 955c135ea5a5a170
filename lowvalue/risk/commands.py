"""CLI for the risk layer: the ``risk`` group (train, score, excess, triage) and ``explain``.

Registered on the main CLI (which turns a LowvalueError into one line and
exit code 2); each command parses options, calls one library
function and prints what it returns, in the language of the global ``--lang``
(the catalogue's ``cli`` texts; ``explain`` has its own ``--lang`` for the
explanation itself).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


def _texts() -> tuple[dict[str, str], Any]:
    """The printed lines' texts and number formatting in the summaries' language (imported late: ``lowvalue.cli``
    imports this module to register it)."""
    from lowvalue.cli import summary_lang, words
    from lowvalue.report.i18n import Numbers

    return words(), Numbers(summary_lang())  # type: ignore[arg-type]


@click.group()
def risk() -> None:
    """Adverse-event trigger risk model, excess of triggers per rule and review triage on scan results."""


@risk.command()
@click.argument("results", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Model folder, e.g. models/NAME.")
@click.option("--horizon", type=click.IntRange(1, 365), default=30, show_default=True, help="Outcome horizon (days).")
@click.option("--seed", type=click.IntRange(0), default=1, show_default=True)
@click.option("--n-boot", type=click.IntRange(0), default=200, show_default=True, help="Bootstrap replicates for CIs.")
def train(results: Path, out: Path, horizon: int, seed: int, n_boot: int) -> None:
    """Train and temporally validate the risk model; write model, metrics, plots and model card."""
    from lowvalue.risk.train import train as run

    r = run(results, out, horizon_days=horizon, seed=seed, n_boot=n_boot)
    w, nums = _texts()
    v, split = r.metrics["validation"], r.metrics["split"]
    fmt = lambda k, d=3: f"{nums.num(v[k]['estimate'], d)} ({nums.num(v[k]['ci_low'], d)}–{nums.num(v[k]['ci_high'], d)})"  # noqa: E731
    click.echo(w["train_split"].format(train=nums.int(split["train"]["n"]), calibration=nums.int(split["calibration"]["n"]),
                                       n=nums.int(v["n"]), events=nums.int(v["events"])))
    click.echo(w["train_metrics"].format(auroc=fmt("auroc"), auprc=fmt("auprc"), brier=fmt("brier", 4),
                                         intercept=fmt("calibration_intercept"), slope=fmt("calibration_slope")))
    click.echo(w["train_wrote"].format(out=out))


@risk.command()
@click.argument("results", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--model", "model_dir", type=click.Path(exists=True, path_type=Path), required=True)
def score(results: Path, model_dir: Path) -> None:
    """Add calibrated risk and risk percentile to every flag (writes RESULTS/flags_scored.parquet)."""
    from lowvalue.risk.train import score as run

    path = run(results, model_dir)
    click.echo(_texts()[0]["score_wrote"].format(path=path))


@risk.command()
@click.argument("results", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Folder [default: RESULTS].")
@click.option("--extract", "data", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="The extract the results were scanned from: the trial's anchors (people with the anchor condition, "
                   "treated or not) are judged on it.")
@click.option("--n-boot", type=click.IntRange(0), default=None, hidden=True,
              help="Ignored: CIs are clustered influence-function intervals now (kept for old scripts).")
@click.option("--seed", type=click.IntRange(0), default=1, show_default=True)
@click.option("--rule", "rules", multiple=True, help="Only these rule ids (repeatable).")
@click.option("--memory-limit", default=None, help="DuckDB memory limit when opening the extract, e.g. 4GB.")
def excess(results: Path, out: Path | None, data: Path | None, n_boot: int | None, seed: int, rules: tuple[str, ...],
           memory_limit: str | None) -> None:
    """Estimated excess of adverse-event triggers per rule: an emulated target trial per anchored rule (clone-censor-weight
    with AIPW: censoring weights from a spline logistic model fitted on all anchors, cross-fitted LightGBM outcome
    models): an adjusted association, not a causal effect. Prints one line per rule and outcome; the full table with
    balance, overlap, E-values and the assumptions is excess_risk.md beside excess_risk.parquet."""
    from lowvalue.risk.excess import excess_risk
    from lowvalue.risk.results import load_results

    loaded = load_results(results)
    e = excess_risk(loaded, data, rule_ids=list(rules) or None, seed=seed, memory_limit=memory_limit)
    path = e.write(out or results)
    click.echo(excess_lines(e.table, loaded.rules.rules))
    click.echo(_texts()[0]["excess_wrote"].format(path=path, md=path.with_suffix(".md").name))


def _why_not(status: str, rule: Any, w: dict[str, str], lang: str) -> str:
    """Why a rule and outcome has no estimate, in the summaries' language: one of the estimator's fixed reasons
    (:data:`lowvalue.risk.excess.NOT_ESTIMATED`, catalogue key ``excess_<code>``), else the rule's own ``no_trial``."""
    from lowvalue.risk.excess import NOT_ESTIMATED

    for code, text in NOT_ESTIMATED.items():
        if status.startswith(text.partition("{")[0]):
            return w["excess_" + code]
    no_trial = getattr(rule, "no_trial", None)
    return str(getattr(no_trial.reason, lang)) if no_trial is not None else status


def excess_lines(table: Any, rules: dict[str, Any] | None = None) -> str:
    """The excess table as one line per rule and outcome in the summaries' language: the adjusted risk ratio and excess
    per 1 000 anchors with their CIs, small arms suppressed as in excess_risk.md, and why the others have no estimate
    (``rules``: the rules by id, for their own bilingual ``no_trial`` reasons)."""
    import pandas as pd

    from lowvalue.cli import summary_lang
    from lowvalue.report.suppress import Suppressor

    w, nums = _texts()
    rules = rules or {}
    sup = Suppressor()
    ci = lambda r, k, d: (f"{nums.num(r[k], d)} ({nums.num(r[k + '_lo'], d)}–{nums.num(r[k + '_hi'], d)})"  # noqa: E731
                          if pd.notna(r.get(k)) else "–")
    lines = [w["excess_head"]]
    for _, r in table.iterrows():
        trigger, negative = r.get("trigger_id"), r.get("negative_control")
        names = dict(rule=r.rule_id, trigger=f" → {trigger}" if isinstance(trigger, str) else "",
                     control=w["excess_negative_control"] if pd.notna(negative) and bool(negative) else "")
        counts = [r.get(k) for k in ("n_treated", "n_control", "events_treated", "events_control")]
        if any(pd.notna(c) and sup.is_small(c) for c in counts):
            lines.append(w["excess_suppressed"].format(n=sup.threshold, **names))
        elif not str(r["status"]).startswith("estimated"):
            line = w["excess_not_estimated"].format(why=_why_not(str(r["status"]), rules.get(r.rule_id), w,
                                                                 summary_lang()), **names)
            if line not in lines:  # a rule without a trial says why once, not once per outcome
                lines.append(line)
        else:
            lines.append(w["excess_row"].format(rr=ci(r, "rr", 2), excess=ci(r, "excess_per_1000", 1),
                                                treated=nums.int(r.n_treated), control_n=nums.int(r.n_control),
                                                cautions=w["excess_signal"] if r.get("cautions") else "", **names))
    return "\n".join(lines)


@risk.command()
@click.argument("results", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--verdicts", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Parquet with flag_id, verdict (confirmed/rejected) [default: RESULTS/verdicts.parquet].")
@click.option("--seed", type=click.IntRange(0), default=1, show_default=True)
def triage(results: Path, verdicts: Path | None, seed: int) -> None:
    """Rank flags by the probability that a reviewer confirms them (needs verdicts or synthetic truth)."""
    from lowvalue.risk.triage import triage as run

    from lowvalue.cli import summary_lang

    click.echo(run(results, verdicts=verdicts, seed=seed, lang=summary_lang()).message)


@click.command()
@click.argument("flag_id")
@click.option("--results", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--model", "model_dir", type=click.Path(exists=True, path_type=Path), required=True)
@click.option("--lang", type=click.Choice(["sv", "en"]), default="sv", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Waterfall plot (.png or .svg).")
def explain(flag_id: str, results: Path, model_dir: Path, lang: str, out: Path | None) -> None:
    """Explain one flag: rule, evidence, estimated risk within the model's horizon, grouped SHAP contributions (log-odds and
    percentage points), and what to weigh (rule status, exclusions checked, limits of coded data, within-rule AUROC, excess)."""
    from lowvalue.risk.explain import explain as run, waterfall_plot

    ex = run(flag_id, results, model_dir, lang=lang)
    click.echo(ex.text())
    if out:
        click.echo(_texts()[0]["wrote"].format(path=waterfall_plot(ex, out)))
