"""Every shared artefact of a report (the HTML's text, the decision table's CSV and Markdown side files) is scanned
for counts below the threshold that are not suppressed (issue 17, item 1).

The scan reads the artefacts as a recipient would: table cells by their column heading. A count column shows a
count of 5 or more, a zero, the suppression mark or the missing mark; a rate whose numerator or denominator is
suppressed is suppressed too; the two tiers of a rule are never one suppressed beside one shown non-zero part
(that part would give the other away through the flagged total); "c of n" texts show no small count.
"""

from __future__ import annotations

import csv
import html as htmllib
import re
from pathlib import Path

import pytest

from lowvalue.report.i18n import STRINGS
from lowvalue.report.render import write_report
from lowvalue.report.suppress import MARK, MISSING, footnote

from .conftest import write_tiny

COUNT_KEYS = ("low_value", "likely", "eligible", "flagged_persons", "eligible_persons")


def _int(text: str) -> int:
    return int(re.sub(r"[^\d]", "", text))


def _ok_count(text: str) -> bool:
    text = text.strip()
    return text in (MARK, MISSING) or _int(text) == 0 or _int(text) >= 5


def _html_tables(html: str) -> list[tuple[list[str], list[list[str]]]]:
    out = []
    for table in re.findall(r"<table.*?</table>", html, re.S):
        heads = [htmllib.unescape(re.sub(r"<[^>]+>", "", h)).strip() for h in re.findall(r"<th[^>]*>(.*?)</th>", table, re.S)]
        rows = [[htmllib.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
                for tr in re.findall(r"<tr>(.*?)</tr>", table, re.S)]
        out.append((heads, [r for r in rows if r]))
    return out


def _check_table(name: str, heads: list[str], rows: list[list[str]], t: dict[str, str]) -> int:
    """Checks one table; returns the number of count cells seen."""
    labels = {t[k] for k in COUNT_KEYS}
    seen = 0
    for row in rows:
        if len(row) != len(heads):
            continue
        cell = dict(zip(heads, row))
        for h, text in cell.items():
            if h in labels:
                seen += 1
                assert _ok_count(text), f"{name}: {h} = {text!r}"
            for c, _n in re.findall(r"(\d[\d\s\u202f,]*) (?:of|av) (\d[\d\s\u202f,]*)\)", text):
                assert _int(c) == 0 or _int(c) >= 5, f"{name}: {h} = {text!r}"
        if t["rate_ci"] in cell and (cell.get(t["low_value"]) == MARK or cell.get(t["eligible"]) == MARK):
            assert cell[t["rate_ci"]] == MARK, f"{name}: a rate from a suppressed count is shown: {cell}"
        tiers = [cell.get(t["low_value"]), cell.get(t["likely"])]
        if None not in tiers and tiers.count(MARK) == 1:
            other = tiers[1 - tiers.index(MARK)]
            assert other in (MISSING,) or _int(other) == 0, f"{name}: one tier suppressed, the other shown: {cell}"
    return seen


def scan(out: Path, lang: str) -> int:
    """Scan every artefact ``write_report`` wrote for ``out``; returns the number of count cells checked."""
    t = STRINGS[lang]
    html = out.read_text(encoding="utf-8")
    text = re.sub(r"<(script|style)\b.*?</\1>", "", html, flags=re.S)
    text = re.sub(r'src="data:image/png;base64,[^"]+"', "", text)
    seen = 0
    for heads, rows in _html_tables(text):
        seen += _check_table(out.name, heads, rows, t)
    for line in re.findall(r'<p class="persons"[^>]*>([^<]*)</p>', text):  # "Persons: k of n eligible persons …"
        k, n = re.match(r"\w+: (.+?) (?:av|of) (.+?) (?:bedömningsbara|eligible)", htmllib.unescape(line)).groups()
        assert _ok_count(k) and _ok_count(n), line
        seen += 2
    assert footnote(lang) in html
    side = sorted(out.parent.glob(out.stem + "-*"))
    assert {p.suffix for p in side} == {".csv", ".md"}
    for p in side:
        content = p.read_text(encoding="utf-8")
        assert footnote(lang) in content, f"{p.name} lacks the footnote"
        if p.suffix == ".csv":
            lines = [ln for ln in content.splitlines() if not ln.startswith("#")]
            heads, *rows = list(csv.reader(lines))
        else:
            lines = [ln for ln in content.splitlines() if ln.startswith("|") and not ln.startswith("|---")]
            split = lambda ln: [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", ln.strip("|"))]  # noqa: E731
            heads, *rows = [split(ln) for ln in lines]
        seen += _check_table(p.name, heads, rows, t)
    return seen


def test_demo_report_artefacts_show_no_small_count(example_report_sv: Path) -> None:
    assert scan(example_report_sv, "sv") > 100  # the whole demo report in Swedish, the default


def test_english_artefacts_show_no_small_count(example_results: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"  # the same code in English, on a few rules to keep the suite fast
    write_report(example_results, out, lang="en", only=["LV-ABX-003", "LV-IMG-001", "LV-SCR-010"])
    assert scan(out, "en") > 8


def test_tiny_results_with_small_counts_everywhere(tmp_path: Path) -> None:
    results = write_tiny(tmp_path / "tiny")
    out = tmp_path / "out" / "report.html"
    write_report(results, out, lang="sv")
    assert scan(out, "sv") >= 10
    md = (tmp_path / "out" / "report-decision.md").read_text(encoding="utf-8")
    row = next(ln for ln in md.splitlines() if "LV-IMG-001" in ln)
    assert row.count(f"| {MARK} |") >= 3  # both tiers and the rate


def test_the_scan_finds_a_small_count(example_results: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    write_report(example_results, out, lang="sv", only=["LV-ABX-003"])
    csv_path = tmp_path / "report-decision.csv"
    lines = csv_path.read_text(encoding="utf-8").splitlines()
    heads = next(csv.reader([lines[0]]))
    row = next(csv.reader([lines[1]]))
    row[heads.index(STRINGS["sv"]["likely"])] = "3"
    csv_path.write_text("\n".join([lines[0], ",".join(f'"{c}"' for c in row)] + lines[2:]) + "\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="3"):
        scan(out, "sv")
