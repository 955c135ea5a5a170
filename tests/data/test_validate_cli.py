"""The ``lowvalue validate`` command: exit codes, one-line errors, summary."""

from __future__ import annotations

from click.testing import CliRunner
from extract_fixtures import EVENTS, write_extract

from lowvalue.cli import main


def _run(*args):
    return CliRunner().invoke(main, ["validate", *map(str, args)])


def test_clean_extract_exit_0_and_counts(tmp_path):
    d = write_extract(tmp_path / "x")
    res = _run(d)
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert any(line.split()[:5] == ["events", "4", "4", "0", str(d / "events.csv")] for line in lines)
    assert any(line.split()[:4] == ["persons", "2", "2", "0"] for line in lines)
    assert not (d / "quarantine").exists()


def _assert_one_line_error(res, *fragments):
    assert res.exit_code == 2
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert "Traceback" not in res.output and "Traceback" not in res.stderr
    for f in fragments:
        assert f in err[0]


def test_missing_file_exit_2_one_line(tmp_path):
    d = write_extract(tmp_path / "x")
    (d / "encounters.csv").unlink()
    _assert_one_line_error(_run(d), "encounters.(parquet|csv", "file not found")


def test_missing_column_and_bad_encoding_exit_2(tmp_path):
    d = write_extract(tmp_path / "x", headers={"persons": "person_id,born,sex"}, persons=["P1,1950-01-01,F"])
    _assert_one_line_error(_run(d), "persons.csv", "column 'birth_date'")
    d2 = write_extract(tmp_path / "y")
    (d2 / "events.csv").write_bytes((d2 / "events.csv").read_text().encode("utf-16-le"))
    _assert_one_line_error(_run(d2), "events.csv:1:", "unreadable encoding")


def test_quarantine_written_and_strict_exit_2(tmp_path):
    d = write_extract(tmp_path / "x", events=[*EVENTS, EVENTS[0]])
    res = _run(d)
    assert res.exit_code == 0 and "duplicate_row 1" in res.stdout
    assert (d / "quarantine" / "events.parquet").is_file()
    res = _run(d, "--strict", "--quarantine", tmp_path / "q")
    _assert_one_line_error(res, "1 row(s) quarantined", "--strict")
    assert (tmp_path / "q" / "events.parquet").is_file()
    assert "events" in res.stdout  # the summary is still printed before failing
