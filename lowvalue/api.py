"""The Python API: the command line's steps as functions, for notebooks and pipelines.

Each function is a thin call of the same library function the command calls (no second implementation): it takes
paths and plain options, and returns pandas objects, or the paths of what it wrote where a step writes files. Errors
are :class:`lowvalue.errors.LowvalueError` with the same one-line message the command prints. A notebook-style
walk-through is in ``docs/api.md``::

    from lowvalue import api
    results = api.scan("examples/synthetic_data", "results", codes="examples/synthetic_data/region-codes")
    flags = api.read(results, "flags")
    metrics = api.train(results, "models/mine", n_boot=50)
    scored = api.score(results, "models/mine")
    excess = api.excess(results, n_boot=50)
    print(api.explain(scored.flag_id.iloc[0], results, "models/mine", lang="en").text())
    api.report(results, "report.html", lang="sv", model="models/mine")
    api.export(results, "xlsx", "results.xlsx")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from lowvalue.report.suppress import DEFAULT_MIN_COUNT

__all__ = ["scan", "read", "train", "risk_train", "score", "excess", "explain", "report", "export"]

DERIVED = {"flags_scored": "lowvalue risk score", "excess_risk": "lowvalue risk excess",
           "excess_balance": "lowvalue risk excess", "flags_triage": "lowvalue risk triage",
           "verdicts": "lowvalue review export"}
"""Tables a later step adds to a results folder, and the command that makes each (read with the scan's stamp)."""


def scan(data: Path | str, out: Path | str, *, rules: Path | str | None = None, codes: Path | str | None = None,
         only: list[str] | None = None, fmt: str | None = None, engine: str = "duckdb",
         extract_end: Any = None, memory_limit: str | None = None, quarantine: Path | str | None = None) -> Path:
    """``lowvalue scan DATA --out OUT``: run the rules over an extract and write the results folder ``out`` whole.

    ``fmt`` (synthea, omop, meds, mimic-iv, auto) converts a source folder first, as the command does; ``quarantine``
    defaults to ``OUT/quarantine``. Returns ``out``; read its tables with :func:`read`.
    (``--pseudonymise`` is a command-line option only.)
    """
    from lowvalue.cli import _canonical  # the command's own choice: canonical folder, or convert (detected format)
    from lowvalue.engine.scan import scan as run_scan
    from lowvalue.results import writing
    from lowvalue.rules.overlay import load_rules

    data, out = Path(data), Path(out)
    rs = load_rules(rules, codes).select(list(only) if only else None)
    with writing(out) as tmp:
        canonical = _canonical(data, fmt, tmp / "converted")
        result = run_scan(canonical, rs, quarantine_dir=Path(quarantine) if quarantine else tmp / "quarantine",
                          engine=engine, extract_end=extract_end, memory_limit=memory_limit)
        result.write_into(tmp)
    return out


def read(results: Path | str, table: str = "flags") -> pd.DataFrame:
    """A table of a complete results folder (``flags``, ``denominators``, ``waterfall``, … or a derived one such as
    ``flags_scored``, which must come from the folder's scan)."""
    from lowvalue.errors import InputError
    from lowvalue.results import read_derived, read_manifest

    results = Path(results)
    manifest = read_manifest(results)
    if table in DERIVED:
        return read_derived(results / f"{table}.parquet", results, made_by=DERIVED[table])
    if table not in manifest.get("tables", []):
        raise InputError(str(results), f"has no table {table!r}; tables: "
                                       f"{', '.join(list(manifest.get('tables', [])) + list(DERIVED))}")
    return pd.read_parquet(results / f"{table}.parquet")


def train(results: Path | str, out: Path | str, *, horizon_days: int = 30, seed: int = 1,
          n_boot: int = 200) -> pd.DataFrame:
    """``lowvalue risk train``: train and temporally validate the risk model into the folder ``out``.

    Returns the validation metrics (one row per metric: estimate, ci_low, ci_high); the model card and plots are in
    ``out``.
    """
    from lowvalue.risk.train import train as run

    r = run(results, out, horizon_days=horizon_days, seed=seed, n_boot=n_boot)
    v = r.metrics["validation"]
    rows = {k: m for k, m in v.items() if isinstance(m, dict) and "estimate" in m}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("metric")


risk_train = train
"""Alias named after the command group (``lowvalue risk train``)."""


def score(results: Path | str, model: Path | str) -> pd.DataFrame:
    """``lowvalue risk score``: add calibrated risk to every flag; writes and returns ``flags_scored``."""
    from lowvalue.risk.train import score as run

    run(results, model)
    return read(results, "flags_scored")


def excess(results: Path | str, extract: Path | str | None = None, *, rules: list[str] | None = None, seed: int = 1,
           memory_limit: str | None = None, out: Path | str | None = None) -> pd.DataFrame:
    """``lowvalue risk excess``: per anchored rule, the emulated target trial's estimated excess of adverse-event
    triggers (an adjusted association, not a measured harm) from the scanned ``extract``; rules without an anchor, or
    without ``extract``, say why instead of a figure. Writes ``excess_risk.parquet`` into ``out`` (default: the
    results folder) and returns it."""
    from lowvalue.risk.excess import excess_risk

    e = excess_risk(results, extract, rule_ids=list(rules) if rules else None, seed=seed, memory_limit=memory_limit)
    e.write(out or results)
    return e.table


def explain(flag_id: str, results: Path | str, model: Path | str, *, lang: str = "sv") -> Any:
    """``lowvalue explain``: the case text of one flag (an :class:`~lowvalue.risk.explain.Explanation`:
    ``.text()`` the sv/en text, ``.groups`` and ``.contributions`` the SHAP tables as DataFrames)."""
    from lowvalue.risk.explain import explain as run

    return run(flag_id, results, model, lang=lang)


def report(results: Path | str, out: Path | str = "report.html", *, lang: str = "sv", pdf: bool = False,
           min_count: int = DEFAULT_MIN_COUNT, model: Path | str | None = None, excess: Path | str | None = None,
           verdicts: Path | str | None = None, weights: str = "volume=0.4,harm=0.4,confidence=0.2",
           funnel_limits: str = "normal", dispersion: str = "additive", prices: Path | str | None = None,
           top: int | None = None, compare: list[Path | str] = (), rules: list[str] | None = None) -> list[Path]:
    """``lowvalue report``: the aggregated, suppressed HTML (and PDF) report; returns the paths written."""
    from lowvalue.report.aggregate import Weights
    from lowvalue.report.render import TOP_RULES, write_report

    return write_report(results, out, lang=lang, min_count=min_count, model=model,  # type: ignore[arg-type]
                        excess=excess, verdicts=verdicts, weights=Weights.parse(weights),
                        funnel_method=funnel_limits, dispersion=dispersion, prices=prices,  # type: ignore[arg-type]
                        top=TOP_RULES if top is None else top, compare=list(compare),
                        only=list(rules) if rules else None, pdf=pdf)


def export(results: Path | str, to: str, out: Path | str | None = None, **options: Any) -> list[Path] | dict[str, int]:
    """``lowvalue export``: results as csv, xlsx, meds-labels, omop-cohort (returns the paths written) or into a SQL
    database (``url=``, ``schema=``; returns the rows written per table). Options as :func:`lowvalue.export.export`
    (``locale``, ``min_count``, ``quarantine``)."""
    from lowvalue.export import export as run

    e = run(results, to, out, **options)
    return e.rows if e.to == "sql" else e.paths
