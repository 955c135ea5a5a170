"""CLI for the review app: ``lowvalue review init | sample | stats | add-user | disable-user | serve | export``.

Registered on the main CLI (which turns a LowvalueError into one line and exit
code 2). Flask is imported only by ``serve``, so the other commands start fast.
What they print is in the language of the global ``--lang`` (the catalogue's ``cli`` texts).
"""

from __future__ import annotations

import os
from pathlib import Path

import click

PASSWORD_ENV = "LOWVALUE_REVIEW_PASSWORD"
DB_OPTION = click.option("--db", "db", type=click.Path(dir_okay=False, path_type=Path), default=Path("review.sqlite"),
                         show_default=True, help="Review database (SQLite).")


def _lang() -> str:
    """The summaries' language (imported late: ``lowvalue.cli`` imports this module to register it)."""
    from lowvalue.cli import summary_lang

    return summary_lang()


def _words() -> dict[str, str]:
    from lowvalue.messages import messages

    return messages("cli", _lang())


@click.group()
def review() -> None:
    """Review flagged cases in a local web app and export the verdicts for triage."""


@review.command()
@click.argument("results", type=click.Path(exists=True, file_okay=False, path_type=Path))
@DB_OPTION
def init(results: Path, db: Path) -> None:
    """Load a results folder's flags (with scores and triage when present); re-running keeps existing verdicts."""
    from lowvalue.progress import bar
    from lowvalue.review.store import Store

    with Store.open(db, create=True) as st, bar("loading the flags"):
        loaded = st.load_results(results)
    click.echo(loaded.describe(_lang()))
    click.echo(_words()["review_db"].format(db=db))


@review.command()
@click.argument("results", type=click.Path(exists=True, file_okay=False, path_type=Path))
@DB_OPTION
@click.option("--per-rule", type=click.IntRange(1, 100000), required=True, help="Flags to draw per rule and tier.")
@click.option("--tier", "tiers", type=click.Choice(["specific", "sensitive"]), multiple=True,
              help="Tier(s) to sample: specific (low value), sensitive (likely low value) [default: both].")
@click.option("--unflagged", type=click.IntRange(0, 100000), default=0, show_default=True,
              help="Eligible candidates flagged by no tier to draw per rule (for the NPV).")
@click.option("--strata", default="", help="Stratify by unit, period (calendar quarter) or 'unit,period' "
                                           "[default: simple random sample].")
@click.option("--seed", type=int, required=True, help="Random seed: the same results, design and seed draw the same round.")
@click.option("--reviewers", default="", help="Comma-separated reviewers to assign the cases to, in turn.")
@click.option("--double", is_flag=True, help="Assign each case to two of --reviewers (double review, then adjudication).")
@click.option("--rule", "rules", multiple=True, help="Only these rule ids [default: every rule in the results].")
@click.option("--blind/--no-blind", default=True, show_default=True,
              help="Hide tier and risk in the round's queue and case pages until the reviewer has given a verdict.")
def sample(results: Path, db: Path, per_rule: int, tiers: tuple[str, ...], unflagged: int, strata: str, seed: int,
           reviewers: str, double: bool, rules: tuple[str, ...], blind: bool) -> None:
    """Draw a sampled review round (random or stratified, per rule × tier) for a validation study of the rules."""
    from lowvalue.review.sampling import draw_round
    from lowvalue.review.store import Store

    with Store.open(db, create=True) as st:
        summary = draw_round(st, results, per_rule=per_rule, seed=seed, tiers=tiers or ("specific", "sensitive"),
                             unflagged=unflagged, strata=[s.strip() for s in strata.split(",") if s.strip()],
                             reviewers=[r.strip() for r in reviewers.split(",") if r.strip()],
                             reviewers_per_case=2 if double else 1, blinded=blind, rules=rules)
    click.echo(summary.describe(_lang()))
    click.echo(_words()["review_db"].format(db=db))


@review.command()
@DB_OPTION
@click.option("--round", "round_id", type=int, default=None, help="Round number [default: the latest].")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the table as CSV (no person data: counts and estimates per rule and tier).")
@click.option("--lang", type=click.Choice(["en", "sv"]), default=None,
              help="Language of the table [default: the global --lang].")
