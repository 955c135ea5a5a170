"""A scan on Spark (``scan --engine spark``) writes the same result folder as a scan on DuckDB.

Same content, not the same bytes: every table has the same column names and Arrow types (nullability aside: Spark
marks fewer columns required) and the same rows in the same order; the Parquet files differ (another writer).
One scan per engine of the bundled synthetic region, shared by the tests (a Spark scan costs seconds per query).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from unittest import mock

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from lowvalue.cli import main
from lowvalue.engine import spark_scan
from lowvalue.engine.scan import ScanResult, scan
from lowvalue.privacy import ID_COLUMNS, pseudonym
from lowvalue.rules.overlay import load_rules

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from extract_fixtures import ENCOUNTERS, EVENTS, PERSONS, write_extract  # noqa: E402

pytest.importorskip("pyspark")
if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
    pytest.skip("the Spark engine needs Java 17 (java on PATH or JAVA_HOME)", allow_module_level=True)

SYNTHETIC = "examples/synthetic_data"
# lab threshold with unit conversion, medication coverage, first_in, same_encounter with index_ratio, a rule whose
# candidates are mostly not eligible (LV-PRE-015), and triggers (prior triggers are a feature)
KEY = "a-secret-key-of-enough-length"
RULES = ["LV-HOSP-027", "LV-RX-026", "LV-IMG-001", "LV-HOSP-028", "LV-PRE-015", "TR-AKI", "TR-BLEEDING"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    rs = load_rules(None, f"{SYNTHETIC}/region-codes").select(RULES)
    out = tmp_path_factory.mktemp("spark-scan")
    results = {"duckdb": scan(SYNTHETIC, rs, quarantine_dir=out / "q-duckdb")}
    # the Spark scan reads and checks the extract on Spark: DuckDB's reading step and the Parquet hand-over unused
    with mock.patch("lowvalue.data.extract.open_extract", side_effect=AssertionError("read by DuckDB")), \
            mock.patch.object(spark_scan.spark, "export", side_effect=AssertionError("handed over from DuckDB")):
        results["spark"] = scan(SYNTHETIC, rs, engine="spark", quarantine_dir=out / "q-spark")
    for engine, result in results.items():
        result.write(out / engine)
        result.pseudonymised(KEY.encode()).write(out / f"{engine}-pseudonymised")
    return out / "duckdb", out / "spark"


def _content(path: Path) -> tuple[list[tuple[str, str]], list[dict]]:
    table = pq.read_table(path)
    return [(f.name, str(f.type)) for f in table.schema], table.to_pylist()


@pytest.mark.parametrize("name", ScanResult.TABLES)
def test_every_table_has_the_same_content(folders, name):
    duck, spark = (_content(f / f"{name}.parquet") for f in folders)
    assert duck[0] == spark[0], f"{name}: columns or types differ"
    assert len(duck[1]) == len(spark[1]), f"{name}: {len(duck[1])} rows on DuckDB, {len(spark[1])} on Spark"
    for i, (a, b) in enumerate(zip(duck[1], spark[1])):
        assert a == b, f"{name} row {i}:\nduckdb {a}\nspark  {b}"


def test_the_scan_has_something_to_compare(folders):
    duck = folders[0]
    assert pq.read_metadata(duck / "flags.parquet").num_rows > 100
    assert pq.read_metadata(duck / "triggers.parquet").num_rows > 10
    assert pq.read_metadata(duck / "features.parquet").num_rows > 100
    assert pq.read_table(duck / "waterfall.parquet").num_rows > 20


def test_manifest_says_spark_and_counts_agree(folders):
    duck, spark = (json.loads((f / "manifest.json").read_text()) for f in folders)
    assert spark["complete"] and spark["engine"] == "spark" and "pyspark" in spark["versions"]
    assert duck["engine"] == "duckdb"
    assert spark["rows"] == duck["rows"] and spark["data"] == duck["data"] and spark["rule_set"] == duck["rule_set"]
    assert not any(p.name.startswith(".") for p in folders[1].iterdir()), "a Spark part folder was left behind"


def test_faulty_extract_same_quarantine_and_counts(tmp_path):
    """Bad rows are quarantined with the same reason codes, and counts reconcile, on both engines: Spark reads and
    checks the extract itself (through a file:// URI), with the checks of validation.py rendered for Spark."""
    data = write_extract(tmp_path / "data",
                         persons=PERSONS + ["P1,1950-01-01,F,Uppsala,VC Gränby,", "P3,1950-13-01,X,Uppsala,,"],
                         encounters=ENCOUNTERS + ["E3,P9,2025-03-01 09:00,,primary_care,VC Gränby,-5"],
                         events=EVENTS + [EVENTS[0], "P1,E1,not a time,diagnosis,ICD-10-SE,J06.9,,,,",
                                          "P1,E1,2025-03-01T09:12:00+01:00,diagnosis,ICD-10-SE,J06.9,,,,"])
    runs = {}
    for engine in ("duckdb", "spark"):
        source = data.as_uri() if engine == "spark" else str(data)
        res = CliRunner().invoke(main, ["scan", source, "--out", str(tmp_path / engine), "--engine", engine,
                                        "--only", "LV-ABX-003"])
        assert res.exit_code == 0, res.output
        runs[engine] = tmp_path / engine
    duck, spark = (json.loads((f / "manifest.json").read_text())["data"] for f in runs.values())
    assert duck == spark and spark["warnings"]  # counts, reasons, warnings (times with and without an offset)
    duck, spark = duck["counts"], spark["counts"]
    assert all(c["read"] == c["accepted"] + c["quarantined"] for c in spark.values())
    assert {c for t in spark.values() for c in t["reasons"]} >= {"duplicate_key", "bad_date:birth_date", "unknown_sex",
                                                                  "unknown_person", "negative_cost", "duplicate_row",
                                                                  "bad_timestamp:time"}
    for table in ("persons", "encounters", "events"):
        a, b = (pq.read_table(f / "quarantine" / f"{table}.parquet").to_pylist() for f in runs.values())
        assert a == b and a, table


def test_bad_input_is_one_line_and_exit_2_on_spark(tmp_path):
    res = CliRunner().invoke(main, ["scan", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"),
                                    "--engine", "spark"])
    assert res.exit_code == 2, res.output
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "not found" in err[0], res.stderr
    assert "Traceback" not in res.output


def test_a_remote_path_goes_to_spark_and_fails_in_one_line(tmp_path):
    """A remote extract is passed to Spark (DuckDB refuses it in one line); a file system Spark lacks (s3a without
    hadoop-aws here) is one line and exit 2."""
    res = CliRunner().invoke(main, ["scan", "s3a://bucket/region", "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and "--engine spark" in res.stderr.strip().splitlines()[0]
    res = CliRunner().invoke(main, ["scan", "s3a://bucket/region", "--out", str(tmp_path / "out"), "--engine", "spark"])
    err = res.stderr.strip().splitlines()
    assert res.exit_code == 2 and "Traceback" not in res.output and len(err) == 1, res.output
    assert err[0].startswith("error: s3a://bucket/region") and "Spark cannot open it" in err[0]


@pytest.mark.parametrize("name", ScanResult.TABLES)
def test_pseudonymised_tables_have_the_same_content(folders, name):
    """``--pseudonymise`` on Spark: the same pseudonyms (computed by Spark's sha2, not on the driver) in the same
    rows and order as on DuckDB, and no original id left."""
    duck, spark = (_content(f.with_name(f"{f.name}-pseudonymised") / f"{name}.parquet") for f in folders)
    assert duck == spark, f"{name}: pseudonymised tables differ"
    plain = _content(folders[1] / f"{name}.parquet")[1]
    for col in ID_COLUMNS:
        originals = {row[col] for row in plain if row.get(col) is not None}
        if originals:
            assert all(row[col].startswith("ps_") for row in spark[1] if row[col] is not None), (name, col)
            assert originals.isdisjoint(row[col] for row in spark[1]), f"{name}.{col} keeps an original id"
            assert {row[col] for row in spark[1]} == {pseudonym(KEY.encode(), v) for v in originals}, (name, col)


def test_pseudonymised_manifest_says_so(folders):
    duck, spark = (json.loads((f.with_name(f"{f.name}-pseudonymised") / "manifest.json").read_text()) for f in folders)
    assert spark["pseudonymised"] == duck["pseudonymised"] and spark["rows"] == duck["rows"]


def test_the_pads_make_hmac_sha256():
    """The padded keys Spark hashes with give Python's HMAC, for keys shorter and longer than SHA-256's block."""
    import hashlib

    for key in (b"k" * 16, b"a-secret-key-of-enough-length", bytes(range(64)), b"x" * 200):
        inner, outer = spark_scan.hmac_pads(key)
        for msg in (b"P0000016", "Åsa".encode()):
            mac = hashlib.sha256(outer + hashlib.sha256(inner + msg).digest()).hexdigest()
            assert "ps_" + mac[:20] == pseudonym(key, msg.decode())


@pytest.mark.parametrize("env, quarantine, message", [
    ("short", "q", "LOWVALUE_PSEUDONYM_KEY"),
    (KEY, None, "--pseudonymise needs --quarantine"),
    (KEY, "out/q", "inside the pseudonymised results folder"),
])
def test_pseudonymised_spark_scan_bad_setup_is_one_line(tmp_path, monkeypatch, env, quarantine, message):
    monkeypatch.setenv("LOWVALUE_PSEUDONYM_KEY", env)
    args = ["scan", SYNTHETIC, "--out", str(tmp_path / "out"), "--engine", "spark", "--pseudonymise"]
    res = CliRunner().invoke(main, args + (["--quarantine", str(tmp_path / quarantine)] if quarantine else []))
    err = res.stderr.strip().splitlines()
    assert res.exit_code == 2 and "Traceback" not in res.output and len(err) == 1, res.output
    assert message in err[0] and not (tmp_path / "out").exists()


def test_pseudonymised_spark_scan_from_the_command_line(tmp_path, monkeypatch):
    """End to end: the rejected rows (original ids) go to --quarantine outside the results; the results hold
    pseudonyms only and say so."""
    monkeypatch.setenv("LOWVALUE_PSEUDONYM_KEY", KEY)
    data = write_extract(tmp_path / "data", events=EVENTS + [EVENTS[0]])
    res = CliRunner().invoke(main, ["scan", str(data), "--out", str(tmp_path / "out"), "--engine", "spark",
                                    "--pseudonymise", "--quarantine", str(tmp_path / "q"), "--only", "LV-ABX-003"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "q" / "events.parquet").exists() and not (tmp_path / "out" / "quarantine").exists()
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["engine"] == "spark" and manifest["pseudonymised"]
    persons = {r["person_id"] for r in pq.read_table(tmp_path / "out" / "candidates.parquet").to_pylist()}
    assert persons and all(p.startswith("ps_") for p in persons)


def test_nothing_evaluable_writes_empty_tables_with_duckdbs_columns(tmp_path):
    """No rule can run (the tiny extract has no imaging): every table is still written, empty, in DuckDB's types."""
    data = write_extract(tmp_path / "data")
    out = {}
    for engine in ("duckdb", "spark"):
        result = scan(data, None, only=["LV-IMG-001"], engine=engine, quarantine_dir=tmp_path / f"q-{engine}")
        assert result.evaluability.status.tolist() == ["not_evaluable"]
        out[engine] = result.write(tmp_path / engine)
    for name in ScanResult.TABLES:
        duck, spark = (_content(f / f"{name}.parquet") for f in out.values())
        assert duck == spark, name
