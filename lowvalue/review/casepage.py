"""What the case page shows a clinician to verify a flag: every condition of the rule with its outcome on this case.

Why: a reviewer cannot confirm a flag from a rule id and a list of raw events. For each condition of the flag's
tier the page says what the rule asked, in words (sv/en), and what the scan found: a requirement met with the
events that met it (code, code text, value and unit, time relative to the index: "Hb 95 g/L 2 h före"), an
exclusion checked and found absent with the code set that was searched, its coding systems and its window. That
also covers rules whose logic is only exclusions (LV-RX-022, LV-SCR-009), which used to show an empty evidence list.
Only the first failing condition is recorded by the scan, so for a lower tier (or an unflagged candidate) the page
says which condition failed and that the later ones were not recorded, never guessing.

Code texts come from the code sets (their titles: the library keeps them in English only, and the page says so
in Swedish) and from the extract's own text where it has one (``value_text`` of an event). The timeline shows the
person's events around the index under the pseudonym only (times relative to the index).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from lowvalue.report.i18n import Numbers
from lowvalue.review.i18n import STRINGS

TIMELINE_DAYS = 30  # the timeline shows the events of the 30 days before and 7 days after the index
TIMELINE_AFTER_DAYS = 7
TIMELINE_MAX = 60


def relative(t: Any, index: Any, lang: str) -> str:
    """A time relative to the index in the words of the page: "2 h före", "3 d före", "vid indexhändelsen"."""
    s = STRINGS[lang]
    delta = pd.Timestamp(t) - pd.Timestamp(index)
    hours = delta.total_seconds() / 3600
    if abs(hours) < 0.5:
        return s["rel_at"]
    n, unit = (round(abs(hours)), s["rel_h"]) if abs(hours) < 48 else (round(abs(hours) / 24), s["rel_d"])
    return (s["rel_before"] if hours < 0 else s["rel_after"]).format(n=n, u=unit)


@dataclass
class ConditionView:
    """One condition of the rule as the page shows it."""

    text: str  # what the rule asks, in words
    outcome: str  # met | absent (exclusion checked, not found) | failed | present (exclusion found) | not_recorded
    events: list[str] = field(default_factory=list)
    searched: list[str] = field(default_factory=list)  # code sets, systems and windows searched (exclusions)


class CaseExplainer:
    """Builds the condition view and timeline of a case; one per app, code texts cached."""

    def __init__(self, rules: Any, results: Path | None = None):
        self.rs, self.results = rules, results
        self._persons: dict[str, str] | None = None
        self._first_failed: dict[str, str] | None = None
        self._duck: Any = None
        self._case_persons: list[str] = []

    # -- ids kept server-side (never shown, except the audited re-identification) --------------------------------------
    def _load_ids(self) -> None:
        if self._persons is not None or self.results is None:
            return
        f = pd.read_parquet(self.results / "flags.parquet", columns=["flag_id", "person_id"])
        c = pd.read_parquet(self.results / "candidates.parquet",
                            columns=["candidate_id", "person_id", "first_failed", "eligible", "sensitive", "specific"])
        self._persons = {**dict(zip(c.candidate_id, c.person_id.astype(str))), **dict(zip(f.flag_id, f.person_id.astype(str)))}
        # the persons a case can be about: flagged, or eligible and flagged by no tier (a round's unflagged sample)
        unflagged = c[c.eligible & ~c.sensitive & ~c.specific]
        self._case_persons = sorted(set(f.person_id.astype(str)) | set(unflagged.person_id.astype(str)))
        self._first_failed = {k: v for k, v in zip(c.candidate_id, c.first_failed) if isinstance(v, str)}

    def person_id(self, flag_id: str) -> str | None:
        """The original person id of a case (the re-identification key): only for the audited on-demand view."""
        self._load_ids()
        return (self._persons or {}).get(flag_id)

    def first_failed(self, flag_id: str) -> str | None:
        self._load_ids()
        return (self._first_failed or {}).get(flag_id)

    def _events(self) -> Any:
        """An in-memory DuckDB table of the extract's events of the persons with a case (loaded once: reading the
        Parquet file per page cost ~100 ms), or None when the extract is gone."""
        if getattr(self, "_duck", None) is None and self.results is not None:
            src = _events_source(self.results)
            self._load_ids()
            if src is None or not self._persons:
                return None
            import duckdb

            con = duckdb.connect()
            cols = {r[0] for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [src]).fetchall()}
            vt = "value_text" if "value_text" in cols else "NULL::VARCHAR AS value_text"
            persons = pd.DataFrame({"person_id": self._case_persons})  # noqa: F841 - read by the SQL below
            con.execute(f"CREATE TABLE ev AS SELECT CAST(person_id AS VARCHAR) AS person_id, time, kind, system, code, "
                        f"value, unit, {vt} FROM read_parquet(?) WHERE CAST(person_id AS VARCHAR) IN "
                        "(SELECT person_id FROM persons) ORDER BY person_id, time", [src])
            self._duck = con
        return getattr(self, "_duck", None)

    # -- code texts ------------------------------------------------------------------------------------------------------
    @lru_cache(maxsize=4096)
    def code_text(self, system: str, code: str, prefer: tuple[str, ...] = ()) -> str:
        """The title of the first of the rule's code sets (``prefer``) that holds ``code``, or "" when none does.

        Only the rule's own sets: a set elsewhere in the library that happens to hold the code names the concept
        of another rule (an anaemia code in "causes of low back pain" exclusions), not the code's meaning."""
        for n in prefer:
            vs = self.rs.valuesets.get(n)
            if vs is not None and vs.matches(system, code):
                return vs.title or vs.name.replace("_", " ")
        return ""

    def _rule_sets(self, rule: Any) -> tuple[str, ...]:
        return tuple(r for r in rule.code_refs() if isinstance(r, str))

    def _set_text(self, ref: Any) -> tuple[str, list[str]]:
        vs = self.rs.valueset(ref)
        return (vs.title or vs.name.replace("_", " ")), vs.systems

    def _criterion(self, crit: Any, lang: str) -> str:
        from lowvalue.risk.explain import WORDS, window_text

        s, nums = STRINGS[lang], Numbers(lang)  # type: ignore[arg-type]
        title, systems = self._set_text(crit.codes)
        text = s["crit"].format(kind=WORDS[lang].get(f"kind_{crit.kind}", crit.kind), codes=title,
                                window=window_text(crit.window, lang))
        if crit.at_least > 1:
            text += s["crit_at_least"].format(n=crit.at_least)
        if crit.value is not None and crit.value.threshold is not None:
            text += s["crit_value"].format(of=s[f"of_{crit.value.of}"], op=crit.value.op,
                                           v=nums.num(crit.value.threshold, 0), unit=crit.value.unit or "")
        if crit.coverage is not None:
            text += s["crit_coverage"].format(n=crit.coverage.min_days)
        if crit.anchor == "discharge":
            text += WORDS[lang]["from_discharge"]
        return text

    def event_line(self, e: dict[str, Any], index: Any, lang: str, prefer: tuple[str, ...] = ()) -> str:
        """"Hb 95 g/L 2 h före — NPU28309 (NPU): Haemoglobin in blood (B-Hb)"."""
        nums = Numbers(lang)  # type: ignore[arg-type]
        text = self.code_text(str(e.get("system")), str(e.get("code")), prefer)
        value = f" {nums.num(e['value'], 1)} {e.get('unit') or ''}".rstrip() if e.get("value") is not None else ""
        own = f" – {e['value_text']}" if e.get("value_text") else ""
        when = relative(e.get("time"), index, lang) if e.get("time") else ""
        return f"{e.get('code')} ({e.get('system')}){': ' + text if text else ''}{value}{own}, {when}"

    def conditions(self, rule: Any, flag: Any, lang: str) -> list[ConditionView]:
        """Every condition of the flag's tier with its outcome (see the module docstring)."""
        s = STRINGS[lang]
        evidence = [e for e in _evidence(flag["evidence"]) if isinstance(e, dict)]
        prefer = self._rule_sets(rule)
        variant = flag["variant"]
        passed = rule.conditions_of("specific" if variant == "specific" else
                                    "sensitive" if variant == "sensitive" else "eligibility")
        failed = self.first_failed(flag["flag_id"]) if variant != "specific" else None
        shown = rule.conditions_of("specific")
        shown += [n for n in rule.conditions_of("sensitive") if n not in shown]
        out = []
        for name in shown:
            c = rule.conditions[name]
            crits = c.criteria
            if c.role in ("require", "exclude"):
                parts = [self._criterion(cr, lang) for cr in crits]
                joiner = s["any_of_req"] if c.role == "require" else s["any_of_excl"]
                text = (s["req"] if c.role == "require" else s["excl"]) + (joiner + "; ".join(parts) if c.any_of
                                                                           else parts[0])
            elif c.role == "index_setting":
                text = s["cond_setting"].format(settings=", ".join(c.index_setting or []))
            else:
                text = s["cond_onset"]
            if name in passed:
                outcome = "met" if c.role != "exclude" else "absent"
            elif name == failed:
                outcome = "present" if c.role == "exclude" else "failed"
            else:
                outcome = "not_recorded"
            view = ConditionView(text, outcome)
            if outcome == "met":
                view.events = [self.event_line(e, flag["index_time"], lang, prefer)
                               for e in evidence if e.get("condition") == name]
            if c.role == "exclude":
                for cr in crits:
                    title, systems = self._set_text(cr.codes)
                    from lowvalue.risk.explain import window_text

                    view.searched.append(s["searched"].format(codes=title, systems=", ".join(systems),
                                                              window=window_text(cr.window, lang)))
            out.append(view)
        return out

    def index_value(self, rule: Any, flag: Any, lang: str) -> str | None:
        """The measured value that made the case low value (e.g. LV-HOSP-027's haemoglobin), from the evidence."""
        for e in _evidence(flag["evidence"]):
            if isinstance(e, dict) and e.get("value") is not None:
                return self.event_line(e, flag["index_time"], lang, self._rule_sets(rule))
        return None

    def index_line(self, rule: Any, flag: Any, lang: str) -> str:
        text = self.code_text(str(flag["index_system"]), str(flag["index_code"]), self._rule_sets(rule))
        return f"{flag['index_code']} ({flag['index_system']})" + (f": {text}" if text else "")

    def timeline(self, flag: Any, lang: str, rule: Any = None) -> list[tuple[str, str, str]]:
        """The person's events from 30 days before to 7 days after the index: (when, kind, what), pseudonymised."""
        from lowvalue.risk.explain import WORDS

        pid = self.person_id(flag["flag_id"])
        events = self._events()
        if pid is None or events is None:
            return []
        idx = pd.Timestamp(flag["index_time"])
        cur = events.cursor()  # one cursor per call: the connection is shared by the server's threads
        try:
            d = cur.execute("SELECT time, kind, system, code, value, unit, value_text FROM ev WHERE person_id = ? "
                            "AND time BETWEEN ? AND ? ORDER BY time, kind, code LIMIT ?",
                            [pid, idx - pd.Timedelta(days=TIMELINE_DAYS), idx + pd.Timedelta(days=TIMELINE_AFTER_DAYS),
                             TIMELINE_MAX]).df()
        finally:
            cur.close()
        prefer = self._rule_sets(rule) if rule is not None else ()
        return [(relative(r["time"], idx, lang), WORDS[lang].get(f"kind_{r['kind']}", r["kind"]),
                 self.event_line({**r, "time": None, "value": None if pd.isna(r["value"]) else r["value"]},
                                 idx, lang, prefer).rstrip(", "))
                for r in d.to_dict("records")]


def _evidence(text: Any) -> list[Any]:
    try:
        return list(json.loads(text or "[]"))
    except (TypeError, json.JSONDecodeError):
        return []


@lru_cache(maxsize=8)
def _events_source(results: Path) -> str | None:
    """The extract's events file the scan read (from the manifest), when it is still there."""
    try:
        m = json.loads((results / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    src = ((m.get("data") or {}).get("sources") or {}).get("events")
    return src if src and Path(src).is_file() and src.endswith(".parquet") else None
