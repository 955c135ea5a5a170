"""The Python API on the bundled example: every step of the command line, returning pandas objects or paths."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lowvalue import api
from lowvalue.errors import LowvalueError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "synthetic_data"


def test_every_step_of_the_cli_from_python(tmp_path: Path, example_results: Path) -> None:
    results = api.scan(EXAMPLE, tmp_path / "results", codes=EXAMPLE / "region-codes")
    assert results == tmp_path / "results" and (results / "manifest.json").is_file()
    flags = api.read(results, "flags")
    # the same library call as the command (and the session's scan): the same flags
    pd.testing.assert_frame_equal(flags, pd.read_parquet(example_results / "flags.parquet"))
    assert len(api.read(results, "denominators")) > 0

    metrics = api.train(results, tmp_path / "model", n_boot=0)  # no bootstrap CIs: a fast test
    assert api.risk_train is api.train
    assert {"auroc", "brier"} <= set(metrics.index) and {"estimate", "ci_low", "ci_high"} <= set(metrics.columns)
    assert (tmp_path / "model" / "model_card.md").is_file()

    scored = api.score(results, tmp_path / "model")
    assert len(scored) == len(flags) and "risk" in scored
    pd.testing.assert_frame_equal(scored, api.read(results, "flags_scored"))

    ex = api.excess(results, rules=["LV-RX-022"])
    assert isinstance(ex, pd.DataFrame) and set(ex.rule_id) == {"LV-RX-022"}

    fid = scored[scored.risk.notna()].sort_values(["risk", "flag_id"]).flag_id.iloc[-1]
    text = api.explain(fid, results, tmp_path / "model", lang="en")
    assert fid in text.text() or text.rule_id in text.text()
    assert isinstance(text.groups, pd.DataFrame)

    html = api.report(results, tmp_path / "report.html", lang="en", model=tmp_path / "model", rules=["LV-RX-022"])
    assert html[0] == tmp_path / "report.html" and html[0].stat().st_size > 0 and len(html) == 3  # + decision CSV, Markdown

    paths = api.export(results, "csv", tmp_path / "csv", locale="sv")
    assert tmp_path / "csv" / "flags.csv" in paths
    rows = api.export(results, "sql", url=f"sqlite:///{tmp_path / 'x.db'}")
    assert rows["flags"] == len(flags)


def test_api_errors_are_the_commands_one_liners(tmp_path: Path) -> None:
    with pytest.raises(LowvalueError, match="not a results folder"):
        api.read(tmp_path / "nothing")
    with pytest.raises(LowvalueError, match="unknown export format"):
        api.export(tmp_path, "pdf", tmp_path / "x")
