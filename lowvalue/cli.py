"""The ``lowvalue`` command line.

Commands are thin: each parses its options, calls one library function and
prints what it returns. A :class:`~lowvalue.errors.LowvalueError` becomes one
line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import click

from lowvalue import __version__
from lowvalue.data.adapters.commands import FROM_CHOICES, convert_command
from lowvalue.errors import LowvalueError
from lowvalue.messages import LANGS, messages
from lowvalue.report.commands import report
from lowvalue.risk.commands import explain, risk
from lowvalue.review.commands import review
from lowvalue.rules.commands import CODES_OPTION, codes

def one_line(err: BaseException) -> str | None:
    """The one line for an error a user can act on (bad input, a file system, a damaged file), or None for a bug.

    The one place that decides which failures are the user's: ours (:class:`LowvalueError`), the operating system's
    (read-only folder, disk full, a file where a folder should be), DuckDB's and Arrow's (an unreadable or damaged
    file), a damaged JSON artefact (a truncated model.json). Anything else is a bug and keeps its traceback.
    """
    if isinstance(err, LowvalueError):
        return err.one_line()
    if isinstance(err, OSError):
        where = f"{err.filename}: " if err.filename else ""
        return f"{where}{err.strerror or err}"
    import json

    import duckdb
    import pyarrow as pa

    if isinstance(err, json.JSONDecodeError):
        return f"a JSON file is damaged ({err.msg} at line {err.lineno}); write it again"
    if isinstance(err, (duckdb.Error, pa.ArrowException)):
        text = " ".join(str(err).split())
        return f"{type(err).__name__}: {text[:400]}"
    return None


class _Group(click.Group):
    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except Exception as err:  # noqa: BLE001 - sorted by one_line; a bug is re-raised with its traceback
            line = one_line(err)
            if line is None or os.environ.get("LOWVALUE_DEBUG"):
                raise
            click.echo(f"error: {line}", err=True)
            sys.exit(getattr(err, "exit_code", 2) if isinstance(err, LowvalueError) else 2)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="lowvalue")
@click.option("--lang", "lang", type=click.Choice(LANGS), envvar="LOWVALUE_LANG", default="en", show_default=True,
              help="Language of the printed summaries [env LOWVALUE_LANG]. The report's own language is report --lang.")
@click.pass_context
def main(ctx: click.Context, lang: str) -> None:
    """Find low-value care in encounter extracts and link it to adverse-event triggers."""
    ctx.meta[LANG_KEY] = lang


LANG_KEY = "lowvalue.lang"


def summary_lang() -> str:
    """The language of the printed summaries: the global ``--lang`` (default ``LOWVALUE_LANG``, else English)."""
    ctx = click.get_current_context(silent=True)
    lang = ctx.meta.get(LANG_KEY) if ctx is not None else None
    if lang is None:
        lang = os.environ.get("LOWVALUE_LANG", "en")
    return lang if lang in LANGS else "en"


def words() -> dict[str, str]:
    """The printed summaries' texts (namespace ``cli`` of :mod:`lowvalue.messages`) in :func:`summary_lang`."""
    return messages("cli", summary_lang())


for _command in (convert_command, report, risk, explain, review, codes):
    main.add_command(_command)

END_OPTION = click.option("--extract-end", "extract_end", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
                          help="Last day the extract covers (YYYY-MM-DD): later dates are quarantined as implausible "
                               "[default: today].")
MEMORY_OPTION = click.option(
    "--memory-limit", "memory_limit", default=None, metavar="SIZE",
    help="Memory DuckDB may use for reading, checking and scanning, e.g. 4GB, 512MB or 25% (of RAM); beyond it, it "
         "spills to a private temporary folder [default: 50% of RAM].")
FROM_OPTION = click.option("--from", "fmt", type=click.Choice(FROM_CHOICES + ["auto"], case_sensitive=False), default=None,
                           help="Source format to convert first (synthea, omop, meds, mimic-iv, auto); "
                                "default: a canonical extract, or the detected format if the folder is not one.")


