"""CLI for exports: ``lowvalue export RESULTS --to FORMAT --out PATH`` (or ``--to sql --url URL``).

Registered on the main CLI by ``main.add_command(export)``; parses options, calls :func:`lowvalue.export.export` and
prints what it wrote (a database URL with its password masked) in the global ``--lang``.
"""

from __future__ import annotations

from pathlib import Path

import click

FORMATS_HELP = "csv, xlsx, meds-labels, omop-cohort or sql"


@click.command("export")
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--to", "to", required=True, metavar="FORMAT", help=f"Export format: {FORMATS_HELP}.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder to write (csv, meds-labels, omop-cohort; replaced whole) or .xlsx file.")
@click.option("--url", envvar="LOWVALUE_EXPORT_URL", default=None, metavar="URL",
              help="Database URL for --to sql, e.g. postgresql://USER:PASSWORD@HOST:5432/DB "
                   "[env LOWVALUE_EXPORT_URL, which keeps the password out of the shell history].")
@click.option("--schema", default=None, help="Database schema for --to sql (created when missing).")
@click.option("--locale", default="en", show_default=True, metavar="en|sv",
              help="sv: semicolon, decimal comma and UTF-8 with BOM (Swedish Excel); README in Swedish first.")
@click.option("--min-count", type=click.IntRange(1), default=None,
              help="Counts below this are hidden in the shareable (aggregated) tables [default: the report's, 5].")
@click.option("--quarantine", "quarantine", type=click.Path(path_type=Path), default=None,
              help="The scan's quarantine folder [default: RESULTS/quarantine].")
def export(results: Path, to: str, out: Path | None, url: str | None, schema: str | None, locale: str,
           min_count: int | None, quarantine: Path | None) -> None:
    """Export scan results: spreadsheets (csv, xlsx), MEDS labels, an OMOP cohort, or a SQL database.

    \b
    Examples:
      lowvalue export results/ --to xlsx --out results.xlsx
      lowvalue export results/ --to csv --locale sv --out export-csv/
      lowvalue export results/ --to meds-labels --out labels/
      lowvalue export results/ --to omop-cohort --out cohort/
      LOWVALUE_EXPORT_URL=postgresql://lv@dwh:5432/quality lowvalue export results/ --to sql --schema lowvalue
    """
    from lowvalue.cli import summary_lang
    from lowvalue.export import export as run  # imported here: `lowvalue --help` stays light

    click.echo(run(results, to, out, url=url, schema=schema, locale=locale, min_count=min_count,
                   quarantine=quarantine).describe(summary_lang()))
