"""Features use only events strictly before the index: adding events at or after it changes nothing.

Except the rule's own flags (:data:`lowvalue.risk.card.LEAKAGE_EXEMPT`, imported so the model card names exactly the
features this test exempts): they are the rule's verdict, whose exclusion windows may reach past the index."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

import lowvalue
from lowvalue.risk.card import LEAKAGE_EXEMPT, LEAKAGE_PERTURBED
from lowvalue.risk.features import FEATURES

EXAMPLE = Path(__file__).parents[2] / "examples" / "synthetic_data"


def _scan_with_extra(frames: dict[str, pd.DataFrame], c: pd.DataFrame, deltas: tuple[pd.Timedelta, ...]) -> pd.DataFrame:
    """Features after adding, per sampled candidate and per delta, the probe events at ``index_time + delta``."""
    extra = []
    for delta in deltas:
        base = {"person_id": c.person_id.to_numpy(), "encounter_id": c.encounter_id.to_numpy(),
                "time": (c.index_time + delta).to_numpy()}
        # frailty, Charlson and chronic-condition codes, a drug, a lab and a harm trigger code (C. difficile)
        for kind, system, code, value in PROBES:
            extra.append(pd.DataFrame({**base, "kind": kind, "system": system, "code": code, "value": value,
                                       "unit": "µmol/L" if code == "NPU18016" else ("g/L" if code == "NPU02319" else None),
                                       "days_supply": 30.0 if kind == "medication" else None, "cost": None}))
    ev = pd.concat([frames["events"], *extra], ignore_index=True)
    ev = ev.astype(frames["events"].dtypes.to_dict())
    return lowvalue.scan({**frames, "events": ev}).features


PROBES = (("diagnosis", "ICD-10-SE", "F03", None), ("diagnosis", "ICD-10-SE", "I50.9", None),
          ("diagnosis", "ICD-10-SE", "A04.7", None), ("diagnosis", "ICD-10-SE", "W19", None),
          ("medication", "ATC", "C09AA05", None), ("lab", "NPU", "NPU18016", 300.0), ("lab", "NPU", "NPU02319", 60.0))


def _setup() -> tuple[dict[str, pd.DataFrame], pd.DataFrame, pd.DataFrame]:
    frames = {t: pd.read_parquet(EXAMPLE / f"{t}.parquet") for t in ("persons", "encounters", "events")}
    before = lowvalue.scan(dict(frames)).features
    cands = lowvalue.scan(dict(frames), features=False).candidates
    # per person, the *latest* index: an event after it is at/after every index of that person
    c = cands.sort_values("index_time").groupby("person_id").tail(1).sample(400, random_state=0)
    return frames, before, c


def _aligned(before: pd.DataFrame, after: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    common = before.merge(after[["candidate_id"]], on="candidate_id").candidate_id
    assert len(common) >= 0.9 * len(before)
    return (before.set_index("candidate_id").loc[common].sort_index(),
            after.set_index("candidate_id").loc[common].sort_index())


def test_events_at_or_after_index_change_no_feature() -> None:
    frames, before, c = _setup()
    after = _scan_with_extra(frames, c, (pd.Timedelta(0), pd.Timedelta(minutes=1), pd.Timedelta(days=2)))
    b, a = _aligned(before, after)
    cols = [c for c in FEATURES if c not in LEAKAGE_EXEMPT]  # flags may change: the new events are real data
    assert set(cols) <= set(b.columns) and set(LEAKAGE_PERTURBED) <= set(cols)
    pd.testing.assert_frame_equal(b[cols], a[cols], check_dtype=False)


def test_the_probes_do_reach_the_features_the_card_says() -> None:
    """Positive control: the same probe events a day *before* the index move every feature in LEAKAGE_PERTURBED, so
    the test above is not vacuous for them (the model card says these are the features it exercises)."""
    frames, before, c = _setup()
    b, a = _aligned(before, _scan_with_extra(frames, c, (-pd.Timedelta(days=1),)))
    moved = {f for f in LEAKAGE_PERTURBED if not b[f].fillna(-1).equals(a[f].fillna(-1))}
    assert moved == set(LEAKAGE_PERTURBED)
