"""The tables an export takes from a results folder, and which of them may leave the region.

Two kinds, kept apart everywhere an export writes:

* **aggregated** tables (``denominators``, ``waterfall``, ``evaluability``, ``coverage``) may be shared: their counts
  below the threshold are hidden with the report's suppression (:mod:`lowvalue.report.suppress`), and so is every
  count from which a small one could be recovered (see :func:`suppress_aggregates`);
* **patient-level** tables (``flags``, ``quarantine``) hold one row per flag or rejected source row, with person ids:
  they are for use inside the region, and every export says so.

The scan id (:func:`scan_id`) names the scan an exported row came from: a digest of the results' stamp (data
fingerprint, rule-set and code-overlay digests, :func:`lowvalue.results.stamp`), so re-exporting the same scan gives
the same id and a database export can replace exactly its own rows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lowvalue.report.suppress import Suppressor
from lowvalue.results import read_manifest, stamp

AGGREGATED = ("denominators", "waterfall", "evaluability", "coverage")
PATIENT_LEVEL = ("flags", "quarantine")
SOURCES = {"flags": "flags", "denominators": "denominators", "waterfall": "waterfall", "evaluability": "evaluability",
           "coverage": "codeset_coverage"}
"""Exported name → the results folder's Parquet table."""

NESTED_COUNTS = {
    "denominators": ("candidates", "eligible", "flagged", "flagged_specific"),
    "coverage": ("system_events", "events_matched", "events_with_value"),
}
"""Counts of one row that are nested sets, largest first: a difference between two of them counts people or events
too, so it must not be small either."""
OTHER_COUNTS = {"denominators": ("eligible_persons",)}
DERIVED = {"coverage": {"system_share": ("system_events",)}}
"""Figures computed from counts: hidden when any count they come from is hidden."""
PARTS = {"denominators": (("rule_id",), "unit", "month")}
"""Denominators hold totals and their parts: per rule (unit and month empty), per unit of a rule (month empty), per
month of a unit. Keys that identify a total, the column whose values split it, the column that splits a unit."""


def patient_level_readme(what: tuple[str, str], scan: str) -> str:
    """The README of a patient-level export (MEDS labels, OMOP cohort), Swedish and English: it stays in the region."""
    en, sv = what
    return "\r\n".join([
        f"lowvalue-export av skanning {scan}: {sv}.",
        "PATIENTNIVÅ, ENDAST FÖR ANVÄNDNING INOM REGIONEN: en rad per person och händelse. Skicka inte filerna utanför "
        "regionen och bifoga dem inte i e-post; dela aggregerade tabeller (lowvalue export --to csv/xlsx) i stället.",
        "", "---", "",
        f"lowvalue export of scan {scan}: {en}.",
        "PATIENT-LEVEL, FOR USE INSIDE THE REGION ONLY: one row per person and event. Do not send these files outside "
        "the region or attach them to e-mail; share the aggregated tables (lowvalue export --to csv/xlsx) instead.", ""])


@dataclass
class ScanTables:
    """The exported tables of one scan: true values, plus the masks of what may not be shown."""

    results: Path
    manifest: dict[str, Any]
    tables: dict[str, pd.DataFrame]
    masks: dict[str, pd.DataFrame]
    """Per aggregated table: a boolean frame (same index, the count and derived columns) of the hidden cells."""
    quarantine: dict[str, pd.DataFrame]
    """Quarantined rows per source table (``quarantine/<table>.parquet`` of the results folder), when there."""

    @property
    def scan_id(self) -> str:
        return scan_id(self.manifest)

    def shown(self, name: str, sup: Suppressor) -> pd.DataFrame:
        """An aggregated table as it may be shared: hidden cells hold the suppression mark (``sup.label``)."""
        df = self.tables[name]
        mask = self.masks.get(name)
        if mask is None or not len(df):
            return df.copy()
        out = df.astype({c: object for c in mask.columns})
        for c in mask.columns:
            out.loc[mask[c], c] = sup.label
        return out


def scan_id(manifest: dict[str, Any]) -> str:
    """A short, stable id of the scan a results folder holds (16 hex digits of the digest of its stamp)."""
    return hashlib.sha256(json.dumps(stamp(manifest), sort_keys=True).encode()).hexdigest()[:16]


