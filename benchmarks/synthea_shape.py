"""Write a Synthea-shaped CSV folder of N persons (column lists of shared/formats/README.md), streamed by DuckDB.

    python benchmarks/synthea_shape.py --persons 1000000 --out /tmp/synthea_1m
    /usr/bin/time -v lowvalue convert --from synthea /tmp/synthea_1m --out /tmp/synthea_1m_out

Per person: 8 encounters, 3 conditions, 3 medications, 10 observations, 2 procedures (about 27 source rows).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import duckdb


def write(persons: int, out: Path, seed: float = 0.42) -> None:
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SELECT setseed({seed})")

    def copy(name: str, sql: str) -> None:
        con.execute(f"COPY ({sql}) TO '{out / (name + '.csv')}' (HEADER, DELIMITER ',')")

    n = int(persons)
    copy("patients", f"""
        SELECT 'p' || i AS Id, DATE '1930-01-01' + CAST(i % 30000 AS INTEGER) AS BIRTHDATE, NULL AS DEATHDATE,
               '999-00-' || i AS SSN, 'S' || i AS DRIVERS, 'X' || i AS PASSPORT, 'Mx.' AS PREFIX, 'First' || i AS FIRST,
               'Last' || i AS LAST, NULL AS SUFFIX, NULL AS MAIDEN, 'M' AS MARITAL, 'white' AS RACE, 'nonhispanic' AS ETHNICITY,
               CASE WHEN i % 2 = 0 THEN 'F' ELSE 'M' END AS GENDER, 'Town' AS BIRTHPLACE, i || ' Main St' AS ADDRESS,
               'City' AS CITY, 'MA' AS STATE, 'County' AS COUNTY, '02101' AS ZIP, 42.1 AS LAT, -71.0 AS LON,
               1000.0 AS HEALTHCARE_EXPENSES, 100.0 AS HEALTHCARE_COVERAGE
        FROM range({n}) t(i)""")
    classes = "['ambulatory','wellness','outpatient','urgentcare','emergency','inpatient','home','virtual']"
    copy("encounters", f"""
        SELECT 'e' || i || '_' || k AS Id,
               strftime(TIMESTAMP '2015-01-01 08:00:00' + INTERVAL (((i * 7 + k * 97) % 3000)) DAY, '%Y-%m-%dT%H:%M:%SZ') AS START,
               strftime(TIMESTAMP '2015-01-01 09:00:00' + INTERVAL (((i * 7 + k * 97) % 3000)) DAY, '%Y-%m-%dT%H:%M:%SZ') AS STOP,
               'p' || i AS PATIENT, 'org' || (i % 50) AS ORGANIZATION, 'prov' || (i % 500) AS PROVIDER, 'pay1' AS PAYER,
               {classes}[1 + (i + k) % 8] AS ENCOUNTERCLASS, '185345009' AS CODE, 'Encounter for symptom' AS DESCRIPTION,
               100.0 AS BASE_ENCOUNTER_COST, 120.0 AS TOTAL_CLAIM_COST, 0 AS PAYER_COVERAGE, NULL AS REASONCODE, NULL AS REASONDESCRIPTION
        FROM range({n}) t(i), range(8) u(k)""")
    copy("conditions", f"""
        SELECT strftime(DATE '2015-01-01' + CAST((i * 7 + k * 97) % 3000 AS INTEGER), '%Y-%m-%d') AS START, NULL AS STOP,
               'p' || i AS PATIENT, 'e' || i || '_' || k AS ENCOUNTER,
               ['10509002','195662009','44054006','444814009','40055000'][1 + (i + k) % 5] AS CODE, 'condition' AS DESCRIPTION
        FROM range({n}) t(i), range(3) u(k)""")
    copy("medications", f"""
        SELECT strftime(TIMESTAMP '2015-01-02 10:00:00' + INTERVAL (((i * 7 + k * 97) % 3000)) DAY, '%Y-%m-%dT%H:%M:%SZ') AS START,
               strftime(TIMESTAMP '2015-01-12 10:00:00' + INTERVAL (((i * 7 + k * 97) % 3000)) DAY, '%Y-%m-%dT%H:%M:%SZ') AS STOP,
               'p' || i AS PATIENT, 'pay1' AS PAYER, 'e' || i || '_' || k AS ENCOUNTER,
               ['562251','308182','857005','310965','197361'][1 + (i * 3 + k) % 5] AS CODE,
               ['Amoxicillin 250 MG / Clavulanate 125 MG Oral Tablet','Amoxicillin 250 MG Oral Capsule',
                'Hydrocodone Bitartrate 10 MG / Acetaminophen 325 MG Oral Tablet','Ibuprofen 200 MG Oral Tablet',
                'Amlodipine 5 MG Oral Tablet'][1 + (i * 3 + k) % 5] AS DESCRIPTION,
               10.0 AS BASE_COST, 0 AS PAYER_COVERAGE, 1 AS DISPENSES, 10.0 AS TOTALCOST, NULL AS REASONCODE, NULL AS REASONDESCRIPTION
        FROM range({n}) t(i), range(3) u(k)""")
    copy("observations", f"""
        SELECT strftime(TIMESTAMP '2015-01-01 08:30:00' + INTERVAL (((i * 7 + (k % 8) * 97) % 3000)) DAY, '%Y-%m-%dT%H:%M:%SZ') AS DATE,
               'p' || i AS PATIENT, 'e' || i || '_' || (k % 8) AS ENCOUNTER,
               CASE WHEN k < 5 THEN 'laboratory' ELSE 'vital-signs' END AS CATEGORY,
               ['718-7','2160-0','2339-0','6298-4','2947-0','8302-2','29463-7','39156-5','8480-6','8462-4'][1 + k] AS CODE,
               'observation' AS DESCRIPTION, round(5 + random() * 10, 1) AS VALUE,
               ['g/dL','mg/dL','mg/dL','mmol/L','mmol/L','cm','kg','kg/m2','mm[Hg]','mm[Hg]'][1 + k] AS UNITS, 'numeric' AS TYPE
        FROM range({n}) t(i), range(10) u(k)""")
    copy("procedures", f"""
        SELECT strftime(TIMESTAMP '2015-01-01 08:40:00' + INTERVAL (((i * 7 + k * 97) % 3000)) DAY, '%Y-%m-%dT%H:%M:%SZ') AS START,
               NULL AS STOP, 'p' || i AS PATIENT, 'e' || i || '_' || k AS ENCOUNTER,
               ['430193006','171207006'][1 + k] AS CODE, 'procedure' AS DESCRIPTION, 50.0 AS BASE_COST, NULL AS REASONCODE,
               NULL AS REASONDESCRIPTION
        FROM range({n}) t(i), range(2) u(k)""")
    con.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", type=int, default=100_000)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    write(a.persons, a.out)
