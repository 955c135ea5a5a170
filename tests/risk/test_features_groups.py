"""The diagnosis-group features (Charlson index, frailty markers, chronic conditions) against a plain pandas reading
of their definition: the groups of :data:`~lowvalue.risk.features.GROUPS` that a diagnosis of the person matches in
the 730 days before the index (from midnight of the day 730 days before, up to and excluding the index time); within
a family, a diagnosis counts for the first group it matches. The engine resolves each code's group once on the
distinct codes (``lv_groups``) and joins it with the partition's events; this test reads every diagnosis."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import lowvalue
from lowvalue.risk.features import CHARLSON, GROUPS

EXAMPLE = Path(__file__).parents[2] / "examples" / "synthetic_data"


def _reference(frames: dict[str, pd.DataFrame], cands: pd.DataFrame) -> pd.DataFrame:
    dx = frames["events"][frames["events"].kind == "diagnosis"][["person_id", "system", "code", "time"]]
    codes = dx[["system", "code"]].drop_duplicates()
    first = []  # (system, code, family, group): the first group of each family the code matches
    for system, code in codes.itertuples(index=False):
        seen: set[str] = set()
        for family, group, _, vs in sorted(GROUPS, key=lambda g: (g[0], g[2])):
            if family not in seen and vs.matches(system, code):
                seen.add(family)
                first.append((system, code, family, group))
    groups = pd.DataFrame(first, columns=["system", "code", "family", "grp"])
    c = cands[["candidate_id", "person_id", "index_time"]]
    m = c.merge(dx, on="person_id").merge(groups, on=["system", "code"])
    since = m.index_time.dt.normalize() - pd.Timedelta(days=730)
    m = m[(m.time < m.index_time) & (m.time >= since)][["candidate_id", "family", "grp"]].drop_duplicates()
    weight = m.grp.map({g: w for g, (w, _) in CHARLSON.items()}).fillna(0)
    out = pd.DataFrame({
        "charlson": weight.where(m.family == "charlson", 0).groupby(m.candidate_id).sum(),
        "frailty_markers": (m.family == "frailty").groupby(m.candidate_id).sum(),
        "chronic_conditions": (m.family == "chronic").groupby(m.candidate_id).sum(),
    })
    return out.reindex(cands.candidate_id).fillna(0)


@pytest.mark.parametrize("partitions", [1, 3])
def test_diagnosis_groups_match_a_plain_reading_of_their_definition(partitions: int) -> None:
    frames = {t: pd.read_parquet(EXAMPLE / f"{t}.parquet") for t in ("persons", "encounters", "events")}
    result = lowvalue.scan(dict(frames), partitions=partitions)
    got = result.features.set_index("candidate_id")[["charlson", "frailty_markers", "chronic_conditions"]]
    cands = result.candidates[result.candidates.eligible]
    want = _reference(frames, cands)
    assert len(got) == len(cands) > 500
    assert (want.charlson > 0).sum() > 50 and (want.frailty_markers > 0).sum() > 10  # the test is not vacuous
    pd.testing.assert_frame_equal(got.loc[want.index].astype(float), want.astype(float), check_names=False)
