"""The ``lowvalue`` command line.

Commands are thin: each parses its options, calls one library function and
prints what it returns. A :class:`~lowvalue.errors.LowvalueError` becomes one
line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from lowvalue import __version__
from lowvalue.errors import LowvalueError

console = Console(stderr=True)


class _Group(click.Group):
    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except LowvalueError as err:
            click.echo(f"error: {err.one_line()}", err=True)
            sys.exit(err.exit_code)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="lowvalue")
def main() -> None:
    """Find low-value care in encounter extracts and link it to adverse-event risk."""


@main.command()
@click.option("--persons", type=click.IntRange(1), default=2000, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--chunk-size", type=click.IntRange(100), default=20000, show_default=True)
def synth(persons: int, seed: int, out: Path, chunk_size: int) -> None:
    """Write a synthetic Swedish region (canonical extract plus truth/)."""
    from lowvalue.data.synth import generate

    summary = generate(persons=persons, seed=seed, out=out, chunk_size=chunk_size)
    click.echo(summary.describe())


@main.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--strict", is_flag=True, help="Fail (exit 2) if any row is quarantined.")
@click.option(
    "--quarantine",
    "quarantine_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where quarantined rows go [default: DATA/quarantine].",
)
def validate(data: Path, strict: bool, quarantine_dir: Path | None) -> None:
    """Read and check a canonical extract; bad rows go to quarantine/ with a reason."""
    from lowvalue.data.extract import open_extract
    from lowvalue.errors import StrictModeError

    extract = open_extract(data, quarantine_dir=quarantine_dir or data / "quarantine")
    click.echo(extract.summary())
    if strict and extract.quarantined_rows:
        raise StrictModeError(f"{data}: {extract.quarantined_rows} row(s) quarantined and --strict was given")


if __name__ == "__main__":  # pragma: no cover
    main()
