"""The analyst's spreadsheet: one CSV per table in a folder, or one sheet per table in an ``.xlsx`` workbook.

Locales: ``en`` writes RFC 4180 CSV (comma, decimal point, UTF-8); ``sv`` writes what Excel with Swedish regional
settings opens by double-click (semicolon, decimal comma, UTF-8 with a byte-order mark, without which Excel reads
å, ä, ö as cp1252). Both end lines with CRLF (RFC 4180) so the bytes do not depend on the platform. A workbook holds
native numbers and dates, which Excel shows in the reader's own locale, so ``--locale`` changes only its README.

Every export carries a README (file or first sheet), in Swedish and English, saying which tables may be shared
(aggregated, small counts hidden) and which are patient-level and stay inside the region.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from lowvalue.errors import LowvalueError
from lowvalue.export import files
from lowvalue.export.tables import AGGREGATED, ScanTables
from lowvalue.report.suppress import Suppressor

Locale = Literal["en", "sv"]
LOCALES: tuple[Locale, ...] = ("en", "sv")
CSV = {"en": {"sep": ",", "decimal": ".", "encoding": "utf-8"},
       "sv": {"sep": ";", "decimal": ",", "encoding": "utf-8-sig"}}
XLSX_MAX_ROWS = 1_048_576
XLSX_MAX_CELL = 32_767
"""Excel's limits: rows per sheet (header included) and characters per cell."""

DESCRIPTIONS = {
    "flags": ("one row per flagged intervention (rule, tier, person, encounter, index time, unit, cost, evidence)",
              "en rad per flaggad åtgärd (regel, nivå, person, kontakt, indextid, enhet, kostnad, underlag)"),
    "quarantine": ("source rows the scan rejected, with the reason (one table per source table)",
                   "källrader som skanningen avvisade, med skäl (en tabell per källtabell)"),
    "denominators": ("per rule, unit and month: candidates, eligible, eligible persons, flagged, flagged as low value",
                     "per regel, enhet och månad: kandidater, behöriga, behöriga personer, flaggade, flaggade som lågt "
                     "värde"),
    "waterfall": ("per rule: candidates remaining after each condition, and flagged",
                  "per regel: kandidater kvar efter varje villkor, och flaggade"),
    "evaluability": ("per rule and trigger: evaluable, limited or not evaluable in this extract, with the reason",
                     "per regel och skademarkör: bedömbar, begränsad eller inte bedömbar i detta uttag, med skäl"),
    "coverage": ("per rule and code set: codes and events of the extract the code set matched, per coding system",
                 "per regel och kodlista: koder och händelser i uttaget som kodlistan träffade, per kodsystem"),
}


def table_names(tables: ScanTables) -> list[str]:
    """The exported tables in their order: patient-level first, then the aggregated ones."""
    return ["flags"] + [f"quarantine_{t}" for t in tables.quarantine] + list(AGGREGATED)


def frame(tables: ScanTables, name: str, sup: Suppressor) -> pd.DataFrame:
    if name.startswith("quarantine_"):
        return tables.quarantine[name.removeprefix("quarantine_")]
    return tables.shown(name, sup) if name in AGGREGATED else tables.tables[name]


def readme(tables: ScanTables, sup: Suppressor, names: list[str], locale: Locale, notes: list[str]) -> str:
    """The README of an export: the two kinds of table, what each table holds, in Swedish and English."""
    q = sum(int(c.get("quarantined", 0)) for c in ((tables.manifest.get("data") or {}).get("counts") or {}).values())
    patient = [n for n in names if n == "flags" or n.startswith("quarantine_")]
    shared = [n for n in names if n in AGGREGATED]
    where_q = ("" if tables.quarantine or not q else
               f" The scan quarantined {q} row(s) outside the results folder; give that folder with --quarantine to "
               f"export them.")
    where_q_sv = ("" if tables.quarantine or not q else
                  f" Skanningen satte {q} rad(er) i karantän utanför resultatmappen; ange den mappen med --quarantine "
                  f"för att exportera dem.")
    en = [f"lowvalue export of scan {tables.scan_id} (results folder '{tables.results.name}').", "",
          f"SHAREABLE, aggregated tables: {', '.join(shared)}. Counts from 1 to {sup.threshold - 1} are shown as "
          f"'{sup.label}', and so is every count or figure from which such a count could be worked out (differences "
          f"between nested counts, the one remaining part of a total).", "",
          f"PATIENT-LEVEL tables, FOR USE INSIDE THE REGION ONLY: {', '.join(patient)}. One row per flag or rejected "
          f"source row, with person ids (pseudonymised only if the scan was run with --pseudonymise). Do not send "
          f"them outside the region or attach them to e-mail; share the aggregated tables instead.{where_q}", ""]
    sv = [f"lowvalue-export av skanning {tables.scan_id} (resultatmapp '{tables.results.name}').", "",
          f"DELBARA, aggregerade tabeller: {', '.join(shared)}. Antal från 1 till {sup.threshold - 1} visas som "
          f"'{sup.label}', liksom varje antal eller mått som ett sådant antal kan räknas fram ur (skillnader mellan "
          f"kapslade antal, den enda återstående delen av en summa).", "",
          f"TABELLER PÅ PATIENTNIVÅ, ENDAST FÖR ANVÄNDNING INOM REGIONEN: {', '.join(patient)}. En rad per flagga "
          f"eller avvisad källrad, med person-id (pseudonymiserade bara om skanningen kördes med --pseudonymise). "
          f"Skicka dem inte utanför regionen och bifoga dem inte i e-post; dela de aggregerade tabellerna i stället."
          f"{where_q_sv}", ""]
    for n in names:
        en_d, sv_d = DESCRIPTIONS["quarantine" if n.startswith("quarantine_") else n]
        en.append(f"- {n}: {en_d}")
        sv.append(f"- {n}: {sv_d}")
    en += [f"Note: {n}" for n in notes]
    blocks = [sv, ["", "---", ""], en] if locale == "sv" else [en, ["", "---", ""], sv]
    return "\r\n".join(line for b in blocks for line in b) + "\r\n"


