"""The review store: one SQLite file holding flags, reviewers, verdicts and an audit trail.

SQLite because a review round is a handful of reviewers on one machine and the
store must be a single file a quality unit can archive next to the results.
Verdicts and audit rows are append-only (enforced by triggers): a changed mind
is a new verdict, and the latest one counts. The store never holds a raw
person id: each flag carries only a keyed pseudonym of its patient
(:func:`lowvalue.privacy.pseudonym`, key random per store), so reviewers can
see that two flags concern the same patient without seeing who it is.

Hardening (issue 12): sessions live here, server-side, so logout, a password
change and disabling a user end them at once; the store keeps only a SHA-256 of
each session id, so a copy of the database (archived next to the results) holds
no usable cookie and no session secret. Failed logins slow down the guesser
(per client address, per account and client, and a capped speed limit per
account: :data:`THROTTLES`) instead of locking an account that anyone could lock.
Every connection turns on foreign keys; the file is in WAL mode so reviewers
keep reading while ``review init`` writes in short batches.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any, Iterator, Literal

import pandas as pd

from lowvalue.errors import InputError, LowvalueError
from lowvalue.messages import messages
from lowvalue.privacy import pseudonym

SCHEMA_VERSION = "3"
VERDICTS = ("confirmed", "rejected", "unsure")
STATUSES = ("unreviewed", *VERDICTS)
REASONS = ("meets_rule", "exception_not_coded", "coding_error", "data_missing", "other")
# Which reasons can go with which verdict (the consistency check between verdict and reason): "meets the rule, no
# documented reason" cannot reject or leave unsure, an uncoded exception or a coding error cannot confirm.
CONSISTENT = {"confirmed": ("meets_rule", "other"),
              "rejected": ("exception_not_coded", "coding_error", "data_missing", "other"),
              "unsure": ("exception_not_coded", "data_missing", "other")}
ROLES = ("reviewer", "adjudicator", "admin")
# What each role may do beyond reviewing: an adjudicator settles disagreements of a double review and may see the
# re-identification key; an admin manages users (and may do all an adjudicator does).
ROLE_RIGHTS = {"reviewer": frozenset(), "adjudicator": frozenset({"adjudicate", "reidentify"}),
               "admin": frozenset({"adjudicate", "reidentify", "admin"})}
UNFLAGGED = "unflagged"  # the variant of a sampled eligible candidate that no tier flagged (for the NPV)
MIN_PASSWORD, MAX_PASSWORD, MIN_STRENGTH = 10, 128, 3
SESSION_LIFETIME, SESSION_IDLE = timedelta(hours=8), timedelta(hours=1)
# Login throttling: scope → (failures allowed free, first delay, longest delay). After the free failures each
# further failure doubles the wait before that scope may try again. A client (remote address) or one client's
# guesses at one account are slowed to one guess per 15 minutes; all clients together are slowed on an account to
# at most one guess a minute, a speed limit against guessing spread over many addresses that can delay a reviewer
# by a minute at most, never lock them out. A successful login clears its client's failures on that account; a
# password reset clears the account's. Failures are remembered for FAILURE_MEMORY.
THROTTLES = {"pair": (5, timedelta(seconds=30), timedelta(minutes=15)),
             "client": (10, timedelta(seconds=30), timedelta(minutes=15)),
             "account": (20, timedelta(seconds=2), timedelta(minutes=1))}
FAILURE_MEMORY = timedelta(hours=24)
BATCH = 5000  # flags per transaction in load_results: writers wait at most one batch
MAX_COMMENT = 2000
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS flags (
    flag_id TEXT PRIMARY KEY, rule_id TEXT NOT NULL, variant TEXT NOT NULL, tier TEXT, unit TEXT, setting TEXT,
    index_time TEXT NOT NULL, index_system TEXT, index_code TEXT, cost REAL, patient_ref TEXT,
    evidence TEXT NOT NULL DEFAULT '[]', risk REAL, risk_percentile REAL, p_confirmed REAL, triage_rank INTEGER,
    first_loaded TEXT NOT NULL, last_loaded TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'unreviewed', queue_pos INTEGER);
CREATE TABLE IF NOT EXISTS users (username TEXT PRIMARY KEY, password_hash TEXT NOT NULL, created_at TEXT NOT NULL,
    disabled_at TEXT);
CREATE TABLE IF NOT EXISTS verdicts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    flag_id TEXT NOT NULL REFERENCES flags(flag_id),
    reviewer TEXT NOT NULL REFERENCES users(username),
    verdict TEXT NOT NULL CHECK (verdict IN ('confirmed', 'rejected', 'unsure')),
    reason TEXT NOT NULL, comment TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS verdicts_flag ON verdicts(flag_id, id);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    target TEXT, detail TEXT);
CREATE INDEX IF NOT EXISTS audit_actor ON audit(actor, action, id);
CREATE VIEW IF NOT EXISTS latest AS
    SELECT v.* FROM verdicts v JOIN (SELECT flag_id, max(id) AS id FROM verdicts GROUP BY flag_id) m ON v.id = m.id;
CREATE TRIGGER IF NOT EXISTS verdicts_no_update BEFORE UPDATE ON verdicts
    BEGIN SELECT RAISE(ABORT, 'verdicts are append-only'); END;
CREATE TRIGGER IF NOT EXISTS verdicts_no_delete BEFORE DELETE ON verdicts
    BEGIN SELECT RAISE(ABORT, 'verdicts are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
"""

