"""Trends over earlier scans (issue 17, item 3): p-chart limits per segment, a break where the rule or the code
overlay changed, and no period that mixes months from before and after."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from lowvalue.cli import main
from lowvalue.report import aggregate
from lowvalue.report.suppress import Suppressor

from .conftest import write_tiny


def _earlier(tmp_path: Path, version: str, shift_years: int = 1) -> Path:
    """The tiny results a year earlier, scanned with rule version ``version``."""
    p = write_tiny(tmp_path / f"earlier-{version}")
    den = pd.read_parquet(p / "denominators.parquet")
    den["month"] = den.month.map(lambda m: None if not isinstance(m, str) else f"{int(m[:4]) - shift_years}{m[4:]}")
    den.to_parquet(p / "denominators.parquet", index=False)
    m = json.loads((p / "manifest.json").read_text())
    m["rule_set"]["rules"]["LV-ABX-003"] = version
    (p / "manifest.json").write_text(json.dumps(m))
    return p


def test_a_rule_change_breaks_the_series(tmp_path: Path, ruleset) -> None:
    now = write_tiny(tmp_path / "now")
    inp = aggregate.load(now, rules=ruleset, compare=[_earlier(tmp_path, "0")])
    t, period = aggregate.trend(inp, Suppressor(), "LV-ABX-003")
    assert t.period.iloc[0].startswith("2023") and t.period.iloc[-1].startswith("2024")
    assert int(t["break"].sum()) == 1 and t.segment.nunique() == 2
    first = t[t.segment == 0]
    assert (first.period.str[:4] == "2023").all()  # nothing from after the change in the first segment
    # each segment has its own centre line: the rate of its own months
    for _seg, g in t.groupby("segment"):
        assert g.centre.nunique() == 1
        assert g.centre.iloc[0] == 1000 * g.flagged_specific.sum() / g.eligible.sum()


def test_same_rule_and_overlay_means_no_break(tmp_path: Path, ruleset) -> None:
    now = write_tiny(tmp_path / "now")
    inp = aggregate.load(now, rules=ruleset, compare=[_earlier(tmp_path, "1")])
    t, _ = aggregate.trend(inp, Suppressor(), "LV-ABX-003")
    assert not t["break"].any() and t.segment.nunique() == 1 and t.period.iloc[0].startswith("2023")


def test_the_latest_scan_wins_where_scans_overlap(tmp_path: Path, ruleset) -> None:
    now = write_tiny(tmp_path / "now")
    same_months = _earlier(tmp_path, "0", shift_years=0)  # covers exactly the current months: contributes nothing
    inp = aggregate.load(now, rules=ruleset, compare=[same_months])
    t, _ = aggregate.trend(inp, Suppressor(), "LV-ABX-003")
    alone, _ = aggregate.trend(aggregate.load(now, rules=ruleset), Suppressor(), "LV-ABX-003")
    assert t.flagged.sum() == alone.flagged.sum() and not t["break"].any()


def test_cli_compare(tmp_path: Path) -> None:
    now = write_tiny(tmp_path / "now")
    out = tmp_path / "r.html"
    res = CliRunner().invoke(main, ["report", str(now), "--out", str(out), "--lang", "en",
                                    "--compare", str(_earlier(tmp_path, "0"))])
    assert res.exit_code == 0, res.output
    html = out.read_text()
    assert "Earlier scans (--compare)" in html and "the rule or the code overlay changed (1 time(s))" in html


def test_units_outside_the_limits_get_their_own_p_chart(tmp_path: Path, ruleset) -> None:
    from lowvalue.report.render import build_html

    inp = aggregate.load(write_tiny(tmp_path / "now"), rules=ruleset)
    html = build_html(inp, lang="sv", dispersion="none")  # binomial limits: VC-A (32 of 70) lies above them
    assert 'id="trend-LV-ABX-003-1"' in html and "<b>VC-A</b>: enhetens styrdiagram" in html
    t, _ = aggregate.trend(inp, Suppressor(), "LV-ABX-003", "VC-A")
    assert t.flagged.sum() == 55 and t.eligible.sum() == 70  # the unit's months only
    assert 'id="trend-LV-IMG-001-1"' not in html


def test_a_rule_edited_without_a_version_bump_breaks_the_series(tmp_path: Path) -> None:
    # two real scans of the bundled region; between them LV-ABX-003's window is edited in place, its version kept
    import shutil

    import lowvalue
    from lowvalue.shipped import shipped

    example = shipped("examples/synthetic_data")

    library = tmp_path / "rules"
    shutil.copytree(shipped("rules"), library)
    before, after = tmp_path / "before", tmp_path / "after"
    lowvalue.scan(example, rules=library, only=["LV-ABX-003"], features=False).write(before)
    rule = library / "LV-ABX-003.yaml"
    text = rule.read_text(encoding="utf-8")
    assert 'window: "[-3d, 0d]"' in text
    rule.write_text(text.replace('window: "[-3d, 0d]"', 'window: "[-5d, 0d]"', 1), encoding="utf-8")
    lowvalue.scan(example, rules=library, only=["LV-ABX-003"], features=False).write(after)
    old, new = (json.loads((p / "manifest.json").read_text())["rule_set"] for p in (before, after))
    assert old["rules"]["LV-ABX-003"] == new["rules"]["LV-ABX-003"]  # no version bump
    assert old["rule_digests"]["LV-ABX-003"] != new["rule_digests"]["LV-ABX-003"]
    assert old["rule_digests"]["TR-CDIFF"] == new["rule_digests"]["TR-CDIFF"]  # the unchanged trigger keeps its own
    # the earlier scan stands for the year before (the bundled region covers one period only)
    den = pd.read_parquet(before / "denominators.parquet")
    den["month"] = den.month.map(lambda m: None if not isinstance(m, str) else f"{int(m[:4]) - 2}{m[4:]}")
    den.to_parquet(before / "denominators.parquet", index=False)

    out = tmp_path / "report.html"
    res = CliRunner().invoke(main, ["report", str(after), "--compare", str(before), "--lang", "en",
                                    "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "the rule or the code overlay changed (1 time(s))" in out.read_text(encoding="utf-8")
    inp = aggregate.load(after, compare=[before])
    t, _ = aggregate.trend(inp, Suppressor(), "LV-ABX-003")
    assert int(t["break"].sum()) == 1 and t.segment.nunique() == 2
