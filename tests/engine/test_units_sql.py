"""The SQL unit conversion (``sql.convert_sql``) gives what :meth:`Units.factor` defines, for units as written,
differently spaced or cased, missing, empty or not listed, also where a listed unit lowers like the canonical one."""

from __future__ import annotations

import dataclasses

import duckdb
import pytest

from lowvalue.engine import sql
from lowvalue.rules.codes import Units, ValueSet

UNITS = ["umol/L", "UMOL/L", " umol/l ", "mg/dL", "mg/dl", "MG/DL", " mg/dL", "mmol/L", "µmol/L", "µMOL/L", "", "  ",
         None, "g/L", "umol/L ", "Umol/L"]


@pytest.mark.parametrize("units", [
    Units("umol/L", {"mg/dL": 88.4, "mmol/L": 1000, "µmol/L": 1}),
    Units("umol/L", {"UMOL/L": 2.0, "mg/dL": 88.4, "MG/DL": 3.0}),  # listed units that lower like earlier ones
    Units(" umol/L", {"mg/dL ": 88.4}),  # units written with surrounding space are compared trimmed only
    Units("INR", {}),
])
def test_convert_sql_agrees_with_units_factor(units):
    vs = dataclasses.replace(ValueSet.inline("lab", {"NPU": ["NPU1"]}), units=units)
    con = duckdb.connect()
    con.execute("CREATE TABLE t (value DOUBLE, unit VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [[1.7, u] for u in UNITS] + [[None, "mg/dL"]])
    got = con.execute(f"SELECT unit, {sql.convert_sql(vs, 'value', 'unit')} FROM t ORDER BY rowid").fetchall()
    for unit, value in got[:-1]:
        factor = units.factor(unit)
        assert value == (None if factor is None else 1.7 * factor), unit
    assert got[-1][1] is None