def load(results: Path | str, sup: Suppressor | None, *, quarantine: Path | str | None = None) -> ScanTables:
    """Read a complete results folder's exported tables (refusing an incomplete one with one line) and mask the
    aggregated ones with ``sup`` (None: no masks, for exports that do not write them). ``quarantine`` is the folder
    the scan put rejected rows in, when not ``RESULTS/quarantine`` (``scan --quarantine``)."""
    results = Path(results)
    manifest = read_manifest(results)
    tables = {name: pd.read_parquet(results / f"{src}.parquet") for name, src in SOURCES.items()}
    masks = ({} if sup is None else
             {name: suppress_aggregates(name, tables[name], sup) for name in AGGREGATED if name != "evaluability"})
    qdir = Path(quarantine) if quarantine is not None else results / "quarantine"
    q = {f.stem: pd.read_parquet(f) for f in sorted(qdir.glob("*.parquet"))} if qdir.is_dir() else {}
    return ScanTables(results, manifest, tables, masks, q)


def suppress_aggregates(name: str, df: pd.DataFrame, sup: Suppressor) -> pd.DataFrame:
    """Which cells of an aggregated table must be hidden: small counts, then whatever would give one away.

    Applied until nothing changes: (1) primary: counts ``0 < n < threshold``; (2) nested counts of a row (candidates ⊇
    eligible ⊇ flagged ⊇ flagged specific): a count whose difference to the next larger shown one is small is hidden;
    (3) the waterfall of a rule is a chain of nested sets too (each step keeps a subset; *flagged* is the eligible
    set again), so the same holds between any two of its steps; (4) secondary: parts of a published total (the units
    of a rule, the months of a unit) by :meth:`Suppressor.protect_groups`; (5) derived figures whose count is hidden.
    """
    counts = list(NESTED_COUNTS.get(name, ())) + list(OTHER_COUNTS.get(name, ()))
    if name == "waterfall":
        counts = ["remaining"]
    mask = pd.DataFrame({c: sup.mask(df[c]).to_numpy() for c in counts}, index=df.index)
    for _ in range(20):  # each pass only hides more cells, so this ends; 20 passes is far more than any table needs
        before = mask.to_numpy().copy()
        if name in NESTED_COUNTS:
            _hide_small_differences_in_rows(df, mask, NESTED_COUNTS[name], sup)
        if name == "waterfall":
            hidden = mask["remaining"].copy()
            for _, g in df.groupby("rule_id", sort=False):
                _hide_small_differences(g["remaining"], hidden, sup)
            mask["remaining"] = hidden
        if name in PARTS:
            _protect_parts(df, mask, counts, sup)
        if (mask.to_numpy() == before).all():
            break
    for col, sources in DERIVED.get(name, {}).items():
        mask[col] = mask[list(sources)].any(axis=1)
    return mask


def _hide_small_differences(values: pd.Series, hidden: pd.Series, sup: Suppressor) -> None:
    """Among counts of nested sets, hide each whose difference to the next larger shown count is small (in place)."""
    last: float | None = None
    for i, v in values.astype("float64").sort_values(ascending=False, kind="stable").items():
        if hidden.loc[i] or pd.isna(v):
            continue
        if last is not None and sup.is_small(last - v):
            hidden.loc[i] = True
            continue
        last = v


def _hide_small_differences_in_rows(df: pd.DataFrame, mask: pd.DataFrame, cols: tuple[str, ...], sup: Suppressor) -> None:
    vals = df[list(cols)].astype("float64").to_numpy()
    hid = mask[list(cols)].to_numpy().copy()
    for r in range(len(vals)):
        last = None
        for j in range(len(cols)):  # the columns are in nesting order, largest set first
            if hid[r, j] or pd.isna(vals[r, j]):
                continue
            if last is not None and sup.is_small(last - vals[r, j]):
                hid[r, j] = True
                continue
            last = vals[r, j]
    for j, c in enumerate(cols):
        mask[c] = hid[:, j]


def _protect_parts(df: pd.DataFrame, mask: pd.DataFrame, counts: list[str], sup: Suppressor) -> None:
    """Secondary suppression within each published total: the units of a rule, the months of a unit of a rule."""
    unit, month = df["unit"], df["month"]
    levels = [(unit.notna() & month.isna(), ["rule_id"]),      # units of a rule's total
              (unit.notna() & month.notna(), ["rule_id", "unit"]),  # months of a unit's total
              (unit.isna() & month.notna(), ["rule_id"])]       # months of a rule's total (when present)
    for rows, by in levels:
        if not rows.any():
            continue
        part = df.loc[rows]
        for c in counts:
            frame = part[by + [c]].assign(_m=mask.loc[rows, c].to_numpy())
            # protect_total acts only on a total with exactly one hidden part: hand it those groups alone (fast)
            one = frame.groupby(by, sort=False, dropna=False)["_m"].transform("sum") == 1
            if one.any():
                mask.loc[frame.index[one], c] = sup.protect_groups(frame.loc[one], by, c, "_m").to_numpy()
