"""Start-up time of the command line and of loading the rule library (targets of issue 15: `lowvalue --help` < 0.3 s,
loading the library < 0.5 s). Run by hand, not a timed test:

    .venv/bin/python benchmarks/startup.py [--repeat 5]

Each figure is the median wall time of fresh processes (so nothing is warm in the interpreter):

* ``lowvalue --help``: the console script's whole run (interpreter start, imports, help text);
* ``lowvalue --version``;
* import of the library loader (pydantic, PyYAML, the rule language);
* loading the shipped library, first in a process, with the on-disk cache (as every command after the first) and
  without it (``LOWVALUE_RULE_CACHE=0``: parsing all YAML files with libyaml's C loader and validating them);
* ``lowvalue rules list`` (library, catalogue, table);
* which heavy libraries ``lowvalue --help`` imports (none should be: LightGBM, SHAP, matplotlib, PySpark, Flask,
  scikit-learn, pandas, DuckDB).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("lightgbm", "shap", "matplotlib", "pyspark", "flask", "sklearn", "pandas", "duckdb", "pyarrow", "scipy")

LOAD = """
import time, json
t0 = time.perf_counter()
from lowvalue.rules.library import load_library
t1 = time.perf_counter()
rs = load_library()
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "rules": len(rs.rules)}))
"""


CPU: dict[str, list[float]] = {}


def _wall(cmd: list[str], env: dict[str, str] | None = None) -> float:
    """Wall time of one run; its CPU time (user + system) is kept in :data:`CPU`, which a busy machine inflates less."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.setdefault(" ".join(Path(cmd[0]).name for _ in [0]) + " " + " ".join(cmd[1:]), []).append(
        after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} s (min {min(values):.3f}, max {max(values):.3f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    exe = shutil.which("lowvalue", path=str(Path(sys.executable).parent)) or shutil.which("lowvalue")
    cli = [exe] if exe else [sys.executable, "-m", "lowvalue.cli"]
    env = dict(os.environ)
    nocache = {**env, "LOWVALUE_RULE_CACHE": "0"}
    subprocess.run([sys.executable, "-c", LOAD], check=True, capture_output=True)  # fill the cache once
    rows = {
        "lowvalue --help": [_wall(cli + ["--help"]) for _ in range(args.repeat)],
        "lowvalue --version": [_wall(cli + ["--version"]) for _ in range(args.repeat)],
        "lowvalue rules list": [_wall(cli + ["rules", "list"]) for _ in range(args.repeat)],
    }
    loads = {"cached": [], "parsed": []}
    for _ in range(args.repeat):
        for name, e in (("cached", env), ("parsed", nocache)):
            out = subprocess.run([sys.executable, "-c", LOAD], check=True, capture_output=True, text=True, env=e)
            loads[name].append(json.loads(out.stdout))
    rows["import lowvalue.rules.library"] = [r["import"] for r in loads["cached"]]
    rows["load_library(), cached"] = [r["load"] for r in loads["cached"]]
    rows["load_library(), parsed (LOWVALUE_RULE_CACHE=0)"] = [r["load"] for r in loads["parsed"]]
    probe = ("import sys; sys.argv = ['lowvalue', '--help']\nfrom lowvalue.cli import main\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             f"print('HEAVY', sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))")
    heavy = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.split("HEAVY")[-1]
    width = max(map(len, rows))
    print(f"{'what':<{width}}  median wall time of {args.repeat} fresh processes")
    for name, values in rows.items():
        print(f"{name:<{width}}  {_median(values)}")
    print("CPU time (user + system) of the same runs:")
    for name, values in CPU.items():
        print(f"{name:<{width}}  {_median(values)}")
    print(f"heavy libraries imported by `lowvalue --help`: {heavy.strip()}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores shared)")


if __name__ == "__main__":
    main()