def _text(v: Any, decimal: str) -> str:
    """One CSV cell: empty for missing, ISO dates, shortest exact decimals with the locale's decimal sign."""
    if v is None or v is pd.NA or v is pd.NaT:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        s = repr(v)
        return s.replace(".", decimal) if decimal != "." else s
    if isinstance(v, (pd.Timestamp, datetime)):
        return v.isoformat(sep=" ")
    if isinstance(v, date):
        return v.isoformat()
    return str(v)


def to_csv_bytes(df: pd.DataFrame, locale: Locale) -> bytes:
    """A table as CSV bytes in the locale's dialect (see module doc)."""
    c = CSV[locale]
    cells = pd.DataFrame({col: [_text(v, c["decimal"]) for v in df[col].astype(object)] for col in df.columns},
                         columns=df.columns)
    text = cells.to_csv(sep=c["sep"], index=False, lineterminator="\r\n")
    return text.encode(c["encoding"])


def write_csv(tables: ScanTables, out: Path, sup: Suppressor, locale: Locale, info: dict[str, Any]) -> list[Path]:
    """One CSV per table (plus README.txt and export.json) in the folder ``out``, written whole."""
    names = table_names(tables)
    with files.folder(out) as tmp:
        for n in names:
            (tmp / f"{n}.csv").write_bytes(to_csv_bytes(frame(tables, n, sup), locale))
        (tmp / "README.txt").write_bytes(readme(tables, sup, names, locale, []).encode(CSV[locale]["encoding"]))
        files.write_marker(tmp, {**info, "tables": names})
    return [out / f"{n}.csv" for n in names] + [out / "README.txt"]


def _xlsx_value(v: Any, truncated: list[int]) -> Any:
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    if hasattr(v, "item") and not isinstance(v, str):  # numpy scalars
        return v.item()
    if isinstance(v, str) and len(v) > XLSX_MAX_CELL:
        truncated[0] += 1
        return v[: XLSX_MAX_CELL - 1] + "…"
    return v


def write_xlsx(tables: ScanTables, out: Path, sup: Suppressor, locale: Locale, info: dict[str, Any]) -> list[Path]:
    """A workbook with a README sheet and one sheet per table (openpyxl, write-only mode: rows streamed)."""
    try:
        from openpyxl import Workbook
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.styles import Font
    except ImportError:
        raise LowvalueError("--to xlsx needs openpyxl (part of lowvalue's default install): "
                            "pip install 'openpyxl>=3.1'") from None
    names = table_names(tables)
    frames = {n: frame(tables, n, sup) for n in names}
    for n, df in frames.items():
        if len(df) + 1 > XLSX_MAX_ROWS:
            raise LowvalueError(f"{n} has {len(df):,} rows, more than an Excel sheet holds "
                                f"({XLSX_MAX_ROWS - 1:,}); export with --to csv instead")
    wb = Workbook(write_only=True)
    fixed = datetime(2000, 1, 1)  # the same scan gives the same sheets; openpyxl stamps only 'modified' at save
    wb.properties.creator, wb.properties.created, wb.properties.modified = "lowvalue", fixed, fixed
    truncated = [0]
    readme_ws = wb.create_sheet("README")
    bold = Font(bold=True)
    sheets = []
    for n, df in frames.items():
        ws = wb.create_sheet(n[:31])
        ws.freeze_panes = "A2"
        header = []
        for col in df.columns:
            cell = WriteOnlyCell(ws, value=str(col))
            cell.font = bold
            header.append(cell)
        ws.append(header)
        for row in df.astype(object).itertuples(index=False, name=None):
            ws.append([_xlsx_value(v, truncated) for v in row])
        sheets.append(n[:31])
    notes = ([f"{truncated[0]} cell(s) longer than Excel's {XLSX_MAX_CELL:,} characters were cut (ending in '…'); "
              f"the CSV export and the results folder hold them whole"] if truncated[0] else [])
    for line in readme(tables, sup, names, locale, notes).split("\r\n"):
        readme_ws.append([line])
    with files.file(out) as tmp:
        wb.save(tmp)
    return [out]