def _canonical(data: Path, fmt: str | None, workdir: Path) -> Path:
    """The canonical extract to read: ``data`` itself, or its conversion into ``workdir``."""
    from lowvalue.data.adapters import convert
    from lowvalue.data.adapters.commands import resolve_format

    if fmt is None and (any(data.glob("persons.*")) or (data / "persons").is_dir()):
        return data
    if fmt is None and not data.is_dir():
        return data  # let the reader say what is missing
    fmt = resolve_format(fmt, data)
    click.echo(words()["converting"].format(fmt=fmt, data=data, workdir=workdir), err=True)
    convert(fmt, data, workdir)
    return workdir


@main.command()
@click.option("--persons", type=click.IntRange(1), default=2000, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--chunk-size", type=click.IntRange(100), default=20000, show_default=True)
def synth(persons: int, seed: int, out: Path, chunk_size: int) -> None:
    """Write a synthetic Swedish region (canonical extract plus truth/)."""
    from lowvalue.data.synth import generate

    summary = generate(persons=persons, seed=seed, out=out, chunk_size=chunk_size)
    click.echo(summary.describe())


@main.command()
@click.argument("data", type=click.Path(path_type=Path))
@FROM_OPTION
@END_OPTION
@MEMORY_OPTION
@click.option("--strict", is_flag=True, help="Fail (exit 2) if any row is quarantined.")
@click.option(
    "--quarantine",
    "quarantine_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where quarantined rows go [default: DATA/quarantine].",
)
def validate(data: Path, fmt: str | None, extract_end: Any, memory_limit: str | None, strict: bool,
             quarantine_dir: Path | None) -> None:
    """Read and check an extract; bad rows go to quarantine/ with a reason."""
    from lowvalue.data.extract import memory_limit_bytes, open_extract
    from lowvalue.errors import StrictModeError
    from lowvalue.workdir import private_workdir

    memory_limit_bytes(memory_limit)  # a bad value is one line before any work
    with private_workdir("convert") as tmp:
        canonical = _canonical(data, fmt, tmp)
        extract = open_extract(canonical, quarantine_dir=quarantine_dir or data / "quarantine",
                               extract_end=extract_end.date() if extract_end else None, memory_limit=memory_limit,
                               check_only=True)
        click.echo(extract.summary(summary_lang()))
        extract.close()
    if strict and extract.quarantined_rows:
        raise StrictModeError(f"{data}: {extract.quarantined_rows} row(s) quarantined and --strict was given")


RULES_OPTION = click.option("--rules", "rules_dir", type=click.Path(path_type=Path), default=None,
                             help="Rule library folder [default: the shipped rules/].")


@main.command()
@click.argument("data", type=click.Path(path_type=str))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for the results.")
@FROM_OPTION
@END_OPTION
@RULES_OPTION
@CODES_OPTION
@click.option("--only", multiple=True, help="Rule id to run (repeatable).")
@click.option("--pseudonymise", is_flag=True,
              help="Replace person/encounter/flag ids in the outputs by keyed hashes (key in $LOWVALUE_PSEUDONYM_KEY); "
                   "needs --quarantine outside the results, and keeps no converted copy.")
@click.option("--quarantine", "quarantine_dir", type=click.Path(path_type=Path), default=None,
              help="Where rejected rows go [default: RESULTS/quarantine; required, outside RESULTS, with --pseudonymise].")
@click.option("--engine", type=click.Choice(["duckdb", "spark"]), default="duckdb", show_default=True,
              help="Where the rules run (spark: a local Spark session; needs the 'spark' extra).")
@MEMORY_OPTION
def scan(data: str, out: Path, fmt: str | None, extract_end: Any, rules_dir: Path | None, codes_dir: Path | None,
         only: tuple[str, ...], pseudonymise: bool, quarantine_dir: Path | None, engine: str,
         memory_limit: str | None) -> None:
    """Run the rules over an extract; write flags, candidates, denominators, waterfall, triggers, manifest.

    The results folder is written whole or not at all and replaces an earlier one (derived files included).
    """
    from lowvalue.data.extract import memory_limit_bytes
    from lowvalue.data.spark_extract import is_remote, local_path
    from lowvalue.engine.scan import scan as run_scan
    from lowvalue.privacy import key_from_env
    from lowvalue.progress import bar
    from lowvalue.results import writing
    from lowvalue.rules.overlay import load_rules
    from lowvalue.workdir import private_workdir

    memory_limit_bytes(memory_limit)  # a bad value is one line before any work
    key = key_from_env() if pseudonymise else None
    remote = is_remote(data)  # hdfs://, s3a://, dbfs:/: read by Spark only
    if remote and engine != "spark":
        raise LowvalueError(f"{data}: DuckDB reads extracts on this machine; scan a remote extract with --engine spark "
                            "(see docs/spark.md), or copy or mount the folder here")
    if remote and fmt is not None:
        raise LowvalueError(f"{data}: --from converts a folder on this machine; convert it first, then scan the "
                            "canonical extract")
    if key and quarantine_dir is None:
        raise LowvalueError("--pseudonymise needs --quarantine DIR outside the results folder: rejected rows keep "
                            "their original ids and dates")
    if key and quarantine_dir is not None and quarantine_dir.absolute().is_relative_to(out.absolute()):
        raise LowvalueError(f"--quarantine {quarantine_dir} is inside the pseudonymised results folder {out}; "
                            "give a folder outside it")
    rs = load_rules(rules_dir, codes_dir).select(list(only) or None)
    with writing(out) as tmp, private_workdir("convert") as work:
        converted = work / "converted" if key else tmp / "converted"  # a canonical copy keeps the source's ids
        with bar("scanning", len(rs.rules)) as advance:
            canonical = data if remote else _canonical(local_path(data), fmt, converted)
            if key and canonical == converted:  # the conversion's rejected rows go where the user said, not away
                quarantine_dir.mkdir(parents=True, exist_ok=True)
                for f in ("quarantine", "conversion.json"):
                    if (converted / f).exists():
                        shutil.move(converted / f, quarantine_dir / ("conversion" if f == "quarantine" else f))
            result = run_scan(canonical, rs, quarantine_dir=quarantine_dir or tmp / "quarantine", engine=engine,
                              extract_end=extract_end.date() if extract_end else None, memory_limit=memory_limit,
                              progress=lambda rid, s: advance(description=f"{rid} ({s:.2f}s)"))
        (result.pseudonymised(key) if key else result).write_into(tmp)
    w = words()
    summary = result.summary()
    summary["status"] = summary.status.map(lambda v: w.get("status_" + str(v), v))
    _print_frame(summary, w["scan_title"].format(data=data), w)
    click.echo(waterfall_lines(result.waterfall, summary_lang()))
    click.echo(w["wrote_results"].format(out=out, flags=result.manifest["rows"]["flags"],
                                         triggers=result.manifest["rows"]["triggers"],
                                         seconds=result.manifest["timing_seconds"]["total"]))


def waterfall_lines(waterfall: Any, lang: str = "en") -> str:
    """The scan's exclusion waterfall, one line per rule: candidates → after each condition → low value, then the
    flagged total (both tiers) apart, because it is not a step after the specific conditions and can be larger."""
    from lowvalue.messages import messages

    w = messages("cli", lang)
    lines = [w["waterfall_head"]]
    for rule_id, steps in waterfall.groupby("rule_id", sort=True):
        steps = steps.sort_values("step")
        chain = [f"{r.condition if isinstance(r.condition, str) else w.get('stage_' + r.stage, r.stage)} {r.remaining}"
                 for r in steps.itertuples() if r.stage != "flagged"]
        flagged = steps[steps.stage == "flagged"].remaining
        tail = f"; {w['flagged_either'].format(n=int(flagged.iloc[0]))}" if len(flagged) else ""
        lines.append(f"  {rule_id}: " + " → ".join(chain) + tail)
    return "\n".join(lines)


@main.group()
def rules() -> None:
    """Work with the rule library: list, lint, test."""


@rules.command("test")
@RULES_OPTION
@CODES_OPTION
@click.option("--only", multiple=True, help="Rule id to test (repeatable).")
def rules_test(rules_dir: Path | None, codes_dir: Path | None, only: tuple[str, ...]) -> None:
    """Run every rule's test deck on every engine (DuckDB and the reference evaluator).

    The cases of all decks are one small extract, loaded once per engine; each rule is judged once on it.
    """
    from lowvalue.engine import reference, sql
    from lowvalue.errors import LowvalueError
    from lowvalue.progress import bar
    from lowvalue.rules.decks import frames_engine, run_decks_batched
    from lowvalue.rules.overlay import load_rules

    rs = load_rules(rules_dir, codes_dir).select(list(only) or None)
    rules = sorted((r for r in rs.rules.values() if r.tests), key=lambda r: r.id)
    cases, failures = 0, []
    engines = {"duckdb": sql.evaluate_frames, "reference": reference.evaluate}
    with bar("rule decks", len(rules) * len(engines)) as advance:
        for name, evaluate in engines.items():
            load, judge = frames_engine(evaluate)

            def judged(rule, rs, judge=judge, name=name):  # noqa: ANN001, ANN202 - advances the bar per rule
                out = judge(rule, rs)
                advance(description=f"{name}: {rule.id}")
                return out

            cases, fails = run_decks_batched(rules, rs, load, judged, name) if rules else (0, [])
            failures += fails
    failed = {(f.rule_id, f.case) for f in failures}
    w = words()
    for rule in rules:
        mark = w["deck_fail"] if any(f.rule_id == rule.id for f in failures) else w["deck_ok"]
        click.echo(w["deck_line"].format(mark=mark, rule=rule.id, n=len(rule.tests)))
    for f in failures:
        click.echo(f"  {f}", err=True)
    click.echo(w["decks_summary"].format(passed=cases - len(failed), failed=len(failed)))
    if failures:
        raise LowvalueError(f"{len(failures)} deck failure(s)")


@rules.command("lint")
@RULES_OPTION
def rules_lint(rules_dir: Path | None) -> None:
    """Check schema, code-set names, code formats and contradictory windows; every problem with its location."""
    from lowvalue.errors import LowvalueError
    from lowvalue.rules.lint import lint

    rs, problems = lint(rules_dir)
    for p in problems:
        click.echo(p.one_line(), err=True)
    click.echo(words()["lint_summary"].format(rules=len(rs.rules), codesets=len(rs.valuesets), problems=len(problems)))
    if problems:
        raise LowvalueError(f"{len(problems)} lint problem(s)")


@rules.command("list")
@RULES_OPTION
@CODES_OPTION
@click.option("--format", "fmt", type=click.Choice(["table", "markdown"]), default="table", show_default=True)
@click.option("--lang", type=click.Choice(["en", "sv"]), default="en", show_default=True)
def rules_list(rules_dir: Path | None, codes_dir: Path | None, fmt: str, lang: str) -> None:
    """Print the rule catalogue (with the verification status of its codes)."""
    from lowvalue.rules.catalogue import catalogue, to_markdown
    from lowvalue.rules.overlay import load_rules

    df = catalogue(load_rules(rules_dir, codes_dir), lang)  # type: ignore[arg-type]
    if fmt == "markdown":
        click.echo(to_markdown(df), nl=False)
    else:
        _print_frame(df.drop(columns=["sources"]), "lowvalue rule catalogue")


def _print_frame(df, title: str, w: dict[str, str] | None = None) -> None:  # noqa: ANN001
    """Print a table; with ``w`` (:func:`words`) its column names are the catalogue's ``col_<name>`` texts."""
    import pandas as pd
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in df.columns:
        table.add_column(w.get(f"col_{col}", str(col)) if w else str(col), justify="right" if pd.api.types.is_numeric_dtype(df[col]) else "left")
    for row in df.itertuples(index=False):
        table.add_row(*["" if v is None or v is pd.NA or v != v else f"{v:.3f}" if isinstance(v, float) else str(v)
                        for v in row])
    Console(width=None if sys.stdout.isatty() else 160).print(table)


@main.command()
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--top", type=click.IntRange(1), default=10, show_default=True, help="How many flags to list.")
@click.option("--rule", "rules", multiple=True, help="Only these rule ids (repeatable).")
@click.option("--tier", type=click.Choice(["low value", "likely low value"]), default=None,
              help="Only this tier [default: both].")
def flags(results: Path, top: int, rules: tuple[str, ...], tier: str | None) -> None:
    """List flags with their ids (for `lowvalue explain FLAG_ID`): the highest risk first once `risk score` has run,
    else the latest first. No person or encounter ids are shown."""
    import pandas as pd

    from lowvalue.results import read_derived, read_manifest

    read_manifest(results)
    scored = results / "flags_scored.parquet"
    df = (read_derived(scored, results, made_by="lowvalue risk score") if scored.is_file()
          else pd.read_parquet(results / "flags.parquet"))
    if rules:
        df = df[df.rule_id.isin(rules)]
    if tier:
        df = df[df.tier == tier]
    by = ["risk", "index_time", "flag_id"] if "risk" in df.columns else ["index_time", "flag_id"]
    df = df.sort_values(by, ascending=False, na_position="last", kind="mergesort").head(top)
    cols = ["flag_id", "rule_id", "tier", "index_time", "unit", "setting", "index_code"] + (
        ["risk"] if "risk" in df.columns else [])
    w = words()
    shown = df[cols].assign(index_time=df.index_time.dt.strftime("%Y-%m-%d %H:%M"),
                            tier=df.tier.map(lambda v: w.get("tier_" + str(v).replace(" ", "_"), v)))
    _print_frame(shown, w["flags_title_risk" if "risk" in df.columns else "flags_title"].format(n=len(df), results=results),
                 w)


@main.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo-output"), show_default=True)
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Extract to use [default: the bundled examples/synthetic_data].")
@click.pass_context
def demo(ctx: click.Context, out: Path, data: Path | None) -> None:
    """The main job on the bundled synthetic region: validate, scan, check truth, risk, explain, report, review round."""
    from lowvalue.data.extract import open_extract
    from lowvalue.engine.scan import scan as run_scan
    from lowvalue.engine.truth import compare_with_truth
    from lowvalue.results import read_derived
    from lowvalue.shipped import shipped

    data = data or shipped("examples/synthetic_data")
    w, lang = words(), summary_lang()
    if not (data / "persons.parquet").exists():
        from lowvalue.data.synth import generate

        click.echo(w["demo_generating"].format(data=data, out=out / "data"))
        data = out / "data"
        generate(persons=2000, seed=42, out=data)
    click.echo(w["demo_validate"].format(data=data))
    extract = open_extract(data, quarantine_dir=out / "quarantine")
    click.echo(extract.summary(lang))
    codes = data / "region-codes" if (data / "region-codes").is_dir() else None
    click.echo(w["demo_scan"].format(overlay=w["demo_overlay"].format(codes=codes) if codes else ""))
    result = run_scan(extract, codes=codes)
    result.write(out / "scan")
    summary = result.summary()
    summary["status"] = summary.status.map(lambda v: w.get("status_" + str(v), v))
    _print_frame(summary, w["demo_flags_title"], w)
    click.echo(waterfall_lines(result.waterfall[result.waterfall.rule_id == "LV-HOSP-027"], lang))
    if (data / "truth").is_dir():
        click.echo(w["demo_compare"])
        truth = compare_with_truth(result.flags, data / "truth")
        truth["tier"] = truth.tier.map(lambda v: w.get("tier_" + str(v).replace(" ", "_"), v))
        _print_frame(truth, w["demo_compare_title"], w)
    from lowvalue.risk.commands import excess

    results, model = out / "scan", out / "model"
    click.echo(w["demo_risk"])
    ctx.invoke(risk.commands["train"], results=results, out=model, horizon=30, seed=1, n_boot=100)
    ctx.invoke(risk.commands["score"], results=results, model_dir=model)
    click.echo(w["demo_excess"])
    ctx.invoke(excess, results=results, out=None, data=data, n_boot=None, seed=1, rules=(), memory_limit=None)
    scored = read_derived(results / "flags_scored.parquet", results, made_by="lowvalue risk score")
    top = scored[(scored.variant == "specific") & scored.risk.notna()].sort_values(["risk", "flag_id"]).iloc[-1]
    click.echo(w["demo_explain"].format(flag=top.flag_id))
    ctx.invoke(explain, flag_id=top.flag_id, results=results, model_dir=model, lang="sv", out=out / "explain.png")
    click.echo(w["demo_report"])
    for report_lang in ("en", "sv"):
        ctx.invoke(report, results=results, out=out / f"report-{report_lang}.html", lang=report_lang, pdf=False, min_count=5,
                   model_dir=model, excess=None, verdicts=None, weights="volume=0.4,harm=0.4,confidence=0.2",
                   funnel_limits="normal", rules=())
    click.echo(w["demo_review"])
    db = out / "review.sqlite"
    ctx.invoke(review.commands["init"], results=results, db=db)
    from lowvalue.review.sampling import sample_round  # a validation round: 10 flags per rule × tier, 5 unflagged

    click.echo(sample_round(db, results, per_rule=10, unflagged=5, strata=("unit",), seed=1).describe(lang))
    click.echo(w["demo_next"].format(command=f"lowvalue review add-user NAME --db {db} && "
                                             f"lowvalue review serve --db {db} --results {results} --model {model}"))
    click.echo(w["demo_done"].format(results=results, model=model, out=out, db=db))


from lowvalue.export.commands import export as _export  # noqa: E402 - registered last, beside the other commands

main.add_command(_export)


EXAMPLES: dict[str, list[str]] = {
    "synth": ["lowvalue synth --persons 100000 --seed 1 --out region/"],
    "validate": ["lowvalue validate region/ --extract-end 2024-12-31"],
    "convert": ["lowvalue convert --from synthea synthea/output/csv --out canonical/"],
    "scan": ["lowvalue scan region/ --codes region/region-codes --out results/",
             "lowvalue scan omop_cdm/ --from omop --rules my-rules/ --out results/"],
    "flags": ["lowvalue flags results/ --top 10", "lowvalue flags results/ --rule LV-IMG-001 --tier 'low value'"],
    "rules test": ["lowvalue rules test", "lowvalue rules test --rules my-rules/ --only LV-IMG-001"],
    "rules lint": ["lowvalue rules lint --rules my-rules/"],
    "rules list": ["lowvalue rules list --lang sv", "lowvalue rules list --format markdown > docs/rules.md"],
    "codes template": ["lowvalue codes template extract/ --out region-codes/"],
    "codes lint": ["lowvalue codes lint region-codes/"],
    "risk train": ["lowvalue risk train results/ --out models/region"],
    "risk score": ["lowvalue risk score results/ --model models/region"],
    "risk excess": ["lowvalue risk excess results/ --rule LV-HOSP-027"],
    "risk triage": ["lowvalue risk triage results/"],
    "explain": ["lowvalue flags results/ --top 5      # pick a FLAG_ID",
                "lowvalue explain FLAG_ID --results results/ --model models/region --lang sv --out case.png"],
    "report": ["lowvalue report results/ --model models/region --out report.html --lang sv",
               "lowvalue report results/ --out report.html --pdf"],
    "review init": ["lowvalue review init results/ --db review.sqlite"],
    "review add-user": ["lowvalue review add-user anna --db review.sqlite",
                        "LOWVALUE_REVIEW_PASSWORD='a long passphrase' lowvalue review add-user anna --db review.sqlite"],
    "review disable-user": ["lowvalue review disable-user anna --db review.sqlite"],
    "review serve": ["lowvalue review serve --db review.sqlite --results results/ --model models/region"],
    "review export": ["lowvalue review export --db review.sqlite"],
    "review sample": ["lowvalue review sample results/ --db review.sqlite --per-rule 30 --unflagged 10 --seed 1",
                      "lowvalue review sample results/ --db review.sqlite --per-rule 20 --strata unit --reviewers anna,erik "
                      "--double --seed 2"],
    "review stats": ["lowvalue review stats --db review.sqlite --lang sv", "lowvalue review stats --db review.sqlite --out stats.csv"],
    "export": ["lowvalue export results/ --to xlsx --out flags.xlsx --locale sv",
               "lowvalue export results/ --to sql --url postgresql+psycopg://user@dwh/quality --schema lowvalue"],
    "demo": ["lowvalue demo --out demo-output"],
}
"""An example for every command's ``--help`` (kept here, beside the registration, for the commands of every
sub-package); ``tests/test_cli_help.py`` checks that no command lacks one."""


def _add_examples(group: click.Group, prefix: str = "") -> None:
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            _add_examples(command, f"{path} ")
        elif path in EXAMPLES and not command.epilog:
            command.epilog = "\b\nExample:\n" + "\n".join(f"  {line}" for line in EXAMPLES[path])


_add_examples(main)


if __name__ == "__main__":  # pragma: no cover
    main()
