"""Can this extract support this rule? Say so before running it, instead of reporting a misleading zero.

Following Chalmers et al.'s evaluability criteria: a rule can only be judged
when the data holds the event kinds and coding systems it looks for (a rule on
KVÅ procedures says nothing on an extract coded in CPT), the care settings it
restricts to, and values for the labs it compares.
"""

from __future__ import annotations

from typing import Any

import duckdb

from lowvalue.rules.library import RuleSet
from lowvalue.rules.model import Rule


def _present(con: duckdb.DuckDBPyConnection) -> tuple[set[tuple[str, str]], set[tuple[str, str]], set[str]]:
    con.execute("""CREATE TEMP TABLE IF NOT EXISTS lv_present AS
                   SELECT kind, system, bool_or(value IS NOT NULL) AS has_values FROM lv_ev GROUP BY kind, system""")
    rows = con.execute("SELECT kind, system, has_values FROM lv_present").fetchall()
    settings = {r[0] for r in con.execute("SELECT DISTINCT setting FROM encounters").fetchall()}
    return {(k, s) for k, s, _ in rows}, {(k, s) for k, s, v in rows if v}, settings


def check(con: duckdb.DuckDBPyConnection, rule: Rule, rs: RuleSet) -> dict[str, Any]:
    """``{"status": ..., "reason": str}`` for one rule on the extract in ``con``.

    ``not_evaluable``: the index or a required condition has no data, so the rule is not run.
    ``limited``: only exclusions lack data; the rule runs, and the reason says its flags may overstate.
    """
    kinds_systems, with_values, settings = _present(con)
    problems: list[str] = []
    caveats: list[str] = []

    def need(what: str, kind: str, ref: Any, values: bool = False, into: list[str] = problems) -> None:
        vs = rs.valueset(ref)
        have = [s for s in vs.systems if (kind, s) in kinds_systems]
        if not have:
            into.append(f"{what}: no {kind} events coded in {', '.join(vs.systems) or '(no system)'}")
        elif values and not any((kind, s) in with_values for s in have):
            into.append(f"{what}: {kind} events of {vs.name} carry no values")

    need("index", rule.index.kind, rule.index.codes, values=rule.index.value is not None)
    if rule.index.settings and not settings & set(rule.index.settings):
        problems.append(f"index: no encounters in settings {rule.index.settings}")
    for name, cond in rule.conditions.items():
        if cond.role == "exclude":  # every branch of an exclusion that lacks data is one that cannot be checked
            for crit in cond.criteria:
                need(f"condition {name}", crit.kind, crit.codes, values=crit.value is not None, into=caveats)
        elif cond.criteria:  # a requirement fails only when none of its branches has data
            missing: list[str] = []
            for crit in cond.criteria:
                need(f"condition {name}", crit.kind, crit.codes, values=crit.value is not None, into=missing)
            if len(missing) == len(cond.criteria):
                problems.extend(missing)
    if problems:
        return {"status": "not_evaluable", "reason": "; ".join(problems + caveats)}
    if caveats:
        return {"status": "limited", "reason": "exclusions cannot be checked, so flags may overstate: " + "; ".join(caveats)}
    return {"status": "evaluable", "reason": ""}
