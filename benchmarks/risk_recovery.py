"""Measure the risk layer on synthetic regions (by hand, not in CI).

1. Model performance: ``--model-persons N`` region, `lowvalue risk train` figures (AUROC, AUPRC, Brier, calibration).
2. Recovery of the planted risk ratios over ``--seeds`` regions of ``--persons`` persons: bias (mean log-ratio of
   estimate to truth, reported as a geometric-mean ratio) and 95 % CI coverage of the crude and the AIPW-adjusted RR.

    .venv/bin/python benchmarks/risk_recovery.py --persons 30000 --seeds 20 --model-persons 100000 --work /tmp/rr

Writes ``WORK/recovery.csv``, ``WORK/recovery_summary.csv`` and prints both summaries. ``aipw_log_bias_mcse`` is the
Monte Carlo standard error of the mean log-ratio: a bias smaller than about two of them is indistinguishable from noise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

BIN = Path(sys.executable).parent / "lowvalue"


def region(persons: int, seed: int, work: Path) -> Path:
    data, res = work / f"p{persons}_s{seed}", work / f"p{persons}_s{seed}_results"
    if not (res / "features.parquet").is_file():
        subprocess.run([str(BIN), "synth", "--persons", str(persons), "--seed", str(seed), "--out", str(data)],
                       check=True, capture_output=True)
        subprocess.run([str(BIN), "scan", str(data), "--out", str(res)], check=True, capture_output=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--persons", type=int, default=30000)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--model-persons", type=int, default=0)
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--work", type=Path, default=Path("/tmp/risk_recovery"))
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)

    from lowvalue.risk.excess import excess_risk
    from lowvalue.risk.train import train

    if a.model_persons:
        t0 = time.time()
        res = region(a.model_persons, a.first_seed, a.work)
        run = train(res, a.work / f"model_p{a.model_persons}", seed=1, n_boot=a.n_boot)
        v = run.metrics["validation"]
        print(f"model on {a.model_persons} persons ({time.time() - t0:.0f} s): n={v['n']} events={v['events']}")
        for k in ("auroc", "auprc", "brier", "scaled_brier", "calibration_intercept", "calibration_slope"):
            print(f"  {k}: {v[k]['estimate']:.3f} ({v[k]['ci_low']:.3f}-{v[k]['ci_high']:.3f})")

    rows = []
    for seed in range(a.first_seed, a.first_seed + a.seeds):
        t0 = time.time()
        try:
            res = region(a.persons, seed, a.work)
        except subprocess.CalledProcessError as err:
            print(f"seed {seed}: generator or scan failed, skipped ({err.stderr.decode()[-200:]!r})", flush=True)
            continue
        truth = json.loads((a.work / f"p{a.persons}_s{seed}" / "truth" / "effects.json").read_text())["patterns"]
        e = excess_risk(res, rule_ids=sorted(truth), n_boot=a.n_boot, seed=seed).table
        for _, r in e.iterrows():
            if not str(r.status).startswith("estimated"):
                continue
            true = truth[r.rule_id]["true_risk_ratio"]
            rows.append({"seed": seed, "rule_id": r.rule_id, "true_rr": true, "rr_crude": r.rr_crude,
                         "rr_crude_lo": r.rr_crude_lo, "rr_crude_hi": r.rr_crude_hi, "rr": r.rr, "rr_lo": r.rr_lo,
                         "rr_hi": r.rr_hi, "rr_ipw": r.rr_ipw, "overlap_poor": r.overlap_poor,
                         "max_smd_after": r.max_smd_after})
        print(f"seed {seed}: {time.time() - t0:.0f} s", flush=True)
    d = pd.DataFrame(rows)
    d.to_csv(a.work / "recovery.csv", index=False)
    summ = summarise(d)
    summ.to_csv(a.work / "recovery_summary.csv")
    print(summ.to_string())


def summarise(d: pd.DataFrame) -> pd.DataFrame:
    """Per rule: geometric-mean ratio of estimate to truth (with its Monte Carlo SE on the log scale) and CI coverage."""
    g = d.groupby("rule_id")
    return pd.DataFrame({
        "true_rr": g.true_rr.first(), "seeds": g.size(),
        "crude_gmean_ratio": g.apply(lambda x: float(np.exp(np.mean(np.log(x.rr_crude / x.true_rr))))),
        "crude_coverage": g.apply(lambda x: float(np.mean((x.rr_crude_lo <= x.true_rr) & (x.true_rr <= x.rr_crude_hi)))),
        "aipw_gmean_ratio": g.apply(lambda x: float(np.exp(np.mean(np.log(x.rr / x.true_rr))))),
        "aipw_log_bias_mcse": g.apply(lambda x: float(np.std(np.log(x.rr / x.true_rr), ddof=1) / np.sqrt(len(x)))),
        "aipw_median": g.rr.median(),
        "aipw_coverage": g.apply(lambda x: float(np.mean((x.rr_lo <= x.true_rr) & (x.true_rr <= x.rr_hi)))),
        "ipw_gmean_ratio": g.apply(lambda x: float(np.exp(np.mean(np.log(x.rr_ipw / x.true_rr))))),
        "overlap_poor_share": g.overlap_poor.mean(),
    }).round(3)


if __name__ == "__main__":
    main()
