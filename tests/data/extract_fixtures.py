"""Tiny extracts written into tmp_path by the data-layer tests."""

from __future__ import annotations

from pathlib import Path

PERSONS_HEADER = "person_id,birth_date,sex,municipality,listing_unit,death_date"
ENCOUNTERS_HEADER = "encounter_id,person_id,start_time,end_time,setting,unit,cost"
EVENTS_HEADER = "person_id,encounter_id,time,kind,system,code,value,unit,days_supply,cost"

PERSONS = [
    "P1,1950-01-01,F,Uppsala,VC Gränby,",
    "P2,1960-05-05,M,Uppsala,VC Gränby,2025-06-30",
]
ENCOUNTERS = [
    "E1,P1,2025-03-01 09:00,2025-03-01 09:30,primary_care,VC Gränby,1200",
    "E2,P2,2025-03-02 10:00,,outpatient,Ortopedi,",
]
EVENTS = [
    "P1,E1,2025-03-01 09:10,diagnosis,ICD-10-SE,J06.9,,,,",
    "P1,E1,2025-03-01 09:15,medication,ATC,J01CE02,,,10,85.5",
    "P2,E2,2025-03-02 10:05,lab,NPU,NPU08669,5.2,ug/L,,",
    "P2,,2025-04-01,observation,LOCAL,BMI,27.1,kg/m2,,",
]


def write_extract(
    folder: Path,
    *,
    persons: list[str] | None = None,
    encounters: list[str] | None = None,
    events: list[str] | None = None,
    headers: dict[str, str] | None = None,
    encoding: str = "utf-8",
    suffix: str = ".csv",
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    heads = {"persons": PERSONS_HEADER, "encounters": ENCOUNTERS_HEADER, "events": EVENTS_HEADER} | (headers or {})
    rows = {
        "persons": PERSONS if persons is None else persons,
        "encounters": ENCOUNTERS if encounters is None else encounters,
        "events": EVENTS if events is None else events,
    }
    for name, lines in rows.items():
        (folder / f"{name}{suffix}").write_bytes(("\n".join([heads[name], *lines]) + "\n").encode(encoding))
    return folder
