"""``lowvalue convert``: the click command (registered on the main group by lowvalue.cli)."""

from __future__ import annotations

from pathlib import Path

import click

from lowvalue.errors import InputError

FROM_CHOICES = ["synthea", "omop", "meds", "mimic-iv"]


def resolve_format(fmt: str | None, src: Path) -> str:
    """``fmt`` as given, or detected from the files in ``src`` when it is None or "auto"."""
    from lowvalue.data.adapters import detect_format

    if fmt and fmt != "auto":
        return fmt
    detected = detect_format(src)
    if detected is None:
        raise InputError(str(src), "cannot tell the format from the files present; give --from synthea|omop|meds|mimic-iv")
    return detected


@click.command("convert")
@click.option("--from", "fmt", type=click.Choice(FROM_CHOICES + ["auto"], case_sensitive=False), default="auto",
              show_default=True, help="Source format; auto detects it from the files present.")
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for the canonical extract (Parquet).")
@click.option("--memory-limit", default="2GB", show_default=True, help="DuckDB memory limit; larger work spills to disk.")
def convert_command(fmt: str, src: Path, out: Path, memory_limit: str) -> None:
    """Convert a Synthea, OMOP CDM, MEDS or MIMIC-IV folder SRC into a canonical extract in --out."""
    from lowvalue.data.adapters import convert
    from lowvalue.progress import bar

    with bar(f"converting {src}"):
        report = convert(resolve_format(fmt, src), src, out, memory_limit=memory_limit)
    click.echo(report.summary())
    click.echo(f"wrote {out}/persons.parquet, encounters.parquet, events.parquet, source_codes.parquet, conversion.json"
               + (f", quarantine/ ({report.quarantined:,} source rows)" if report.quarantined else ""))
