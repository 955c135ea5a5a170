"""Which of a rule's codes occur in this extract: code-set coverage and the codes a code set may be missing.

A rule whose index codes never occur finds nothing, and nothing looks like good
care. Before any rule runs, the scan counts, for every code set a rule uses and
every coding system the extract holds for that event kind, how many distinct
codes and events match (``codeset_coverage.parquet``), in the manner of OHDSI
CohortDiagnostics' "included source concepts". Evaluability
(:mod:`lowvalue.engine.evaluability`) reads these counts, and ``orphan_codes.parquet``
lists, like CohortDiagnostics' "orphan codes", the frequent codes of the same kind
that a code set does not hold but that look related: the same ICD-10 category, KVÅ
group or ATC chemical subgroup, or, in a coding system the code set has no codes in
(a local RIS or laboratory catalogue), the frequent codes that no code set of the
library holds. The extract has no code texts, so relatedness is by code only.

All counting runs on one small table of distinct codes (``lv_codes``: kind, system,
code, events), so it costs one pass over the events whatever the number of rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb
import pandas as pd

from lowvalue.engine.sql import code_sets, codeset_key, ensure_sets, match_sql
from lowvalue.rules.codes import ICD_FAMILY, ValueSet
from lowvalue.rules.library import RuleSet
from lowvalue.rules.model import CodeRef, Rule

USED_SHARE = 0.01
"""A coding system counts as *used* for an event kind when it holds at least this share of the kind's events
(so one stray row in an odd system does not mark every rule limited)."""

CLASSIFICATIONS = frozenset({"ICD-10-SE", "ICD-10-CM", "ICD-10", "ICD-9-CM", "ICD-9-CM-Proc", "KSH97-P", "KVÅ", "ATC",
                             "NPU", "LOINC", "SNOMED-CT", "RxNorm", "CPT", "ICD-10-PCS"})
"""Public coding systems that cover a whole event kind. A code set without codes in one of these that the extract uses
cannot see that part of the data. A local catalogue (a RIS, a laboratory's own codes) may cover one field only, so its
absence from a code set is shown in the coverage table but is not by itself a limitation."""

ORPHANS_PER_SYSTEM = 10

PREFIX_LENGTH = {**{s: 3 for s in ICD_FAMILY}, "KVÅ": 3, "ATC": 5}
"""Leading characters that make two codes 'related' per system (ICD category, KVÅ group, ATC chemical subgroup).
Systems not listed (NPU, LOINC, SNOMED CT, RxNorm, CPT) have codes whose characters carry no hierarchy."""

COVERAGE_COLUMNS = ["rule_id", "condition", "role", "codeset", "kind", "system", "codes_in_set", "codes_matched",
                    "events_matched", "events_with_value", "system_events", "system_share"]
ORPHAN_COLUMNS = ["codeset", "kind", "system", "code", "events", "relation"]


@dataclass
class SystemCount:
    """Matches of one code set among one coding system's events of one kind."""

    codes_in_set: int
    codes_matched: int
    events_matched: int
    events_with_value: int
    system_events: int
    system_share: float


@dataclass
class Coverage:
    """Code counts of an extract, and per (code set, kind) the matches in each coding system."""

    con: duckdb.DuckDBPyConnection
    rs: RuleSet
    events: Any = None
    """Where ``events`` and ``encounters`` are, when not on ``con`` (the Spark engine: ``con`` holds only the distinct
    codes, brought to the driver); anything with ``execute(sql).fetchall()``."""
    kind_events: dict[str, int] = field(default_factory=dict)
    _cache: dict[tuple[str, str], dict[str, SystemCount]] = field(default_factory=dict)
    _systems: dict[str, dict[str, int]] = field(default_factory=dict)
    _matched: dict[int, dict[tuple[str, str], tuple[int, int, int]]] = field(default_factory=dict)
    _stays: dict[tuple[str, str], tuple[int, float, float]] = field(default_factory=dict)

    @classmethod
    def of(cls, con: duckdb.DuckDBPyConnection, rs: RuleSet, events: Any = None) -> "Coverage":
        """The counts of ``lv_codes``, the extract's distinct codes (made by :func:`lowvalue.engine.sql.prepare`);
        ``events``: see the field."""
        kinds = dict(con.execute("SELECT kind, sum(events) FROM lv_codes GROUP BY kind").fetchall())
        cov = cls(con, rs, events, {k: int(v) for k, v in kinds.items()})
        for kind, system, n in con.execute("SELECT kind, system, sum(events) FROM lv_codes GROUP BY kind, system").fetchall():
            cov._systems.setdefault(kind, {})[system] = int(n)
        cov._match(code_sets(rs))
        return cov

    def _match(self, sets: list[ValueSet]) -> None:
        """Matches of ``sets`` per kind and coding system, in one query on the distinct codes (``lv_sets``)."""
        keys = [k for k in {codeset_key(vs) for vs in sets} if k not in self._matched]
        if not keys:
            return
        ensure_sets(self.con, sets)
        for k in keys:
            self._matched[k] = {}
        for cs, kind, system, codes, events, with_value in self.con.execute(f"""
                SELECT s.cs, c.kind, c.system, count(DISTINCT c.code_norm), sum(c.events), sum(c.with_value)
                FROM lv_code_raw c JOIN lv_sets s ON s.system = c.system AND s.code = c.code
                WHERE s.cs IN ({', '.join(map(str, keys))}) GROUP BY s.cs, c.kind, c.system""").fetchall():
            self._matched[cs][(kind, system)] = (int(codes), int(events), int(with_value))

    def systems_used(self, kind: str, *, classifications_only: bool = False) -> dict[str, float]:
        """Coding systems holding at least :data:`USED_SHARE` of the kind's events, with their share."""
        counts = self._counts(None, kind)
        return {s: c.system_share for s, c in counts.items() if c.system_share >= USED_SHARE
                and (s in CLASSIFICATIONS or not classifications_only)}

    def stay_dating(self, kind: str) -> tuple[int, float, float]:
        """Events of ``kind`` in inpatient stays: how many, the share dated at the contact (exactly at the stay's start
        or end, or at midnight of its first or last day), and the share carrying a present-on-admission flag."""
        if not self._stays:  # every kind in one pass over the events (on Spark, a query costs seconds)
            for k, n, contact, flagged in (self.events or self.con).execute("""
                SELECT e.kind, count(*),
                       avg(CASE WHEN e.time = c.start_time OR e.time = c.end_time OR (e.time = date_trunc('day', e.time)
                                AND (CAST(e.time AS DATE) = CAST(c.start_time AS DATE)
                                     OR CAST(e.time AS DATE) = CAST(c.end_time AS DATE))) THEN 1 ELSE 0 END),
                       avg(CASE WHEN e.present_on_admission IS NOT NULL THEN 1 ELSE 0 END)
                FROM events e JOIN encounters c ON c.encounter_id = e.encounter_id
                WHERE c.setting = 'inpatient' GROUP BY e.kind""").fetchall():
                self._stays[("stay", k)] = (int(n), float(contact or 0.0), float(flagged or 0.0))
            self._stays[("stay", "")] = (0, 0.0, 0.0)  # asked once, even when no event is in a stay
        if ("stay", kind) not in self._stays:
            return (0, 0.0, 0.0)
        return self._stays[("stay", kind)]

    def of_set(self, ref: CodeRef, kind: str) -> dict[str, SystemCount]:
        """Per coding system (the code set's and the extract's for ``kind``): codes in the set, codes and events matched."""
        return self._counts(self.rs.valueset(ref), kind)

    def _counts(self, vs: ValueSet | None, kind: str) -> dict[str, SystemCount]:
        key = (vs.name if vs else "", kind)
        if key not in self._cache:
            matched: dict[tuple[str, str], tuple[int, int, int]] = {}
            if vs is not None:
                self._match([vs])
                matched = self._matched[codeset_key(vs)]
            total = max(self.kind_events.get(kind, 0), 1)
            out = {s: SystemCount(len(vs.codes.get(s, ())) if vs else 0, *matched.get((kind, s), (0, 0, 0)), n, n / total)
                   for s, n in self._systems.get(kind, {}).items()}
            for s in (vs.systems if vs else []):
                out.setdefault(s, SystemCount(len(vs.codes[s]), 0, 0, 0, 0, 0.0))  # type: ignore[union-attr]
            self._cache[key] = dict(sorted(out.items()))
        return self._cache[key]

    def table(self, rules: list[Rule]) -> pd.DataFrame:
        """``codeset_coverage``: one row per rule, condition (``index`` first), code set and coding system."""
        rows: list[dict[str, Any]] = []
        for rule in rules:
            for condition, role, crit_kind, ref in rule.code_uses():
                vs = self.rs.valueset(ref)
                for system, c in self.of_set(ref, crit_kind).items():
                    rows.append({"rule_id": rule.id, "condition": condition, "role": role, "codeset": vs.name,
                                 "kind": crit_kind, "system": system, **vars(c)})
        df = pd.DataFrame(rows, columns=COVERAGE_COLUMNS)
        df["system_share"] = df["system_share"].astype(float).round(4)
        return df.sort_values(["rule_id", "condition", "codeset", "kind", "system"], kind="mergesort").reset_index(drop=True)

    def _claimed(self, rules: list[Rule]) -> dict[str, str]:
        """Per kind, a predicate on ``c``: the code is held by some code set that ``rules`` use with that kind."""
        preds: dict[str, set[str]] = {}
        for rule in rules:
            for _, _, kind, ref in rule.code_uses():
                preds.setdefault(kind, set()).add(match_sql(self.rs.valueset(ref), "c"))
        return {k: " OR ".join(sorted(v)) for k, v in preds.items()}

    def unclaimed(self, rules: list[Rule], limit: int) -> pd.DataFrame:
        """Per kind and coding system, the ``limit`` most frequent codes that no code set used by ``rules`` with that kind holds."""
        parts = [self.con.execute(f"""
            SELECT kind, system, code, events FROM lv_codes c WHERE kind = ? AND NOT ({claimed})
            QUALIFY row_number() OVER (PARTITION BY system ORDER BY events DESC, code) <= {int(limit)}
            ORDER BY system, events DESC, code""", [kind]).df()
            for kind, claimed in sorted(self._claimed(rules).items())]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["kind", "system", "code", "events"])

    def orphans(self, rules: list[Rule]) -> pd.DataFrame:
        """Frequent codes a code set may be missing (see the module docstring), at most 10 per code set and system.

        One query: a SELECT per code set and related coding system, and one per kind and coding system no code set
        of that kind has (the same codes for every set without it), joined to the sets that lack it.
        """
        sets = {(self.rs.valueset(ref).name, kind): self.rs.valueset(ref)
                for rule in rules for _, _, kind, ref in rule.code_uses()}
        known = self._claimed(rules)
        parts: list[str] = []
        unheld: dict[tuple[str, str], str] = {}
        lacking: list[str] = []
        top = f"ORDER BY events DESC, code LIMIT {ORPHANS_PER_SYSTEM}"
        for (name, kind), vs in sorted(sets.items(), key=lambda kv: kv[0]):
            for system in self.systems_used(kind):
                if system not in vs.codes:
                    unheld.setdefault((kind, system), f"""(SELECT kind, system, code, events FROM lv_codes c
                        WHERE kind = {_q(kind)} AND system = {_q(system)} AND NOT ({known[kind]}) {top})""")
                    lacking.append(f"({_q(name)}, {_q(kind)}, {_q(system)})")
                    continue
                n = PREFIX_LENGTH.get(system)
                stems = sorted({e.low[:n] for e in vs.codes[system] if n and len(e.low) >= n})
                if not stems:
                    continue
                relation = "same {} as a code of the set".format(
                    {"ATC": "ATC chemical subgroup", "KVÅ": "KVÅ group"}.get(system, "category"))
                parts.append(f"""(SELECT {_q(name)} AS codeset, kind, system, code, events, {_q(relation)} AS relation
                    FROM lv_codes c WHERE kind = {_q(kind)} AND system = {_q(system)}
                    AND substr(c.code_norm, 1, {n}) IN ({', '.join(_q(s) for s in stems)}) AND NOT ({match_sql(vs, 'c')})
                    {top})""")
        if lacking:
            parts.append(f"""SELECT l.codeset, u.kind, u.system, u.code, u.events,
                    'coding system not in the set; no code set holds this code' AS relation
                FROM (VALUES {', '.join(lacking)}) l(codeset, kind, system)
                JOIN ({' UNION ALL '.join(unheld.values())}) u ON u.kind = l.kind AND u.system = l.system""")
        if not parts:
            return pd.DataFrame({c: pd.Series(dtype="int64" if c == "events" else object) for c in ORPHAN_COLUMNS})
        out = self.con.execute(f"SELECT * FROM ({' UNION ALL '.join(parts)}) "
                               "ORDER BY codeset, kind, system, events DESC, code").df()
        out["events"] = out["events"].astype("int64")
        return out[ORPHAN_COLUMNS]


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
