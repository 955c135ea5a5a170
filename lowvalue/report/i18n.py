"""The report's words and number formats, per language: one template; the words come from the message catalogue
(:mod:`lowvalue.messages`, namespace ``report``).

Numbers: English ``12,345.6``; Swedish ``12 345,6`` with a narrow no-break (thin) space
(U+202F) between thousands, a decimal comma and a true minus sign (U+2212).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
import re
from typing import Literal

from lowvalue.messages import messages

Lang = Literal["sv", "en"]
LANGS: tuple[Lang, ...] = ("sv", "en")
THIN = "\u202f"

STRINGS: dict[str, dict[str, str]] = {lang: messages("report", lang) for lang in LANGS}
"""The report's words: the ``report`` namespace of :mod:`lowvalue.messages` (``lowvalue/messages/{sv,en}.yaml``)."""
assert STRINGS["en"].keys() == STRINGS["sv"].keys()


@dataclass(frozen=True)
class Numbers:
    """Number formatting for one language."""

    lang: Lang

    def num(self, x: float | int | None, digits: int = 0) -> str:
        if x is None or (isinstance(x, float) and (math.isnan(x) or math.isinf(x))):
            return "–"
        text = f"{abs(x):,.{digits}f}"
        if self.lang == "sv":
            text = text.replace(",", THIN).replace(".", ",")
        sign = ("\u2212" if self.lang == "sv" else "-") if round(x, digits) < 0 else ""
        return sign + text

    def int(self, x: float | int | None) -> str:
        return self.num(x, 0)

    def ci(self, est: float, lo: float, hi: float, digits: int = 0) -> str:
        sep = " till " if self.lang == "sv" else " to "
        return f"{self.num(est, digits)} ({self.num(lo, digits)}{sep}{self.num(hi, digits)})"

    def pct(self, x: float | None, digits: int = 0) -> str:
        if x is None or (isinstance(x, float) and math.isnan(x)):
            return "–"
        return f"{self.num(100 * x, digits)}{THIN if self.lang == 'sv' else ' '}%"


def strings(lang: Lang) -> dict[str, str]:
    if lang not in STRINGS:
        raise ValueError(f"language must be one of {', '.join(LANGS)}. Got {lang!r} instead.")
    return STRINGS[lang]


_WHAT = r"(?P<what>index|condition \w+|exclusion \w+)"
EVALUABILITY_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple((key, re.compile(rx)) for key, rx in (
    ("ev_found_none", _WHAT + r": code set '(?P<name>[^']+)' found no (?P<kind>\w+) event \(it has codes in "
     r"(?P<systems>[^;]+); the extract's \w+ events are coded in (?P<extract>[^)]+)\) \(none occurred, or the "
     r"region codes it otherwise\)"),
    ("ev_matches_none", _WHAT + r": code set '(?P<name>[^']+)' matches no (?P<kind>\w+) event \(it has codes in "
     r"(?P<systems>[^;]+); the extract's \w+ events are coded in (?P<extract>[^)]+)\)"),
    ("ev_no_events", _WHAT + r": no (?P<kind>\w+) events in the extract \(code set '(?P<name>[^']+)' is coded in "
     r"(?P<systems>[^)]+)\)"),
    ("ev_no_values", _WHAT + r": the (?P<kind>\w+) events of code set '(?P<name>[^']+)' carry no values"),
    ("ev_system_gap", _WHAT + r": code set '(?P<name>[^']+)' has no (?P<system>\S+) codes, and (?P<share>\d+%) of "
     r"the extract's (?P<kind>\w+) events are \S+"),
    ("ev_no_settings", r"index: no encounters in settings (?P<settings>.+)"),
))
"""The shapes of the reasons :mod:`lowvalue.engine.evaluability` writes, each with its catalogue key (``ev_*``)."""
EXCLUSIONS_LEAD = "exclusions cannot be fully checked, so flags may overstate: "


def _what(what: str, t: dict[str, str]) -> str:
    head, _, name = what.partition(" ")
    return t["ev_what_" + head] + (f" {name}" if name else "")


def evaluability_reason(reason: str, lang: Lang) -> str:
    """An evaluability reason (written in English by :mod:`lowvalue.engine.evaluability`) in ``lang``: every
    part of a known shape (:data:`EVALUABILITY_PATTERNS`) is rebuilt from the catalogue; a part of another shape
    is not shown in Swedish but referred to ``evaluability.parquet``."""
    if not reason or lang == "en":
        return reason
    t = strings(lang)
    body, _, fix = reason.partition(". Fix:")
    lead = ""
    if body.startswith(EXCLUSIONS_LEAD):
        body, lead = body[len(EXCLUSIONS_LEAD):], t["ev_exclusions_lead"]
    out: list[str] = []
    for part in re.split(r";\s(?![^()]*\))", body):
        for key, rx in EVALUABILITY_PATTERNS:
            m = rx.fullmatch(part.strip())
            if m:
                g = m.groupdict()
                if "what" in g:
                    g["what"] = _what(g["what"], t)
                if "kind" in g:
                    g["kind"] = t.get("kind_" + g["kind"], g["kind"])
                out.append(t[key].format(**g))
                break
        else:
            if t["evaluability_other"] not in out:
                out.append(t["evaluability_other"])
    return lead + "; ".join(out) + (". " + t["evaluability_fix"] if fix else "")
