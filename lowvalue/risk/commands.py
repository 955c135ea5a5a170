"""CLI for the risk layer: the ``risk`` group (train, score, excess, triage) and ``explain``.

Registered on the main CLI (which turns a LowvalueError into one line and
exit code 2); each command parses options, calls one library
function and prints what it returns.
"""

from __future__ import annotations

from pathlib import Path

import click



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
    v = r.metrics["validation"]
    fmt = lambda k, d=3: f"{v[k]['estimate']:.{d}f} ({v[k]['ci_low']:.{d}f}–{v[k]['ci_high']:.{d}f})"  # noqa: E731
    click.echo(f"trained on {r.metrics['split']['train']['n']}, calibrated on {r.metrics['split']['calibration']['n']}, "
               f"validated on {v['n']} ({v['events']} events)")
    click.echo(f"AUROC {fmt('auroc')}  AUPRC {fmt('auprc')}  Brier {fmt('brier', 4)}  "
               f"calibration intercept {fmt('calibration_intercept')} slope {fmt('calibration_slope')}")
    click.echo(f"wrote {out}/ (model.json, features.json, metrics.json, calibration.png, shap_beeswarm.png, model_card.md)")


@risk.command()
@click.argument("results", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--model", "model_dir", type=click.Path(exists=True, path_type=Path), required=True)
def score(results: Path, model_dir: Path) -> None:
    """Add calibrated risk and risk percentile to every flag (writes RESULTS/flags_scored.parquet)."""
    from lowvalue.risk.train import score as run

    click.echo(f"wrote {run(results, model_dir)} (flags.parquet is unchanged)")


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
    """Estimated excess of adverse-event triggers per rule: an emulated target trial per anchored rule (clone-censor-weight,
    cross-fitted AIPW): an adjusted association, not a causal effect."""
    from lowvalue.risk.excess import excess_risk

    e = excess_risk(results, data, rule_ids=list(rules) or None, seed=seed, memory_limit=memory_limit)
    path = e.write(out or results)
    click.echo(e.summary())
    click.echo(f"wrote {path} and {path.with_suffix('.md').name}")


@risk.command()
@click.argument("results", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--verdicts", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Parquet with flag_id, verdict (confirmed/rejected) [default: RESULTS/verdicts.parquet].")
@click.option("--seed", type=click.IntRange(0), default=1, show_default=True)
def triage(results: Path, verdicts: Path | None, seed: int) -> None:
    """Rank flags by the probability that a reviewer confirms them (needs verdicts or synthetic truth)."""
    from lowvalue.risk.triage import triage as run

    click.echo(run(results, verdicts=verdicts, seed=seed).message)


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
        click.echo(f"wrote {waterfall_plot(ex, out)}")
