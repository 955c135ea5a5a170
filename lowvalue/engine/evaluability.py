"""Can this extract support this rule? Say so before running it, instead of reporting a misleading zero.

Following Chalmers et al.'s evaluability criteria, judged on the data, not on the
schema: a coding system being present proves nothing if none of the rule's codes
occur (a region whose radiology is coded with local RIS codes has procedure
events, but no lumbar-spine imaging under any code the library knows).

* ``not_evaluable`` (the rule is not run): the index code set matches no event of
  the index kind; a required condition matches no event in any of its branches;
  the index's lab values or care settings are missing; a ``hospital_onset`` test on
  an extract that dates diagnoses at the contact and has no present-on-admission flag.
* ``limited`` (the rule runs; flags may overstate): an exclusion cannot be checked,
  because its events are absent, or because its code set has no codes in a public
  classification that the extract uses for that kind (ICD-9-CM diagnoses in older
  MIMIC admissions, SNOMED CT diagnoses, NPU where the set lists only LOINC). A local
  catalogue (a RIS) may cover one field only, so it is listed in the coverage table
  but not counted against every code set.

A trigger (an adverse event) whose codes occur nowhere is ``limited``, not
``not_evaluable``: in a small extract the event may simply not have happened.

Each reason names the code set and the fix: the region's codes in a code overlay
(``lowvalue codes template DATA --out region-codes/``, then ``--codes region-codes/``).
"""

from __future__ import annotations

from typing import Any

from lowvalue.engine.coverage import Coverage
from lowvalue.rules.model import CodeRef, Criterion, Rule

CONTACT_DATED = 0.9
"""Share of a kind's events in inpatient stays dated at the contact above which a hospital-onset test cannot work."""
POA_FIX = ("add a present_on_admission column (Y/N/U/W) to events, or extract diagnoses with the time they were made")

FIX = "add the region's codes: `lowvalue codes template DATA --out region-codes/`, fill it in, scan with `--codes region-codes/`"


def _systems(counts: dict[str, Any]) -> str:
    return ", ".join(counts) or "none"


def _no_match(cov: Coverage, what: str, kind: str, ref: CodeRef) -> str | None:
    """Why ``ref`` finds nothing among the extract's ``kind`` events, or None if it matches some."""
    counts = cov.of_set(ref, kind)
    if any(c.events_matched for c in counts.values()):
        return None
    name = cov.rs.valueset(ref).name
    in_set = [s for s, c in counts.items() if c.codes_in_set]
    in_data = [s for s, c in counts.items() if c.system_events]
    if not in_data:
        return f"{what}: no {kind} events in the extract (code set '{name}' is coded in {', '.join(in_set) or 'nothing'})"
    return (f"{what}: code set '{name}' matches no {kind} event (it has codes in {', '.join(in_set) or 'no system'}; "
            f"the extract's {kind} events are coded in {', '.join(in_data)})")


def _no_values(cov: Coverage, what: str, kind: str, ref: CodeRef) -> str | None:
    counts = cov.of_set(ref, kind)
    if any(c.events_matched for c in counts.values()) and not any(c.events_with_value for c in counts.values()):
        return f"{what}: the {kind} events of code set '{cov.rs.valueset(ref).name}' carry no values"
    return None


def _criterion_gaps(cov: Coverage, what: str, crit: Criterion) -> list[str]:
    """For an exclusion branch: missing events, or coding systems the extract uses that the code set lacks."""
    missing = _no_match(cov, what, crit.kind, crit.codes)
    counts = cov.of_set(crit.codes, crit.kind)
    if missing and not any(c.system_events for c in counts.values()):
        return [missing]
    name = cov.rs.valueset(crit.codes).name
    gaps = [f"{what}: code set '{name}' has no {s} codes, and {share:.0%} of the extract's {crit.kind} events are {s}"
            for s, share in cov.systems_used(crit.kind, classifications_only=True).items()
            if not counts.get(s) or not counts[s].codes_in_set]
    if crit.value is not None:
        gaps += [g for g in [_no_values(cov, what, crit.kind, crit.codes)] if g]
    return gaps


def check(cov: Coverage, rule: Rule, settings: set[str]) -> dict[str, Any]:
    """``{"status": ..., "reason": str}`` for one rule on the extract ``cov`` counted."""
    problems: list[str] = []
    caveats: list[str] = []
    idx = rule.index
    missing = _no_match(cov, "index", idx.kind, idx.codes)
    if missing and rule.type == "trigger" and any(c.system_events for c in cov.of_set(idx.codes, idx.kind).values()):
        # an adverse event that did not occur is not a coding gap: the trigger runs and says what it could not see
        caveats.append(missing.replace("matches no", "found no") + " (none occurred, or the region codes it otherwise)")
    elif missing:
        problems.append(missing)
    if idx.value is not None and (p := _no_values(cov, "index", idx.kind, idx.codes)):
        problems.append(p)
    if idx.settings and not settings & set(idx.settings):
        problems.append(f"index: no encounters in settings {idx.settings}")
    for name, cond in rule.conditions.items():
        if cond.hospital_onset is not None:
            n, contact, flagged = cov.stay_dating(idx.kind)
            what = (f"condition {name}: {contact:.0%} of the {idx.kind} events in inpatient stays are dated at the "
                    f"contact (the stay's start or end) and {flagged:.0%} carry a present-on-admission flag, so a "
                    f"{idx.kind} that arose in hospital cannot be told from one present at admission")
            if n and flagged == 0 and contact >= CONTACT_DATED:
                problems.append(f"{what}. Fix: {POA_FIX}")
                continue
            if n and flagged < 1 and contact >= 0.5:
                caveats.append(f"{what} for part of the stays. Fix: {POA_FIX}")
            continue
        crits = cond.criteria
        if not crits:
            continue
        if cond.role == "exclude":  # every branch of an exclusion that lacks data is one that cannot be checked
            for crit in crits:
                caveats += _criterion_gaps(cov, f"exclusion {name}", crit)
            continue
        missing = [m for crit in crits for m in [_no_match(cov, f"condition {name}", crit.kind, crit.codes)] if m]
        if len(missing) == len(crits):  # a requirement fails only when none of its branches can hold
            problems.extend(missing)
        else:
            valueless = [v for crit in crits if crit.value is not None
                         for v in [_no_values(cov, f"condition {name}", crit.kind, crit.codes)] if v]
            if valueless and len(valueless) == len([c for c in crits if c.value is not None]) == len(crits):
                problems.extend(valueless)
    if problems:
        return {"status": "not_evaluable", "reason": "; ".join(problems + caveats) + f". Fix: {FIX}"}
    if caveats:
        lead = "" if rule.type == "trigger" else "exclusions cannot be fully checked, so flags may overstate: "
        return {"status": "limited", "reason": lead + "; ".join(caveats) + f". Fix: {FIX}"}
    return {"status": "evaluable", "reason": ""}
