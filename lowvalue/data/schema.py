"""The canonical extract: the one data model every source maps into.

An extract is a folder with three tables, ``persons``, ``encounters`` and
``events``, each a Parquet or CSV file. The Arrow schemas below are the single
source of truth for column names, types and which columns are required; readers,
validators, adapters, the generator and the engine all take them from here, so a
column is renamed in one place only.

Why one long ``events`` table rather than one table per domain: every rule
condition is "an event of code set X, in window W relative to the index", and
that query is the same whatever the event's kind. Diagnoses, procedures,
medications, labs and observations differ only in which optional columns they
fill (``value``/``unit`` for labs, ``days_supply`` for medications).

Lab values that are not a plain number keep their event (validation fills these
columns from the source's ``value`` text; see :mod:`lowvalue.data.validation`):

* qualitative results (``neg``, ``pos``, ``negativ``, ``Ej påvisad``: the words of
  ``validation.QUALITATIVE_RESULTS``): ``value`` NULL, ``value_text`` the text as
  read, ``value_censor`` NULL;
* censored results (``<5``, ``>90``, ``< 0,5``, ``<=0.1``, ``≤``/``≥``): ``value``
  NULL, ``value_text`` the text, ``value_censor`` ``<`` or ``>`` (``<=`` counts as
  ``<``). The bound is deliberately not put in ``value``: rules compare ``value``
  with thresholds and know nothing of censoring, so ``<5`` stored as 5 would pass
  ``value >= 5``. "A test was done" conditions still see the event.

A plain number has ``value`` set and ``value_text`` NULL. A source may also supply
``value_text`` and ``value_censor`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

SETTINGS: tuple[str, ...] = ("primary_care", "outpatient", "emergency", "inpatient", "digital", "home")
"""Care settings an encounter can have (öppenvård/primärvård, specialist outpatient, akut, slutenvård, digital, hemsjukvård)."""

EVENT_KINDS: tuple[str, ...] = ("diagnosis", "procedure", "medication", "lab", "observation")

SEXES: tuple[str, ...] = ("F", "M", "U")
"""F female, M male, U unknown or other. Readers also accept K (kvinna) for F."""

CODING_SYSTEMS: tuple[str, ...] = (
    "ICD-10-SE",
    "ICD-10-CM",
    "ICD-10",
    "ICD-10-PCS",
    "KVÅ",
    "ATC",
    "NPU",
    "SNOMED-CT",
    "RxNorm",
    "LOINC",
    "CPT",
)
"""Known coding systems. Any other name is accepted as a local system."""

TIMESTAMP = pa.timestamp("us")


@dataclass(frozen=True)
class Table:
    """One canonical table: its Arrow schema, which columns must be present, and its key."""

    name: str
    schema: pa.Schema
    required: tuple[str, ...]
    key: tuple[str, ...]

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    @property
    def optional(self) -> tuple[str, ...]:
        return tuple(c for c in self.schema.names if c not in self.required)


PERSONS = Table(
    name="persons",
    schema=pa.schema(
        [
            pa.field("person_id", pa.string(), nullable=False),
            pa.field("birth_date", pa.date32(), nullable=False),
            pa.field("sex", pa.string(), nullable=False),
            pa.field("municipality", pa.string()),
            pa.field("listing_unit", pa.string()),
            pa.field("death_date", pa.date32()),
        ]
    ),
    required=("person_id", "birth_date", "sex"),
    key=("person_id",),
)

ENCOUNTERS = Table(
    name="encounters",
    schema=pa.schema(
        [
            pa.field("encounter_id", pa.string(), nullable=False),
            pa.field("person_id", pa.string(), nullable=False),
            pa.field("start_time", TIMESTAMP, nullable=False),
            pa.field("end_time", TIMESTAMP),
            pa.field("setting", pa.string(), nullable=False),
            pa.field("unit", pa.string()),
            pa.field("cost", pa.float64()),
        ]
    ),
    required=("encounter_id", "person_id", "start_time", "end_time", "setting", "unit"),
    key=("encounter_id",),
)

EVENTS = Table(
    name="events",
    schema=pa.schema(
        [
            pa.field("person_id", pa.string(), nullable=False),
            pa.field("encounter_id", pa.string()),
            pa.field("time", TIMESTAMP, nullable=False),
            pa.field("kind", pa.string(), nullable=False),
            pa.field("system", pa.string(), nullable=False),
            pa.field("code", pa.string(), nullable=False),
            pa.field("value", pa.float64()),
            pa.field("unit", pa.string()),
            pa.field("days_supply", pa.int32()),
            pa.field("cost", pa.float64()),
            # Y/N/U/W (present / not present at admission / unknown / clinically undetermined); empty where the
            # source has no such flag, as Swedish patient-administrative data usually does not.
            pa.field("present_on_admission", pa.string()),
            # A lab value that is not a plain number, as read (qualitative "neg", censored "<5"); value is NULL then.
            pa.field("value_text", pa.string()),
            # "<" or ">" for a censored value (the bound is in value_text only), else empty.
            pa.field("value_censor", pa.string()),
        ]
    ),
    required=("person_id", "time", "kind", "system", "code"),
    # Events have no natural key: an exact duplicate of every column is the duplicate.
    key=("person_id", "encounter_id", "time", "kind", "system", "code", "value", "unit", "days_supply", "cost",
         "present_on_admission", "value_text", "value_censor"),
)

TABLES: dict[str, Table] = {t.name: t for t in (PERSONS, ENCOUNTERS, EVENTS)}


def empty_table(table: Table) -> pa.Table:
    """An empty Arrow table with the canonical schema (useful for sources that lack a table)."""
    return table.schema.empty_table()
