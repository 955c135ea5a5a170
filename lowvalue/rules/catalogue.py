"""The rule catalogue as a table or Markdown (``lowvalue rules list``; ``docs/rules.md`` is generated from it)."""

from __future__ import annotations

from typing import Literal

import pandas as pd

from lowvalue.rules.governance import STATUS_TEXT, governance, swedish_gaps
from lowvalue.rules.library import RuleSet
from lowvalue.rules.model import Rule


def _population(rule: Rule) -> str:
    p = rule.population
    parts = []
    if p.age_min is not None or p.age_max is not None:
        parts.append(f"age {p.age_min if p.age_min is not None else 0}–{p.age_max if p.age_max is not None else ''}".rstrip("–")
                     + ("+" if p.age_max is None and p.age_min is not None else ""))
    if p.sex:
        parts.append("sex " + "/".join(p.sex))
    return ", ".join(parts) or "all"


def _verification(rule: Rule, rs: RuleSet) -> str:
    g = governance(rule, rs)
    return f"{g.unverified_codes} of {g.codes} marked unverified" + (f"; {g.regional_codes} regional" if g.regional_codes else "")


def catalogue(rs: RuleSet, lang: Literal["en", "sv"] = "en") -> pd.DataFrame:
    """One row per rule and trigger: id, type, title, population, index, variants, harms, code status, sources."""
    rows = []
    for rule in sorted(rs.rules.values(), key=lambda r: (r.type, r.id)):
        rows.append({
            "id": rule.id,
            "type": rule.type,
            "title": getattr(rule.title, lang),
            "population": _population(rule),
            "index": f"{rule.index.kind}: {rule.index.codes if isinstance(rule.index.codes, str) else 'inline codes'}",
            "specific adds": ", ".join(c for c in rule.conditions_of("specific") if c not in rule.eligibility) or "–",
            "harms": ", ".join(h.trigger for h in rule.harms) or "–",
            "status": STATUS_TEXT[lang][rule.status],
            "owner / next review": f"{rule.clinical_owner or '–'} / {rule.next_review or '–'}",
            "codes": _verification(rule, rs),
            "region must supply": ", ".join(swedish_gaps(rule, rs)) or "–",
            "sources": "; ".join(f"{s.body} {s.year}" for s in rule.sources),
        })
    return pd.DataFrame(rows)


def to_markdown(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"
