"""Flags for other tools: MEDS task labels and an OMOP CDM cohort table.

**MEDS labels** follow the label schema of the Medical Event Data Standard (``label_schema`` in
``src/meds/schema.py`` of github.com/Medical-Event-Data-Standard/meds, read at commit 07f3511; also
/work/shared/formats/README.md and reference/engines-and-style.md):
``subject_id`` int64, ``prediction_time`` timestamp[us], ``boolean_value`` bool, ``integer_value`` int64,
``float_value`` float64, ``categorical_value`` string, with task labels under ``$TASK_ROOT/$TASK_NAME/**/*.parquet``.
One task per rule (the rule id is the task name). Its rows are the rule's *candidates* (every index event the rule
judged), so a model gets negatives too: ``boolean_value`` is true when the candidate was flagged (either tier),
``categorical_value`` the tier of a flag (``low value`` / ``likely low value``), empty otherwise. ``prediction_time``
is the index time: MEDS lets a model use data up to and including it; a rule's exclusions may look past it, so the
label may depend on later data (say so when you train on it).

**OMOP cohort**: the CDM ``cohort`` table (``cohort_definition_id``, ``subject_id``, ``cohort_start_date``,
``cohort_end_date``: its required fields, per OHDSI's "Adding cohorts to the CDM" in *Tidy R programming with OMOP*), one cohort per rule × tier, one entry per person and index date (start = end = the index date:
a flag is a point in time, and entries of one subject in one cohort must not overlap), and ``cohort_definition.csv``
mapping each ``cohort_definition_id`` to its rule and tier. The ids are stable: derived from the rule id and variant
alone (:func:`cohort_definition_id`), so the same rule keeps its id across scans, regions and rule-library versions,
in a range (10⁹ … 2·10⁹) away from the small ids ATLAS gives its own cohorts.

**Subject ids** map back the way the adapters map them: the MEDS adapter (and the OMOP one) writes the source's
integer id as its decimal string as ``person_id``, so a ``person_id`` that is an integer becomes that integer again.
Any other ids (the synthetic region's ``P0000016``, pseudonyms) get a stable 63-bit number from a hash, and
``subject_ids.csv`` beside the labels maps them back (patient-level: for use inside the region).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lowvalue.engine.outputs import TIERS
from lowvalue.errors import LowvalueError
from lowvalue.export import files
from lowvalue.export.tables import ScanTables, patient_level_readme

LABEL_SCHEMA = pa.schema([("subject_id", pa.int64()), ("prediction_time", pa.timestamp("us")),
                          ("boolean_value", pa.bool_()), ("integer_value", pa.int64()),
                          ("float_value", pa.float64()), ("categorical_value", pa.string())])
"""MEDS ``label_schema`` (see module doc)."""
COHORT_COLUMNS = ["cohort_definition_id", "subject_id", "cohort_start_date", "cohort_end_date"]
_INT64 = r"-?\d{1,19}"


def subject_ids(person_ids: pd.Series) -> tuple[pd.Series, pd.DataFrame | None]:
    """int64 subject ids for ``person_ids`` and, when they are not integers already, the map back (see module doc)."""
    p = person_ids.astype(str)
    if len(p) and p.str.fullmatch(_INT64).all():
        ints = [int(x) for x in p]  # exact (no float on the way), and only ids whose decimal string is their own
        if all(-(2**63) <= i < 2**63 and str(i) == x for i, x in zip(ints, p)):
            return pd.Series(ints, index=p.index, dtype="int64"), None
    distinct = pd.Series(sorted(p.unique()), dtype=object)
    hashed = distinct.map(lambda s: int.from_bytes(hashlib.sha256(s.encode()).digest()[:8], "big") & (2**63 - 1))
    if hashed.duplicated().any():  # 2⁶³ values: not expected in practice, but never merge two people silently
        raise LowvalueError("two person ids map to the same subject_id; export with integer person ids")
    mapping = pd.DataFrame({"person_id": distinct, "subject_id": hashed.astype("int64")})
    return p.map(dict(zip(mapping.person_id, mapping.subject_id))).astype("int64"), mapping


def cohort_definition_id(rule_id: str, variant: str) -> int:
    """The stable cohort id of a rule's tier: 10⁹ + (a digest of ``rule_id/variant``) mod 10⁹ (fits an OMOP int)."""
    h = int.from_bytes(hashlib.sha256(f"{rule_id}/{variant}".encode()).digest()[:8], "big")
    return 1_000_000_000 + h % 1_000_000_000


def candidates(results: Path) -> pd.DataFrame:
    cols = ["rule_id", "person_id", "index_time", "sensitive", "specific"]
    return pd.read_parquet(results / "candidates.parquet", columns=cols)


def _patient_level_files(tmp: Path, out: Path, mapping: pd.DataFrame | None, what: tuple[str, str],
                         scan_id: str) -> list[Path]:
    """The files every patient-level export carries beside its table: the map of hashed subject ids back to person
    ids (when ids were hashed) and the README that says the folder stays inside the region."""
    written = []
    if mapping is not None:
        mapping.to_csv(tmp / "subject_ids.csv", index=False, lineterminator="\r\n")
        written.append(out / "subject_ids.csv")
    (tmp / "README.txt").write_text(patient_level_readme(what, scan_id), encoding="utf-8", newline="")
    return [*written, out / "README.txt"]


