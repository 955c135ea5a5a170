"""The CLI's printed summaries in Swedish or English (issue 17): a global ``--lang`` (default ``LOWVALUE_LANG``, else
English) picks the catalogue's ``cli`` texts for scan, validate, rules, flags, risk, review, export, report and demo,
and every key the CLI uses exists in both languages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import lowvalue.export as exporting
from lowvalue import cli
from lowvalue.cli import main
from lowvalue.export import commands as export_commands
from lowvalue.messages import catalogue
from lowvalue.report import commands as report_commands
from lowvalue.review import commands as review_commands, sampling, stats, store
from lowvalue.review.sampling import DESIGNS, STRATA, TIERS
from lowvalue.review.store import UNFLAGGED
from lowvalue.risk import commands as risk_commands, triage
from lowvalue.risk.excess import NOT_ESTIMATED
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


PRINTING = [cli, risk_commands, review_commands, export_commands, report_commands, store, sampling, stats, triage,
            exporting]
"""Every module whose text the CLI prints from the catalogue's ``cli`` namespace."""


def test_every_cli_key_is_in_both_languages() -> None:
    used: set[str] = set()
    for module in PRINTING:
        source = Path(module.__file__).read_text(encoding="utf-8")
        # w["key"], words()["key"], _words()["key"], _texts()[0]["key"], messages("cli", lang)["key"]
        used |= set(re.findall(r"""(?:words\(\)|\bw|\)\[0\]|messages\("cli", lang\))\[["']([a-z_]+)["']\]""", source))
    used |= {"flags_title_risk", "flags_title", "review_user_replaced", "review_user_added", "excess_head",
             "triage_source_truth", "triage_source_verdicts", "tier_all_flags", "tier_low_value"}  # chosen in code
    used |= {f"excess_{code}" for code in NOT_ESTIMATED} | set(stats.STATS_TIER_KEYS.values())
    used |= {f"status_{s}" for s in ("evaluable", "limited", "not_evaluable")} | {f"design_{d}" for d in DESIGNS}
    used |= {f"stratum_{s}" for s in STRATA} | {f"variant_{v}" for v in (*TIERS, UNFLAGGED)}
    assert len(used) >= 60 and {"train_split", "review_db", "export_wrote", "demo_done", "round_head", "stats_head"} <= used
    for lang in ("sv", "en"):
        missing = sorted(used - set(catalogue(lang)["cli"]))
        assert not missing, (lang, missing)


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled region scanned once (about 5 s): what ``risk`` and ``review`` read."""
    out = tmp_path_factory.mktemp("lang") / "results"
    res = CliRunner().invoke(main, ["scan", str(EXAMPLE), "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out


def test_swedish_risk_train_and_excess_print_no_english_summary_line(scanned: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["--lang", "sv", "risk", "train", str(scanned), "--out", str(tmp_path / "m"),
                                    "--n-boot", "5"])
    assert res.exit_code == 0, res.output
    lines = _summary_lines(res.output.replace(str(scanned), ""), tmp_path)
    assert any(line.startswith("tränad på ") for line in lines) and any("kalibrering: intercept" in line for line in lines)
    assert not [line for line in lines if ENGLISH.search(line) or re.search(r"\b(trained|validated|events|slope)\b", line)]
    res = CliRunner().invoke(main, ["--lang", "sv", "risk", "excess", str(scanned), "--extract", str(EXAMPLE),
                                    "--out", str(tmp_path / "x"), "--rule", "LV-ABX-005", "--rule", "LV-RX-022"])
    assert res.exit_code == 0, res.output
    lines = _summary_lines(res.output.replace(str(scanned), ""), tmp_path)
    assert any(line.startswith("  LV-RX-022: inte skattad (Indikationen") for line in res.output.splitlines())
    english = [line for line in lines if ENGLISH.search(re.sub(r"\bTR-[A-Z-]+", "", line))
               or re.search(r"\b(estimated|excess|not|anchors?|adjusted|ratio|people|suppressed|too|few)\b", line)]
    assert not english, english
    en = CliRunner().invoke(main, ["--lang", "en", "risk", "excess", str(scanned), "--out", str(tmp_path / "y"),
                                   "--rule", "LV-RX-022"])
    assert en.exit_code == 0 and "LV-RX-022: not estimated (The indication" in en.output, en.output


def test_swedish_review_commands_print_no_english_summary_line(scanned: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "review.sqlite")
    outputs = []
    for args in (["review", "init", str(scanned), "--db", db],
                 ["review", "sample", str(scanned), "--db", db, "--per-rule", "2", "--strata", "unit", "--seed", "1"],
                 ["review", "stats", "--db", db, "--out", str(tmp_path / "stats.csv")],
                 ["review", "add-user", "anna", "--db", db], ["review", "disable-user", "anna", "--db", db],
                 ["review", "export", "--db", db, "--out", str(tmp_path / "v.parquet")]):
        res = CliRunner().invoke(main, ["--lang", "sv", *args], env={"LOWVALUE_REVIEW_PASSWORD": "kvalitet-granskning-2024!"})
        assert res.exit_code == 0, (args, res.output)
        outputs.append(res.output)
    res = CliRunner().invoke(main, ["--lang", "sv", "review", "add-user", "bertil", "--db", db],
                             env={"LOWVALUE_REVIEW_PASSWORD": ""}, input="ett-långt-lösenord-77\nett-långt-lösenord-77\n")
    assert res.exit_code == 0 and "Lösenord:" in res.output and "Upprepa lösenordet:" in res.output, res.output
    outputs.append(res.output.replace("ett-långt-lösenord-77", ""))
    text = "\n".join(outputs)
    assert "granskningsdatabas:" in text and "urval stratifierat efter enhet" in text and "PPV/NPV med Wilsons" in text
    assert "lade till användaren anna" in text and "bekräftade" in text
    lines = _summary_lines(text.replace(str(scanned.resolve()), "").replace(str(scanned), ""), tmp_path)
    english = [line for line in lines if ENGLISH.search(line) or re.search(
        r"\b(round|cases|design|seed|database|frame|sample|judged|unsure|pending|estimate|user|disabled|added|"
        r"sessions?|confirmed|rejected|reviewed|stratified|specific|sensitive|results|kept|new)\b", line)]
    assert not english, english


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


def test_excess_lines_in_swedish_cover_every_kind_of_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """An estimated row (numbers with decimal commas), a suppressed one and the estimator's fixed reasons, in Swedish
    (a hand-made table: the bundled region has too few events for an estimate)."""
    import pandas as pd

    monkeypatch.setenv("LOWVALUE_LANG", "sv")
    est = dict(rule_id="LV-ABX-005", trigger_id="TR-CDIFF", negative_control=False, status="estimated",
               n_treated=63, n_control=64, events_treated=9, events_control=6, rr=1.68, rr_lo=0.69, rr_hi=4.1,
               excess_per_1000=92.6, excess_per_1000_lo=-54.3, excess_per_1000_hi=239.4, cautions="few events")
    table = pd.DataFrame([est, {**est, "trigger_id": "TR-FALL-FRACTURE", "negative_control": True, "events_treated": 2},
                          *[dict(rule_id="LV-ABX-004", trigger_id="TR-CDIFF", negative_control=False, status=status,
                                 cautions="") for status in (t.format(min_events=5) for t in NOT_ESTIMATED.values())]])
    text = risk_commands.excess_lines(table)
    assert "LV-ABX-005 → TR-CDIFF: justerad riskkvot 1,68 (0,69–4,10), 92,6 (−54,3–239,4) per 1 000" in text
    assert "TR-FALL-FRACTURE [negativ kontroll]: undertryckt (färre än 5" in text and "† bara en signal" in text
    assert text.count("LV-ABX-004 → TR-CDIFF: inte skattad (") == len(NOT_ESTIMATED)
    english = [line for line in text.splitlines() if re.search(
        r"\b(estimated|excess|not|anchors?|adjusted|ratio|people|suppressed|too|few|trial|needs|extract|rule|"
        r"negative|control|treated|untreated|no)\b",  # not "signal": the same word in Swedish
        re.sub(r"\bTR-[A-Z-]+|\bLV-[A-Z]+-\d+|risk excess RESULTS --extract DATA", "", line))]
    assert not english, english
