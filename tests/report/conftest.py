"""Fixtures for the report tests: the bundled example scanned once, and a tiny hand-made results folder.

The tiny folder has counts chosen around the suppression threshold (5): every small count in it
is known, so a test can check that none of them reaches the HTML.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from lowvalue.rules.library import load_library


ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def example_html_en(example_results: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lowvalue.report.render import write_report

    out = tmp_path_factory.mktemp("report_html") / "report.html"
    write_report(example_results, out, lang="en")
    return out


@pytest.fixture(scope="session")
def example_report_sv(example_results: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo report in Swedish (the default), with its side files, written once for the tests that read it."""
    from lowvalue.report.render import write_report

    out = tmp_path_factory.mktemp("report_sv") / "report.html"
    write_report(example_results, out, lang="sv")
    return out


# rule, unit, month → (eligible, flagged, flagged_specific); candidates = eligible + 2
TINY = {
    ("LV-ABX-003", "VC-A", "2024-01"): (40, 30, 20),
    ("LV-ABX-003", "VC-A", "2024-02"): (30, 25, 12),
    ("LV-ABX-003", "VC-B", "2024-01"): (6, 3, 2),     # small flagged and specific in a unit
    ("LV-ABX-003", "VC-C", "2024-02"): (3, 1, 1),     # small eligible: unit not drawn
    ("LV-ABX-003", "VC-D", "2024-03"): (50, 20, 9),
    ("LV-ABX-003", "VC-E", "2024-03"): (30, 10, 2),   # small specific count in a large unit: drawn as a tick
    ("LV-IMG-001", "VC-A", "2024-01"): (4, 4, 3),     # the whole rule is small
    ("LV-IMG-001", "VC-B", "2024-03"): (2, 0, 0),
}
SMALL = {1, 2, 3, 4}


def write_tiny(path: Path) -> Path:
    """A results folder with exactly the counts in ``TINY`` (and a flags table consistent with them)."""
    path.mkdir(parents=True, exist_ok=True)
    rows = []
    for (rule, unit, month), (e, f, s) in TINY.items():
        rows.append({"rule_id": rule, "unit": unit, "month": month, "candidates": e + 2, "eligible": e,
                     "eligible_persons": e, "flagged": f, "flagged_specific": s})
    cells = pd.DataFrame(rows)
    keys = ["candidates", "eligible", "eligible_persons", "flagged", "flagged_specific"]
    per_unit = cells.groupby(["rule_id", "unit"], as_index=False)[keys].sum().assign(month=None)
    per_rule = cells.groupby(["rule_id"], as_index=False)[keys].sum().assign(unit=None, month=None)
    den = pd.concat([per_rule, per_unit, cells], ignore_index=True)[["rule_id", "unit", "month"] + keys]
    den.to_parquet(path / "denominators.parquet", index=False)
    flags, cands = [], []
    i = 0
    for (rule, unit, month), (e, f, s) in TINY.items():
        for k in range(e + 2):
            i += 1
            flagged, specific = k < f, k < s
            pid = f"PERSON{i:05d}"
            cands.append({"candidate_id": f"cand{i:012d}", "rule_id": rule, "person_id": pid, "unit": unit,
                          "index_time": pd.Timestamp(month + "-15"), "eligible": k < e, "sensitive": flagged,
                          "specific": specific})
            if flagged:
                flags.append({"flag_id": f"flag{i:012d}", "rule_id": rule, "variant": "specific" if specific else
                              "sensitive", "tier": "low value" if specific else "likely low value", "person_id": pid,
                              "unit": unit, "index_time": pd.Timestamp(month + "-15"), "cost": 100.0})
    pd.DataFrame(flags).to_parquet(path / "flags.parquet", index=False)
    pd.DataFrame(cands).to_parquet(path / "candidates.parquet", index=False)
    pd.DataFrame({"rule_id": ["LV-ABX-003", "LV-IMG-001"], "type": ["rule", "rule"],
                  "status": ["evaluable", "limited"], "reason": ["", "no imaging codes for red flags"]}
                 ).to_parquet(path / "evaluability.parquet", index=False)
    (path / "manifest.json").write_text(json.dumps({
        "data": {"fingerprint": "f" * 64, "counts": {"persons": {"read": 90, "accepted": 90, "quarantined": 0}}},
        # scanned with the shipped library (no copy kept, as results from before the snapshot): later commands read it
        "rule_set": {"digest": load_library().digest, "rules": {"LV-ABX-003": "1", "LV-IMG-001": "1"}},
        "versions": {"lowvalue": "test"}, "complete": True}))
    return path


@pytest.fixture()
def tiny_results(tmp_path: Path) -> Path:
    return write_tiny(tmp_path / "tiny")


@pytest.fixture(scope="session")
def ruleset():
    """The shipped rule library, loaded once (loading takes a couple of seconds)."""
    from lowvalue.rules.library import load_library

    return load_library()
