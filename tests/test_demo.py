"""The README's main job (`make demo` → `lowvalue demo`) runs end to end on the bundled region."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from click.testing import CliRunner

from lowvalue.cli import main


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo-output"
    r = CliRunner().invoke(main, ["demo", "--out", str(out)])
    assert r.exit_code == 0, r.output
    for step in range(1, 9):
        assert f"\n{step}. " in "\n" + r.output, step
    for f in ("scan/flags.parquet", "scan/manifest.json", "scan/excess_risk.parquet", "scan/flags_scored.parquet",
              "model/model_card.md", "model/calibration.png", "explain.png", "report-en.html", "report-sv.html"):
        assert (out / f).stat().st_size > 0, f
    from report.test_artefacts import scan  # tests/report: every shared artefact of the demo's reports, scanned

    from report.test_messages import english_words, visible_text

    for lang in ("en", "sv"):
        assert scan(out / f"report-{lang}.html", lang) > 100
    assert not english_words(visible_text((out / "report-sv.html").read_text(encoding="utf-8")))
    manifest = json.loads((out / "scan" / "manifest.json").read_text())
    assert manifest["engine"] == "duckdb" and manifest["rule_set"]["digest"] and manifest["data"]["fingerprint"]
    with sqlite3.connect(out / "review.sqlite") as con:
        assert con.execute("SELECT count(*) FROM flags WHERE variant != 'unflagged'").fetchone()[0] == manifest["rows"]["flags"]
        assert con.execute("SELECT count(*) FROM rounds").fetchone()[0] == 1  # the demo ends with a sampled round
