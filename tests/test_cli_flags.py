"""`lowvalue flags RESULTS --top N`: how a newcomer finds a flag id for `explain`, without any person id on screen."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from lowvalue.cli import main


def test_flags_lists_the_latest_ids_without_person_ids(example_results: Path) -> None:
    r = CliRunner().invoke(main, ["flags", str(example_results), "--top", "3", "--rule", "LV-IMG-001"])
    assert r.exit_code == 0, r.output
    flags = pd.read_parquet(example_results / "flags.parquet").query("rule_id == 'LV-IMG-001'")
    latest = flags.sort_values(["index_time", "flag_id"], ascending=False).head(3)
    assert all(fid in r.output for fid in latest.flag_id)
    assert sum(fid in r.output for fid in flags.flag_id) == 3
    assert not any(pid in r.output for pid in flags.person_id) and "person_id" not in r.output


def test_flags_puts_the_highest_risk_first_once_scored(example_results: Path, tmp_path: Path) -> None:
    from lowvalue.results import write_derived

    results = Path(shutil.copytree(example_results, tmp_path / "results"))
    flags = pd.read_parquet(results / "flags.parquet")
    scored = flags.assign(risk=[i / len(flags) for i in range(len(flags))], risk_percentile=50.0)
    write_derived(scored, results, "flags_scored.parquet")
    r = CliRunner(env={"COLUMNS": "240"}).invoke(main, ["flags", str(results), "--top", "1"])
    text = " ".join(r.output.split())  # a long temporary path may still wrap the heading
    assert r.exit_code == 0 and scored.flag_id.iloc[-1] in text and "highest risk first" in text


def test_flags_refuses_a_folder_that_is_not_a_scan(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["flags", str(tmp_path)])
    assert r.exit_code == 2 and "lowvalue scan" in r.output
