"""The CLI's printed summaries in Swedish or English (issue 17): a global ``--lang`` (default ``LOWVALUE_LANG``, else
English) picks the catalogue's ``cli`` texts, and every key the CLI uses exists in both languages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from lowvalue import cli
from lowvalue.cli import main
from lowvalue.messages import catalogue
from lowvalue.shipped import shipped

EXAMPLE = shipped("examples/synthetic_data")
ENGLISH = re.compile(r"\b(the|and|of|with|rules?|flags?|triggers?|wrote|candidates|eligible|low value|likely|passed|"
                     r"failed|evaluable|limited|exclusion|waterfall|after|each|condition|code sets|problems?)\b", re.I)
"""Words an English summary line has and a Swedish one does not (Swedish rule ids and paths aside)."""


def _summary_lines(output: str, tmp_path: Path) -> list[str]:
    """The printed lines minus what is not a sentence: rule ids, paths, table borders and numbers."""
    out = []
    for line in output.splitlines():
        text = line.replace(str(tmp_path), "").replace(str(EXAMPLE), "")
        text = re.sub(r"\b(LV|TR)-[A-Z]+-\d+\b|lowvalue scan:|[│┃━─┏┓┗┛┡┩└┘┌┐╇╈┼├┤┬┴╷╵|]", " ", text)
        text = re.sub(r"\b[a-z]+(_[a-z0-9]+)+\b", " ", text)  # a rule's condition names are identifiers
        if text.strip():
            out.append(text)
    return out


def test_a_swedish_scan_prints_no_english_summary_line(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["--lang", "sv", "scan", str(EXAMPLE), "--out", str(tmp_path / "r"),
                                    "--only", "LV-ABX-003"])
    assert res.exit_code == 0, res.output
    lines = _summary_lines(res.output, tmp_path)
    assert any("skrev" in line for line in lines) and any("uteslutningskedja" in line for line in lines)
    assert any("bedömningsbara" in line for line in lines)  # the table's column names
    english = [line for line in lines if ENGLISH.search(line)]
    assert not english, english


def test_the_same_scan_in_english_would_fail_the_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOWVALUE_LANG", raising=False)
    res = CliRunner().invoke(main, ["scan", str(EXAMPLE), "--out", str(tmp_path / "r"), "--only", "LV-ABX-003"])
    assert res.exit_code == 0, res.output
    assert [line for line in _summary_lines(res.output, tmp_path) if ENGLISH.search(line)]  # default: English


def test_lowvalue_lang_sets_the_default(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["rules", "lint"], env={"LOWVALUE_LANG": "sv"})
    assert res.exit_code == 0, res.output
    assert "regler och skademarkörer" in res.output and "rules and triggers" not in res.output
    res = CliRunner().invoke(main, ["--lang", "en", "rules", "lint"], env={"LOWVALUE_LANG": "sv"})
    assert "rules and triggers" in res.output  # the option wins over the environment


def test_every_cli_key_is_in_both_languages() -> None:
    source = Path(cli.__file__).read_text(encoding="utf-8")
    used = set(re.findall(r"""(?:words\(\)|\bw)\[["']([a-z_]+)["']\]""", source))
    used |= {"flags_title_risk", "flags_title"} | {f"status_{s}" for s in ("evaluable", "limited", "not_evaluable")}
    assert len(used) >= 8
    for lang in ("sv", "en"):
        missing = sorted(used - set(catalogue(lang)["cli"]))
        assert not missing, (lang, missing)


def test_a_swedish_validate_prints_no_english_summary_line(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["--lang", "sv", "validate", str(EXAMPLE)])
    assert res.exit_code == 0, res.output
    lines = _summary_lines(res.output, tmp_path)
    assert any("godtagna" in line for line in lines) and any(line.startswith("uttag ") for line in lines)
    table_words = re.compile(r"\b(read|accepted|quarantined|source|total|extract|checked|table)\b", re.I)
    english = [line for line in lines if ENGLISH.search(line) or table_words.search(line.split("(parquet)")[0]
                                                                                    .replace("persons", "")
                                                                                    .replace("encounters", "")
                                                                                    .replace("events", ""))]
    assert not english, english