def write_meds_labels(tables: ScanTables, out: Path, info: dict[str, Any]) -> list[Path]:
    """One MEDS label task per rule under ``out/<rule_id>/labels.parquet`` (plus the subject map when needed)."""
    c = candidates(tables.results)
    sid, mapping = subject_ids(c["person_id"])
    flagged = (c["sensitive"] | c["specific"]).astype(bool)
    tier = pd.Series(pd.NA, index=c.index, dtype=object)
    tier[c["sensitive"]] = TIERS["sensitive"]
    tier[c["specific"]] = TIERS["specific"]
    labels = pd.DataFrame({"rule_id": c["rule_id"], "subject_id": sid, "prediction_time": c["index_time"],
                           "boolean_value": flagged, "integer_value": pd.Series(pd.NA, index=c.index, dtype="Int64"),
                           "float_value": float("nan"), "categorical_value": tier})
    written = []
    with files.folder(out) as tmp:
        for rule_id, g in labels.groupby("rule_id", sort=True):
            g = g.drop(columns="rule_id").sort_values(["subject_id", "prediction_time", "boolean_value"], kind="stable")
            table = pa.Table.from_pandas(g, schema=LABEL_SCHEMA, preserve_index=False)
            (tmp / str(rule_id)).mkdir()
            pq.write_table(table.replace_schema_metadata(None), tmp / str(rule_id) / "labels.parquet", compression="zstd")
            written.append(out / str(rule_id) / "labels.parquet")
        written += _patient_level_files(tmp, out, mapping, (
            "MEDS labels, one task per rule (rows: the rule's candidates; boolean_value: flagged)",
            "MEDS-etiketter, en uppgift per regel (rader: regelns kandidater; boolean_value: flaggad)"), tables.scan_id)
        files.write_marker(tmp, {**info, "tasks": sorted(labels.rule_id.unique().tolist()),
                                 "subject_ids": "hashed (subject_ids.csv maps them back)" if mapping is not None
                                 else "person_id as an integer"})
    return written


def cohort_definitions(flags: pd.DataFrame, titles: dict[str, str] | None = None) -> pd.DataFrame:
    """The rule × tier → ``cohort_definition_id`` map for the rules in ``flags`` (both tiers of each)."""
    rows = []
    for rule_id in sorted(flags["rule_id"].unique()):
        for variant in ("specific", "sensitive"):
            rows.append({"cohort_definition_id": cohort_definition_id(rule_id, variant),
                         "cohort_definition_name": f"{rule_id}: {TIERS[variant]}",
                         "cohort_definition_description": (titles or {}).get(rule_id, ""),
                         "rule_id": rule_id, "variant": variant, "tier": TIERS[variant]})
    defs = pd.DataFrame(rows, columns=["cohort_definition_id", "cohort_definition_name", "cohort_definition_description",
                                       "rule_id", "variant", "tier"])
    if defs["cohort_definition_id"].duplicated().any():
        raise LowvalueError("two rule tiers map to the same cohort_definition_id; rename one of the rules")
    return defs


def cohort(flags: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The OMOP ``cohort`` rows of ``flags`` and the subject map (None when person ids are integers)."""
    sid, mapping = subject_ids(flags["person_id"])
    day = pd.to_datetime(flags["index_time"]).dt.date
    ids = [cohort_definition_id(r, v) for r, v in zip(flags["rule_id"], flags["variant"])]
    rows = pd.DataFrame({"cohort_definition_id": pd.Series(ids, index=flags.index, dtype="int64"), "subject_id": sid,
                         "cohort_start_date": day, "cohort_end_date": day})
    rows = rows.drop_duplicates().sort_values(COHORT_COLUMNS, kind="stable").reset_index(drop=True)
    return rows, mapping


def write_omop_cohort(tables: ScanTables, out: Path, info: dict[str, Any], titles: dict[str, str]) -> list[Path]:
    """``cohort.csv`` and ``cohort_definition.csv`` (and ``subject_ids.csv`` when needed) in the folder ``out``."""
    flags = tables.tables["flags"]
    rows, mapping = cohort(flags)
    defs = cohort_definitions(flags, titles)
    with files.folder(out) as tmp:
        rows.to_csv(tmp / "cohort.csv", index=False, lineterminator="\r\n")
        defs.to_csv(tmp / "cohort_definition.csv", index=False, lineterminator="\r\n")
        written = [out / "cohort.csv", out / "cohort_definition.csv"]
        written += _patient_level_files(tmp, out, mapping, (
            "an OMOP CDM cohort table, one cohort per rule and tier (cohort_definition.csv)",
            "en OMOP CDM-kohorttabell, en kohort per regel och nivå (cohort_definition.csv)"), tables.scan_id)
        files.write_marker(tmp, {**info, "cohorts": len(defs), "entries": len(rows),
                                 "subject_ids": "hashed (subject_ids.csv maps them back)" if mapping is not None
                                 else "person_id as an integer"})
    return written
