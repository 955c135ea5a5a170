"""Rule status is validated and counted: an approved rule names its owner and its next review."""

from __future__ import annotations

import pytest

from lowvalue.errors import RuleError
from lowvalue.rules.governance import governance, status_counts
from lowvalue.rules.library import load_library, parse_rule

RS = load_library()
HEAD = """
id: LV-TEST-GOV
title: {en: t, sv: t}
rationale: {en: r, sv: r}
index: {kind: procedure, codes: red_cell_transfusion}
"""


@pytest.mark.parametrize("extra, message", [
    ("status: approved\n", "needs clinical_owner, checked_by and date_reviewed"),
    ("status: approved\nclinical_owner: Dr A\nchecked_by: Dr B\ndate_reviewed: 2026-11-01\n", "needs next_review"),
    ("status: signed-off\n", "status"),
])
def test_a_status_beyond_draft_needs_its_people_and_dates(extra: str, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        parse_rule(HEAD + extra)


def test_governance_counts_unverified_codes_once_per_code_set() -> None:
    rule = parse_rule(HEAD + "status: clinically_reviewed\nclinical_owner: Dr A\nchecked_by: Dr B\ndate_reviewed: 2026-11-01\n")
    g = governance(rule, RS)
    assert (g.status, g.clinical_owner, g.unverified_codes) == ("clinically_reviewed", "Dr A", 1)  # DR029
    assert status_counts(list(RS.do_not_do)) == {"draft": len(RS.do_not_do), "clinically_reviewed": 0, "approved": 0}
