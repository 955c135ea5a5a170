"""Measure the risk layer on synthetic regions (by hand, not in CI).

1. Model performance: ``--model-persons N`` region, `lowvalue risk train` figures (AUROC, AUPRC, Brier, calibration).
2. Recovery of planted causal risk ratios by `risk excess` (the emulated target trial) is
   ``benchmarks/excess_recovery.py``; the earlier comparison of flagged with eligible-not-flagged interventions is gone.

    .venv/bin/python benchmarks/risk_recovery.py --model-persons 100000 --work /tmp/rr
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

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
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--model-persons", type=int, default=0)
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--work", type=Path, default=Path("/tmp/risk_recovery"))
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)

    from lowvalue.risk.train import train

    if a.model_persons:
        t0 = time.time()
        res = region(a.model_persons, a.first_seed, a.work)
        run = train(res, a.work / f"model_p{a.model_persons}", seed=1, n_boot=a.n_boot)
        v = run.metrics["validation"]
        print(f"model on {a.model_persons} persons ({time.time() - t0:.0f} s): n={v['n']} events={v['events']}")
        for k in ("auroc", "auprc", "brier", "scaled_brier", "calibration_intercept", "calibration_slope"):
            print(f"  {k}: {v[k]['estimate']:.3f} ({v[k]['ci_low']:.3f}-{v[k]['ci_high']:.3f})")


if __name__ == "__main__":
    main()
