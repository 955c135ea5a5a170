"""Rule statements judged several at a time (``LOWVALUE_SCAN_THREADS``): same files, same errors."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

import lowvalue
from lowvalue.engine import scan as scan_module
from lowvalue.engine.scan import ScanResult, THREADS_ENV
from lowvalue.errors import LowvalueError
from lowvalue.rules.library import load_library

RS = load_library()
EXAMPLE = Path(__file__).parents[2] / "examples" / "synthetic_data"


def test_one_thread_and_several_write_the_same_files(tmp_path, monkeypatch):
    """Rules appending their rows in another order (three at once, two partitions) change no output file."""
    written = {}
    for threads in ("1", "3"):
        monkeypatch.setenv(THREADS_ENV, threads)
        r = lowvalue.scan(EXAMPLE, RS, codes=EXAMPLE / "region-codes", partitions=2, features=False)
        assert len(r.flags) > 500  # the features are computed on the main thread, as before
        written[threads] = r.write(tmp_path / threads)
    for name in ScanResult.TABLES:
        assert (written["1"] / f"{name}.parquet").read_bytes() == (written["3"] / f"{name}.parquet").read_bytes(), name


def test_a_failing_rule_statement_raises_its_own_error(monkeypatch):
    """A statement failing on a worker's cursor surfaces as DuckDB raised it, as when the rules ran one at a time,
    and the extract stays usable for another scan."""
    from lowvalue.data.extract import open_extract

    judge_sql = scan_module.judge_sql
    broken = sorted(r.id for r in RS.rules.values() if r.type != "trigger")[5]
    with duckdb.connect() as con:
        with pytest.raises(duckdb.Error) as direct:
            con.execute("SELECT * FROM lv_no_such_table")
    started = []
    monkeypatch.setattr(scan_module, "judge_sql", lambda rule, rs: (
        started.append(rule.id) or "SELECT * FROM lv_no_such_table" if rule.id == broken else judge_sql(rule, rs)))
    with open_extract(EXAMPLE) as x:
        for threads in ("1", "2"):
            monkeypatch.setenv(THREADS_ENV, threads)
            with pytest.raises(duckdb.Error) as err:
                lowvalue.scan(x, RS, features=False)
            assert type(err.value) is type(direct.value)
            assert str(err.value).splitlines()[0] == str(direct.value).splitlines()[0]
        assert started == [broken, broken]  # judged (on a worker: not the first rule), and not on another partition
        monkeypatch.setattr(scan_module, "judge_sql", judge_sql)
        assert len(lowvalue.scan(x, RS, only=[broken]).candidates) > 0


def _two_rules_data():
    from lowvalue.rules.decks import case_frames

    return case_frames(RS.rules["LV-HOSP-027"].tests[0])


@pytest.mark.parametrize("value", ["0", "two", "-1", ""])
def test_a_bad_thread_count_is_one_clear_error(monkeypatch, value):
    monkeypatch.setenv(THREADS_ENV, value)
    with pytest.raises(LowvalueError, match=THREADS_ENV):
        lowvalue.scan(_two_rules_data(), RS, only=["LV-HOSP-027"])
