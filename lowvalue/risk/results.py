"""Read a `lowvalue scan` results folder for the risk layer.

The risk layer never re-reads the extract's rows: it works on the scan's
Parquet outputs, so a model can be trained where only results may be kept.
Follow-up windows need where the data *end*: the scan records the validated
extract's period in the manifest; results from before that record bound it from
below by the latest time the scan saw (stated in :attr:`Results.data_end_source`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lowvalue.errors import InputError
from lowvalue.results import read_manifest
from lowvalue.rules.library import RuleSet
from lowvalue.rules.overlay import rules_for_results


@dataclass
class Results:
    """The scan tables the risk layer needs, plus the end of the data period."""

    path: Path
    candidates: pd.DataFrame
    triggers: pd.DataFrame
    features: pd.DataFrame
    flags: pd.DataFrame
    manifest: dict[str, Any]
    data_start: pd.Timestamp
    data_end: pd.Timestamp
    data_end_source: str
    rules: RuleSet = field(repr=False, default=None)  # type: ignore[assignment]

    def harmful_rules(self) -> list[str]:
        """Ids of the scanned rules that declare linked harms, sorted."""
        scanned = set(self.candidates.rule_id.unique())
        return sorted(r.id for r in self.rules.rules.values()
                      if r.type != "trigger" and r.harms and r.id in scanned)


def _data_end(manifest: dict[str, Any], seen: pd.Timestamp) -> tuple[pd.Timestamp, str]:
    end = ((manifest.get("data") or {}).get("period") or {}).get("end")
    if end:
        return pd.Timestamp(end), "latest time in the validated extract (manifest)"
    return seen, "latest index or trigger time in the results (a lower bound of the true end)"


def load_results(path: Path | str, rules: RuleSet | Path | str | None = None) -> Results:
    """Load ``candidates``, ``triggers``, ``features``, ``flags`` and ``manifest.json`` from a results folder."""
    path = Path(path)
    manifest = read_manifest(path)
    tables = {}
    for name in ("candidates", "triggers", "features", "flags"):
        f = path / f"{name}.parquet"
        if not f.is_file():
            raise InputError(str(f), "missing: run `lowvalue scan DATA --out RESULTS` first")
        tables[name] = pd.read_parquet(f)
    if tables["candidates"].empty:
        raise InputError(str(path), "has no judged interventions (every rule not evaluable, or no index events; see "
                                    "evaluability.parquet): the risk layer has nothing to learn from")
    if tables["features"].empty and len(tables["candidates"]):
        raise InputError(str(path / "features.parquet"), "is empty: scan again without disabling features")
    times = [tables["candidates"].index_time.max(), tables["triggers"].time.max() if len(tables["triggers"]) else None]
    seen = max(pd.Timestamp(t) for t in times if t is not None and not pd.isna(t))
    end, source = _data_end(manifest, seen)
    rs = rules if isinstance(rules, RuleSet) else rules_for_results(path, manifest, library=rules)
    return Results(path=path, manifest=manifest, data_start=pd.Timestamp(tables["candidates"].index_time.min()),
                   data_end=end, data_end_source=source, rules=rs, **tables)
