"""``lowvalue export`` on bad input: one line, exit 2, never a password."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from lowvalue.cli import main


def _run(*args: str):  # noqa: ANN202
    return CliRunner().invoke(main, ["export", *args])


def _one_line_exit_2(r, *words: str) -> None:  # noqa: ANN001
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    for w in words:
        assert w in lines[0], lines[0]


def test_bad_input_is_one_line(example_results: Path, tmp_path: Path) -> None:
    _one_line_exit_2(_run(str(tmp_path / "nope"), "--to", "csv", "--out", str(tmp_path / "o")), "not a results folder")
    half = tmp_path / "half"
    shutil.copytree(example_results, half)
    m = json.loads((half / "manifest.json").read_text())
    (half / "manifest.json").write_text(json.dumps({**m, "complete": False}))
    _one_line_exit_2(_run(str(half), "--to", "csv", "--out", str(tmp_path / "o")), "unfinished scan")
    _one_line_exit_2(_run(str(example_results), "--to", "parquet", "--out", str(tmp_path / "o")),
                     "unknown export format", "meds-labels")
    _one_line_exit_2(_run(str(example_results), "--to", "csv"), "--out")
    _one_line_exit_2(_run(str(example_results), "--to", "xlsx", "--out", str(tmp_path / "r.csv")), ".xlsx")
    _one_line_exit_2(_run(str(example_results), "--to", "csv", "--locale", "de", "--out", str(tmp_path / "o")),
                     "--locale")
    _one_line_exit_2(_run(str(example_results), "--to", "sql"), "--url")
    _one_line_exit_2(_run(str(example_results), "--to", "sql", "--url", "not a url"), "not a database URL")
    r = _run(str(example_results), "--to", "sql", "--url", "oracle9://me:pw-123@h/db")
    _one_line_exit_2(r, "unknown kind of database", "me:***@h")
    assert "pw-123" not in r.output
    assert not (tmp_path / "o").exists()


def test_unreachable_database_is_one_line_without_the_password(example_results: Path) -> None:
    pytest.importorskip("psycopg")
    r = _run(str(example_results), "--to", "sql", "--url", "postgresql://lv:S3cret-pw@127.0.0.1:1/dwh")
    _one_line_exit_2(r, "postgresql+psycopg://lv:***@127.0.0.1:1/dwh", "cannot connect")
    assert "S3cret-pw" not in r.output
    r = CliRunner().invoke(main, ["export", str(example_results), "--to", "sql"],
                           env={"LOWVALUE_EXPORT_URL": "postgresql://lv:S3cret-pw@127.0.0.1:1/dwh"})
    _one_line_exit_2(r, "***")
    assert "S3cret-pw" not in r.output


def test_export_prints_what_it_wrote(example_results: Path, tmp_path: Path) -> None:
    r = _run(str(example_results), "--to", "omop-cohort", "--out", str(tmp_path / "c"))
    assert r.exit_code == 0, r.output
    assert "wrote omop-cohort export of scan" in r.output and (tmp_path / "c" / "cohort.csv").is_file()
