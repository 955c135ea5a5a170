"""Recovery of planted causal risk ratios by `risk excess` (emulated target trial, clone-censor-weight, AIPW).

Two modes, both over many seeds, both reporting bias (mean log ratio estimate − log truth, and the geometric mean of
the estimates), 95 % CI coverage and the crude ratio's bias:

- ``simulated`` (default): the estimator on simulated trial tables (:func:`lowvalue.risk.trial.simulate`, true RR 2.0,
  confounding by indication, 1–3 anchors per person, competing deaths). About 3 s per seed on one core.
- ``region``: for every rule with a planted target trial (``truth/effects.json`` → ``trials``: LV-ABX-003, -004 and
  -005 now), and its negative control when it has one: generate a synthetic region, scan it (the rules and the
  triggers they need), build the trials on the extract and estimate. ``--rules`` limits the rules reported. About
  45 s per seed for the three at 20 000 persons on a busy 2-core machine (915 s for 20 seeds), so run it by hand.

    python benchmarks/excess_recovery.py --mode simulated --seeds 20
    python benchmarks/excess_recovery.py --mode region --seeds 20 --persons 20000
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def simulated(seeds: int, persons: int, rr: float) -> pd.DataFrame:
    from lowvalue.risk.excess import confounders, estimate
    from lowvalue.risk.trial import simulate

    rows = []
    for s in range(seeds):
        df = simulate(persons=persons, rr=rr, seed=1000 + s)
        X = confounders(df, pd.Timestamp("2023-01-01")).to_numpy(float)
        r = estimate(df, X, 3, seed=s)["row"]
        rows.append({"rule_id": "(simulated)", "seed": 1000 + s, "truth": rr, **{k: r[k] for k in (
            "rr_crude", "rr", "rr_lo", "rr_hi", "max_smd_before", "max_smd_after")}, "status": "estimated"})
    return pd.DataFrame(rows)


def region(seeds: int, persons: int, first: int = 100, rules: list[str] | None = None) -> pd.DataFrame:
    import lowvalue
    from lowvalue.data.synth import generate
    from lowvalue.data.synth.adverse import TRIALS
    from lowvalue.risk.excess import excess_risk

    rows = []
    for s in range(first, first + seeds):
        with tempfile.TemporaryDirectory(prefix="lowvalue-excess-") as tmp:
            data, res = Path(tmp) / "data", Path(tmp) / "results"
            generate(persons=persons, seed=s, out=data)
            truth = {rid: spec for rid, spec in json.loads((data / "truth" / "effects.json").read_text())["trials"].items()
                     if rules is None or rid in rules}
            controls = {spec["negative_control"]["trigger"] for spec in truth.values() if spec.get("negative_control")}
            lowvalue.scan(data, codes=data / "region-codes", only=sorted((set(TRIALS) & set(truth)) | controls)).write(res)
            t = excess_risk(res, data, rule_ids=sorted(truth)).table
            for rid, spec in truth.items():
                for nc in (False, True) if spec.get("negative_control") else (False,):
                    sel = t[(t.rule_id == rid) & (t.negative_control.astype(bool) == nc)]
                    r = sel[sel.trigger_id == (spec["negative_control"]["trigger"] if nc else spec["trigger"])].iloc[0]
                    rows.append({"rule_id": rid + (" (negative control)" if nc else ""), "seed": s,
                                 "truth": 1.0 if nc else spec["true_risk_ratio"],
                                 **{k: r.get(k, np.nan) for k in ("rr_crude", "rr", "rr_lo", "rr_hi", "max_smd_before",
                                                                  "max_smd_after")}, "status": r.status})
    return pd.DataFrame(rows)


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    out = []
    for rid, g in df.groupby("rule_id", sort=False):
        est = g[g.status.str.startswith("estimated") & g.rr.notna()]
        lt = np.log(est.truth)
        out.append({"rule": rid, "seeds": len(g), "estimated": len(est), "true RR": float(g.truth.iloc[0]),
                    "geo-mean RR": float(np.exp(np.log(est.rr).mean())),
                    "bias (log)": float((np.log(est.rr) - lt).mean()),
                    "coverage": float(((est.rr_lo <= est.truth) & (est.truth <= est.rr_hi)).mean()),
                    "geo-mean crude RR": float(np.exp(np.log(est.rr_crude).mean())),
                    "crude bias (log)": float((np.log(est.rr_crude) - lt).mean()),
                    "max SMD after (median)": float(est.max_smd_after.median())})
    return pd.DataFrame(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["simulated", "region"], default="simulated")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--persons", type=int, default=None, help="simulated: 1500 persons; region: 20000")
    ap.add_argument("--rr", type=float, default=2.0, help="simulated mode's true risk ratio")
    ap.add_argument("--first-seed", type=int, default=100, help="region mode: seeds first-seed .. first-seed + seeds - 1")
    ap.add_argument("--rules", nargs="*", default=None, help="region mode: only these planted rules (default: all)")
    a = ap.parse_args()
    from threadpoolctl import threadpool_limits

    t0 = time.perf_counter()
    with threadpool_limits(1):
        df = (simulated(a.seeds, a.persons or 1500, a.rr) if a.mode == "simulated"
              else region(a.seeds, a.persons or 20000, a.first_seed, a.rules))
    pd.set_option("display.width", 200)
    print(df.round(3).to_string(index=False))
    print()
    summary = summarise(df).round(3)
    print("| " + " | ".join(summary.columns) + " |\n|" + "---|" * len(summary.columns))
    for row in summary.itertuples(index=False):
        print("| " + " | ".join(str(v) for v in row) + " |")
    print(f"\n{a.mode}: {a.seeds} seeds in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
