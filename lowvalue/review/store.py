"""The review store: one SQLite file holding flags, reviewers, verdicts and an audit trail.

SQLite because a review round is a handful of reviewers on one machine and the
store must be a single file a quality unit can archive next to the results.
Verdicts and audit rows are append-only (enforced by triggers): a changed mind
is a new verdict, and the latest one counts. The store never holds a raw
person id: each flag carries only a keyed pseudonym of its patient
(:func:`lowvalue.privacy.pseudonym`, key random per store), so reviewers can
see that two flags concern the same patient without seeing who it is.
"""

from __future__ import annotations

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
from lowvalue.privacy import pseudonym

SCHEMA_VERSION = "1"
VERDICTS = ("confirmed", "rejected", "unsure")
STATUSES = ("unreviewed", *VERDICTS)
REASONS = ("meets_rule", "exception_not_coded", "coding_error", "data_missing", "other")
MIN_PASSWORD = 10
MAX_FAILURES, LOCK_WINDOW = 5, timedelta(minutes=15)
MAX_COMMENT = 2000
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS flags (
    flag_id TEXT PRIMARY KEY, rule_id TEXT NOT NULL, variant TEXT NOT NULL, tier TEXT, unit TEXT, setting TEXT,
    index_time TEXT NOT NULL, index_system TEXT, index_code TEXT, cost REAL, patient_ref TEXT,
    evidence TEXT NOT NULL DEFAULT '[]', risk REAL, risk_percentile REAL, p_confirmed REAL, triage_rank INTEGER,
    first_loaded TEXT NOT NULL, last_loaded TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS flags_rule ON flags(rule_id, unit, variant);
CREATE TABLE IF NOT EXISTS users (username TEXT PRIMARY KEY, password_hash TEXT NOT NULL, created_at TEXT NOT NULL);
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

ORDER = "f.triage_rank IS NULL, f.triage_rank, f.risk IS NULL, f.risk DESC, f.index_time, f.flag_id"
STATUS = "COALESCE(l.verdict, 'unreviewed')"


def _now() -> datetime:
    """The clock (UTC); a function so tests can move it."""
    return datetime.now(timezone.utc)


def _stamp(t: datetime | None = None) -> str:
    return (t or _now()).strftime("%Y-%m-%dT%H:%M:%SZ")


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
        parts, params = ["1 = 1"], []
        for col, v in (("f.rule_id", self.rule), ("f.unit", self.unit), ("f.variant", self.variant)):
            if v:
                parts.append(f"{col} = ?")
                params.append(v)
        if with_status and self.status:
            parts.append(f"{STATUS} = ?")
            params.append(self.status)
        return " AND ".join(parts), params


@dataclass(frozen=True)
class LoadSummary:
    flags: int
    new: int
    updated: int
    kept: int  # flags in the store that are not in these results
    note: str = ""

    def describe(self) -> str:
        return (f"{self.flags} flags in the results: {self.new} new, {self.updated} already in the store (scores updated); "
                f"{self.kept} earlier flags not in these results kept" + (f"\n{self.note}" if self.note else ""))


@dataclass(frozen=True)
class ExportSummary:
    path: Path
    confirmed: int
    rejected: int
    unsure: int
    unreviewed: int

    def describe(self) -> str:
        return (f"wrote {self.path}: {self.confirmed} confirmed, {self.rejected} rejected "
                f"({self.unsure} unsure left out; {self.unreviewed} flags not reviewed)")


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
        con.execute("PRAGMA foreign_keys = ON")
        store = cls(con, path)
        try:
            has_meta = con.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone()
        except sqlite3.DatabaseError as err:
            con.close()
            raise LowvalueError(f"{path}: not a review database ({err})") from None
        if create:
            with con:
                con.executescript(SCHEMA)
                con.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", [SCHEMA_VERSION])
        elif not has_meta or store.meta("schema_version") != SCHEMA_VERSION:
            con.close()
            raise LowvalueError(f"{path}: not a review database of this lowvalue version (schema {SCHEMA_VERSION})")
        return store

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
        """A random secret created on first use and kept in the store, so it survives restarts; never printed."""
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
        results = Path(results)
        fpath = results / "flags.parquet"
        if not fpath.is_file():
            raise InputError(str(fpath), "missing: run `lowvalue scan DATA --out RESULTS` first")
        flags = pd.read_parquet(fpath)
        missing = {"flag_id", "rule_id", "variant", "index_time"} - set(flags.columns)
        if missing:
            raise InputError(str(fpath), f"not a flags table (missing {', '.join(sorted(missing))})")
        for extra, cols in (("flags_scored.parquet", ["risk", "risk_percentile"]),
                            ("flags_triage.parquet", ["p_confirmed", "triage_rank"])):
            if (results / extra).is_file():
                part = pd.read_parquet(results / extra)
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
        with self.con:
            self.con.execute("CREATE TEMP TABLE IF NOT EXISTS _ids (flag_id TEXT PRIMARY KEY)")
            self.con.execute("DELETE FROM _ids")
            self.con.executemany("INSERT OR IGNORE INTO _ids VALUES (?)", [[i] for i in ids])
            known = self.con.execute("SELECT count(*) FROM flags JOIN _ids USING (flag_id)").fetchone()[0]
            before = self.con.execute("SELECT count(*) FROM flags").fetchone()[0]
            self.con.executemany("""
                INSERT INTO flags (flag_id, rule_id, variant, tier, unit, setting, index_time, index_system, index_code,
                                   cost, patient_ref, evidence, risk, risk_percentile, p_confirmed, triage_rank,
                                   first_loaded, last_loaded)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(flag_id) DO UPDATE SET risk = excluded.risk, risk_percentile = excluded.risk_percentile,
                    p_confirmed = excluded.p_confirmed, triage_rank = excluded.triage_rank,
                    last_loaded = excluded.last_loaded""", rows)
        manifest_file = results / "manifest.json"
        manifest = json.loads(manifest_file.read_text()) if manifest_file.is_file() else {}
        digest = (manifest.get("rule_set") or {}).get("digest", "")
        fingerprint = (manifest.get("data") or {}).get("fingerprint", "")
        note = ""
        old = self.meta("rule_set_digest")
        if old and digest and old != digest:
            note = (f"note: these results come from a different rule set ({digest[:12]}) than the previous load "
                    f"({old[:12]}); verdicts on earlier flags are kept")
        for k, v in (("results_path", str(results.resolve())), ("rule_set_digest", digest),
                     ("data_fingerprint", fingerprint), ("loaded_at", stamp)):
            self.set_meta(k, v)
        summary = LoadSummary(flags=len(set(ids)), new=len(set(ids)) - known, updated=known,
                              kept=before - known, note=note)
        self.audit("cli", "init", str(results.resolve()),
                   f"flags={summary.flags} new={summary.new} rule_set={digest[:12]} data={fingerprint[:12]}")
        return summary

    def flag(self, flag_id: str) -> sqlite3.Row | None:
        return self.con.execute(f"SELECT f.*, {STATUS} AS status FROM flags f LEFT JOIN latest l USING (flag_id) "
                                "WHERE f.flag_id = ?", [flag_id]).fetchone()

    def queue(self, filters: Filters, *, page: int = 1, per_page: int = 50) -> tuple[list[sqlite3.Row], int]:
        """One page of flags in review order (triage rank, else risk, else time) and the number matching."""
        where, params = filters.where()
        base = f"FROM flags f LEFT JOIN latest l USING (flag_id) WHERE {where}"
        total = self.con.execute(f"SELECT count(*) {base}", params).fetchone()[0]
        rows = self.con.execute(
            f"SELECT f.flag_id, f.rule_id, f.variant, f.tier, f.unit, substr(f.index_time, 1, 7) AS month, f.risk, "
            f"f.risk_percentile, f.p_confirmed, f.triage_rank, {STATUS} AS status {base} ORDER BY {ORDER} "
            "LIMIT ? OFFSET ?", [*params, per_page, (max(page, 1) - 1) * per_page]).fetchall()
        return rows, total

    def counts(self, filters: Filters) -> dict[str, int]:
        """Flags per status under the rule/unit/variant filters (the status filter itself is ignored)."""
        where, params = filters.where(with_status=False)
        got = dict(self.con.execute(f"SELECT {STATUS}, count(*) FROM flags f LEFT JOIN latest l USING (flag_id) "
                                    f"WHERE {where} GROUP BY 1", params).fetchall())
        return {s: got.get(s, 0) for s in STATUSES}

    def neighbours(self, flag_id: str, filters: Filters) -> tuple[str | None, str | None]:
        """The previous and next *unreviewed* flag around ``flag_id`` in review order, under the filters."""
        where, params = filters.where(with_status=False)
        rows = self.con.execute(f"SELECT f.flag_id, {STATUS} AS status FROM flags f LEFT JOIN latest l "
                                f"USING (flag_id) WHERE {where} ORDER BY {ORDER}", params).fetchall()
        ids = [r[0] for r in rows]
        todo = [r[1] == "unreviewed" for r in rows]
        if flag_id not in ids:
            return None, next((i for i, t in zip(ids, todo) if t), None)
        k = ids.index(flag_id)
        prev = next((ids[j] for j in range(k - 1, -1, -1) if todo[j]), None)
        nxt = next((ids[j] for j in range(k + 1, len(ids)) if todo[j]), None)
        return prev, nxt

    def facets(self) -> dict[str, list[str]]:
        """The rule ids, units and variants present, for the filter menus."""
        return {c: [r[0] for r in self.con.execute(f"SELECT DISTINCT {c} FROM flags WHERE {c} IS NOT NULL ORDER BY 1")]
                for c in ("rule_id", "unit", "variant")}

    # users --------------------------------------------------------------------------------------------------------------

    def add_user(self, username: str, password: str, *, replace: bool = False) -> None:
        """Add a reviewer (or, with ``replace``, set a new password). Passwords are stored as salted scrypt hashes."""
        from werkzeug.security import generate_password_hash

        if not USERNAME.match(username):
            raise LowvalueError(f"user name {username!r}: use 1–64 letters, digits, '.', '_' or '-'")
        if len(password) < MIN_PASSWORD:
            raise LowvalueError(f"password too short: at least {MIN_PASSWORD} characters")
        exists = self.has_user(username)
        if exists and not replace:
            raise LowvalueError(f"user {username!r} exists; use --replace to set a new password")
        with self.con:
            self.con.execute("INSERT INTO users VALUES (?, ?, ?) ON CONFLICT(username) DO UPDATE SET "
                             "password_hash = excluded.password_hash", [username, generate_password_hash(password), _stamp()])
        self.audit("cli", "password_reset" if exists else "add_user", username)
        if exists:
            self.audit(username, "unlock", detail="password reset")

    def has_user(self, username: str) -> bool:
        return self.con.execute("SELECT 1 FROM users WHERE username = ?", [username]).fetchone() is not None

    def user_count(self) -> int:
        return self.con.execute("SELECT count(*) FROM users").fetchone()[0]

    def recent_failures(self, username: str) -> int:
        """Failed logins of ``username`` in the lock window since its last successful login (or password reset)."""
        since = _stamp(_now() - LOCK_WINDOW)
        return self.con.execute(
            "SELECT count(*) FROM audit WHERE actor = ? AND action = 'login_failed' AND at >= ? AND id > "
            "COALESCE((SELECT max(id) FROM audit WHERE actor = ? AND action IN ('login_ok', 'unlock')), 0)",
            [username[:64], since, username[:64]]).fetchone()[0]

    def authenticate(self, username: str, password: str) -> Literal["ok", "bad", "locked"]:
        """Check a login; after MAX_FAILURES failures in LOCK_WINDOW the user is locked (even with the right password)."""
        from werkzeug.security import check_password_hash

        username = username[:64]
        if self.recent_failures(username) >= MAX_FAILURES:
            self.audit(username, "login_locked")
            return "locked"
        row = self.con.execute("SELECT password_hash FROM users WHERE username = ?", [username]).fetchone()
        ok = check_password_hash(row[0] if row else _dummy_hash(), password) and row is not None
        self.audit(username, "login_ok" if ok else "login_failed")
        if ok:
            return "ok"
        return "locked" if self.recent_failures(username) >= MAX_FAILURES else "bad"

    # verdicts ---------------------------------------------------------------------------------------------------------

    def record_verdict(self, flag_id: str, reviewer: str, verdict: str, reason: str, comment: str = "") -> None:
        """Append a verdict; the latest one per flag counts. The comment is stored, never logged or audited."""
        if verdict not in VERDICTS:
            raise LowvalueError(f"verdict must be one of {', '.join(VERDICTS)}. Got {verdict!r} instead.")
        if reason not in REASONS:
            raise LowvalueError(f"reason must be one of {', '.join(REASONS)}. Got {reason!r} instead.")
        if len(comment) > MAX_COMMENT:
            raise LowvalueError(f"comment longer than {MAX_COMMENT} characters")
        if self.flag(flag_id) is None:
            raise LowvalueError(f"no flag {flag_id!r} in {self.path}")
        with self.con:
            self.con.execute("INSERT INTO verdicts (flag_id, reviewer, verdict, reason, comment, created_at) "
                             "VALUES (?, ?, ?, ?, ?, ?)", [flag_id, reviewer, verdict, reason, comment.strip(), _stamp()])
        self.audit(reviewer, "verdict", flag_id, f"{verdict}/{reason}")

    def history(self, flag_id: str) -> list[sqlite3.Row]:
        return self.con.execute("SELECT * FROM verdicts WHERE flag_id = ? ORDER BY id DESC", [flag_id]).fetchall()

    def latest_verdicts(self) -> pd.DataFrame:
        """The latest verdict per reviewed flag: flag_id, verdict, reason, reviewer, reviewed_at (UTC)."""
        d = pd.read_sql_query("SELECT flag_id, verdict, reason, reviewer, created_at AS reviewed_at FROM latest "
                              "ORDER BY flag_id", self.con)
        d["reviewed_at"] = pd.to_datetime(d.reviewed_at, utc=True, format="%Y-%m-%dT%H:%M:%SZ")
        return d

    def export(self, out: Path | str, *, actor: str = "cli") -> ExportSummary:
        """Write the latest confirmed/rejected verdict per flag as Parquet for :mod:`lowvalue.risk.triage`.

        "Unsure" is no label: it is left out and counted. Comments stay in the store
        (free text may identify a patient).
        """
        out = Path(out)
        d = self.latest_verdicts()
        labelled = d[d.verdict.isin(["confirmed", "rejected"])].reset_index(drop=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        labelled.to_parquet(out, index=False)
        n_flags = self.con.execute("SELECT count(*) FROM flags").fetchone()[0]
        s = ExportSummary(out, int((d.verdict == "confirmed").sum()), int((d.verdict == "rejected").sum()),
                          int((d.verdict == "unsure").sum()), n_flags - len(d))
        self.audit(actor, "export", str(out), f"confirmed={s.confirmed} rejected={s.rejected} unsure={s.unsure}")
        return s


def iter_evidence(evidence: str) -> Iterator[dict[str, Any]]:
    """The evidence events of a flag, from its JSON (an empty list when it cannot be read)."""
    try:
        items = json.loads(evidence or "[]")
    except json.JSONDecodeError:
        return iter(())
    return (e for e in items if isinstance(e, dict))
