"""Checks on a rule library beyond its schema: names, code formats, windows that cannot be met.

Every finding is a :class:`~lowvalue.errors.RuleError` with its file (and line
where the schema gave one); all are collected and reported together.
"""

from __future__ import annotations

import re
from pathlib import Path

from lowvalue.errors import RuleError
from lowvalue.rules.codes import RANGE_SYSTEMS, unit_factor
from lowvalue.rules.library import RuleSet, load_library
from lowvalue.rules.model import Criterion, Rule

CODE_FORMATS: dict[str, re.Pattern[str]] = {
    "ICD-10-SE": re.compile(r"^[A-Z]\d{2}(\.?[0-9A-Z]{0,4})?$"),
    "ICD-10-CM": re.compile(r"^[A-Z]\d[0-9A-Z](\.?[0-9A-Z]{0,4})?$"),  # O9A, C4A, M1A, Z3A are CM categories
    "ICD-10": re.compile(r"^[A-Z]\d{2}(\.?[0-9A-Z]{0,2})?$"),
    "ICD-9-CM": re.compile(r"^(\d{3}|V\d{2}|E\d{3})(\.?\d{0,2})?$"),
    "ATC": re.compile(r"^[A-Z](\d{2}([A-Z]([A-Z](\d{2})?)?)?)?$"),
    "NPU": re.compile(r"^(NPU|DNK|SWE)\d{5}$"),
    "LOINC": re.compile(r"^\d{1,7}-\d$"),
    "KVÅ": re.compile(r"^[A-ZÅÄÖ]{2,3}\d{2,3}$"),
    "SNOMED-CT": re.compile(r"^\d{6,18}$"),
    "RxNorm": re.compile(r"^\d{1,9}$"),
    "CPT": re.compile(r"^\d{4}[0-9A-Z]$"),
    "ICD-10-PCS": re.compile(r"^[0-9A-HJ-NP-Z]{7}$"),
}
"""What a full code looks like per system; prefixes (``J01*``) and range ends are checked as leading parts."""


def code_ok(system: str, text: str) -> bool:
    """Whether ``text`` looks like a code (or prefix, or range) of ``system``; systems without a known format pass."""
    fmt = CODE_FORMATS.get(system)
    if fmt is None:
        return True
    parts = (re.split(r"(?<=[A-Z0-9])-(?=[A-Z0-9])", text.rstrip("*")) if system in RANGE_SYSTEMS
             else [text.rstrip("*")])
    partial = text.endswith("*") or len(parts) == 2
    for p in parts:
        if fmt.match(p):
            continue
        if partial and any(fmt.match(p + pad) for pad in ("", "0", "00", "000", "0000", "00000", "A", "AA", "A00", "AA00")):
            continue
        return False
    return True


def _contradictions(rule: Rule) -> list[str]:
    out = []
    for variant in ("sensitive", "specific"):
        names = rule.conditions_of(variant)  # type: ignore[arg-type]
        req = [(n, rule.conditions[n].require) for n in names if rule.conditions[n].require]
        exc = [(n, rule.conditions[n].exclude) for n in names if rule.conditions[n].exclude]
        for rn, r in req:
            for en, e in exc:
                assert r is not None and e is not None
                if (_plain(r) and _plain(e) and r.kind == e.kind and r.codes == e.codes and r.anchor == e.anchor
                        and _inside(r, e)):
                    out.append(f"variant {variant}: '{rn}' requires events that '{en}' excludes in a window covering "
                               f"all of it, so no candidate can pass")
        settings = [rule.conditions[n].index_setting for n in names if rule.conditions[n].index_setting]
        allowed = set(rule.index.settings or []) or None
        for s in settings:
            allowed = set(s) if allowed is None else allowed & set(s)
        if allowed is not None and not allowed:
            out.append(f"variant {variant}: the index settings and index_setting conditions have no setting in common")
    return out


def _trial(rule: Rule) -> list[str]:
    """A rule with linked harms must say which trial its question implies (``anchor``) or why none can be emulated
    from coded data (``no_trial``): otherwise `risk excess` could only report "no anchor defined"."""
    if rule.type == "rule" and rule.harms and rule.anchor is None and rule.no_trial is None:
        return ["the rule has harms but neither 'anchor' (its target trial) nor 'no_trial' (why the trial cannot be "
                "emulated from coded data): add one (docs/rule-language.md, 'Target trial')"]
    if rule.no_trial is not None and not rule.harms:
        return ["'no_trial' explains a missing target trial, but the rule has no harms: remove it"]
    return []


def _threshold_units(rule: Rule, rs: RuleSet) -> list[str]:
    tests = [("index", rule.index.codes, rule.index.value)]
    if rule.anchor is not None:
        tests.append(("anchor", rule.anchor.codes, rule.anchor.value))
    tests += [(n, crit.codes, crit.value) for n, c in rule.conditions.items() for crit in c.criteria]
    out = []
    for where, ref, t in tests:
        if t is None or t.unit is None or t.threshold is None or (isinstance(ref, str) and ref not in rs.valuesets):
            continue
        vs = rs.valueset(ref)
        if unit_factor(t.unit, vs) is None:
            out.append(f"{where}: threshold unit {t.unit!r} cannot be converted to code set {vs.name!r} "
                       f"(canonical {vs.units.canonical if vs.units else '-'}; add a factor)")
    return out


def _plain(c: Criterion) -> bool:
    return c.value is None and c.coverage is None and c.first_in is None and not c.same_encounter and c.at_least == 1


def _inside(a: Criterion, b: Criterion) -> bool:
    if a.window.unit != b.window.unit:
        return False
    (alo, ahi), (blo, bhi) = a.window.int_bounds(), b.window.int_bounds()
    return blo <= alo and ahi <= bhi


def lint(root: Path | str | None = None) -> tuple[RuleSet, list[RuleError]]:
    """Load the library collecting schema problems, then check names, code formats and windows."""
    problems: list[RuleError] = []
    rs = load_library(root, collect=problems)
    for vs in rs.valuesets.values():
        for system, entries in vs.codes.items():
            raw = _raw_codes(vs.source_file, system)
            for text in raw:
                if not code_ok(system, text):
                    problems.append(RuleError(vs.source_file, f"codes.{system}: {text!r} is not a well-formed {system} code"))
    for rule in rs.rules.values():
        file = rs.files.get(rule.id, rule.id)
        for ref in rule.linked_triggers():  # unknown code sets are reported by load_library
            if ref not in rs.rules:
                problems.append(RuleError(file, f"unknown trigger {ref!r}"))
        problems += [RuleError(file, msg) for msg in _contradictions(rule)]
        problems += [RuleError(file, msg) for msg in _trial(rule)]
        problems += [RuleError(file, msg) for msg in _threshold_units(rule, rs)]
    return rs, problems


def _raw_codes(file: str, system: str) -> list[str]:
    import yaml

    if not file:
        return []
    data = yaml.safe_load(Path(file).read_text(encoding="utf-8"))
    return [str(c) for c in (data.get("codes", {}).get(system) or [])]