# Added by schema 2 (also run on a schema-1 store after its columns are added). INSERT OR REPLACE and REPLACE delete
# the conflicting row without firing delete triggers, so an insert onto an existing id is refused before it happens.
# flags.status caches the latest verdict (kept by a trigger) and flags.queue_pos the review order (set at each load),
# so the queue, its counts and the case page's neighbours are index look-ups, not sorts of the whole round.
SCHEMA_2 = """
CREATE TRIGGER IF NOT EXISTS verdicts_no_replace BEFORE INSERT ON verdicts
    WHEN EXISTS (SELECT 1 FROM verdicts WHERE id = NEW.id)
    BEGIN SELECT RAISE(ABORT, 'verdicts are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_replace BEFORE INSERT ON audit
    WHEN EXISTS (SELECT 1 FROM audit WHERE id = NEW.id)
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS verdicts_status AFTER INSERT ON verdicts
    BEGIN UPDATE flags SET status = NEW.verdict WHERE flag_id = NEW.flag_id; END;
CREATE TRIGGER IF NOT EXISTS flags_status_kept AFTER INSERT ON flags
    WHEN EXISTS (SELECT 1 FROM verdicts WHERE flag_id = NEW.flag_id)
    BEGIN UPDATE flags SET status = (SELECT verdict FROM verdicts WHERE flag_id = NEW.flag_id ORDER BY id DESC LIMIT 1)
          WHERE flag_id = NEW.flag_id; END;
DROP INDEX IF EXISTS flags_rule;
CREATE INDEX IF NOT EXISTS flags_queue ON flags(queue_pos);
CREATE INDEX IF NOT EXISTS flags_status ON flags(status, queue_pos);
CREATE INDEX IF NOT EXISTS flags_rule_pos ON flags(rule_id, queue_pos);
CREATE INDEX IF NOT EXISTS flags_unit_pos ON flags(unit, queue_pos);
CREATE TABLE IF NOT EXISTS sessions (
    id_hash TEXT PRIMARY KEY, username TEXT REFERENCES users(username), data TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL, last_seen TEXT NOT NULL, expires_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions(username);
CREATE INDEX IF NOT EXISTS sessions_expiry ON sessions(expires_at);
CREATE TABLE IF NOT EXISTS login_failures (
    id INTEGER PRIMARY KEY, at TEXT NOT NULL, username TEXT NOT NULL, client TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS login_failures_user ON login_failures(username, at);
CREATE INDEX IF NOT EXISTS login_failures_client ON login_failures(client, at);
"""

# Added by schema 3 (issue 16): review rounds with a sampling design, double review and adjudication, roles.
# A round, its frame sizes, its sampled cases and its assignments are written once and never changed (triggers),
# like verdicts: the design of a validation study is part of its record. A verdict given in a round carries the
# round and its stage ("review" or "adjudication"); the ordinary status of a flag follows ordinary verdicts only,
# so a blinded round's verdicts never show in the ordinary queue.
SCHEMA_3 = """
ALTER TABLE verdicts ADD COLUMN round_id INTEGER;
ALTER TABLE verdicts ADD COLUMN stage TEXT NOT NULL DEFAULT 'review';
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'reviewer';
ALTER TABLE flags ADD COLUMN explanation TEXT;
DROP TRIGGER IF EXISTS verdicts_status;
CREATE TRIGGER IF NOT EXISTS verdicts_status AFTER INSERT ON verdicts WHEN NEW.round_id IS NULL
    BEGIN UPDATE flags SET status = NEW.verdict WHERE flag_id = NEW.flag_id; END;
DROP TRIGGER IF EXISTS flags_status_kept;
CREATE TRIGGER IF NOT EXISTS flags_status_kept AFTER INSERT ON flags
    WHEN EXISTS (SELECT 1 FROM verdicts WHERE flag_id = NEW.flag_id AND round_id IS NULL)
    BEGIN UPDATE flags SET status = (SELECT verdict FROM verdicts WHERE flag_id = NEW.flag_id AND round_id IS NULL
                                     ORDER BY id DESC LIMIT 1) WHERE flag_id = NEW.flag_id; END;
CREATE INDEX IF NOT EXISTS verdicts_round ON verdicts(round_id, flag_id, reviewer, id);
CREATE TABLE IF NOT EXISTS rounds (
    round_id INTEGER PRIMARY KEY, created_at TEXT NOT NULL, created_by TEXT NOT NULL, design TEXT NOT NULL,
    strata TEXT NOT NULL, seed INTEGER NOT NULL, per_rule INTEGER NOT NULL, unflagged INTEGER NOT NULL,
    tiers TEXT NOT NULL, reviewers_per_case INTEGER NOT NULL, blinded INTEGER NOT NULL, frame TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS round_strata (
    round_id INTEGER NOT NULL REFERENCES rounds(round_id), rule_id TEXT NOT NULL, tier TEXT NOT NULL,
    stratum TEXT NOT NULL, frame_n INTEGER NOT NULL, sample_n INTEGER NOT NULL,
    PRIMARY KEY (round_id, rule_id, tier, stratum));
CREATE TABLE IF NOT EXISTS round_cases (
    round_id INTEGER NOT NULL REFERENCES rounds(round_id), flag_id TEXT NOT NULL REFERENCES flags(flag_id),
    rule_id TEXT NOT NULL, tier TEXT NOT NULL, stratum TEXT NOT NULL, position INTEGER NOT NULL,
    PRIMARY KEY (round_id, flag_id));
CREATE INDEX IF NOT EXISTS round_cases_pos ON round_cases(round_id, position);
CREATE TABLE IF NOT EXISTS assignments (
    round_id INTEGER NOT NULL, flag_id TEXT NOT NULL, reviewer TEXT NOT NULL REFERENCES users(username),
    slot INTEGER NOT NULL, PRIMARY KEY (round_id, flag_id, reviewer),
    FOREIGN KEY (round_id, flag_id) REFERENCES round_cases(round_id, flag_id));
CREATE INDEX IF NOT EXISTS assignments_reviewer ON assignments(reviewer, round_id);
"""
_FROZEN = ("rounds", "round_strata", "round_cases", "assignments")
SCHEMA_3 += "".join(
    f"CREATE TRIGGER IF NOT EXISTS {t}_no_update BEFORE UPDATE ON {t} "
    f"BEGIN SELECT RAISE(ABORT, 'review rounds are append-only'); END;\n"
    f"CREATE TRIGGER IF NOT EXISTS {t}_no_delete BEFORE DELETE ON {t} "
    f"BEGIN SELECT RAISE(ABORT, 'review rounds are append-only'); END;\n" for t in _FROZEN)

