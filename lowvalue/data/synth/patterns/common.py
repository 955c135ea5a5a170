"""What every planter shares: choosing planted vs lookalike, placing the index date, and recording truth.

A planter gets the persons assigned to its pattern, calls :func:`prepare` (which
draws, per instance, whether it is planted and otherwise which kind of lookalike
it is, and an index day that respects the age limits with a 5-day margin so no
age definition is ambiguous), writes its events, and calls :func:`finish`, which
labels the instance against background codes, writes the truth row and draws the
linked adverse event.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import adverse
from ..builder import ChunkBuilder
from ..coding import system_of
from ..clock import FOLLOW_UP_DAYS, INDEX_FIRST, MIN_PER_DAY, PERIOD_START, add_years, clock_time, uniform_days
from ..region import multiplier, hospital_unit

FRAILTY_SLOPE, FRAILTY_CENTRE = 4.0, 0.2
"""logit P(planted) = alpha[pattern] + ln(unit multiplier) + FRAILTY_SLOPE * (frailty - FRAILTY_CENTRE)."""
AGE_MARGIN = 5


class DxIndex:
    """Background diagnoses sorted by (person, day), for "is code X in window W" look-ups per instance."""

    def __init__(self, person: np.ndarray, day: np.ndarray, code: np.ndarray):
        o = np.lexsort((day, person))
        self.key = person[o] * 100_000 + (day[o] - PERIOD_START + 50_000)
        self.code = code[o]

    def first_match(self, p: np.ndarray, lo: np.ndarray, hi: np.ndarray, prefixes: tuple[str, ...]) -> np.ndarray:
        """The first prefix with a diagnosis in ``[lo, hi]`` (days) per row, '' if none."""
        out = np.full(len(p), "", dtype=object)
        base = p * 100_000 - PERIOD_START + 50_000
        for pre in prefixes:
            keys = self.key[np.char.startswith(self.code, pre)]
            hit = np.searchsorted(keys, base + hi, "right") > np.searchsorted(keys, base + lo, "left")
            out[(out == "") & hit] = pre
        return out


@dataclass
class Chunk:
    """The state planters work on: the builder, background diagnoses and running counts."""

    b: ChunkBuilder
    bg: DxIndex
    counts: dict[str, Counter] = field(default_factory=dict)

    @property
    def rng(self) -> np.random.Generator:
        return self.b.rng


@dataclass(frozen=True)
class Spec:
    """How a pattern's instances are drawn. Lookalike kinds in ``not_eligible`` fail the sensitive variant too."""

    pattern: str
    alpha: float
    lookalikes: dict[str, float]
    not_eligible: frozenset[str] = frozenset()
    min_age: int = 18
    age_kind: str | None = None
    settings: tuple[tuple[str, float], ...] = (("primary_care", 0.8), ("outpatient", 0.2))
    dept: str = "MED"
    tail: int = 0
    age_edge: float = 0.0
    background: tuple[tuple[tuple[str, ...], int, int, str], ...] = ()


@dataclass
class Batch:
    spec: Spec
    p: np.ndarray
    day: np.ndarray
    kind: np.ndarray
    setting: np.ndarray
    unit: np.ndarray
    reason: np.ndarray

    @property
    def n(self) -> int:
        return len(self.p)

    def is_(self, kind: str) -> np.ndarray:
        return self.kind == kind

    @property
    def planted(self) -> np.ndarray:
        return self.kind == "planted"


def unit_for(b: ChunkBuilder, p: np.ndarray, setting: np.ndarray, dept: str = "MED") -> np.ndarray:
    """The unit where care of each setting happens: the listing vårdcentral or the home hospital."""
    pop = b.pop
    return np.where(
        np.isin(setting, ["primary_care", "digital"]),
        pop.listing_unit[p],
        np.where(setting == "emergency", hospital_unit(pop.hospital[p], "AKUT"), hospital_unit(pop.hospital[p], dept)),
    )


