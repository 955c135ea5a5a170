"""Review triage: rank flags by the probability that a reviewer confirms them as low value.

A rule's flag is a screening result; reviewers decide. Once verdicts exist a
second model can send the likeliest-confirmed (or, for auditing, the most
doubtful) flags to review first. Labels come, in order of preference, from a
reviewer verdicts table (``RESULTS/verdicts.parquet`` or ``--verdicts``:
``flag_id`` and ``verdict`` in {"confirmed", "rejected"}), or, for the
synthetic region only, from the generator's ``truth/interventions.parquet``
(``low_value``). With neither, :func:`triage` says so and scores nothing: a
triage score without labels would only restate the rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lowvalue.results import read_derived, write_derived
from lowvalue.risk.metrics import evaluate
from lowvalue.risk.model import AdverseEventRiskModel
from lowvalue.risk.results import Results, load_results
from lowvalue.risk.train import MODEL_FEATURES


@dataclass
class Triage:
    source: str  # "verdicts", "synthetic truth" or "none"
    message: str
    scored: pd.DataFrame | None = None
    metrics: dict[str, Any] | None = None


def _labels(results: Results, verdicts: Path | None) -> tuple[pd.Series | None, str]:
    v = verdicts or results.path / "verdicts.parquet"
    if v.is_file():
        d = read_derived(v, results.path, made_by="lowvalue review export --db REVIEW_DB")
        d = d[d.verdict.isin(["confirmed", "rejected"])]
        queued = int((~d.sampled.astype(bool)).sum()) if "sampled" in d else len(d)
        note = (f"; {queued} of {len(d)} labels come from the ordinary (risk-ordered, non-random) queue, so the model "
                "also learns which flags were chosen for review" if queued else "; all labels from sampled rounds")
        return pd.Series((d.verdict == "confirmed").astype(int).to_numpy(), index=d.flag_id), f"verdicts ({v}{note})"
    src = (results.manifest.get("data", {}).get("sources", {}) or {}).get("persons")
    truth = Path(src).parent / "truth" / "interventions.parquet" if src else None
    if truth is not None and truth.is_file():
        t = pd.read_parquet(truth, columns=["pattern", "person_id", "time", "low_value"])
        t = t.rename(columns={"pattern": "rule_id", "time": "index_time"}).drop_duplicates(
            ["rule_id", "person_id", "index_time"])
        f = results.flags[["flag_id", "rule_id", "person_id", "index_time"]].merge(
            t, on=["rule_id", "person_id", "index_time"], how="inner")
        return pd.Series(f.low_value.astype(int).to_numpy(), index=f.flag_id), f"synthetic truth ({truth})"
    return None, "none"


def triage(results_path: Path | str, *, verdicts: Path | None = None, seed: int = 1, lang: str = "en") -> Triage:
    """Train the triage model on labelled flags (earlier 75 % by time), validate on the latest 25 %, score all flags;
    the message is in ``lang`` (the catalogue's ``cli`` texts, for the CLI's ``--lang``)."""
    from lowvalue.messages import messages
    from lowvalue.report.i18n import Numbers

    w, nums = messages("cli", lang), Numbers(lang)  # type: ignore[arg-type]
    results = load_results(results_path)
    y, source = _labels(results, verdicts)
    if y is None:
        return Triage("none", w["triage_none"])
    kind = "truth" if source.startswith("synthetic truth") else "verdicts"  # then " (where they came from)"
    said = w[f"triage_source_{kind}"] + source.removeprefix("synthetic truth").removeprefix("verdicts")
    feats = results.features.rename(columns={"candidate_id": "flag_id"}).drop(columns=["rule_id"])
    X = results.flags[["flag_id", "rule_id", "person_id", "index_time"]].merge(feats, on="flag_id", how="left")
    lab = X[X.flag_id.isin(y.index)].assign(y=lambda d: d.flag_id.map(y).to_numpy())
    lab = lab.sort_values(["index_time", "flag_id"], kind="mergesort").reset_index(drop=True)
    if len(lab) < 100 or lab.y.nunique() < 2:
        return Triage(source, w["triage_too_few"].format(n=nums.int(len(lab)), source=said))
    cut = lab.index_time.quantile(0.75)
    dev, val = lab[lab.index_time < cut], lab[lab.index_time >= cut]
    m = AdverseEventRiskModel(n_estimators=200, random_state=seed).fit(dev[MODEL_FEATURES], dev.y,
                                                                      time=dev.index_time.to_numpy())
    metrics = evaluate(val.y.to_numpy(), m.predict_proba(val[MODEL_FEATURES])[:, 1], groups=val.person_id.to_numpy(),
                       n_boot=100, seed=seed)
    out = results.flags[["flag_id", "rule_id", "variant"]].copy()
    out["p_confirmed"] = m.predict_proba(X[MODEL_FEATURES])[:, 1]
    out["triage_rank"] = out.p_confirmed.rank(ascending=False, method="first").astype(int)
    out["label_source"] = source
    path = write_derived(out.sort_values("triage_rank"), results.path, "flags_triage.parquet")
    auroc = metrics["auroc"]
    msg = w["triage_trained"].format(dev=nums.int(len(dev)), source=said, val=nums.int(len(val)), path=path,
                                     auroc=f"{nums.num(auroc['estimate'], 3)} ({nums.num(auroc['ci_low'], 3)}–"
                                           f"{nums.num(auroc['ci_high'], 3)})")
    if source.startswith("synthetic"):
        msg += w["triage_synthetic"]
    return Triage(source, msg, out, metrics)