MIGRATE_1 = """
ALTER TABLE flags ADD COLUMN status TEXT NOT NULL DEFAULT 'unreviewed';
ALTER TABLE flags ADD COLUMN queue_pos INTEGER;
ALTER TABLE users ADD COLUMN disabled_at TEXT;
UPDATE flags SET status = (SELECT l.verdict FROM latest l WHERE l.flag_id = flags.flag_id)
    WHERE flag_id IN (SELECT flag_id FROM verdicts);
DELETE FROM meta WHERE key = 'secret:session';
"""

ORDER = "f.triage_rank IS NULL, f.triage_rank, f.risk IS NULL, f.risk DESC, f.index_time, f.flag_id"


def _now() -> datetime:
    """The clock (UTC); a function so tests can move it."""
    return datetime.now(timezone.utc)


def _stamp(t: datetime | None = None) -> str:
    return (t or _now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def _sid_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def password_problem(password: str, username: str = "") -> str | None:
    """Why ``password`` is not good enough, or None. Length, then zxcvbn's offline estimate.

    zxcvbn (a maintained port of Dropbox's estimator) ships frequency lists of
    common passwords, names and words and scores guessability from 0 to 4; we
    ask for 3 ("safely unguessable", about 10^8 guesses or more), with the user
    name and this app's words as known inputs. No network is used.
    """
    if len(password) < MIN_PASSWORD:
        return f"password too short: at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"password too long: at most {MAX_PASSWORD} characters"
    from zxcvbn import zxcvbn

    result = zxcvbn(password, user_inputs=[username, "lowvalue", "review", "granskning", "lagvardevard"],
                    max_length=MAX_PASSWORD)
    if result["score"] < MIN_STRENGTH:
        hint = result["feedback"].get("warning") or "it follows a common pattern"
        return f"password too easy to guess ({hint.rstrip('.')}); use a longer phrase of uncommon words"
    return None


@cache
def _dummy_hash() -> str:
    from werkzeug.security import generate_password_hash

    return generate_password_hash(secrets.token_hex(16))


def _clean(v: Any) -> Any:
    """A pandas/numpy scalar as a plain SQLite value (NaN and NaT become NULL)."""
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT:
        return None
    if hasattr(v, "item"):
        v = v.item()
        return None if isinstance(v, float) and math.isnan(v) else v
    return v


@dataclass(frozen=True)
class Filters:
    """The queue's filters; empty strings mean "any"."""

    rule: str = ""
    unit: str = ""
    variant: str = ""
    status: str = ""

    @classmethod
    def from_args(cls, args: Any) -> "Filters":
        status = args.get("status", "")
        return cls(rule=args.get("rule", "")[:64], unit=args.get("unit", "")[:64],
                   variant=args.get("variant", "") if args.get("variant") in ("specific", "sensitive") else "",
                   status=status if status in STATUSES else "")

    def args(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v}

    def where(self, *, with_status: bool = True) -> tuple[str, list[str]]:
        parts, params = [f"f.variant != '{UNFLAGGED}'"], []  # unflagged candidates belong to sampled rounds only
        for col, v in (("f.rule_id", self.rule), ("f.unit", self.unit), ("f.variant", self.variant)):
            if v:
                parts.append(f"{col} = ?")
                params.append(v)
        if with_status and self.status:
            parts.append("f.status = ?")
            params.append(self.status)
        return " AND ".join(parts), params


@dataclass(frozen=True)
class LoadSummary:
    flags: int
    new: int
    updated: int
    kept: int  # flags in the store that are not in these results
    rule_sets: tuple[str, str] | None = None  # (these results', the previous load's) rule-set digests when they differ

    def describe(self, lang: str = "en") -> str:
        """What was loaded, in ``lang`` (the catalogue's ``cli`` texts, for the CLI's ``--lang``)."""
        w = messages("cli", lang)
        text = w["load_summary"].format(flags=self.flags, new=self.new, updated=self.updated, kept=self.kept)
        return text + ("\n" + w["load_note"].format(new=self.rule_sets[0], old=self.rule_sets[1]) if self.rule_sets else "")


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    confirmed: int
    rejected: int
    unsure: int
    unreviewed: int

    def describe(self, lang: str = "en") -> str:
        """What was written, in ``lang`` (the catalogue's ``cli`` texts)."""
        return messages("cli", lang)["review_exported"].format(
            path=self.path, confirmed=self.confirmed, rejected=self.rejected, unsure=self.unsure,
            unreviewed=self.unreviewed)


class Store:
    """A connection to one review database; open one per thread (SQLite connections are not shared)."""

    def __init__(self, con: sqlite3.Connection, path: Path):
        self.con, self.path = con, path

    @classmethod
    def open(cls, path: Path | str, *, create: bool = False) -> "Store":
        """Open a review database; ``create`` makes a new one (readable by its owner only: it holds a secret key)."""
        path = Path(path)
        if not path.is_file():
            if not create:
                raise LowvalueError(f"{path}: no review database; create it with `lowvalue review init RESULTS --db {path}`")
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        con = sqlite3.connect(path, timeout=10, check_same_thread=False)
        con.row_factory = sqlite3.Row
        con.execute("PRAGMA foreign_keys = ON")  # per connection in SQLite: every connection of the app opens here
        con.execute("PRAGMA synchronous = NORMAL")  # durable enough in WAL mode, and much faster per commit
        store = cls(con, path)
        try:
            has_meta = con.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone()
        except sqlite3.DatabaseError as err:
            con.close()
            raise LowvalueError(f"{path}: not a review database ({err})") from None
        version = store.meta("schema_version") if has_meta else None
        if create and version is None:
            con.executescript(SCHEMA + SCHEMA_2)
            store._migrate(SCHEMA_3)
        elif version in ("1", "2"):
            if version == "1":
                store._migrate_1()
            store._migrate(SCHEMA_3)
        elif version != SCHEMA_VERSION:
            con.close()
            raise LowvalueError(f"{path}: not a review database of this lowvalue version (schema {SCHEMA_VERSION})")
        if con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            con.execute("PRAGMA journal_mode = WAL")  # kept in the file: readers and one writer no longer block
        return store

    def _migrate_1(self) -> None:
        """Bring a schema-1 store to schema 2 in one transaction (verdicts and audit are untouched)."""
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATE_1.strip().split(";\n"):
                con.execute(statement)
            for statement in SCHEMA_2.strip().split(";\n"):
                con.execute(statement)
            self._renumber()
            con.execute("INSERT INTO meta VALUES ('schema_version', '2') ON CONFLICT(key) DO UPDATE SET value = '2'")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def _migrate(self, script: str) -> None:
        """Apply a schema step (statements separated by ``;\\n``) and set the current version, in one transaction."""
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        try:
            for statement in script.strip().split(";\n"):
                if statement.strip():
                    con.execute(statement)
            con.execute("INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT(key) DO UPDATE SET "
                        "value = excluded.value", [SCHEMA_VERSION])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # meta and audit ---------------------------------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        row = self.con.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.con:
            self.con.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                             [key, value])

    def secret(self, name: str) -> str:
        """A random secret created on first use and kept in the store, so it survives restarts; never printed.

        Only the pseudonym key lives here (it must outlive the server, and pseudonyms are useless without person
        ids, which the store never holds). Sessions need no secret: see :meth:`new_session`.
        """
        with self.con:
            self.con.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", [f"secret:{name}", secrets.token_hex(32)])
        return self.meta(f"secret:{name}")  # type: ignore[return-value]

    def audit(self, actor: str, action: str, target: str | None = None, detail: str | None = None) -> None:
        """Record who did what when. Never pass a comment or a person id as ``detail``."""
        with self.con:
            self.con.execute("INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
                             [_stamp(), actor[:64], action, target, detail])

    def audit_rows(self) -> list[sqlite3.Row]:
        return self.con.execute("SELECT * FROM audit ORDER BY id").fetchall()

    # flags ------------------------------------------------------------------------------------------------------------

    def load_results(self, results: Path | str) -> LoadSummary:
        """Add the flags of a results folder (with scores and triage when present); existing verdicts are kept.

        Flags are keyed by their content-hash id, so loading the same or a re-scanned
        results folder again adds only new flags and refreshes the scores of known ones.
        """
        from lowvalue.results import read_derived, read_manifest

        results = Path(results)
        read_manifest(results)  # a complete scan, or one line saying what to do
        fpath = results / "flags.parquet"
        flags = pd.read_parquet(fpath)
        missing = {"flag_id", "rule_id", "variant", "index_time"} - set(flags.columns)
        if missing:
            raise InputError(str(fpath), f"not a flags table (missing {', '.join(sorted(missing))})")
        for extra, cols in (("flags_scored.parquet", ["risk", "risk_percentile"]),
                            ("flags_triage.parquet", ["p_confirmed", "triage_rank"])):
            if (results / extra).is_file():
                part = read_derived(results / extra, results, made_by="lowvalue risk score / risk triage RESULTS")
                keep = [c for c in cols if c in part.columns]
                flags = flags.drop(columns=[c for c in keep if c in flags.columns]).merge(
                    part[["flag_id", *keep]], on="flag_id", how="left")
        key = self.secret("pseudonym").encode()
        stamp = _stamp()
        rows = []
        for r in flags.to_dict("records"):
            pid = _clean(r.get("person_id"))
            ev = r.get("evidence")
            rows.append([str(r["flag_id"]), r["rule_id"], r["variant"], _clean(r.get("tier")), _clean(r.get("unit")),
                         _clean(r.get("setting")), pd.Timestamp(r["index_time"]).strftime("%Y-%m-%dT%H:%M:%S"),
                         _clean(r.get("index_system")), _clean(r.get("index_code")), _clean(r.get("cost")),
                         pseudonym(key, str(pid)) if pid is not None else None,
                         ev if isinstance(ev, str) else json.dumps(list(ev or []), default=str),
                         _clean(r.get("risk")), _clean(r.get("risk_percentile")), _clean(r.get("p_confirmed")),
                         _clean(r.get("triage_rank")), stamp, stamp])
        ids = [r[0] for r in rows]
        before = self.con.execute("SELECT count(*) FROM flags").fetchone()[0]
        with self.con:
            self.con.execute("CREATE TEMP TABLE IF NOT EXISTS _ids (flag_id TEXT PRIMARY KEY)")
            self.con.execute("DELETE FROM _ids")
            self.con.executemany("INSERT OR IGNORE INTO _ids VALUES (?)", [[i] for i in ids])
            known = self.con.execute("SELECT count(*) FROM flags JOIN _ids USING (flag_id)").fetchone()[0]
        # short transactions (WAL): a reviewer saving a verdict waits for one batch, not for the whole load
        for start in range(0, len(rows), BATCH):
            with self.con:
                self.con.executemany("""
                INSERT INTO flags (flag_id, rule_id, variant, tier, unit, setting, index_time, index_system, index_code,
                                   cost, patient_ref, evidence, risk, risk_percentile, p_confirmed, triage_rank,
                                   first_loaded, last_loaded)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(flag_id) DO UPDATE SET risk = excluded.risk, risk_percentile = excluded.risk_percentile,
                    p_confirmed = excluded.p_confirmed, triage_rank = excluded.triage_rank,
                    last_loaded = excluded.last_loaded""", rows[start:start + BATCH])
        with self.con:
            self._renumber()
        manifest_file = results / "manifest.json"
        manifest = json.loads(manifest_file.read_text()) if manifest_file.is_file() else {}
        digest = (manifest.get("rule_set") or {}).get("digest", "")
        fingerprint = (manifest.get("data") or {}).get("fingerprint", "")
        old = self.meta("rule_set_digest")
        rule_sets = (digest[:12], old[:12]) if old and digest and old != digest else None
        for k, v in (("results_path", str(results.resolve())), ("rule_set_digest", digest),
                     ("data_fingerprint", fingerprint), ("loaded_at", stamp),
                     ("facets", json.dumps(self._facets()))):
            self.set_meta(k, v)
        summary = LoadSummary(flags=len(set(ids)), new=len(set(ids)) - known, updated=known,
                              kept=before - known, rule_sets=rule_sets)
        self.audit("cli", "init", str(results.resolve()),
                   f"flags={summary.flags} new={summary.new} rule_set={digest[:12]} data={fingerprint[:12]}")
        return summary

    def _renumber(self) -> None:
        """Store the review order (triage rank, else risk, else time) as ``queue_pos``; inside the caller's transaction."""
        self.con.execute(f"UPDATE flags SET queue_pos = o.pos FROM (SELECT f.flag_id, row_number() OVER (ORDER BY {ORDER}) "
                         "AS pos FROM flags f) o WHERE flags.flag_id = o.flag_id AND flags.queue_pos IS NOT o.pos")

    def flag(self, flag_id: str) -> sqlite3.Row | None:
        return self.con.execute("SELECT f.* FROM flags f WHERE f.flag_id = ?", [flag_id]).fetchone()

    def queue(self, filters: Filters, *, page: int = 1, per_page: int = 50) -> tuple[list[sqlite3.Row], int]:
        """One page of flags in review order and the number matching; ``page`` is clamped to the pages there are."""
        where, params = filters.where()
        total = self.con.execute(f"SELECT count(*) FROM flags f WHERE {where}", params).fetchone()[0]
        page = min(max(page, 1), max(1, math.ceil(total / per_page)))
        rows = self.con.execute(
            "SELECT f.flag_id, f.rule_id, f.variant, f.tier, f.unit, substr(f.index_time, 1, 7) AS month, f.risk, "
            f"f.risk_percentile, f.p_confirmed, f.triage_rank, f.status FROM flags f WHERE {where} "
            "ORDER BY f.queue_pos LIMIT ? OFFSET ?", [*params, per_page, (page - 1) * per_page]).fetchall()
        return rows, total

    def counts(self, filters: Filters) -> dict[str, int]:
        """Flags per status under the rule/unit/variant filters (the status filter itself is ignored)."""
        where, params = filters.where(with_status=False)
        got = dict(self.con.execute(f"SELECT f.status, count(*) FROM flags f WHERE {where} GROUP BY 1", params).fetchall())
        return {s: got.get(s, 0) for s in STATUSES}

    def neighbours(self, flag_id: str, filters: Filters) -> tuple[str | None, str | None]:
        """The previous and next *unreviewed* flag around ``flag_id`` in review order, under the filters."""
        where, params = filters.where(with_status=False)
        here = self.con.execute(f"SELECT f.queue_pos FROM flags f WHERE {where} AND f.flag_id = ?",
                                [*params, flag_id]).fetchone()
        one = (f"SELECT f.flag_id FROM flags f WHERE {where} AND f.status = 'unreviewed' AND f.queue_pos {{}} ? "
               "ORDER BY f.queue_pos {} LIMIT 1")
        if here is None:
            first = self.con.execute(one.format(">", "ASC"), [*params, -1]).fetchone()
            return None, first[0] if first else None
        prev = self.con.execute(one.format("<", "DESC"), [*params, here[0]]).fetchone()
        nxt = self.con.execute(one.format(">", "ASC"), [*params, here[0]]).fetchone()
        return (prev[0] if prev else None), (nxt[0] if nxt else None)

    def facets(self) -> dict[str, list[str]]:
        """The rule ids, units and variants present, for the filter menus: kept at each load (a scan of the round
        would cost every queue page tens of milliseconds)."""
        kept = self.meta("facets")
        return json.loads(kept) if kept else self._facets()

    def _facets(self) -> dict[str, list[str]]:
        return {c: [r[0] for r in self.con.execute(f"SELECT DISTINCT {c} FROM flags WHERE {c} IS NOT NULL "
                                                   f"AND variant != '{UNFLAGGED}' ORDER BY 1")]
                for c in ("rule_id", "unit", "variant")}

    # users --------------------------------------------------------------------------------------------------------------

    def add_user(self, username: str, password: str, *, replace: bool = False, role: str | None = None,
                 actor: str = "cli") -> None:
        """Add a reviewer (or, with ``replace``, set a new password, re-enable the user and end their sessions).

        Passwords are stored as salted scrypt hashes and must pass :func:`password_problem`. ``role`` (one of
        :data:`ROLES`; a new user defaults to "reviewer", a replaced one keeps theirs).
        """
        if role is not None and role not in ROLES:
            raise LowvalueError(f"role must be one of {', '.join(ROLES)}. Got {role!r} instead.")
        from werkzeug.security import generate_password_hash

        if not USERNAME.match(username):
            raise LowvalueError(f"user name {username!r}: use 1–64 letters, digits, '.', '_' or '-'")
        exists = self.has_user(username)
        if exists and not replace:
            raise LowvalueError(f"user {username!r} exists; use --replace to set a new password")
        problem = password_problem(password, username)
        if problem:
            raise LowvalueError(problem)
        with self.con:
            self.con.execute("INSERT INTO users (username, password_hash, created_at, disabled_at, role) "
                             "VALUES (?, ?, ?, NULL, ?) ON CONFLICT(username) DO UPDATE SET "
                             "password_hash = excluded.password_hash, disabled_at = NULL",
                             [username, generate_password_hash(password), _stamp(), role or "reviewer"])
            if role is not None:
                self.con.execute("UPDATE users SET role = ? WHERE username = ?", [role, username])
            if exists:
                self.con.execute("DELETE FROM sessions WHERE username = ?", [username])
                self.con.execute("DELETE FROM login_failures WHERE username = ?", [username])
        self.audit(actor, "password_reset" if exists else "add_user", username, f"role={self.role(username)}")
        if exists:
            self.audit(username, "unlock", detail="password reset; sessions ended")

    def role(self, username: str) -> str | None:
        """The user's role, or None for an unknown or disabled user."""
        row = self.con.execute("SELECT role FROM users WHERE username = ? AND disabled_at IS NULL", [username]).fetchone()
        return row[0] if row else None

    def may(self, username: str, right: str) -> bool:
        """Whether ``username`` holds ``right`` ("adjudicate", "reidentify", "admin") by their role."""
        return right in ROLE_RIGHTS.get(self.role(username) or "", frozenset())

    def set_role(self, username: str, role: str, *, actor: str = "cli") -> None:
        """Change a user's role; their sessions end so the new rights apply from the next login."""
        if role not in ROLES:
            raise LowvalueError(f"role must be one of {', '.join(ROLES)}. Got {role!r} instead.")
        if not self.has_user(username):
            raise LowvalueError(f"no user {username!r} in {self.path}")
        with self.con:
            self.con.execute("UPDATE users SET role = ? WHERE username = ?", [role, username])
            self.con.execute("DELETE FROM sessions WHERE username = ?", [username])
        self.audit(actor, "set_role", username, f"role={role}")

    def users(self) -> list[sqlite3.Row]:
        """Every user with role, creation and disabling time (no password hashes), for the admin page."""
        return self.con.execute("SELECT username, role, created_at, disabled_at FROM users ORDER BY username").fetchall()

    def disable_user(self, username: str, *, actor: str = "cli") -> int:
        """Stop a reviewer from logging in and end their sessions now; returns the sessions ended. Verdicts stay."""
        if not self.has_user(username):
            raise LowvalueError(f"no user {username!r} in {self.path}")
        with self.con:
            self.con.execute("UPDATE users SET disabled_at = ? WHERE username = ?", [_stamp(), username])
            ended = self.con.execute("DELETE FROM sessions WHERE username = ?", [username]).rowcount
        self.audit(actor, "disable_user", username, f"sessions_ended={ended}")
        return ended

    def has_user(self, username: str) -> bool:
        return self.con.execute("SELECT 1 FROM users WHERE username = ?", [username]).fetchone() is not None

    def user_count(self) -> int:
        """Reviewers who may log in (disabled ones not counted)."""
        return self.con.execute("SELECT count(*) FROM users WHERE disabled_at IS NULL").fetchone()[0]

    def login_wait(self, username: str, client: str) -> int:
        """Seconds before ``client`` may try to log in as ``username`` again (0: now), under :data:`THROTTLES`."""
        now = _now()
        row = self.con.execute(
            "SELECT count(*) FILTER (WHERE username = ?1 AND client = ?2), max(at) FILTER (WHERE username = ?1 AND "
            "client = ?2), count(*) FILTER (WHERE client = ?2), max(at) FILTER (WHERE client = ?2), "
            "count(*) FILTER (WHERE username = ?1), max(at) FILTER (WHERE username = ?1) "
            "FROM login_failures WHERE at >= ?3 AND (username = ?1 OR client = ?2)",
            [username[:64], client[:64], _stamp(now - FAILURE_MEMORY)]).fetchone()
        wait = 0.0
        for k, (free, first, longest) in enumerate(THROTTLES.values()):
            n, last = row[2 * k], row[2 * k + 1]
            if n >= free:
                delay = min(longest, first * 2 ** min(n - free, 30))
                wait = max(wait, (_parse(last) + delay - now).total_seconds())
        return math.ceil(wait)

    def authenticate(self, username: str, password: str, client: str = "local") -> Literal["ok", "bad", "locked"]:
        """Check a login from ``client`` (a remote address). "locked": wait :meth:`login_wait` seconds, even with
        the right password; a refused attempt is not checked and does not lengthen the wait."""
        from werkzeug.security import check_password_hash

        username, client = username[:64], client[:64]
        if self.login_wait(username, client):
            self.audit(username, "login_locked", detail=f"client={client}")
            return "locked"
        row = self.con.execute("SELECT password_hash FROM users WHERE username = ? AND disabled_at IS NULL",
                               [username]).fetchone()
        ok = check_password_hash(row[0] if row else _dummy_hash(), password) and row is not None
        with self.con:
            if ok:
                self.con.execute("DELETE FROM login_failures WHERE username = ? AND client = ?", [username, client])
            else:
                self.con.execute("INSERT INTO login_failures (at, username, client) VALUES (?, ?, ?)",
                                 [_stamp(), username, client])
        self.audit(username, "login_ok" if ok else "login_failed", detail=f"client={client}")
        if ok:
            return "ok"
        return "locked" if self.login_wait(username, client) else "bad"

    # sessions -----------------------------------------------------------------------------------------------------------

    def new_session(self, username: str | None, data: dict[str, Any]) -> str:
        """Start a session and return its id, the only thing the cookie carries.

        The id is 256 random bits and the store keeps only its SHA-256, so the
        database (or a backup of it) holds nothing a cookie could be made from,
        and there is no signing secret to keep: ending a session is deleting its row.
        """
        sid, now = secrets.token_urlsafe(32), _now()
        with self.con:
            self.con.execute("DELETE FROM sessions WHERE expires_at < ? OR last_seen < ?",
                             [_stamp(now), _stamp(now - SESSION_IDLE)])
            self.con.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?)",
                             [_sid_hash(sid), username, json.dumps(data), _stamp(now), _stamp(now),
                              _stamp(now + SESSION_LIFETIME)])
        return sid

    def load_session(self, sid: str) -> dict[str, Any] | None:
        """A live session's data (with ``user`` only while that user may log in), or None."""
        now = _now()
        row = self.con.execute(
            "SELECT s.username, s.data, s.last_seen FROM sessions s LEFT JOIN users u USING (username) "
            "WHERE s.id_hash = ? AND s.expires_at > ? AND s.last_seen >= ? "
            "AND (s.username IS NULL OR (u.username IS NOT NULL AND u.disabled_at IS NULL))",
            [_sid_hash(sid), _stamp(now), _stamp(now - SESSION_IDLE)]).fetchone()
        if row is None:
            return None
        if _parse(row["last_seen"]) < now - timedelta(minutes=1):  # one write a minute per session, not per request
            with self.con:
                self.con.execute("UPDATE sessions SET last_seen = ? WHERE id_hash = ?", [_stamp(now), _sid_hash(sid)])
        data = json.loads(row["data"])
        data.pop("user", None)
        return {**data, **({"user": row["username"]} if row["username"] else {})}

    def save_session(self, sid: str, data: dict[str, Any]) -> None:
        """Store a session's data; the user it belongs to is fixed when it starts (a login starts a new session)."""
        with self.con:
            self.con.execute("UPDATE sessions SET data = ?, last_seen = ? WHERE id_hash = ?",
                             [json.dumps(data), _stamp(), _sid_hash(sid)])

    def end_session(self, sid: str) -> None:
        with self.con:
            self.con.execute("DELETE FROM sessions WHERE id_hash = ?", [_sid_hash(sid)])

    # verdicts ---------------------------------------------------------------------------------------------------------

    def record_verdict(self, flag_id: str, reviewer: str, verdict: str, reason: str, comment: str = "", *,
                       round_id: int | None = None, stage: str = "review") -> None:
        """Append a verdict; the latest one per flag (per reviewer and stage in a round) counts. The comment is stored,
        never logged or audited. In a round (:mod:`lowvalue.review.sampling`) the case must be in the round, an
        assigned case may be reviewed by its assigned reviewers only, and an adjudication needs the right to
        adjudicate and a disagreement to settle."""
        if verdict not in VERDICTS:
            raise LowvalueError(f"verdict must be one of {', '.join(VERDICTS)}. Got {verdict!r} instead.")
        if reason not in REASONS:
            raise LowvalueError(f"reason must be one of {', '.join(REASONS)}. Got {reason!r} instead.")
        if reason not in CONSISTENT[verdict]:
            raise InconsistentVerdict(verdict, reason)
        if len(comment) > MAX_COMMENT:
            raise LowvalueError(f"comment longer than {MAX_COMMENT} characters")
        if self.flag(flag_id) is None:
            raise LowvalueError(f"no flag {flag_id!r} in {self.path}")
        if stage not in ("review", "adjudication") or (stage == "adjudication" and round_id is None):
            raise LowvalueError(f"stage must be review, or adjudication in a round. Got {stage!r} instead.")
        if round_id is not None:
            from lowvalue.review.sampling import case_state

            state = case_state(self, round_id, flag_id, reviewer)
            if stage == "review" and not state.may_review:
                raise LowvalueError(f"case {flag_id} of round {round_id} is not assigned to {reviewer}")
            if stage == "adjudication" and not (state.needs_adjudication and self.may(reviewer, "adjudicate")):
                raise LowvalueError(f"case {flag_id} of round {round_id}: no disagreement to adjudicate, or no right to")
            if stage == "adjudication" and reviewer in state.assigned:
                raise LowvalueError(f"case {flag_id} of round {round_id}: a reviewer of the case cannot adjudicate it")
        with self.con:
            self.con.execute("INSERT INTO verdicts (flag_id, reviewer, verdict, reason, comment, created_at, round_id, "
                             "stage) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             [flag_id, reviewer, verdict, reason, comment.strip(), _stamp(), round_id, stage])
        self.audit(reviewer, "verdict" if stage == "review" else "adjudication", flag_id,
                   f"{verdict}/{reason}" + (f" round={round_id}" if round_id is not None else ""))

    def history(self, flag_id: str, *, round_id: int | None = None, reviewer: str | None = None) -> list[sqlite3.Row]:
        """Verdicts on a flag, newest first: ordinary ones, or a round's (only ``reviewer``'s when given: blinding)."""
        where = "round_id IS NULL" if round_id is None else "round_id = ?"
        params: list[Any] = [flag_id] + ([] if round_id is None else [round_id])
        if reviewer is not None:
            where += " AND reviewer = ?"
            params.append(reviewer)
        return self.con.execute(f"SELECT * FROM verdicts WHERE flag_id = ? AND {where} ORDER BY id DESC",
                                params).fetchall()

    def latest_verdicts(self) -> pd.DataFrame:
        """The latest verdict per reviewed flag: flag_id, verdict, reason, reviewer, reviewed_at (UTC)."""
        d = pd.read_sql_query("SELECT l.flag_id, l.verdict, l.reason, l.reviewer, l.created_at AS reviewed_at, "
                              "l.round_id IS NOT NULL AS sampled FROM latest l JOIN flags f USING (flag_id) "
                              f"WHERE f.variant != '{UNFLAGGED}' ORDER BY l.flag_id", self.con)
        d["sampled"] = d.sampled.astype(bool)
        d["reviewed_at"] = pd.to_datetime(d.reviewed_at, utc=True, format="%Y-%m-%dT%H:%M:%SZ")
        return d

    def export(self, out: Path | str, *, actor: str = "cli", round_id: int | None = None) -> ExportSummary:
        """Write the latest confirmed/rejected verdict per flag as Parquet for :mod:`lowvalue.risk.triage`.

        "Unsure" is no label: it is left out and counted. Comments stay in the store
        (free text may identify a patient). ``sampled`` says whether the latest verdict came from a sampled round
        (triage says when its labels come from a non-random queue); the columns ``round_*`` carry a sampled round's
        final label with its design (:func:`lowvalue.review.stats.round_labels`; default the latest round), from which
        the report computes precision. Unflagged candidates of a round are no flags and are left out.
        """
        out = Path(out)
        from lowvalue.review.stats import round_labels

        d = self.latest_verdicts()
        labelled = d[d.verdict.isin(["confirmed", "rejected"])].reset_index(drop=True)
        sampled = round_labels(self, round_id).drop(columns="rule_id")  # the round's final labels: report precision
        labelled = labelled.merge(sampled, on="flag_id", how="outer")
        labelled["verdict"] = labelled.verdict.fillna(labelled.round_verdict)  # a round-only label still trains triage
        labelled = labelled[labelled.verdict.isin(["confirmed", "rejected"])
                            | labelled.round_verdict.notna()].sort_values("flag_id").reset_index(drop=True)
        labelled["sampled"] = labelled.sampled.fillna(False).astype(bool)
        labelled["round_id"] = labelled.round_id.astype("Int64")
        labelled["round_frame_n"] = labelled.round_frame_n.astype("Int64")
        out.parent.mkdir(parents=True, exist_ok=True)
        from lowvalue.results import read_manifest, stamp, write_table

        loaded = self.meta("results_path")
        manifest = read_manifest(loaded) if loaded and Path(loaded).is_dir() else None
        write_table(labelled, out, stamp_of=stamp(manifest) if manifest else None)  # verdicts belong to that scan
        n_flags = self.con.execute(f"SELECT count(*) FROM flags WHERE variant != '{UNFLAGGED}'").fetchone()[0]
        s = ExportSummary(out, int((d.verdict == "confirmed").sum()), int((d.verdict == "rejected").sum()),
                          int((d.verdict == "unsure").sum()), n_flags - len(d))
        self.audit(actor, "export", str(out), f"confirmed={s.confirmed} rejected={s.rejected} unsure={s.unsure}")
        return s


class InconsistentVerdict(LowvalueError):
    """A verdict with a reason that contradicts it (e.g. confirmed because of a coding error)."""

    def __init__(self, verdict: str, reason: str):
        self.verdict, self.reason = verdict, reason
        super().__init__(f"reason {reason!r} does not go with verdict {verdict!r}: "
                         f"use one of {', '.join(CONSISTENT[verdict])}")


def iter_evidence(evidence: str) -> Iterator[dict[str, Any]]:
    """The evidence events of a flag, from its JSON (an empty list when it cannot be read)."""
    try:
        items = json.loads(evidence or "[]")
    except json.JSONDecodeError:
        return iter(())
    return (e for e in items if isinstance(e, dict))
