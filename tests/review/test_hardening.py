"""Review app hardening (issue 12 part 7): server-side sessions, login throttling, password policy, bounded
parameters, indexed queue queries, schema migration, unknown rules and ``serve --rules``."""

from __future__ import annotations

import hashlib
import re
import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from lowvalue.errors import LowvalueError
from lowvalue.review import store as store_module
from lowvalue.review.store import Filters, Store

from .conftest import MODEL, PASSWORD, USER, login

COOKIE = "lowvalue_review"


def _csrf(client: Any) -> str:
    with client.session_transaction() as s:
        return s["csrf"]


def _later(monkeypatch: pytest.MonkeyPatch, **delta: float) -> None:
    t = store_module._now() + timedelta(**delta)
    monkeypatch.setattr(store_module, "_now", lambda: t)


# sessions -------------------------------------------------------------------------------------------------------------

def test_a_copied_cookie_is_refused_after_logout(app: Any) -> None:
    c = app.test_client()
    assert login(c).status_code == 302
    copied = c.get_cookie(COOKIE).value
    assert c.post("/logout", data={"csrf": _csrf(c)}).location.endswith("/login")
    thief = app.test_client()
    thief.set_cookie(COOKIE, copied)
    assert thief.get("/").location.endswith("/login")


def test_password_change_and_disabling_end_sessions_at_once(app: Any, db: Path) -> None:
    anna, bertil = app.test_client(), app.test_client()
    assert login(anna).status_code == 302 and login(bertil, "bertil", "another-long-password").status_code == 302
    assert anna.get("/").status_code == 200 and bertil.get("/").status_code == 200
    with Store.open(db) as st:
        st.add_user(USER, "a-brand-new-passphrase", replace=True)
        assert st.disable_user("bertil") == 1
    assert anna.get("/").location.endswith("/login")
    assert bertil.get("/").location.endswith("/login")
    assert login(app.test_client(), "bertil", "another-long-password").status_code == 401
    assert login(app.test_client(), USER, "a-brand-new-passphrase").status_code == 302
    with Store.open(db) as st:
        assert ("cli", "disable_user", "bertil") in [(r["actor"], r["action"], r["target"]) for r in st.audit_rows()]
        assert st.user_count() == 1


def test_the_cookie_is_a_random_id_and_the_store_keeps_only_its_hash(app: Any, db: Path) -> None:
    c = app.test_client()
    login(c)
    sid = c.get_cookie(COOKIE).value
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", sid)  # 256 random bits, nothing signed, no data
    with Store.open(db) as st:
        rows = st.con.execute("SELECT * FROM sessions WHERE username = ?", [USER]).fetchall()
        assert [r["id_hash"] for r in rows] == [hashlib.sha256(sid.encode()).hexdigest()]
        assert rows[0]["expires_at"] > rows[0]["created_at"] and rows[0]["last_seen"]
        assert not [k for (k,) in st.con.execute("SELECT key FROM meta") if "session" in k]
    files = [f for f in db.parent.iterdir() if f.name.startswith(db.name)]
    assert not [f for f in files if sid.encode() in f.read_bytes()]


def test_a_session_ends_after_an_hour_idle_and_eight_hours_in_all(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    c = app.test_client()
    login(c)
    for _ in range(9):  # active every 50 minutes: alive until the eight hours are up
        _later(monkeypatch, minutes=50)
        assert c.get("/").status_code == 200
    _later(monkeypatch, minutes=50)
    assert c.get("/").location.endswith("/login")
    login(c)
    _later(monkeypatch, minutes=61)
    assert c.get("/").location.endswith("/login")


# login throttling -----------------------------------------------------------------------------------------------------

def test_an_outsider_cannot_lock_a_reviewer_out(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    outsider = app.test_client()
    outsider.environ_base["REMOTE_ADDR"] = "127.0.0.9"
    for _ in range(12):  # keeps guessing, each time as soon as it is allowed again
        login(outsider, USER, "guess-guess-guess")
        _later(monkeypatch, minutes=20)
    assert "försök igen om" in login(outsider, USER, "guess-guess-guess").get_data(as_text=True)
    assert "försök igen om" in login(outsider, USER, PASSWORD).get_data(as_text=True)  # even the right one waits
    assert login(app.test_client(), USER, PASSWORD).status_code == 302  # the reviewer, from their own address


def test_one_client_guessing_many_accounts_is_slowed(app: Any) -> None:
    guesser = app.test_client()
    guesser.environ_base["REMOTE_ADDR"] = "127.0.0.7"
    for i in range(10):
        assert login(guesser, f"user{i}", "guess-guess-guess").status_code == 401
    r = login(guesser, "bertil", "another-long-password")
    assert r.status_code == 401 and "försök igen om" in r.get_data(as_text=True)
    assert login(app.test_client(), "bertil", "another-long-password").status_code == 302


def test_guesses_spread_over_many_addresses_delay_an_account_by_a_minute_at_most(
        db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Store.open(db) as st:
        for i in range(40):
            st.authenticate(USER, "guess-guess-guess", f"127.0.1.{i}")
        assert 0 < st.login_wait(USER, "127.0.0.1") <= 60
        _later(monkeypatch, seconds=61)
        assert st.login_wait(USER, "127.0.0.1") == 0 and st.authenticate(USER, PASSWORD, "127.0.0.1") == "ok"


def test_a_password_reset_clears_the_delays(db: Path) -> None:
    with Store.open(db) as st:
        for _ in range(6):
            st.authenticate(USER, "guess-guess-guess", "127.0.0.1")
        assert st.login_wait(USER, "127.0.0.1") > 0
        st.add_user(USER, "a-brand-new-passphrase", replace=True)
        assert st.login_wait(USER, "127.0.0.1") == 0


# password policy ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("password", ["password1234", "qwertyuiop12", "1234567890", "anna-anna-anna", "Password2024!",
                                      "aaaaaaaaaaaaaaaa", "anna12345678", "iloveyou2024", "granskning123"])
def test_common_or_guessable_passwords_are_refused(db: Path, password: str) -> None:
    with Store.open(db) as st, pytest.raises(LowvalueError, match="too easy to guess"):
        st.add_user("anna", password, replace=True)


def test_a_long_uncommon_passphrase_is_accepted_and_a_huge_one_refused(db: Path) -> None:
    with Store.open(db) as st:
        st.add_user("cecilia", "lingon-vinter-kompass")
        with pytest.raises(LowvalueError, match="too long"):
            st.add_user("david", "x" * 129 + "-Qz9")


# bounded query parameters ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("page", ["99999999999999999999", "-1", "abc", "0", "1e9", "", "+3", "٣", "9" * 400,
                                  "2&page=3", "%00"])
