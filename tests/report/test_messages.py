"""One message catalogue per language (issue 17, item 5): no key without both a Swedish and an English text, and
the Swedish report holds no English sentence."""

from __future__ import annotations

import html as htmllib
import re
from pathlib import Path

import pytest

from lowvalue.messages import LANGS, catalogue, missing_keys


def test_every_key_has_a_swedish_and_an_english_text() -> None:
    assert missing_keys() == {"sv": [], "en": []}
    for lang in LANGS:
        for ns, keys in catalogue(lang).items():
            empty = [k for k, v in keys.items() if not v.strip()]
            assert not empty, f"{lang}.yaml {ns}: empty {empty}"


def test_the_review_apps_two_dicts_have_the_same_keys() -> None:
    from lowvalue.review.i18n import STRINGS

    assert set(STRINGS["sv"]) == set(STRINGS["en"]), set(STRINGS["sv"]) ^ set(STRINGS["en"])


def test_a_missing_key_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lowvalue.messages as m

    real = m.catalogue

    def fake(lang: str) -> dict[str, dict[str, str]]:
        c = {ns: dict(d) for ns, d in real(lang).items()}
        if lang == "sv":
            c["report"].pop("title")
        return c

    monkeypatch.setattr(m, "catalogue", fake)
    assert m.missing_keys()["sv"] == ["report.title"]


def test_the_report_and_the_review_app_use_the_same_tier_words() -> None:
    from lowvalue.review.i18n import STRINGS as REVIEW

    sv = catalogue("sv")["report"]
    assert sv["low_value"].lower() == REVIEW["sv"]["low value"].lower()
    assert sv["likely"].lower() == REVIEW["sv"]["likely low value"].lower()
    assert sv["eligible"] == "Bedömningsbara"


# Common English function words; none of them is a Swedish word (Swedish "is" means ice, "of" is not used).
ENGLISH = ("the", "and", "of", "with", "without", "which", "is", "are", "not", "for", "from", "this", "that", "be",
           "when", "only", "each", "every", "or", "per rule", "rule", "estimated", "eligible", "flagged", "none",
           "found", "code set", "events", "low value", "likely", "excludes", "requires", "window", "cautions", "may",
           "flags", "should", "have", "has", "in the", "to the")


def english_words(text: str) -> list[str]:
    """English words in a Swedish text, with a little context each."""
    hits = []
    for w in ENGLISH:
        for m in re.finditer(rf"(?<![\w`/.-]){re.escape(w)}(?![\w`/-])", text, re.I):
            hits.append(text[max(0, m.start() - 50):m.end() + 50])
    return hits


def visible_text(html: str) -> str:
    """What a reader sees: no script, style, images, code spans (commands, file names), links' targets, ids."""
    html = re.sub(r"<(script|style|code|cite)\b.*?</\1>", " ", html, flags=re.S)  # cite: a publication's title
    html = re.sub(r"`[^`]*`", " ", html)
    html = re.sub(r"<[^>]+>", " ", html)
    text = htmllib.unescape(html)
    text = re.sub(r"https?://\S+", " ", text)
    text = re.sub(r"\b[A-Z]{2,}(?:-[A-Z0-9]+)+\b", " ", text)  # rule and trigger ids
    text = re.sub(r"\b[a-z0-9]+(?:_[a-z0-9]+)+\b", " ", text)  # code-set and condition names
    return text


def test_the_swedish_report_has_no_english_sentence(example_report_sv: Path) -> None:
    hits = english_words(visible_text(example_report_sv.read_text(encoding="utf-8")))
    assert not hits, hits[:10]
    sides = list(example_report_sv.parent.glob("report-*"))
    assert len(sides) == 2
    for side in sides:
        assert not english_words(visible_text(side.read_text(encoding="utf-8"))), side.name


def test_the_english_check_can_fail() -> None:
    assert english_words("Uteslutningar kan inte kontrolleras, so flags may overstate")
    assert not english_words("Lågvärdevård per 1 000 bedömningsbara; kör `lowvalue report --prices`")


