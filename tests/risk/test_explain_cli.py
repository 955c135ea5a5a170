"""CLI end to end on the session region: score, explain (sv/en), triage, excess."""

from __future__ import annotations

import json
import shutil

from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from lowvalue.cli import main


def test_score_and_explain_in_both_languages(results: Path, trained: Path, tmp_path: Path) -> None:
    r = CliRunner()
    out = r.invoke(main, ["risk", "score", str(results), "--model", str(trained)])
    assert out.exit_code == 0, out.output
    s = pd.read_parquet(results / "flags_scored.parquet")
    assert len(s) == len(pd.read_parquet(results / "flags.parquet"))
    harmful = s[s.rule_id == "LV-RX-022"]
    assert harmful.risk.between(0, 1).all() and harmful.risk_percentile.between(0, 100).all()
    assert s[s.rule_id == "LV-IMG-001"].risk.isna().all()
    fid = harmful.sort_values("risk").flag_id.iloc[-1]
    sv = r.invoke(main, ["explain", fid, "--results", str(results), "--model", str(trained), "--lang", "sv",
                            "--out", str(tmp_path / "w.png")])
    assert sv.exit_code == 0, sv.output
    assert "Ålder" in sv.output and "år" in sv.output and "den skattade risken" in sv.output
    assert "log-odds" in sv.output and "Motivering" in sv.output and "Skattad risk" in sv.output
    assert "vårdskad" not in sv.output.lower()  # a trigger is not a vårdskada (issue 14, item 3)
    assert (tmp_path / "w.png").stat().st_size > 0
    en = r.invoke(main, ["explain", fid, "--results", str(results), "--model", str(trained), "--lang", "en"])
    assert en.exit_code == 0, en.output
    assert "Age " in en.output and "the estimated risk" in en.output and "Rationale" in en.output
    assert "describe the model, not causes" in en.output
    bad = r.invoke(main, ["explain", "nope", "--results", str(results), "--model", str(trained)])
    assert bad.exit_code == 2 and "no flag 'nope'" in bad.output


def test_triage_uses_truth_or_says_it_cannot(results: Path, tmp_path: Path) -> None:
    r = CliRunner()
    out = r.invoke(main, ["risk", "triage", str(results)])
    assert out.exit_code == 0 and "synthetic truth" in out.output
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copytree(results, bare, dirs_exist_ok=True)
    manifest = json.loads((results / "manifest.json").read_text())
    manifest["data"]["sources"] = {}  # results kept without the extract: no truth to fall back on
    (bare / "manifest.json").write_text(json.dumps(manifest))
    out = r.invoke(main, ["risk", "triage", str(bare)])
    assert out.exit_code == 0 and "no triage score is produced" in out.output
