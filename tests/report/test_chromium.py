"""Open the report in headless Chromium: every chart and table is in the rendered DOM; a screenshot is kept.

Skips when Chromium is not installed (Debian: ``apt-get install chromium``; CI installs it in ``.ci/run``).
The screenshot goes to ``test-artifacts/report-screenshot.png`` (gitignored).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from lowvalue.report import aggregate
from lowvalue.report.render import chromium_args, find_chromium, to_pdf

from .conftest import ARTIFACTS

BROWSER = find_chromium()
pytestmark = pytest.mark.skipif(BROWSER is None, reason="Chromium not installed (apt-get install chromium); "
                                                          "the headless rendering test needs it")


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    return subprocess.run(chromium_args(BROWSER, str(profile)) + args, capture_output=True, text=True, timeout=120)


def test_report_renders_in_chromium(example_results: Path, example_html_en: Path, tmp_path: Path) -> None:
    url = example_html_en.resolve().as_uri()
    dom = _run(["--dump-dom", "--virtual-time-budget=3000", url], tmp_path).stdout
    assert "<table" in dom and 'id="summary-table"' in dom
    rules = aggregate.summary(aggregate.load(example_results), aggregate.Suppressor()).rule_id.tolist()
    rows = re.search(r'id="summary-table".*?<tbody>(.*?)</tbody>', dom, re.S).group(1)
    assert rows.count("<tr") == len(rules)
    for rid in rules:
        for kind in ("trend", "funnel"):
            fig = re.search(rf'<figure[^>]*id="{kind}-{re.escape(rid)}"[^>]*>\s*<img[^>]*src="data:image/png;base64,', dom)
            assert fig, f"{kind} chart of {rid} missing from the rendered page"
    for part in ("chart-cost", "methods-data", "methods-evaluability", "methods-suppression"):
        assert f'id="{part}"' in dom
    # the example's rule costs are unsourced: no cost chart, "not priced" instead (a priced run: test_prices.py)
    assert re.search(r'id="chart-cost"[^>]*>\s*<p class="na">[^<]*not priced', dom)

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report-screenshot.png"
    shot.unlink(missing_ok=True)
    _run([f"--screenshot={shot}", "--window-size=1280,2000", "--hide-scrollbars", url], tmp_path)
    assert shot.is_file() and shot.stat().st_size > 20_000


def test_pdf(example_results: Path, tmp_path: Path) -> None:
    from lowvalue.report.render import write_report

    html = tmp_path / "r.html"
    paths = write_report(example_results, html, lang="sv", only=["LV-ABX-003"], pdf=True)
    assert paths[-1] == tmp_path / "r.pdf" and paths[-1].read_bytes()[:4] == b"%PDF"
    assert to_pdf(html, tmp_path / "again.pdf").stat().st_size > 10_000