def stats(db: Path, round_id: int | None, out: Path | None, lang: str | None) -> None:
    """PPV and NPV with Wilson 95 % CIs, unsure counts and Cohen's kappa per rule × tier of a sampled round."""
    from lowvalue.messages import messages
    from lowvalue.review.stats import format_stats, round_stats
    from lowvalue.review.store import Store

    with Store.open(db) as st:
        table = round_stats(st, round_id)
    lang = lang or _lang()
    click.echo(format_stats(table, lang))
    if out is not None:
        table.to_csv(out, index=False)
        click.echo(messages("cli", lang)["wrote"].format(path=out))


@review.command("add-user")
@click.argument("name")
@DB_OPTION
@click.option("--replace", is_flag=True,
              help="Set a new password for an existing user: ends their sessions, lifts login delays, re-enables.")
@click.option("--role", type=click.Choice(["reviewer", "adjudicator", "admin"]), default=None,
              help="reviewer (default for a new user), adjudicator (settles double-review disagreements, may see "
                   "the re-identification key) or admin (also manages users in the app).")
def add_user(name: str, db: Path, replace: bool, role: str | None) -> None:
    """Add a reviewer; the password comes from a hidden prompt, or from $LOWVALUE_REVIEW_PASSWORD for scripts.

    At least 10 characters and not easy to guess (zxcvbn score 3 of 4: no common passwords, names or patterns).
    """
    from lowvalue.review.store import Store

    w = _words()
    with Store.open(db) as st:
        password = os.environ.get(PASSWORD_ENV) or click.prompt(w["review_password"], hide_input=True,
                                                                confirmation_prompt=w["review_password_again"])
        st.add_user(name, password, replace=replace, role=role)
    click.echo(w["review_user_replaced" if replace else "review_user_added"].format(name=name))


@review.command("disable-user")
@click.argument("name")
@DB_OPTION
def disable_user(name: str, db: Path) -> None:
    """Stop a reviewer from logging in and end their sessions at once (their verdicts stay); undo with add-user --replace."""
    from lowvalue.review.store import Store

    with Store.open(db) as st:
        ended = st.disable_user(name)
    click.echo(_words()["review_disabled"].format(name=name, n=ended))


@review.command()
@DB_OPTION
@click.option("--results", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="The results folder the database was initialised from.")
@click.option("--model", "model_dir", type=click.Path(exists=True, path_type=Path), default=None,
              help="Risk model folder (models/NAME): adds the SHAP explanation to each case.")
@click.option("--rules", "rules_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Rule library folder the scan used [default: the copy kept in the results]; another library is refused.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address only.")
@click.option("--port", type=click.IntRange(1, 65535), default=8765, show_default=True)
def serve(db: Path, results: Path, model_dir: Path | None, rules_dir: Path | None, host: str, port: int) -> None:
    """Serve the review app on this machine (loopback only) until Ctrl-C."""
    from lowvalue.review.app import build_server, check_loopback

    check_loopback(host)  # before anything else is opened
    server = build_server(db, results, model_dir, host=host, port=port, rules_dir=rules_dir)
    shown = f"[{host}]" if ":" in host else host
    click.echo(_words()["review_serving"].format(url=f"http://{shown}:{server.server_port}/"))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@review.command()
@DB_OPTION
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Parquet file [default: verdicts.parquet in the results folder the database was loaded from].")
@click.option("--round", "round_id", type=int, default=None,
              help="The sampled round whose final labels feed the report's precision [default: the latest].")
def export(db: Path, out: Path | None, round_id: int | None) -> None:
    """Write the latest confirmed/rejected verdict per flag (flag_id, verdict, reason, reviewer, reviewed_at)."""
    from lowvalue.errors import LowvalueError
    from lowvalue.review.store import Store

    with Store.open(db) as st:
        if out is None:
            loaded = st.meta("results_path")
            if not loaded:
                raise LowvalueError(f"{db}: no results loaded; give --out")
            out = Path(loaded) / "verdicts.parquet"
        click.echo(st.export(out, round_id=round_id).describe(_lang()))