@pytest.mark.parametrize("lang, words", [("sv", "utgångsläge 10,0"), ("en", "base 10.0")])
def test_the_explain_plots_axis_follows_the_language(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lang: str,
                                                     words: str) -> None:
    from types import SimpleNamespace

    import pandas as pd
    from matplotlib.axes import Axes

    from lowvalue.risk.explain import waterfall_plot

    seen: list[str] = []
    real = Axes.set_xlabel
    monkeypatch.setattr(Axes, "set_xlabel", lambda self, text, *a, **k: (seen.append(text), real(self, text, *a, **k))[1])
    groups = pd.DataFrame({"group": ["rule", "age"], "label": ["regel", "ålder"], "shap": [0.2, -0.1]})
    ex = SimpleNamespace(groups=groups, base_risk=0.1, risk=0.12, lang=lang, horizon_days=30,
                         scale="calibrated log-odds", rule_id="LV-X", flag_id="f1")
    waterfall_plot(ex, tmp_path / "w.png")  # type: ignore[arg-type]
    assert words in seen[0] and ("base" not in seen[0]) == (lang == "sv") and ("kalibrerad" in seen[0]) == (lang == "sv")


def test_the_cli_waterfall_never_ends_above_the_step_before(example_results: Path) -> None:
    import pandas as pd

    from lowvalue.cli import waterfall_lines

    w = pd.read_parquet(example_results / "waterfall.parquet")
    for line in waterfall_lines(w).splitlines()[1:]:
        chain, _, flagged = line.partition("; ")
        counts = [int(x) for x in re.findall(r" (\d+)(?= →|$)", chain)]
        assert counts == sorted(counts, reverse=True), line  # each step at most the one before it
        assert flagged.startswith("flagged (low value + likely low value)"), line


def test_the_swedish_report_with_excess_verdicts_and_model_has_no_english_sentence(example_results: Path,
                                                                                   tmp_path: Path, ruleset) -> None:
    import pandas as pd

    from lowvalue.report import aggregate
    from lowvalue.report.render import build_html
    from lowvalue.results import read_manifest, stamp, write_table

    from .test_words import CAUTION, _excess

    excess = _excess(tmp_path, example_results, [CAUTION, None])
    flags = pd.read_parquet(example_results / "flags.parquet", columns=["flag_id", "rule_id"]).sort_values("flag_id")
    reviewed = flags[flags.rule_id == "LV-ABX-004"].flag_id.head(12)
    labels = ["confirmed", "rejected"] * 6
    verdicts = write_table(pd.DataFrame({"flag_id": list(reviewed), "verdict": labels, "round_id": 1,
                                         "round_design": "review round 1 (simple random sample, seed 1)",
                                         "round_strata": "", "round_seed": 1, "round_tier": "specific",
                                         "round_stratum": "all", "round_frame_n": 40, "round_verdict": labels}),
                           tmp_path / "verdicts.parquet", stamp_of=stamp(read_manifest(example_results)))
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "metrics.json").write_text(
        '{"horizon_days": 30, "population": "eligible candidates of rules with linked harms, with complete follow-up",'
        ' "validation": {"n": 812, "events": 41, "auroc": {"estimate": 0.74, "ci_low": 0.69, "ci_high": 0.79}}}')
    inp = aggregate.load(example_results, excess=excess, verdicts=verdicts, model=tmp_path / "m", rules=ruleset)
    html = build_html(inp, lang="sv", only=["LV-ABX-003", "LV-ABX-004", "LV-HOSP-028"])
    assert "Antaganden" in html and "Ingen okontrollerad störfaktor" in html and "50 (25 till 75) % (6 av 12)" in html
    assert "granskningsomgång 1 (obundet slumpmässigt urval, frö 1)" in html
    hits = english_words(visible_text(html))
    assert not hits, hits[:10]
