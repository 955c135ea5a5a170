"""The review CLI on the main command group: init (idempotent), add-user, serve refusals, export → triage."""

from __future__ import annotations

import logging
import threading
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from lowvalue.cli import main
from lowvalue.review.app import check_loopback
from lowvalue.review.store import Store

from .conftest import PASSWORD, USER, copy_results


def _run(*args: str, env: dict[str, str] | None = None, input: str | None = None):
    return CliRunner().invoke(main, ["review", *args], env=env, input=input)


def _one_line_error(out) -> str:
    lines = [ln for ln in out.output.splitlines() if ln.strip()]
    assert out.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), out.output
    return lines[0]


def test_init_twice_keeps_verdicts_and_records_the_manifest(results: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "r.sqlite")
    first = _run("init", str(results), "--db", db)
    n = len(pd.read_parquet(results / "flags.parquet"))
    assert first.exit_code == 0 and f"{n} flags in the results: {n} new" in first.output, first.output
    fid = pd.read_parquet(results / "flags.parquet").flag_id.iloc[3]
    with Store.open(db) as st:
        st.add_user(USER, PASSWORD)
        st.record_verdict(fid, USER, "confirmed", "meets_rule", "a comment")
    again = _run("init", str(results), "--db", db)
    assert again.exit_code == 0 and "0 new" in again.output, again.output
    manifest = pd.read_json(results / "manifest.json", typ="series")
    with Store.open(db) as st:
        assert st.con.execute("SELECT count(*) FROM flags").fetchone()[0] == n
        assert [h["verdict"] for h in st.history(fid)] == ["confirmed"]
        assert st.meta("rule_set_digest") == manifest["rule_set"]["digest"]
        assert st.meta("data_fingerprint") == manifest["data"]["fingerprint"]
        assert st.con.execute("SELECT count(*) FROM flags WHERE patient_ref LIKE 'P0%'").fetchone()[0] == 0
        pids = set(pd.read_parquet(results / "flags.parquet").person_id)
        assert not pids & {r[0] for r in st.con.execute("SELECT patient_ref FROM flags")}


