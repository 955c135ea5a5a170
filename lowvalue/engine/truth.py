"""Measure a scan against the synthetic region's planted truth.

The generator writes ``truth/interventions.parquet``: every index event it
planted, whether it is low value (passes the specific variant) and whether it
passes the sensitive one. A scan is right when its flags are exactly those:
recall and precision per rule and tier, 1.0 when the engine and the rules
agree with ``docs/patterns.md``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

KEY = ["person_id", "time", "code"]


def compare_with_truth(flags: pd.DataFrame, truth_dir: Path | str) -> pd.DataFrame:
    """Per rule and tier: planted, flagged, true positives, recall, precision."""
    truth = pd.read_parquet(Path(truth_dir) / "interventions.parquet")
    f = flags.rename(columns={"index_time": "time", "index_code": "code"})
    rows = []
    for rule_id in sorted(truth["pattern"].unique()):
        t = truth[truth.pattern == rule_id]
        fr = f[f.rule_id == rule_id]
        for tier, truth_col, flagged in (("low value", "low_value", fr[fr.variant == "specific"]),
                                         ("all flags", "sensitive", fr)):
            planted = t[t[truth_col]][KEY].drop_duplicates()
            got = flagged[KEY].drop_duplicates()
            tp = len(planted.merge(got, on=KEY))
            rows.append({"rule_id": rule_id, "tier": tier, "planted": len(planted), "flagged": len(got),
                         "true_positives": tp,
                         "recall": tp / len(planted) if len(planted) else float("nan"),
                         "precision": tp / len(got) if len(got) else float("nan")})
    return pd.DataFrame(rows)
