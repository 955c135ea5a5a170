"""CLI for the report: ``lowvalue report RESULTS --out report.html``.

Registered on the main CLI by ``main.add_command(report)``; parses options, calls
:func:`lowvalue.report.render.write_report` and prints what it wrote.
"""

from __future__ import annotations

from pathlib import Path

import click

from lowvalue.report import DEFAULT_MIN_COUNT


@click.command()
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("report.html"), show_default=True,
              help="HTML file to write (the PDF goes next to it with --pdf).")
@click.option("--lang", type=click.Choice(["sv", "en"]), default="sv", show_default=True)
@click.option("--pdf", is_flag=True, help="Also print a PDF with headless Chromium.")
@click.option("--min-count", type=click.IntRange(1), default=DEFAULT_MIN_COUNT, show_default=True,
              help="Counts below this are suppressed, shown as '–' (tables, charts, derived rates, side files).")
@click.option("--model", "model_dir", type=click.Path(exists=True, path_type=Path), default=None,
              help="Risk model folder (models/NAME) whose metrics.json goes into the methods appendix.")
@click.option("--excess", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Excess-risk Parquet [default: RESULTS/excess_risk.parquet when present].")
@click.option("--verdicts", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Reviewer verdicts Parquet (flag_id, verdict) [default: RESULTS/verdicts.parquet when present].")
@click.option("--weights", default="volume=0.4,harm=0.4,confidence=0.2", show_default=True,
              help="Weights of the suggested rank.")
@click.option("--funnel-limits", type=click.Choice(["normal", "exact"]), default="normal", show_default=True,
              help="Funnel control limits: normal approximation or exact binomial.")
@click.option("--dispersion", type=click.Choice(["additive", "multiplicative", "none"]), default="additive",
              show_default=True, help="Over-dispersion adjustment of the funnel limits (Spiegelhalter 2005).")
@click.option("--prices", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The region's price list: CSV with rule_id, amount, currency, source, year[, note] (docs/report.md). "
                   "Rules without a sourced price are shown as not priced.")
@click.option("--top", type=click.IntRange(0), default=8, show_default=True,
              help="Rules shown in full after the decision table; the rest are collapsed.")
@click.option("--compare", "compare", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="An earlier scan's results folder (repeatable): the trends run over it too, with a break where "
                   "the rule or the code overlay changed.")
@click.option("--attribution", type=click.Choice(["performing", "listing"]), default="performing", show_default=True,
              help="The unit an intervention counts to in funnels, unit p-charts and the decision table: the unit that "
                   "performed or prescribed it, or the person's listing unit.")
@click.option("--rule", "rules", multiple=True, help="Only these rule ids (repeatable) [default: every scanned rule].")
def report(results: Path, out: Path, lang: str, pdf: bool, min_count: int, model_dir: Path | None,
           excess: Path | None, verdicts: Path | None, weights: str, funnel_limits: str, dispersion: str,
           prices: Path | None, top: int, compare: tuple[Path, ...], attribution: str, rules: tuple[str, ...]) -> None:
    """Write the prioritisation report: one self-contained HTML file (optionally a PDF) from scan results, and the
    decision table as OUT-decision.csv and OUT-decision.md."""
    from lowvalue.progress import bar
    from lowvalue.report.aggregate import Weights
    from lowvalue.report.render import write_report

    try:
        w = Weights.parse(weights)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--weights") from err
    with bar("writing the report"):
        paths = write_report(results, out, lang=lang, min_count=min_count, model=model_dir,  # type: ignore[arg-type]
                             excess=excess, verdicts=verdicts, weights=w, funnel_method=funnel_limits,  # type: ignore[arg-type]
                             dispersion=dispersion, prices=prices, top=top, compare=compare,  # type: ignore[arg-type]
                             only=list(rules) or None, pdf=pdf, attribution=attribution)  # type: ignore[arg-type]
    from lowvalue.cli import summary_lang, words
    from lowvalue.report.i18n import Numbers

    for p in paths:
        mb = Numbers(summary_lang()).num(p.stat().st_size / 1e6, 1)  # type: ignore[arg-type]
        click.echo(words()["report_wrote"].format(path=p, mb=mb))
