"""Scan results out, in the formats colleagues use: spreadsheets, MEDS labels, an OMOP cohort, a SQL database.

One entry point, :func:`export`, used by ``lowvalue export`` and :func:`lowvalue.api.export`; one module per format
family (:mod:`.spreadsheet`, :mod:`.labels`, :mod:`.database`) over the tables :mod:`.tables` reads and suppresses.
How to use each format: ``docs/export.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lowvalue.errors import LowvalueError

if TYPE_CHECKING:
    from lowvalue.export.tables import ScanTables

FORMATS = ("csv", "xlsx", "meds-labels", "omop-cohort", "sql")


@dataclass
class Exported:
    """What an export wrote: files (``paths``) or a database (``where``, password masked), rows per table."""

    to: str
    scan_id: str
    where: str
    paths: list[Path] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)

    def describe(self, lang: str = "en") -> str:
        """What was written, in ``lang`` (the catalogue's ``cli`` texts, for the CLI's ``--lang``); table names stay."""
        from lowvalue.messages import messages

        w = messages("cli", lang)
        rows = ", ".join(f"{k}: {v}" for k, v in self.rows.items())
        return (w["export_wrote"].format(to=self.to, scan_id=self.scan_id, where=self.where)
                + (w["export_rows"].format(rows=rows) if rows else ""))


def export(results: Path | str, to: str, out: Path | str | None = None, *, url: str | None = None,
           schema: str | None = None, locale: str = "en", min_count: int | None = None,
           quarantine: Path | str | None = None) -> Exported:
    """Export a complete results folder ``to`` one of :data:`FORMATS`.

    File formats write ``out`` whole (a folder; a file for ``xlsx``); ``sql`` writes to the database at ``url``
    (``schema`` optional). ``locale`` (``en``/``sv``) is the CSV dialect and the README's first language;
    ``min_count`` the small-count threshold of the shared tables; ``quarantine`` the scan's quarantine folder when it
    is not ``RESULTS/quarantine``. Bad input raises :class:`LowvalueError` (one line).
    """
    from lowvalue.export import tables as tables_mod
    from lowvalue.export.spreadsheet import LOCALES
    from lowvalue.report.suppress import DEFAULT_MIN_COUNT, Suppressor

    to = str(to).lower()
    if to not in FORMATS:
        raise LowvalueError(f"--to {to}: unknown export format; use one of {', '.join(FORMATS)}")
    if locale not in LOCALES:
        raise LowvalueError(f"--locale {locale}: use one of {', '.join(LOCALES)}")
    if to == "sql":
        if not url:
            raise LowvalueError("--to sql needs --url (or LOWVALUE_EXPORT_URL), e.g. postgresql://USER@HOST:5432/DB")
        from lowvalue.export.database import masked, parse_url

        parse_url(url)  # a bad URL is one line before any reading
    elif out is None:
        raise LowvalueError(f"--to {to} needs --out PATH")
    if to == "xlsx" and Path(out).suffix.lower() != ".xlsx":  # type: ignore[arg-type]
        raise LowvalueError(f"--out {out}: give a file name ending in .xlsx")
    if to in ("csv", "meds-labels", "omop-cohort"):
        from lowvalue.export.files import check_folder

        check_folder(out)  # type: ignore[arg-type]
    sup = Suppressor(DEFAULT_MIN_COUNT if min_count is None else min_count)
    t = tables_mod.load(results, sup if to in ("csv", "xlsx") else None, quarantine=quarantine)
    info = {"format": to, "scan_id": t.scan_id, "min_count": sup.threshold, "locale": locale,
            "lowvalue_version": t.manifest.get("lowvalue_version")}
    if to == "sql":
        from lowvalue.export.database import write_sql

        rows = write_sql(t, url, schema)  # type: ignore[arg-type]
        where = masked(parse_url(url)) + (f" schema {schema}" if schema else "")  # type: ignore[arg-type]
        return Exported(to, t.scan_id, where, rows=rows)
    out = Path(out)  # type: ignore[arg-type]
    if to in ("csv", "xlsx"):
        from lowvalue.export import spreadsheet

        write = spreadsheet.write_csv if to == "csv" else spreadsheet.write_xlsx
        paths = write(t, out, sup, locale, info)  # type: ignore[arg-type]
        rows = {n: len(spreadsheet.frame(t, n, sup)) for n in spreadsheet.table_names(t)}
    elif to == "meds-labels":
        from lowvalue.export.labels import write_meds_labels

        paths = write_meds_labels(t, out, info)
        rows = {"tasks": sum(p.name == "labels.parquet" for p in paths)}
    else:
        from lowvalue.export.labels import write_omop_cohort

        paths = write_omop_cohort(t, out, info, _titles(t))
        rows = {}
    return Exported(to, t.scan_id, str(out), paths=paths, rows=rows)


def _titles(t: ScanTables) -> dict[str, str]:
    """English rule titles for the cohort definitions; empty when the rules cannot be loaded (ids still map)."""
    try:
        from lowvalue.rules.overlay import rules_for_results

        rs = rules_for_results(t.results, t.manifest)
        return {rid: r.title.en for rid, r in rs.rules.items()}
    except LowvalueError:
        return {}
