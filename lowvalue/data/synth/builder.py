"""Collects one chunk's encounters, events and truth rows, then turns them into canonical Arrow tables.

Planters and background care append whole numpy arrays (a scalar broadcasts), so
nothing loops per person. Encounter ids are only assigned at the end, after a
deterministic sort, which is what makes the output reproducible byte for byte.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from lowvalue.data.schema import ENCOUNTERS, EVENTS, PERSONS

from .clock import MIN_PER_DAY
from .population import Population
from .region import SETTING_COST

US_PER_MIN = 60_000_000

INTERVENTIONS_SCHEMA = pa.schema(
    [
        ("pattern", pa.string()),
        ("person_id", pa.string()),
        ("encounter_id", pa.string()),
        ("time", pa.timestamp("us")),
        ("kind", pa.string()),
        ("system", pa.string()),
        ("code", pa.string()),
        ("low_value", pa.bool_()),
        ("sensitive", pa.bool_()),
        ("reason", pa.string()),
        ("frailty", pa.float64()),
    ]
)
ADVERSE_SCHEMA = pa.schema(
    [
        ("person_id", pa.string()),
        ("time", pa.timestamp("us")),
        ("trigger", pa.string()),
        ("caused_by_pattern", pa.string()),
        ("index_time", pa.timestamp("us")),
        ("excess", pa.bool_()),
        ("candidate_pattern", pa.string()),
    ]
)


def _arr(value: Any, n: int, dtype: Any = None) -> np.ndarray:
    a = np.asarray(value, dtype=dtype)
    return np.broadcast_to(a, (n,)).copy() if a.ndim == 0 else a


def _strings(a: np.ndarray) -> pa.Array:
    a = a.astype(str)
    return pa.array(a, type=pa.string(), mask=(a == ""))


class ChunkBuilder:
    """Accumulates rows for one chunk of persons; see module docstring."""

    def __init__(self, pop: Population, rng: np.random.Generator):
        self.pop, self.rng = pop, rng
        self._enc: list[dict[str, np.ndarray]] = []
        self._ev: list[dict[str, np.ndarray]] = []
        self._iv: list[dict[str, np.ndarray]] = []
        self._ae: list[dict[str, np.ndarray]] = []
        self._ext: list[tuple[np.ndarray, np.ndarray]] = []
        self.n_enc = 0

    # -- appenders --------------------------------------------------------------------------------
    def encounter(self, person: np.ndarray, start: np.ndarray, minutes: Any, setting: Any, unit: Any) -> np.ndarray:
        """Add encounters (start in minutes, duration in minutes); returns their local indices."""
        person = np.asarray(person, dtype=np.int64)
        n = len(person)
        start = _arr(start, n, np.int64)
        end = start + _arr(minutes, n, np.int64)
        setting = _arr(setting, n).astype(str)
        base = np.array([SETTING_COST[s] for s in setting.tolist()]) if n else np.zeros(0)
        days = np.where(setting == "inpatient", np.maximum(1, -(-(end - start) // MIN_PER_DAY)), 1)
        cost = np.round(base * days * self.rng.uniform(0.8, 1.2, n))
        idx = np.arange(self.n_enc, self.n_enc + n)
        self.n_enc += n
        self._enc.append(dict(person=person, start=start, end=end, setting=setting, unit=_arr(unit, n).astype(str), cost=cost))
        return idx

    def extend(self, enc: np.ndarray, end: np.ndarray) -> None:
        """Make encounters last at least until ``end`` (an adverse event late in a stay)."""
        self._ext.append((np.asarray(enc, dtype=np.int64), np.asarray(end, dtype=np.int64)))

    def event(
        self,
        person: np.ndarray,
        enc: np.ndarray,
        time: np.ndarray,
        kind: Any,
        system: Any,
        code: Any,
        value: Any = np.nan,
        unit: Any = "",
        days_supply: Any = -1,
        cost: Any = np.nan,
    ) -> None:
        person = np.asarray(person, dtype=np.int64)
        n = len(person)
        if n == 0:
            return
        self._ev.append(
            dict(
                person=person,
                enc=_arr(enc, n, np.int64),
                time=_arr(time, n, np.int64),
                kind=_arr(kind, n).astype(str),
                system=_arr(system, n).astype(str),
                code=_arr(code, n).astype(str),
                value=_arr(value, n, float),
                unit=_arr(unit, n).astype(str),
                days_supply=_arr(days_supply, n, np.int64),
                cost=_arr(cost, n, float),
            )
        )

    def intervention(self, pattern: str, person, enc, time, kind: str, system: str, code, low_value, sensitive, reason) -> None:
        """A truth row for an index event (the event itself must be added with :meth:`event`)."""
        person = np.asarray(person, dtype=np.int64)
        n = len(person)
        if n == 0:
            return
        self._iv.append(
            dict(
                pattern=_arr(pattern, n).astype(str),
                person=person,
                enc=_arr(enc, n, np.int64),
                time=_arr(time, n, np.int64),
                kind=_arr(kind, n).astype(str),
                system=_arr(system, n).astype(str),
                code=_arr(code, n).astype(str),
                low_value=_arr(low_value, n, bool),
                sensitive=_arr(sensitive, n, bool),
                reason=_arr(reason, n).astype(str),
                frailty=self.pop.frailty[person],
            )
        )

    def adverse(self, person, time, trigger, caused_by: Any = "", index_time: Any = -1, excess: Any = False, candidate: Any = "") -> None:
        person = np.asarray(person, dtype=np.int64)
        n = len(person)
        if n == 0:
            return
        self._ae.append(
            dict(
                person=person,
                time=_arr(time, n, np.int64),
                trigger=_arr(trigger, n).astype(str),
                caused_by=_arr(caused_by, n).astype(str),
                index_time=_arr(index_time, n, np.int64),
                excess=_arr(excess, n, bool),
                candidate=_arr(candidate, n).astype(str),
            )
        )

    # -- views used while building -----------------------------------------------------------------
    def diagnoses(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(person, day, code) of every diagnosis added so far."""
        if not self._ev:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, str)
        m = self._cat(self._ev, "kind") == "diagnosis"
        person = self._cat(self._ev, "person")[m]
        dayn = self._cat(self._ev, "time")[m] // MIN_PER_DAY
        code = self._cat(self._ev, "code")[m]
        return person, dayn, code

    def drop(self, rules: list[tuple[np.ndarray, str, tuple[str, ...]]]) -> None:
        """Remove events: for each (persons, kind, prefixes), those of ``kind`` whose code starts with one of
        ``prefixes`` for the persons flagged in ``persons`` (a boolean mask over the chunk). Used once, after
        background care, to keep codes that would interfere with a pattern out of its persons' records (see
        ``patterns.RESERVED``)."""
        if not self._ev or not rules:
            return
        V = {k: self._cat(self._ev, k) for k in self._ev[0]}
        hit = np.zeros(len(V["person"]), bool)
        for persons, kind, prefixes in rules:
            rows = persons[V["person"]] & (V["kind"] == kind)
            if not rows.any():
                continue
            idx = np.flatnonzero(rows)
            codes = V["code"][idx]
            m = np.zeros(len(idx), bool)
            for pre in prefixes:
                m |= np.char.startswith(codes, pre)
            hit[idx[m]] = True
        self._ev = [{k: v[~hit] for k, v in V.items()}]

    # -- output ------------------------------------------------------------------------------------
    def _cat(self, parts: list[dict[str, np.ndarray]], key: str) -> np.ndarray:
        return np.concatenate([p[key] for p in parts])

    def person_ids(self, local: np.ndarray) -> np.ndarray:
        return np.char.add("P", np.char.zfill((local + self.pop.offset + 1).astype(str), 7))

    def tables(self, enc_offset: int) -> dict[str, pa.Table]:
        """Canonical and truth tables for the chunk; encounter ids start after ``enc_offset``."""
        pop = self.pop
        n = len(pop)
        persons = pa.Table.from_arrays(
            [
                pa.array(self.person_ids(np.arange(n))),
                pa.array(pop.birth.astype(np.int32), type=pa.date32()),
                pa.array(pop.sex),
                pa.array(pop.municipality),
                pa.array(pop.listing_unit),
                pa.array(pop.death.astype(np.int32), type=pa.date32(), mask=pop.death < 0),
            ],
            schema=PERSONS.schema,
        )
        E = {k: self._cat(self._enc, k) for k in self._enc[0]}
        if self._ext:
            idx = np.concatenate([e[0] for e in self._ext])
            np.maximum.at(E["end"], idx, np.concatenate([e[1] for e in self._ext]))
        order = np.lexsort((np.arange(len(E["start"])), E["unit"], E["setting"], E["start"], E["person"]))
        number = np.empty(len(order), dtype=np.int64)
        number[order] = enc_offset + 1 + np.arange(len(order))
        enc_ids = np.char.add("E", np.char.zfill(np.arange(enc_offset + 1, enc_offset + 1 + len(order)).astype(str), 8))
        encounters = pa.Table.from_arrays(
            [
                pa.array(enc_ids),
                pa.array(self.person_ids(E["person"][order])),
                pa.array(E["start"][order] * US_PER_MIN, type=pa.timestamp("us")),
                pa.array(E["end"][order] * US_PER_MIN, type=pa.timestamp("us")),
                pa.array(E["setting"][order]),
                pa.array(E["unit"][order]),
                pa.array(E["cost"][order]),
            ],
            schema=ENCOUNTERS.schema,
        )

        def enc_id(local: np.ndarray) -> np.ndarray:
            return enc_ids[number[local] - enc_offset - 1]

        V = {k: self._cat(self._ev, k) for k in self._ev[0]}
        vo = np.lexsort((number[V["enc"]], V["value"], V["code"], V["system"], V["kind"], V["time"], V["person"]))
        V = {k: v[vo] for k, v in V.items()}
        events = pa.Table.from_arrays(
            [
                pa.array(self.person_ids(V["person"])),
                pa.array(enc_id(V["enc"])),
                pa.array(V["time"] * US_PER_MIN, type=pa.timestamp("us")),
                pa.array(V["kind"]),
                pa.array(V["system"]),
                pa.array(V["code"]),
                pa.array(V["value"], from_pandas=True),
                _strings(V["unit"]),
                pa.array(V["days_supply"].astype(np.int32), type=pa.int32(), mask=V["days_supply"] < 0),
                pa.array(V["cost"], from_pandas=True),
                pa.nulls(len(V["time"]), pa.string()),  # no present-on-admission flag, as in Swedish registers
                pa.nulls(len(V["time"]), pa.string()),  # value_text: every generated value is a number
                pa.nulls(len(V["time"]), pa.string()),  # value_censor
            ],
            schema=EVENTS.schema,
        )
        out = {"persons": persons, "encounters": encounters, "events": events}
        out["interventions"] = self._interventions(enc_id)
        out["adverse_events"] = self._adverse()
        return out

    def _interventions(self, enc_id) -> pa.Table:
        if not self._iv:
            return INTERVENTIONS_SCHEMA.empty_table()
        I = {k: self._cat(self._iv, k) for k in self._iv[0]}
        o = np.lexsort((I["code"], I["pattern"], I["time"], I["person"]))
        I = {k: v[o] for k, v in I.items()}
        return pa.Table.from_arrays(
            [
                pa.array(I["pattern"]),
                pa.array(self.person_ids(I["person"])),
                pa.array(enc_id(I["enc"])),
                pa.array(I["time"] * US_PER_MIN, type=pa.timestamp("us")),
                pa.array(I["kind"]),
                pa.array(I["system"]),
                pa.array(I["code"]),
                pa.array(I["low_value"]),
                pa.array(I["sensitive"]),
                pa.array(I["reason"]),
                pa.array(I["frailty"]),
            ],
            schema=INTERVENTIONS_SCHEMA,
        )

    def _adverse(self) -> pa.Table:
        if not self._ae:
            return ADVERSE_SCHEMA.empty_table()
        A = {k: self._cat(self._ae, k) for k in self._ae[0]}
        o = np.lexsort((A["trigger"], A["time"], A["person"]))
        A = {k: v[o] for k, v in A.items()}
        return pa.Table.from_arrays(
            [
                pa.array(self.person_ids(A["person"])),
                pa.array(A["time"] * US_PER_MIN, type=pa.timestamp("us")),
                pa.array(A["trigger"]),
                _strings(A["caused_by"]),
                pa.array(A["index_time"] * US_PER_MIN, type=pa.timestamp("us"), mask=A["index_time"] < 0),
                pa.array(A["excess"]),
                _strings(A["candidate"]),
            ],
            schema=ADVERSE_SCHEMA,
        )