def test_verdicts_and_audit_are_append_only(db: Path, results: Path) -> None:
    import sqlite3

    fid = pd.read_parquet(results / "flags.parquet").flag_id.iloc[0]
    with Store.open(db) as st:
        st.record_verdict(fid, USER, "unsure", "other")
        for sql in ("UPDATE verdicts SET verdict = 'confirmed'", "DELETE FROM verdicts", "DELETE FROM audit"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                with st.con:
                    st.con.execute(sql)


def test_add_user_from_env_or_prompt_with_a_minimum_length(results: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "r.sqlite")
    assert _run("init", str(results), "--db", db).exit_code == 0
    assert "at least 10 characters" in _one_line_error(
        _run("add-user", "cecilia", "--db", db, env={"LOWVALUE_REVIEW_PASSWORD": "short"}))
    ok = _run("add-user", "cecilia", "--db", db, env={"LOWVALUE_REVIEW_PASSWORD": "long-enough-pw"})
    assert ok.exit_code == 0, ok.output
    prompted = _run("add-user", "david", "--db", db, env={"LOWVALUE_REVIEW_PASSWORD": ""},
                    input="prompted-password\nprompted-password\n")
    assert prompted.exit_code == 0 and "prompted-password" not in prompted.output.replace("Password", ""), prompted.output
    assert "exists" in _one_line_error(_run("add-user", "david", "--db", db, env={"LOWVALUE_REVIEW_PASSWORD": "x" * 12}))
    with Store.open(db) as st:
        assert st.authenticate("cecilia", "long-enough-pw") == "ok"
        assert st.authenticate("david", "prompted-password") == "ok"
        hashes = [r[0] for r in st.con.execute("SELECT password_hash FROM users")]
    assert not any("prompted-password" in h or "long-enough-pw" in h for h in hashes)
    assert "no review database" in _one_line_error(_run("add-user", "x", "--db", str(tmp_path / "none.sqlite")))


@pytest.fixture()
def no_serving(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make a refusal test fail, not hang, if the app would start listening."""
    def refuse(*a, **k):
        raise AssertionError("the server would have started")

    monkeypatch.setattr("lowvalue.review.app.Server", refuse)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.org"])
def test_serve_refuses_a_non_loopback_host(db: Path, results: Path, host: str, no_serving: None) -> None:
    line = _one_line_error(_run("serve", "--db", str(db), "--results", str(results), "--host", host))
    assert "loopback only" in line


def test_loopback_hosts_are_accepted() -> None:
    for h in ("127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST"):
        check_loopback(h)


def test_serve_refuses_to_start_without_a_user(results: Path, tmp_path: Path, no_serving: None) -> None:
    db = str(tmp_path / "r.sqlite")
    assert _run("init", str(results), "--db", db).exit_code == 0
    line = _one_line_error(_run("serve", "--db", db, "--results", str(results), "--port", "1"))
    assert "lowvalue review add-user" in line


def test_server_log_has_no_query_strings(db: Path, results: Path, caplog: pytest.LogCaptureFixture) -> None:
    from lowvalue.review.app import build_server

    server = build_server(db, results, host="127.0.0.1", port=0)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        with caplog.at_level(logging.INFO, logger="lowvalue.review"):
            with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/login?lang=en&q=P0000016") as r:
                assert r.status == 200 and "Log in" in r.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert type(server._srv).__module__.startswith("waitress")  # the production server, not Flask's development one
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "/login" in logged and "P0000016" not in logged and "lang=en" not in logged


def test_export_counts_leaves_out_unsure_and_feeds_triage(db: Path, results: Path, tmp_path: Path, ruleset) -> None:
    from lowvalue.risk.results import load_results
    from lowvalue.risk.triage import _labels, triage

    res = copy_results(results, tmp_path / "res")
    ids = list(pd.read_parquet(res / "flags.parquet").flag_id[:6])
    with Store.open(db) as st:
        st.record_verdict(ids[0], USER, "confirmed", "meets_rule")
        st.record_verdict(ids[1], USER, "rejected", "coding_error", "a comment")
        st.record_verdict(ids[2], USER, "unsure", "data_missing")
        st.record_verdict(ids[3], USER, "unsure", "other")
        st.record_verdict(ids[3], "bertil", "confirmed", "meets_rule")  # the latest verdict counts
    out = res / "verdicts.parquet"
    r = _run("export", "--db", str(db), "--out", str(out))
    assert r.exit_code == 0 and "2 confirmed, 1 rejected (1 unsure left out" in r.output, r.output
    v = pd.read_parquet(out)
    assert list(v.columns) == ["flag_id", "verdict", "reason", "reviewer", "reviewed_at", "sampled", "round_id",
                               "round_design", "round_strata", "round_seed", "round_tier", "round_stratum", "round_frame_n", "round_verdict"]
    assert not v.sampled.any() and v.round_verdict.isna().all()  # the ordinary queue: no sampled round
    assert dict(zip(v.flag_id, v.verdict)) == {ids[0]: "confirmed", ids[1]: "rejected", ids[3]: "confirmed"}
    assert v.set_index("flag_id").loc[ids[3], "reviewer"] == "bertil"
    assert str(v.reviewed_at.dtype).startswith("datetime64") and "comment" not in v.columns
    y, source = _labels(load_results(res, rules=ruleset), None)
    assert source.startswith("verdicts") and len(y) == 3 and y.sum() == 2
    assert "3 of 3 labels come from the ordinary (risk-ordered, non-random) queue" in source
    t = triage(res)
    assert t.source.startswith("verdicts") and "only 3 labelled flags" in t.message and "too few" in t.message


def test_export_defaults_to_the_loaded_results_folder(results: Path, tmp_path: Path) -> None:
    res = copy_results(results, tmp_path / "res")
    db = str(tmp_path / "r.sqlite")
    assert _run("init", str(res), "--db", db).exit_code == 0
    r = _run("export", "--db", db)
    assert r.exit_code == 0 and str(res.resolve() / "verdicts.parquet") in r.output, r.output
    assert (res / "verdicts.parquet").is_file()
