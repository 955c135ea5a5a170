"""A region's code overlay: template from an extract, lint, --codes on scan, and the snapshot later commands read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from lowvalue.cli import main
from lowvalue.data.synth.coding import LOCAL_CODES
from lowvalue.errors import RuleError
from lowvalue.rules.library import load_library
from lowvalue.rules.overlay import apply_overlay, lint_overlay, load_overlay, rules_for_results

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "synthetic_data"
RS = load_library()


def _write(folder: Path, name: str, data: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


ENTRY = {"system": "RIS-X", "code": "MR-LR", "text": "MR ländrygg", "source": "RIS-katalog 2026", "checked_by": "A. A."}


def test_an_overlay_adds_codes_to_a_named_set_and_nothing_else(tmp_path):
    _write(tmp_path, "lumbar", {"codeset": "lumbar_spine_imaging", "entries": [ENTRY]})
    ov = load_overlay(tmp_path)
    rs = apply_overlay(RS, ov)
    assert rs.valuesets["lumbar_spine_imaging"].matches("RIS-X", "mr-lr")
    assert not RS.valuesets["lumbar_spine_imaging"].matches("RIS-X", "MR-LR")  # the library is not changed
    assert rs.valuesets["lumbar_spine_imaging"].regional[0].checked_by == "A. A."
    assert rs.digest == RS.digest and len(ov.digest) == 64 and ov.size == 1


@pytest.mark.parametrize("data, message", [
    ({"codeset": "no_such_set", "entries": [ENTRY]}, "unknown code set 'no_such_set'"),
    ({"codeset": "lumbar_spine_imaging", "entries": [{**ENTRY, "checked_by": ""}]}, "checked_by"),
    ({"codeset": "lumbar_spine_imaging", "entries": [{k: v for k, v in ENTRY.items() if k != "source"}]}, "source"),
    ({"codeset": "lumbar_spine_imaging", "entries": [{**ENTRY, "system": "KVÅ", "code": "X1"}]}, "not a well-formed KVÅ"),
    ({"codeset": "lumbar_spine_imaging", "entries": [ENTRY, dict(ENTRY)]}, "listed twice"),
    ({"codeset": "lumbar_spine_imaging", "entries": [{**ENTRY, "system": "CPT", "code": "72148"}]}, "already in the library"),
])
def test_lint_names_each_problem_with_its_file(tmp_path, data, message):
    path = _write(tmp_path, "x", data)
    _, problems = lint_overlay(tmp_path, RS)
    assert problems and any(message in p.one_line() and str(path) in p.one_line() for p in problems), problems


def test_a_bad_overlay_stops_scan_with_one_line_and_exit_2(tmp_path):
    _write(tmp_path / "codes", "x", {"codeset": "no_such_set", "entries": [ENTRY]})
    res = CliRunner().invoke(main, ["scan", str(EXAMPLE), "--codes", str(tmp_path / "codes"), "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "unknown code set 'no_such_set'" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "r" / "flags.parquet").exists()


def test_template_then_codes_round_trips_on_the_bundled_example(tmp_path):
    """Without the region's codes LV-IMG-001 is not evaluable; the template lists the region's unmatched RIS codes;
    an analyst moves the right ones into entries; with --codes the rule is evaluable and finds the planted flags."""
    run = CliRunner().invoke
    res = run(main, ["scan", str(EXAMPLE), "--out", str(tmp_path / "bare"), "--only", "LV-IMG-001"])
    assert res.exit_code == 0, res.output
    ev = pd.read_parquet(tmp_path / "bare" / "evaluability.parquet").set_index("rule_id")
    assert ev.loc["LV-IMG-001", "status"] == "not_evaluable" and "lumbar_spine_imaging" in ev.loc["LV-IMG-001", "reason"]
    assert len(pd.read_parquet(tmp_path / "bare" / "flags.parquet")) == 0

    res = run(main, ["codes", "template", str(EXAMPLE), "--out", str(tmp_path / "region-codes")])
    assert res.exit_code == 0, res.output
    tpl = yaml.safe_load((tmp_path / "region-codes" / "lumbar_spine_imaging.yaml").read_text(encoding="utf-8"))
    assert tpl["entries"] == [] and "LV-IMG-001 index" in tpl["note"]
    lumbar = {c for c, (_, _, cs) in LOCAL_CODES.items() if cs == "lumbar_spine_imaging"}
    suggested = {s["code"]: s for s in tpl["suggestions"]}
    assert lumbar <= set(suggested), tpl["suggestions"]  # the analyst finds the region's codes among the suggestions
    assert run(main, ["codes", "template", str(EXAMPLE), "--out", str(tmp_path / "region-codes")]).exit_code == 2

    tpl["entries"] = [{"system": suggested[c]["system"], "code": c, "text": LOCAL_CODES[c][1],
                       "source": "RIS undersökningskatalog", "checked_by": "test analyst"} for c in sorted(lumbar)]
    del tpl["suggestions"]
    codes = tmp_path / "filled"
    _write(codes, "lumbar_spine_imaging", tpl)
    res = run(main, ["codes", "lint", str(codes)])
    assert res.exit_code == 0 and "3 regional code(s) in 1 code set(s), 0 problem(s)" in res.output, res.output
    res = run(main, ["scan", str(EXAMPLE), "--codes", str(codes), "--out", str(tmp_path / "mapped"), "--only", "LV-IMG-001"])
    assert res.exit_code == 0, res.output
    ev = pd.read_parquet(tmp_path / "mapped" / "evaluability.parquet").set_index("rule_id")
    assert ev.loc["LV-IMG-001", "status"] == "evaluable"
    flags = pd.read_parquet(tmp_path / "mapped" / "flags.parquet")
    truth = pd.read_parquet(EXAMPLE / "truth" / "interventions.parquet")
    planted = truth[(truth.pattern == "LV-IMG-001") & truth.low_value]
    assert (flags.variant == "specific").sum() == len(planted) > 0

    manifest = json.loads((tmp_path / "mapped" / "manifest.json").read_text())
    assert manifest["rule_set"]["codes_overlay"]["codesets"] == {"lumbar_spine_imaging": 3}
    later = rules_for_results(tmp_path / "mapped")  # what risk, report and review read
    assert later.valuesets["lumbar_spine_imaging"].matches("LOKAL-RIS", "MR-LRYGG")
    (tmp_path / "mapped" / "region-codes" / "lumbar_spine_imaging.yaml").write_text("codeset: lumbar_spine_imaging\n")
    with pytest.raises(RuleError, match="changed after the scan"):
        rules_for_results(tmp_path / "mapped")


def test_results_without_an_overlay_read_the_shipped_library(tmp_path):
    shutil.rmtree(tmp_path, ignore_errors=True)
    tmp_path.mkdir()
    (tmp_path / "manifest.json").write_text(json.dumps({"rule_set": {"codes_overlay": None}}))
    assert not rules_for_results(tmp_path).valuesets["lumbar_spine_imaging"].regional
