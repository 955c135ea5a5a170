"""``generate``: the synthetic region, chunk by chunk, plus the truth it was built from."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from lowvalue import __version__

from . import adverse, background
from .builder import ChunkBuilder
from .patterns import PATTERN_IDS, assign, plant_all, reserve
from .patterns.common import FRAILTY_CENTRE, FRAILTY_SLOPE, Chunk, DxIndex
from .population import FRAILTY, make_population
from .region import UNIT_MULTIPLIER
from .summary import SynthSummary
from .writer import TableWriters

GENERATOR_VERSION = f"lowvalue-synth {__version__}/4"
"""/3: real and local codes (NPU28309, LOKAL-RIS, ...) and region-codes/; planters follow the v2 rules (LV-RX-022, ...).
/4: target trials planted for LV-ABX-003 and LV-ABX-004 too (untreated anchors; their outcomes drawn per anchor)."""


def _rng(seed: int, chunk: int) -> np.random.Generator:
    """Each chunk has its own stream, so chunks are independent; the chunk size is therefore part of the seed."""
    return np.random.default_rng(np.random.SeedSequence([abs(seed), int(seed < 0), chunk]))


def generate(persons: int, seed: int, out: Path, chunk_size: int = 20000) -> SynthSummary:
    """Write a synthetic extract (persons, encounters, events) and ``truth/`` into ``out``.

    Same arguments give byte-identical files. Changing ``chunk_size`` changes the
    data (each chunk draws from its own random stream).
    """
    out = Path(out)
    counts: dict[str, Counter] = {}
    triggers: Counter = Counter()
    enc_offset = 0
    with TableWriters(out) as writers:
        for ci, start in enumerate(range(0, persons, chunk_size)):
            rng = _rng(seed, ci)
            pop = make_population(rng, min(chunk_size, persons - start), start)
            assign(pop, rng)
            b = ChunkBuilder(pop, rng)
            background.chronic_visits(b)
            background.acute_visits(b)
            background.admissions(b)
            adverse.background(b)
            reserve(b)
            plant_all(Chunk(b, DxIndex(*b.diagnoses()), counts))
            tables = b.tables(enc_offset)
            enc_offset += tables["encounters"].num_rows
            vc = pc.value_counts(tables["adverse_events"]["trigger"])
            for item in vc.to_pylist():
                triggers[item["values"]] += item["counts"]
            writers.write(tables)
        rows = dict(writers.rows)
    summary = SynthSummary(
        out=out,
        persons=persons,
        seed=seed,
        chunk_size=chunk_size,
        rows=rows,
        patterns={p: dict(sorted(counts.get(p, Counter()).items())) for p in PATTERN_IDS},
        triggers=dict(sorted(triggers.items())),
    )
    (out / "truth" / "effects.json").write_text(json.dumps(effects(summary), indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    write_region_codes(out / "region-codes")
    return summary


def write_region_codes(folder: Path) -> None:
    """The region's code overlay: its local RIS, clinical-physiology and laboratory codes, per library code set.

    A real region's analyst writes this folder (``lowvalue codes template``); the synthetic region ships its own,
    so that scanning it looks like scanning a region whose catalogue has been mapped.
    """
    from lowvalue.rules.overlay import dump_yaml

    from .coding import LOCAL_CODES

    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.yaml"):
        old.unlink()
    for codeset in sorted({v[2] for v in LOCAL_CODES.values()}):
        entries = [{"system": system, "code": code, "text": text,
                    "source": "the synthetic region's local catalogue (fictional; lowvalue/data/synth/coding.py)",
                    "checked_by": "lowvalue synthetic region generator"}
                   for code, (system, text, cs) in sorted(LOCAL_CODES.items()) if cs == codeset]
        (folder / f"{codeset}.yaml").write_text(dump_yaml({
            "codeset": codeset, "region": "synthetic Värmland-like region (fictional)", "entries": entries}),
            encoding="utf-8")


def effects(summary: SynthSummary) -> dict:
    """The true effects and the model that generated them, for checking risk estimates against."""
    patterns = {}
    for pattern, (trigger, rr) in adverse.LINKED.items():
        c = summary.patterns.get(pattern, {})
        patterns[pattern] = {
            "trigger": trigger,
            "true_risk_ratio": rr,
            "horizon_days": adverse.HORIZON_DAYS,
            "baseline": {
                "formula": "p0 = a + b * frailty; P(event | planted) = min(1, RR * p0); P(event | lookalike) = p0",
                "a": adverse.P0_INTERCEPT,
                "b": adverse.P0_SLOPE,
            },
            "counts": {
                "planted": c.get("planted", 0),
                "lookalikes": c.get("lookalikes", 0),
                "followed_planted": c.get("followed_planted", 0),
                "followed_lookalikes": c.get("followed_lookalikes", 0),
                "adverse_planted": c.get("adverse_planted", 0),
                "adverse_lookalikes": c.get("adverse_lookalikes", 0),
            },
        }
    trials = {}
    for pattern, tr in adverse.TRIALS.items():
        c = summary.patterns.get(pattern, {})
        trials[pattern] = {
            "trigger": tr.trigger,
            "true_risk_ratio": tr.rr,
            "estimand": "causal risk ratio of the intervention within the grace period vs not, among anchors "
            "(constant: min(1, RR * p0) never binds, so the marginal ratio equals RR)",
            "anchor": tr.anchor,
            "grace_days": tr.grace,
            "outcome_days_after_anchor": list(tr.outcome_days),
            "negative_control": {"trigger": tr.nc_trigger, "true_risk_ratio": 1.0, "formula": f"P = {tr.nc_share} * p0(age)",
                                 "days_after_anchor": list(tr.nc_days)},
            "baseline": {"formula": "p0 = 0.02 + 0.004 * max(age - 18, 0), age in completed years on the anchor day; "
                         "P(event | treated within grace) = RR * p0; otherwise p0"},
            "confounding": "treated (planted or treated lookalike) rises with frailty (logit slope "
            f"{FRAILTY_SLOPE}), and frailty with age; a planted instance becomes 'no antibiotic' with probability "
            "0.7 / (1 + exp((age - 45) / 8)); untreated: the 'no antibiotic' and 'outside window' lookalikes; "
            "p0 rises with age (recorded exactly), so adjustment can remove the confounding",
            "counts": {k[len("trial_"):]: v for k, v in sorted(c.items()) if k.startswith("trial_")},
        }
    return {
        "generator_version": GENERATOR_VERSION,
        "trials": trials,
        "seed": summary.seed,
        "persons": summary.persons,
        "chunk_size": summary.chunk_size,
        "patterns": patterns,
        "frailty": {
            "formula": "frailty = 1 / (1 + exp(-(intercept + age_per_year_from_60 * (age - 60) + per_comorbidity * n + latent_sd * z)))",
            "coefficients": FRAILTY,
            "age": "age in completed years on 2023-07-01",
            "n": "number of chronic comorbidities, each coded (ICD-10-SE) at every chronic primary-care visit: "
            "I10, E11.9, I50.9, J44.9, F03, N18.3, I48.9, F32.9, E03.9, M17.1",
            "z": "latent N(0, 1), unobserved; it also raises the chance of each comorbidity",
            "observable_proxies": [
                "age (persons.birth_date)",
                "comorbidity diagnoses in events",
                "prior admissions: inpatient encounters, rate 0.02 + 0.4 * frailty per year",
                "acute visits: rate 0.5 + 1.5 * frailty per year",
            ],
        },
        "planting": {
            "formula": "logit P(planted | instance) = alpha[pattern] + ln(unit_multiplier[unit of the routine index encounter]) "
            "+ slope * (frailty - centre); the rest are lookalikes",
            "slope": FRAILTY_SLOPE,
            "centre": FRAILTY_CENTRE,
            "unit_multiplier": dict(sorted(UNIT_MULTIPLIER.items())),
        },
        "confounding": "frailty raises both P(planted) and p0, so the crude risk ratio planted vs lookalike is biased upwards; "
        "stratifying or adjusting for frailty (or its proxies) recovers the true ratio.",
    }