def test_page_is_bounded_and_never_an_error(client: Any, page: str) -> None:
    r = client.get(f"/?page={page}")
    assert r.status_code == 200
    assert re.search(r"Sida \d+ av \d+", r.get_data(as_text=True))


def test_a_page_past_the_end_shows_the_last_page(client: Any, results: Path) -> None:
    n = len(pd.read_parquet(results / "flags.parquet"))
    last = -(-n // 50)
    html = client.get("/?page=99999999999999999999").get_data(as_text=True)
    assert f"Sida {last} av {last}" in html and re.findall(r'href="/case/([0-9a-f]+)', html)
    assert f"Sida 1 av {last}" in client.get("/?page=-1").get_data(as_text=True)


# schema ---------------------------------------------------------------------------------------------------------------

def test_every_connection_has_foreign_keys_on_and_the_file_is_in_wal_mode(db: Path) -> None:
    with Store.open(db) as st:
        assert st.con.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert st.con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _plan(st: Store, sql: str, params: list[Any]) -> str:
    return " | ".join(r[-1] for r in st.con.execute("EXPLAIN QUERY PLAN " + sql, params))


@pytest.mark.parametrize("filters", [Filters(), Filters(status="unreviewed"), Filters(rule="LV-RX-022"),
                                     Filters(unit="x", status="confirmed")])
def test_queue_queries_use_indexes_and_never_sort_the_round(db: Path, filters: Filters) -> None:
    with Store.open(db) as st:
        traced: list[str] = []
        st.con.set_trace_callback(traced.append)
        fid = st.queue(filters, page=2)[0]
        st.neighbours(st.queue(Filters())[0][3]["flag_id"], filters)
        st.counts(filters)
        st.con.set_trace_callback(None)
        selects = [q for q in traced if q.lstrip().startswith("SELECT") and "FROM flags" in q]
        assert len(selects) >= 5, traced
        for q in selects:
            plan = _plan(st, q, [])
            assert "TEMP B-TREE FOR ORDER BY" not in plan, (q, plan)
            assert "latest" not in q
        assert fid is not None


# schema 3 (review rounds, roles, cached explanations) taken off again, to make an older store
SCHEMA_3_UNDONE = "".join(f"DROP TRIGGER {t}_no_update; DROP TRIGGER {t}_no_delete; DROP TABLE {t};"
                          for t in ("assignments", "round_cases", "round_strata", "rounds")) + """
    DROP TRIGGER verdicts_status; DROP TRIGGER flags_status_kept;
    CREATE TRIGGER verdicts_status AFTER INSERT ON verdicts
        BEGIN UPDATE flags SET status = NEW.verdict WHERE flag_id = NEW.flag_id; END;
    DROP INDEX verdicts_round; ALTER TABLE verdicts DROP COLUMN round_id; ALTER TABLE verdicts DROP COLUMN stage;
    ALTER TABLE users DROP COLUMN role; ALTER TABLE flags DROP COLUMN explanation;"""


def test_a_schema_2_store_is_migrated_to_rounds_and_roles(db: Path, results: Path) -> None:
    fid = pd.read_parquet(results / "flags.parquet").flag_id.iloc[3]
    with Store.open(db) as st:
        st.record_verdict(fid, USER, "confirmed", "meets_rule")
    con = sqlite3.connect(db)
    con.executescript(SCHEMA_3_UNDONE + "UPDATE meta SET value = '2' WHERE key = 'schema_version';")
    con.close()
    with Store.open(db) as st:
        assert st.meta("schema_version") == "3" and st.role(USER) == "reviewer"
        assert st.flag(fid)["status"] == "confirmed" and [h["verdict"] for h in st.history(fid)] == ["confirmed"]
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            with st.con:
                st.con.execute("INSERT INTO rounds VALUES (1, 'x', 'x', 'random', '', 1, 1, 0, 's', 1, 1, '{}')")
                st.con.execute("DELETE FROM rounds")


def test_a_schema_1_store_is_migrated_keeping_verdicts(db: Path, results: Path) -> None:
    fid = pd.read_parquet(results / "flags.parquet").flag_id.iloc[5]
    with Store.open(db) as st:
        st.record_verdict(fid, USER, "rejected", "coding_error")
    con = sqlite3.connect(db)
    con.executescript(SCHEMA_3_UNDONE + """
        DROP TRIGGER verdicts_no_replace; DROP TRIGGER audit_no_replace; DROP TRIGGER verdicts_status;
        DROP INDEX flags_queue; DROP INDEX flags_status; DROP INDEX flags_rule_pos; DROP INDEX flags_unit_pos;
        DROP TABLE sessions; DROP TABLE login_failures;
        ALTER TABLE flags DROP COLUMN status; ALTER TABLE flags DROP COLUMN queue_pos;
        ALTER TABLE users DROP COLUMN disabled_at;
        CREATE INDEX flags_rule ON flags(rule_id, unit, variant);
        UPDATE meta SET value = '1' WHERE key = 'schema_version';
        INSERT INTO meta VALUES ('secret:session', 'a-signing-key-from-schema-1');
        PRAGMA journal_mode = DELETE;""")
    con.close()
    with Store.open(db) as st:
        assert st.meta("schema_version") == "3" and st.meta("secret:session") is None
        assert st.flag(fid)["status"] == "rejected" and [h["verdict"] for h in st.history(fid)] == ["rejected"]
        rows, total = st.queue(Filters(status="rejected"))
        assert [r["flag_id"] for r in rows] == [fid] and total == 1
        assert st.con.execute("SELECT count(*) FROM flags WHERE queue_pos IS NULL").fetchone()[0] == 0
        assert st.authenticate(USER, PASSWORD, "127.0.0.1") == "ok"


# unknown rules and --rules ------------------------------------------------------------------------------------------

def _add_orphan_flag(db: Path, rule_id: str = "LV-GONE-999") -> str:
    with Store.open(db) as st, st.con:
        st.con.execute("INSERT INTO flags (flag_id, rule_id, variant, index_time, first_loaded, last_loaded, queue_pos) "
                       "VALUES ('0rphan', ?, 'specific', '2023-01-01T00:00:00', 'x', 'x', 0)", [rule_id])
    return "0rphan"


def test_a_flag_whose_rule_is_not_loaded_gets_a_message(client: Any, db: Path) -> None:
    fid = _add_orphan_flag(db)
    r = client.get(f"/case/{fid}")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "LV-GONE-999 finns inte i det inlästa regelbiblioteket" in html
    assert "--rules" in html and 'name="verdict"' in html


@pytest.mark.skipif(not (MODEL / "model.json").is_file(), reason="shipped model not present")
def test_a_flag_whose_rule_is_not_loaded_gets_a_message_with_a_model_too(db: Path, results: Path, ruleset: Any) -> None:
    from lowvalue.review.app import create_app

    fid = _add_orphan_flag(db)
    c = create_app(db, results, MODEL, rules=ruleset).test_client()
    login(c)
    r = c.get(f"/case/{fid}?lang=en")
    assert r.status_code == 200 and "Rule LV-GONE-999 is not in the loaded rule library" in r.get_data(as_text=True)


def test_serve_takes_only_the_rule_library_the_scan_used(db: Path, results: Path, tmp_path: Path) -> None:
    """The results keep their library (results/rules/); --rules may name the same library, never another one."""
    from lowvalue.errors import RuleError
    from lowvalue.review.app import build_server
    from lowvalue.rules.library import DEFAULT_LIBRARY

    lib = Path(shutil.copytree(DEFAULT_LIBRARY, tmp_path / "rules"))
    server = build_server(db, results, host="127.0.0.1", port=0, rules_dir=lib)  # the same files: accepted
    try:
        c = server.app.test_client()
        login(c)
        fid = pd.read_parquet(results / "flags.parquet").query("rule_id == 'LV-RX-022'").flag_id.iloc[0]
        assert "Motivering" in c.get(f"/case/{fid}").get_data(as_text=True)
    finally:
        server.server_close()
    (lib / "LV-RX-022.yaml").unlink()
    with pytest.raises(RuleError, match="is not the rule library these results were scanned with"):
        build_server(db, results, host="127.0.0.1", port=0, rules_dir=lib)


def test_serve_refuses_a_rules_folder_that_is_not_there(db: Path, results: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from lowvalue.cli import main

    out = CliRunner().invoke(main, ["review", "serve", "--db", str(db), "--results", str(results),
                                    "--rules", str(tmp_path / "nope")])
    assert out.exit_code == 2 and "nope" in out.output
