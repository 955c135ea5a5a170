"""Fault injection on the review store and app: rewriting history through SQL, forged cookies, a load under use."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from lowvalue.review import store as store_module
from lowvalue.review.store import Store

USER, PASSWORD = "anna", "correct-horse-battery"


@pytest.fixture(scope="module")
def template(example_results: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("faults_db") / "review.sqlite"
    with Store.open(path, create=True) as st:
        st.load_results(example_results)
        st.add_user(USER, PASSWORD)
    return path


@pytest.fixture()
def db(template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copy2(template, tmp_path / "review.sqlite"))


def _fid(db: Path) -> str:
    with Store.open(db) as st:
        return st.con.execute("SELECT flag_id FROM flags ORDER BY queue_pos LIMIT 1").fetchone()[0]


@pytest.mark.parametrize("sql", [
    "INSERT OR REPLACE INTO verdicts (id, flag_id, reviewer, verdict, reason, comment, created_at) "
    "VALUES (1, :fid, 'anna', 'rejected', 'other', 'rewritten', '2020-01-01T00:00:00Z')",
    "REPLACE INTO verdicts (id, flag_id, reviewer, verdict, reason, comment, created_at) "
    "VALUES (1, :fid, 'anna', 'rejected', 'other', 'rewritten', '2020-01-01T00:00:00Z')",
    "INSERT INTO verdicts (id, flag_id, reviewer, verdict, reason, comment, created_at) "
    "VALUES (1, :fid, 'anna', 'rejected', 'other', '', 'x') ON CONFLICT(id) DO UPDATE SET verdict = 'rejected'",
    "UPDATE verdicts SET verdict = 'rejected'",
    "UPDATE OR REPLACE verdicts SET comment = 'x'",
    "DELETE FROM verdicts",
    "INSERT OR REPLACE INTO audit (id, at, actor, action) VALUES (1, 'x', 'mallory', 'nothing')",
    "REPLACE INTO audit (id, at, actor, action) VALUES (1, 'x', 'mallory', 'nothing')",
    "UPDATE audit SET actor = 'mallory'",
    "DELETE FROM audit",
])
@pytest.mark.parametrize("raw", [False, True], ids=["store", "plain-sqlite3"])
def test_verdicts_and_audit_cannot_be_rewritten(db: Path, sql: str, raw: bool) -> None:
    fid = _fid(db)
    with Store.open(db) as st:
        st.record_verdict(fid, USER, "confirmed", "meets_rule", "original")
        before = [tuple(r) for r in st.con.execute("SELECT * FROM verdicts")], len(st.audit_rows())
    con = sqlite3.connect(db) if raw else Store.open(db).con  # a plain connection: triggers are in the file
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            with con:
                con.execute(sql, {"fid": fid})
    finally:
        con.close()
    with Store.open(db) as st:
        assert ([tuple(r) for r in st.con.execute("SELECT * FROM verdicts")], len(st.audit_rows())) == before
        assert st.flag(fid)["status"] == "confirmed"


def test_a_flag_with_verdicts_cannot_be_deleted_and_a_replaced_one_keeps_its_status(db: Path) -> None:
    fid = _fid(db)
    with Store.open(db) as st:
        st.record_verdict(fid, USER, "confirmed", "meets_rule")
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            with st.con:
                st.con.execute("DELETE FROM flags WHERE flag_id = ?", [fid])
        with st.con:  # REPLACE deletes and re-inserts the row: the status cache must follow the verdicts
            st.con.execute("INSERT OR REPLACE INTO flags (flag_id, rule_id, variant, index_time, first_loaded, "
                           "last_loaded) VALUES (?, 'X', 'specific', 'x', 'x', 'x')", [fid])
        assert st.flag(fid)["status"] == "confirmed" and [h["verdict"] for h in st.history(fid)] == ["confirmed"]


@pytest.mark.parametrize("cookie", ["", "x", "x" * 5000, "ä" * 40, "eyJ1c2VyIjoiYW5uYSJ9.Zz9.forged-signature",
                                    "A" * 43, "../../etc/passwd" * 3, "' OR 1=1 --" * 4])
def test_forged_or_broken_session_cookies_are_an_anonymous_visitor(db: Path, example_results: Path,
                                                                     cookie: str) -> None:
    from lowvalue.review.app import create_app

    c = create_app(db, example_results).test_client()
    c.set_cookie("lowvalue_review", cookie)
    r = c.get("/")
    assert r.status_code == 302 and r.location.endswith("/login")
    assert c.get("/login").status_code == 200


def test_a_vanished_session_table_row_mid_visit_logs_out_cleanly(db: Path, example_results: Path) -> None:
    from lowvalue.review.app import create_app

    c = create_app(db, example_results).test_client()
    import re

    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").get_data(as_text=True)).group(1)
    assert c.post("/login", data={"username": USER, "password": PASSWORD, "csrf": token}).status_code == 302
    with Store.open(db) as st, st.con:
        st.con.execute("DELETE FROM sessions")
    assert c.get("/").location.endswith("/login")


def _big_results(example_results: Path, dest: Path, n: int) -> Path:
    shutil.copytree(example_results, dest)
    flags = pd.read_parquet(example_results / "flags.parquet")
    big = pd.concat([flags] * (n // len(flags) + 1), ignore_index=True).iloc[:n]
    big["flag_id"] = [f"{i:016x}" for i in range(n)]
    big.to_parquet(dest / "flags.parquet", index=False)
    return dest


def test_review_init_commits_in_batches_and_reviewers_keep_working(db: Path, example_results: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "BATCH", 2000)
    res = _big_results(example_results, tmp_path / "big", 30_000)
    fid = _fid(db)
    commits: list[str] = []
    errors: list[BaseException] = []

    def load() -> None:
        try:
            with Store.open(db) as st:
                st.con.set_trace_callback(lambda q: commits.append(q) if q.strip().upper() == "COMMIT" else None)
                st.load_results(res)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    t = threading.Thread(target=load)
    t.start()
    waits = []
    with Store.open(db) as st:
        st.con.execute("PRAGMA busy_timeout = 5000")
        while t.is_alive():
            t0 = time.perf_counter()
            st.record_verdict(fid, USER, "unsure", "other")  # a write: waits for at most one batch
            st.queue(store_module.Filters())  # a read: never waits in WAL mode
            waits.append(time.perf_counter() - t0)
            time.sleep(0.01)
    t.join()
    assert not errors, errors
    assert len(commits) >= 30_000 // 2000
    assert waits and max(waits) < 3.0, max(waits)
    with Store.open(db) as st:
        assert st.con.execute("SELECT count(*) FROM flags").fetchone()[0] >= 30_000
        assert st.flag(fid)["status"] == "unsure"
