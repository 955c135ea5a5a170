"""The report renders in both languages, with and without the risk layer's files and reviewer verdicts."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from lowvalue.report import aggregate
from lowvalue.cli import main
from lowvalue.report.i18n import THIN, Numbers
from lowvalue.report.render import build_html
from lowvalue.results import read_manifest, stamp, write_table

FEW = ["LV-ABX-003", "LV-ABX-004", "LV-HOSP-028"]


def test_full_english_report_has_every_part_and_no_ids(example_results: Path, example_html_en: Path) -> None:
    html = example_html_en.read_text()
    s = aggregate.summary(aggregate.load(example_results), aggregate.Suppressor())
    for rid in s.rule_id:
        assert f'id="trend-{rid}"' in html and f'id="funnel-{rid}"' in html and f'id="def-{rid}"' in html
    for part in ("summary-table", "chart-cost", "chart-harm", "rank-recipe", "methods-data", "methods-evaluability",
                 "methods-excess", "methods-model", "methods-suppression"):
        assert f'id="{part}"' in html
    assert "no verdicts yet" in html and "not estimated" in html and "No risk model given" in html
    n = len(s)
    assert f"Rule status: {n} draft, 0 clinically reviewed, 0 approved." in html  # the first page says they are drafts
    assert html.count("clinical owner: not assigned; next review: –;") == n and "codes not yet verified" in html
    assert "http://" not in html.replace('href="http', "") and "<script src" not in html and "<link" not in html
    flags = pd.read_parquet(example_results / "flags.parquet", columns=["flag_id", "person_id", "encounter_id"])
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)  # ids cannot hide in chart pixels as text
    for col in ("flag_id", "person_id", "encounter_id"):
        leaked = [v for v in flags[col].unique() if v in text]
        assert not leaked, f"{col} in the report: {leaked[:3]}"
    assert 'data-sort="0.4"' not in html  # weights are shown as text, not leaked sort keys
    assert "(0.40 × volume + 0.40 × triggers + 0.20 × confidence) / 1.00" in html


def test_swedish_text_and_number_format(example_results: Path, ruleset) -> None:
    inp = aggregate.load(example_results, rules=ruleset)
    html = build_html(inp, lang="sv", only=FEW)
    assert '<html lang="sv">' in html and "Beslutsunderlag" in html and "inga granskningar än" in html
    assert "Metodbilaga" in html and "Decision table" not in html and "Ordlista" in html
    s = aggregate.summary(inp, aggregate.Suppressor(), lang="sv").set_index("rule_id")
    rate = s.loc["LV-HOSP-028", "rate_per_1000"]
    assert Numbers("sv").ci(rate, s.loc["LV-HOSP-028", "rate_lo"], s.loc["LV-HOSP-028", "rate_hi"]) in html
    assert "0,40 × volym" in html
    en = build_html(inp, lang="en", only=FEW)
    assert Numbers("en").ci(rate, s.loc["LV-HOSP-028", "rate_lo"], s.loc["LV-HOSP-028", "rate_hi"]) in en
    assert len(re.findall(r'class="chart trend"', html)) == len(FEW)


def test_numbers_per_language() -> None:
    sv, en = Numbers("sv"), Numbers("en")
    assert sv.num(1234567.891, 1) == f"1{THIN}234{THIN}567,9" and en.num(1234567.891, 1) == "1,234,567.9"
    assert sv.num(-2.5, 1) == "\u22122,5" and en.num(-2.5, 1) == "-2.5" and sv.num(-0.01, 1) == "0,0"
    assert sv.pct(0.853) == f"85{THIN}%" and sv.ci(24.2, -3.1, 50.7) == "24 (\u22123 till 51)"


def test_excess_and_verdicts_when_present(example_results: Path, tmp_path: Path, ruleset) -> None:
    excess = pd.DataFrame({"rule_id": ["LV-ABX-003", "LV-ABX-004"], "status": ["estimated", "not estimated: too few"],
                           "label": "adjusted association, not a causal effect", "n_treated": [26, 3],
                           "n_control": [28, 2], "total_excess": [12.4, None], "total_excess_lo": [3.1, None],
                           "total_excess_hi": [21.9, None], "excess_per_1000": [470.0, None]})
    write_table(excess, tmp_path / "excess_risk.parquet", stamp_of=stamp(read_manifest(example_results)))
    flags = pd.read_parquet(example_results / "flags.parquet", columns=["flag_id", "rule_id"]).sort_values("flag_id")
    a = flags[flags.rule_id == "LV-ABX-003"].flag_id.head(10)
    b = flags[flags.rule_id == "LV-ABX-004"].flag_id.head(12)
    verdicts = pd.DataFrame({"flag_id": list(a) + list(b),
                             "verdict": ["confirmed"] * 7 + ["rejected"] * 3 + ["confirmed", "rejected"] * 6})
    # the final labels of a simple random review round (only sampled rounds feed the precision)
    verdicts = verdicts.assign(round_id=1, round_design="review round 1 (simple random sample, seed 1)",
                               round_tier="specific", round_stratum="all", round_frame_n=40,
                               round_verdict=verdicts.verdict)
    write_table(verdicts, tmp_path / "verdicts.parquet", stamp_of=stamp(read_manifest(example_results)))
    inp = aggregate.load(example_results, excess=tmp_path / "excess_risk.parquet",
                         verdicts=tmp_path / "verdicts.parquet", rules=ruleset)
    html = build_html(inp, lang="en", only=FEW)
    assert "12 (3 to 22)" in html and "12 (3 to 22) †" not in html  # total excess with its 95 % CI, no caution
    cautious = aggregate.load(example_results, excess=_with_caution(excess, tmp_path, example_results), rules=ruleset)
    assert "12 (3 to 22) †" in build_html(cautious, lang="en", only=FEW)
    assert "50 (25 to 75) % (6 of 12)" in html  # LV-ABX-004: 6 confirmed of 12 reviewed, Wilson 95 % CI
    row = re.search(r"LV-ABX-003</a></td>(.*?)</tr>", html, re.S).group(1)
    assert 'class="num suppressed" data-sort="">–<' in row and "70 " not in row  # 3 rejected: precision suppressed
    assert "No unmeasured confounding" in html or "Assumptions" in html
    assert 'id="chart-harm"' in html and "data:image/png" in html.split('id="chart-harm"')[1][:300]
    s = aggregate.summary(inp, aggregate.Suppressor())
    assert s.set_index("rule_id").loc["LV-ABX-004", "confidence_source"] == "precision (lower 95 % limit)"


def test_model_metrics_in_methods(example_results: Path, tmp_path: Path, ruleset) -> None:
    model = tmp_path / "models" / "m"
    model.mkdir(parents=True)
    (model / "metrics.json").write_text(
        '{"horizon_days": 30, "population": "eligible candidates", "validation": {"n": 812, "events": 41, '
        '"auroc": {"estimate": 0.7412, "ci_low": 0.69, "ci_high": 0.79}}, "split": {}}')
    inp = aggregate.load(example_results, model=model, rules=ruleset)
    html = build_html(inp, lang="en", only=FEW[:1])
    assert 'id="methods-model"' in html and "0.741 (0.690 to 0.790)" in html and "n = 812" in html


def test_cli(example_results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "r" / "report.html"
    res = CliRunner().invoke(main, ["report", str(example_results), "--out", str(out), "--lang", "en", "--min-count", "10",
                                      "--rule", "LV-ABX-003", "--weights", "volume=1,harm=0,confidence=0"])
    assert res.exit_code == 0, res.output
    html = out.read_text()
    assert "Counts below 10" in html and "1.00 × volume + 0.00 × triggers" in html
    res = CliRunner().invoke(main, ["report", str(example_results), "--out", str(out), "--rule", "NOPE"])
    assert res.exit_code == 2 and "NOPE" in res.output
    res = CliRunner().invoke(main, ["report", str(tmp_path / "missing"), "--out", str(out)])
    assert res.exit_code == 2 and "results folder" in res.output
    res = CliRunner().invoke(main, ["report", str(example_results), "--out", str(out), "--weights", "speed=1"])
    assert res.exit_code == 2 and "unknown weight" in res.output
    monkeypatch.setenv("LOWVALUE_CHROMIUM", str(tmp_path / "no-such-browser"))
    res = CliRunner().invoke(main, ["report", str(example_results), "--out", str(out), "--rule", "LV-ABX-003", "--pdf"])
    assert res.exit_code == 2 and "--pdf needs Chromium" in res.output


def _with_caution(excess: pd.DataFrame, tmp_path: Path, results: Path) -> Path:
    path = tmp_path / "excess_caution.parquet"
    return write_table(excess.assign(cautions=["imprecise: < 10 events in an arm", ""]), path,
                       stamp_of=stamp(read_manifest(results)))