def prepare(ck: Chunk, spec: Spec, p: np.ndarray) -> Batch:
    """Draw planted/lookalike kind, routine setting and unit, and a feasible index day; drops infeasible persons."""
    rng, pop = ck.rng, ck.b.pop
    n = len(p)
    names = np.array([s for s, _ in spec.settings])
    w = np.array([x for _, x in spec.settings])
    setting = names[rng.choice(len(names), n, p=w / w.sum())]
    unit = unit_for(ck.b, p, setting, spec.dept)
    logit = spec.alpha + np.log(multiplier(unit)) + FRAILTY_SLOPE * (pop.frailty[p] - FRAILTY_CENTRE)
    planted = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))
    kinds = np.array(list(spec.lookalikes))
    lw = np.array(list(spec.lookalikes.values()))
    kind = np.where(planted, "planted", kinds[rng.choice(len(kinds), n, p=lw / lw.sum())]).astype(object)

    hi = pop.last_day[p] - FOLLOW_UP_DAYS - spec.tail
    lo = np.maximum(INDEX_FIRST, add_years(pop.birth[p], spec.min_age) + AGE_MARGIN)
    adult = lo <= hi
    if spec.age_kind:
        lo_y = np.maximum(INDEX_FIRST, add_years(pop.birth[p], spec.min_age - 1) + AGE_MARGIN)
        hi_y = np.minimum(hi, add_years(pop.birth[p], spec.min_age) - AGE_MARGIN)
        young = lo_y <= hi_y
        is_age = kind == spec.age_kind
        kind[~is_age & ~adult & young] = spec.age_kind
        others = kinds[kinds != spec.age_kind]
        swap = (kind == spec.age_kind) & ~young & adult
        ow = lw[kinds != spec.age_kind]
        kind[swap] = others[rng.choice(len(others), swap.sum(), p=ow / ow.sum())]
        use_y = kind == spec.age_kind
        lo, hi = np.where(use_y, lo_y, lo), np.where(use_y, hi_y, hi)
    if spec.age_edge:
        edge = (kind == "planted") & (rng.random(n) < spec.age_edge)
        hi_e = np.minimum(hi, add_years(pop.birth[p], spec.min_age + 1) - AGE_MARGIN)
        edge &= lo <= hi_e
        hi = np.where(edge, hi_e, hi)
    keep = lo <= hi
    day = uniform_days(rng, lo[keep], hi[keep])
    k = kind[keep]
    return Batch(spec, p[keep], day, k, setting[keep], unit[keep], k.copy())


def visit(ck: Chunk, p: np.ndarray, day: np.ndarray, setting, unit=None, *, hours=(8.0, 11.5), minutes=30, dept: str = "MED"):
    """One encounter per row on ``day``; returns (encounter, start minute). Morning by default so that
    context visits on the index day come before the index event (index visits use the afternoon)."""
    setting = np.broadcast_to(np.asarray(setting), p.shape).astype(str)
    if unit is None:
        unit = unit_for(ck.b, p, setting, dept)
    t = np.asarray(day) * MIN_PER_DAY + clock_time(ck.rng, len(p), *hours)
    return ck.b.encounter(p, t, minutes, setting, unit), t


AFTERNOON = (12.0, 16.5)


def context_dx(ck: Chunk, p: np.ndarray, day: np.ndarray, code, setting="primary_care", dept: str = "MED") -> None:
    """A diagnosis at its own morning visit (red flags, exclusions, eligibility diagnoses)."""
    from ..coding import dx

    if len(p) == 0:
        return
    enc, t = visit(ck, p, day, setting, dept=dept)
    dx(ck.b, p, enc, t + 5, code)


def back(ck: Chunk, day: np.ndarray, lo: int, hi: int, edge: float = 0.2) -> np.ndarray:
    """Days ``k`` in ``[lo, hi]`` before ``day`` (never before the data start); ``edge`` of them exactly ``hi``."""
    top = np.minimum(hi, day - PERIOD_START)
    k = uniform_days(ck.rng, np.full(len(day), lo), top)
    at_edge = (ck.rng.random(len(day)) < edge) & (top == hi)
    return day - np.where(at_edge, hi, k)


def pick(ck: Chunk, codes: tuple[str, ...] | list[str], n: int) -> np.ndarray:
    return np.asarray(codes)[ck.rng.integers(0, len(codes), n)]


