"""Adapters: convert real-world extracts (Synthea CSV, OMOP CDM, MEDS, MIMIC-IV) into the canonical extract.

>>> report = convert("synthea", Path("synthea/csv"), Path("canonical/"))   # doctest: +SKIP
>>> detect_format(Path("mimic-iv-2.2"))                                     # doctest: +SKIP
'mimic-iv'

The output folder holds ``persons.parquet``, ``encounters.parquet``, ``events.parquet`` (read by
:func:`lowvalue.data.extract.open_extract` without quarantine), ``source_codes.parquet`` (the
original system/code of every event, keyed by its row in ``events.parquet``), ``quarantine/``
and ``conversion.json``. See :mod:`lowvalue.data.adapters.common` for the shared rules.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from lowvalue.errors import InputError

if TYPE_CHECKING:
    from lowvalue.data.adapters.common import ConversionReport

FORMATS = ("synthea", "omop", "meds", "mimic-iv")
ALIASES = {"mimic": "mimic-iv", "mimiciv": "mimic-iv", "mimic-iv": "mimic-iv", "synthea": "synthea", "omop": "omop",
           "omop-cdm": "omop", "meds": "meds"}


def _module(fmt: str):
    from lowvalue.data.adapters import meds, mimic, omop, synthea

    return {"synthea": synthea, "omop": omop, "meds": meds, "mimic-iv": mimic}[fmt]


def convert(fmt: str, src: Path, out: Path, *, memory_limit: str = "2GB", threads: int | None = None) -> ConversionReport:
    """Convert the source folder ``src`` in format ``fmt`` to a canonical extract in ``out``.

    Raises :class:`InputError` (one line naming file and column) when ``src`` is not that format.
    """
    from lowvalue.data.adapters.common import Run, finish

    key = ALIASES.get(str(fmt).lower())
    if key is None:
        raise InputError(str(src), f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise InputError(str(src), "source folder not found" if not src.exists() else "not a folder")
    if out.resolve() == src.resolve():
        raise InputError(str(out), "the output folder must differ from the source folder")
    run = Run(key, src, out, memory_limit=memory_limit, threads=threads)
    try:
        module = _module(key)
        module.stage(run)
        run.list_not_converted(module.FOLDERS, module.NOT_CONVERTED)
        return finish(run)
    finally:
        run.close()


def detect_format(src: Path) -> str | None:
    """The format of a source folder from the files present, or None when none (or more than one) fits."""
    import duckdb

    from lowvalue.data.adapters.common import _files_for, csv_header

    src = Path(src)
    if not src.is_dir():
        return None
    found: list[str] = []
    con = duckdb.connect()
    try:
        def columns(name: str, folder: Path = src) -> set[str]:
            hit = _files_for(folder, name)
            if hit is None or not hit[0]:
                return set()
            files, fmt = hit
            if all(f.stat().st_size == 0 for f in files):
                return set()
            if fmt == "csv":  # as the adapters read it (encoding, delimiter); an unreadable file is an InputError
                return {n.lower() for n in csv_header(files[0])}
            try:
                rows = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{str(files[0])}')").fetchall()
            except duckdb.Error:
                return set()
            return {str(r[0]).lower() for r in rows}

        if columns("patients") and "encounterclass" in columns("encounters"):
            found.append("synthea")
        if _files_for(src, "person") and _files_for(src, "visit_occurrence"):
            found.append("omop")
        data = src / "data"
        if data.is_dir():
            pq = sorted(data.rglob("*.parquet"))
            if pq:
                try:
                    cols = {str(r[0]).lower() for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{pq[0]}')").fetchall()}
                except duckdb.Error:
                    cols = set()
                if {"subject_id", "code"} <= cols:
                    found.append("meds")
        if _files_for(src / "hosp", "patients"):
            found.append("mimic-iv")
    finally:
        con.close()
    return found[0] if len(found) == 1 else None


def __getattr__(name: str) -> Any:
    """``ConversionReport`` on first use: importing the package (for ``lowvalue --help``) loads no engine."""
    if name == "ConversionReport":
        from lowvalue.data.adapters.common import ConversionReport

        return ConversionReport
    raise AttributeError(name)


__all__ = ["FORMATS", "ConversionReport", "convert", "detect_format"]
