"""CLI for a region's code overlay: ``lowvalue codes template | lint``, and the ``--codes`` option of every command
that reads rules. Registered on the main CLI, which turns a LowvalueError into one line and exit code 2."""

from __future__ import annotations

from pathlib import Path

import click

CODES_OPTION = click.option(
    "--codes", "codes_dir", type=click.Path(path_type=Path), default=None,
    help="The region's code overlay folder (local codes added to named code sets; see docs/region-codes.md).")


@click.group()
def codes() -> None:
    """A region's own codes: write a starting overlay from an extract, and check an overlay."""


@codes.command("template")
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="New folder for the overlay.")
@click.option("--from", "fmt", default=None, help="Source format to convert first (as for `scan`).")
@click.option("--rules", "rules_dir", type=click.Path(path_type=Path), default=None,
              help="Rule library folder [default: the shipped rules/].")
@CODES_OPTION
def template(data: Path, out: Path, fmt: str | None, rules_dir: Path | None, codes_dir: Path | None) -> None:
    """List the code sets that match nothing in DATA, with DATA's frequent unmatched codes, as an overlay to fill in."""
    from lowvalue.cli import _canonical
    from lowvalue.data.extract import open_extract
    from lowvalue.engine import sql
    from lowvalue.engine.coverage import Coverage
    from lowvalue.rules.overlay import load_rules, write_template
    from lowvalue.workdir import private_workdir

    rs = load_rules(rules_dir, codes_dir)
    with private_workdir("codes") as tmp:
        extract = open_extract(_canonical(data, fmt, tmp / "converted"), quarantine_dir=tmp / "quarantine")
        sql.prepare(extract.con)
        written = write_template(Coverage.of(extract.con, rs), list(rs.rules.values()), out)
    for path in written:
        click.echo(f"  {path.name}")
    click.echo(f"wrote {len(written)} code set file(s) to {out}/: move the right codes from 'suggestions' into "
               f"'entries' (with text, source, checked_by), then `lowvalue codes lint {out}` and "
               f"`lowvalue scan DATA --codes {out} --out RESULTS`")


@codes.command("lint")
@click.argument("overlay", type=click.Path(path_type=Path))
@click.option("--rules", "rules_dir", type=click.Path(path_type=Path), default=None,
              help="Rule library folder [default: the shipped rules/].")
def lint(overlay: Path, rules_dir: Path | None) -> None:
    """Check an overlay: schema, known code sets, code formats, duplicates, codes the library already has."""
    from lowvalue.errors import LowvalueError
    from lowvalue.rules.library import load_library
    from lowvalue.rules.overlay import lint_overlay

    ov, problems = lint_overlay(overlay, load_library(rules_dir))
    for p in problems:
        click.echo(p.one_line(), err=True)
    n = ov.size if ov else 0
    click.echo(f"{n} regional code(s) in {len(ov.entries) if ov else 0} code set(s), {len(problems)} problem(s)")
    if problems:
        raise LowvalueError(f"{len(problems)} problem(s) in code overlay {overlay}")