def finish(
    ck: Chunk,
    bt: Batch,
    enc: np.ndarray,
    time: np.ndarray,
    kind: str,
    system: str,
    code: np.ndarray,
    *,
    candidate: np.ndarray | None = None,
    emit: Callable[[np.ndarray], np.ndarray] | None = None,
) -> None:
    """Label against background codes, write the truth rows, draw linked adverse events."""
    spec, b = bt.spec, ck.b
    idx_day = time // MIN_PER_DAY
    for prefixes, lo, hi, label in spec.background:
        rows = np.flatnonzero(bt.planted)
        hit = ck.bg.first_match(bt.p[rows], idx_day[rows] + lo, idx_day[rows] + hi, prefixes)
        flip = rows[hit != ""]
        bt.kind[flip] = "background"
        bt.reason[flip] = [f"{label} {h} (background care)" for h in hit[hit != ""]]
    planted = bt.planted
    sensitive = planted | ~np.isin(bt.kind, list(spec.not_eligible))
    reason = np.where(planted, "planted", bt.reason)
    b.intervention(spec.pattern, bt.p, enc, time, kind, system_of(code, system), code, planted, sensitive, reason)
    c = ck.counts.setdefault(spec.pattern, Counter())
    c["planted"] += int(planted.sum())
    c["lookalikes"] += int((~planted).sum())
    c["lookalikes_sensitive"] += int((~planted & sensitive).sum())
    if spec.pattern in adverse.LINKED:
        draw_linked(ck, spec.pattern, bt.p, time, planted, candidate=candidate, emit=emit)


def draw_linked(
    ck: Chunk,
    pattern: str,
    p: np.ndarray,
    time: np.ndarray,
    planted: np.ndarray,
    *,
    candidate: np.ndarray | None = None,
    emit: Callable[[np.ndarray], np.ndarray] | None = None,
) -> None:
    """Draw the pattern's linked adverse event for every eligible candidate, planted or not.

    Every index event the rule judges must get a draw, including ones another planter wrote: a
    comparator without one has too few events and inflates the estimated risk ratio."""
    b = ck.b
    trigger, rr = adverse.LINKED[pattern]
    cand = np.ones(len(p), bool) if candidate is None else candidate
    happens, excess = adverse.draw(ck.rng, b.pop.frailty[p], planted, rr)
    happens &= cand
    rows = np.flatnonzero(happens)
    t_ae = emit(rows) if emit else adverse.EMITTERS[trigger](b, p[rows], time[rows])
    b.adverse(p[rows], t_ae, trigger, np.where(excess[rows], pattern, ""), time[rows], excess[rows], pattern)
    c = ck.counts.setdefault(pattern, Counter())
    c["followed_planted"] += int((cand & planted).sum())
    c["followed_lookalikes"] += int((cand & ~planted).sum())
    c["adverse_planted"] += int((happens & planted).sum())
    c["adverse_lookalikes"] += int((happens & ~planted).sum())


def age_on(ck: Chunk, p: np.ndarray, day: np.ndarray) -> np.ndarray:
    from ..clock import age_at

    return age_at(ck.b.pop.birth[p], day)


def edge_back(ck: Chunk, day: np.ndarray, lo: int, hi: int, edge: float = 0.2) -> np.ndarray:
    """Like :func:`back`, but ``edge`` of the rows sit exactly ``lo`` days before (the inner edge of an
    outer window such as ``[-365d, -31d]``)."""
    d = back(ck, day, lo, hi, 0.0)
    at = (ck.rng.random(len(day)) < edge) & (day - lo >= PERIOD_START)
    return np.where(at, day - lo, d)


def record(ck: Chunk, pattern: str, p, enc, time, kind: str, system: str, code, low, sens, reason, counter: str) -> None:
    """A truth row written outside :func:`finish`: earlier index events of a series (labelled as they are) or
    an index event another pattern's planter wrote that this pattern's rule also judges."""
    p = np.asarray(p)
    if len(p) == 0:
        return
    low = np.broadcast_to(np.asarray(low, bool), p.shape)
    ck.b.intervention(pattern, p, enc, time, kind, system_of(code, system), code, low, sens, reason)
    c = ck.counts.setdefault(pattern, Counter())
    c[counter] += len(p)
    if counter == "cross":
        c["cross_low_value"] += int(low.sum())


def context_index(ck: Chunk, pattern: str, p, enc, time, kind: str, system: str, code, reason) -> None:
    """Truth row for an index-code event that is only context (an earlier course, an earlier PPI dispensing)."""
    ck.b.intervention(pattern, p, enc, time, kind, system_of(code, system), code, False, False, reason)
    ck.counts.setdefault(pattern, Counter())["context"] += len(p)
