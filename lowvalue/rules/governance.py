"""Where a rule stands: draft, clinically reviewed or approved; who owns it; when it is next reviewed; unverified codes.

Shown wherever a rule's results are read (``rules list``, the report, the review app's case page), so nobody takes an
unreviewed draft, or a rule resting on codes nobody has checked, for an agreed indicator.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from lowvalue.rules.library import RuleSet
from lowvalue.rules.model import Rule

STATUS_TEXT = {
    "en": {"draft": "draft", "clinically_reviewed": "clinically reviewed", "approved": "approved"},
    "sv": {"draft": "utkast", "clinically_reviewed": "kliniskt granskad", "approved": "fastställd"},
}


@dataclass(frozen=True)
class Governance:
    status: str
    clinical_owner: str | None
    next_review: date | None
    unverified_codes: int
    codes: int
    regional_codes: int

    def overdue(self, today: date) -> bool:
        return self.next_review is not None and self.next_review < today


def governance(rule: Rule, rs: RuleSet) -> Governance:
    """The rule's status fields and code counts over every code set it uses (a code set counted once)."""
    seen: dict[str, tuple[int, int, int]] = {}
    for ref in rule.code_refs():
        vs = rs.valueset(ref)
        seen[vs.name] = (sum(len(v) for v in vs.codes.values()) - len(vs.regional), len(vs.unverified), len(vs.regional))
    total, unverified, regional = (sum(x[i] for x in seen.values()) for i in range(3))
    return Governance(rule.status, rule.clinical_owner, rule.next_review, unverified, total, regional)


SWEDISH_SYSTEM = {"diagnosis": "ICD-10-SE", "procedure": "KVÅ", "medication": "ATC", "lab": "NPU"}
"""The national classification a Swedish region's extract uses for each event kind."""


def swedish_gaps(rule: Rule, rs: RuleSet) -> list[str]:
    """Code sets the rule uses that hold no code of the Swedish classification for their kind, so on a Swedish
    extract the region must supply its codes (``--codes``): ``name (system)``, or ``name (system, exclusion)`` where
    only an exclusion is blind (the rule then runs, limited)."""
    gaps: dict[str, str] = {}
    for _, role, kind, ref in rule.code_uses():
        vs, system = rs.valueset(ref), SWEDISH_SYSTEM.get(kind)
        if system and system not in vs.codes and vs.name not in gaps:
            gaps[vs.name] = f"{vs.name} ({system}{', exclusion' if role == 'exclude' else ''})"
    return list(gaps.values())


def status_counts(rules: list[Rule]) -> dict[str, int]:
    """How many rules have each status, in the order draft, clinically reviewed, approved."""
    return {s: sum(r.status == s for r in rules) for s in STATUS_TEXT["en"]}
