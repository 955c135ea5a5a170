"""The web app with Flask's test client: login, lockout, CSRF, queue, case page, verdicts, privacy."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from lowvalue.results import write_derived
from lowvalue.review import store as store_module
from lowvalue.review.store import Store

from .conftest import MODEL, PASSWORD, USER, csrf_of, login


def _flags(results: Path) -> pd.DataFrame:
    return pd.read_parquet(results / "flags.parquet")


def _csrf(client: Any) -> str:
    with client.session_transaction() as s:
        return s["csrf"]


def _first_flag(client: Any) -> str:
    return re.search(r'href="/case/([0-9a-f]+)', client.get("/").get_data(as_text=True)).group(1)


def test_every_route_but_login_redirects_to_login_when_logged_out(app: Any, results: Path) -> None:
    c = app.test_client()
    fid = _flags(results).flag_id.iloc[0]
    routes = [r for r in app.url_map.iter_rules() if r.endpoint != "login"]
    assert {r.endpoint for r in routes} >= {"queue", "case", "verdict", "logout"}
    for rule in routes:
        url = rule.rule.replace("<flag_id>", fid)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            r = c.open(url, method=method, data={"verdict": "confirmed", "reason": "other"})
            assert r.status_code == 302 and r.location.endswith("/login"), (method, url, r.status_code)
    assert c.get("/no-such-page").location.endswith("/login")
    assert c.get("/login").status_code == 200


def test_wrong_password_fails_and_five_failures_make_the_client_wait(app: Any, db: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    c = app.test_client()
    for _ in range(4):
        r = login(c, USER, "wrong-password-123")
        assert r.status_code == 401 and "Fel användarnamn eller lösenord" in r.get_data(as_text=True)
    r = login(c, USER, "wrong-password-123")
    assert r.status_code == 401 and re.search(r"försök igen om (29|30) sekunder", r.get_data(as_text=True))
    r = login(c, USER, PASSWORD)  # the right password does not help while waiting
    assert r.status_code == 401 and "försök igen om" in r.get_data(as_text=True)
    assert c.get("/").location.endswith("/login")
    assert login(c, "bertil", "another-long-password").status_code == 302  # the delay is per account and client
    later = store_module._now() + timedelta(seconds=31)
    monkeypatch.setattr(store_module, "_now", lambda: later)
    c2 = app.test_client()
    assert login(c2, USER, PASSWORD).status_code == 302
    with Store.open(db) as st:
        actions = [(r["actor"], r["action"]) for r in st.audit_rows()]
    assert actions.count((USER, "login_failed")) == 5 and (USER, "login_locked") in actions


def test_unknown_user_fails_like_a_wrong_password(app: Any) -> None:
    r = login(app.test_client(), "nobody", PASSWORD)
    assert r.status_code == 401 and "Fel användarnamn eller lösenord" in r.get_data(as_text=True)


def test_login_cookie_is_httponly_and_strict_and_logout_ends_the_session(app: Any) -> None:
    c = app.test_client()
    r = login(c)
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert c.get("/").status_code == 200
    assert c.post("/logout", data={"csrf": _csrf(c)}).location.endswith("/login")
    assert c.get("/").location.endswith("/login")


def test_queue_lists_flags_in_review_order_without_person_ids(client: Any, results: Path) -> None:
    html = client.get("/").get_data(as_text=True)
    flags = _flags(results)
    listed = re.findall(r'href="/case/([0-9a-f]+)', html)
    assert len(listed) == 50 and set(listed) <= set(flags.flag_id)
    from lowvalue.report.i18n import Numbers

    assert f"totalt {Numbers('sv').int(len(flags))}" in html  # the total, in Swedish number format
    pids = set(flags.person_id) | set(flags.encounter_id)
    assert not [p for p in pids if p in html]
    page2 = client.get("/?page=2").get_data(as_text=True)
    assert not set(re.findall(r'href="/case/([0-9a-f]+)', page2)) & set(listed)
    # no scores in these results: review order falls back to index time
    times = flags.set_index("flag_id").index_time
    assert list(times[listed]) == sorted(times[listed])


def test_queue_filters_by_rule_variant_and_status(client: Any, results: Path) -> None:
    flags = _flags(results)
    rule = flags.rule_id.value_counts().index[-1]
    html = client.get(f"/?rule={rule}&variant=sensitive").get_data(as_text=True)
    listed = set(re.findall(r'href="/case/([0-9a-f]+)', html))
    want = set(flags[(flags.rule_id == rule) & (flags.variant == "sensitive")].flag_id)
    assert listed == want or (len(want) > 50 and listed < want)
    fid = sorted(listed or want)[0] if (listed or want) else flags.flag_id.iloc[0]
    client.post(f"/case/{fid}/verdict", data={"csrf": _csrf(client), "verdict": "unsure", "reason": "data_missing"})
    unsure = client.get("/?status=unsure").get_data(as_text=True)
    assert re.findall(r'href="/case/([0-9a-f]+)', unsure) == [fid]
    assert fid not in client.get("/?status=unreviewed").get_data(as_text=True)


def test_case_page_shows_rule_evidence_and_a_pseudonym_never_the_person_id(client: Any, results: Path,
                                                                            db: Path) -> None:
    flags = _flags(results)
    with_ev = flags[flags.evidence.str.len() > 2].iloc[0]
    html = client.get(f"/case/{with_ev.flag_id}").get_data(as_text=True)
    assert with_ev.person_id not in html and with_ev.encounter_id not in html
    assert re.search(r"ps_[0-9a-f]{20}", html)
    assert "Motivering" in html and "Regelns villkor för detta ärende" in html and "Källor" in html
    assert "Regelstatus: utkast (kliniskt ansvarig: inte utsedd)" in html and "koder ännu inte kontrollerade" in html
    ev = json.loads(with_ev.evidence)[0]
    assert ev["code"] in html and ev["condition"] not in html  # the event that met it, never a raw condition name
    assert "Ingen riskmodell angiven" in html
    en = client.get(f"/case/{with_ev.flag_id}?lang=en").get_data(as_text=True)
    assert "Rationale" in en and "The rule&#39;s conditions on this case" in en and "Motivering" not in en
    assert client.get("/case/does-not-exist").status_code == 404
    with Store.open(db) as st:
        assert (USER, "view", with_ev.flag_id) in [(r["actor"], r["action"], r["target"]) for r in st.audit_rows()]


def test_post_without_or_with_a_wrong_csrf_token_is_rejected(client: Any, app: Any, db: Path) -> None:
    fid = _first_flag(client)
    form = {"verdict": "confirmed", "reason": "meets_rule"}
    assert client.post(f"/case/{fid}/verdict", data=form).status_code == 400
    assert client.post(f"/case/{fid}/verdict", data={**form, "csrf": "forged"}).status_code == 400
    fresh = app.test_client()
    fresh.get("/login")
    assert fresh.post("/login", data={"username": USER, "password": PASSWORD}).status_code == 400
    with Store.open(db) as st:
        assert st.history(fid) == []
    r = client.post(f"/case/{fid}/verdict", data={**form, "csrf": _csrf(client)})
    assert r.status_code == 302
    with Store.open(db) as st:
        assert [h["verdict"] for h in st.history(fid)] == ["confirmed"]


def test_invalid_verdict_or_reason_is_rejected(client: Any) -> None:
    fid = _first_flag(client)
    tok = _csrf(client)
    assert client.post(f"/case/{fid}/verdict", data={"csrf": tok, "verdict": "maybe", "reason": "other"}).status_code == 400
    assert client.post(f"/case/{fid}/verdict", data={"csrf": tok, "verdict": "confirmed", "reason": "x"}).status_code == 400


def test_verdict_round_trip_history_navigation_and_escaping(client: Any, db: Path) -> None:
    html = client.get("/").get_data(as_text=True)
    first, second = re.findall(r'href="/case/([0-9a-f]+)', html)[:2]
    page = client.get(f"/case/{first}").get_data(as_text=True)
    assert f"/case/{second}" in page  # next unreviewed
    comment = "<script>alert(1)</script> ingen journalanteckning"
    r = client.post(f"/case/{first}/verdict", data={"csrf": csrf_of(page), "verdict": "confirmed",
                                                    "reason": "meets_rule", "comment": comment})
    assert r.status_code == 302 and r.location.endswith(f"/case/{second}")
    assert "Bedömningen sparades" in client.get(r.location).get_data(as_text=True)
    client.post(f"/case/{first}/verdict", data={"csrf": _csrf(client), "verdict": "rejected",
                                                "reason": "exception_not_coded"})
    page = client.get(f"/case/{first}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert page.index("avvisad (motiverad)") < page.index("bekräftad lågvärdevård</span>")  # newest first
    assert f"/case/{second}" in client.get(f"/case/{first}").get_data(as_text=True)
    back = client.get(f"/case/{second}").get_data(as_text=True)
    assert f"/case/{first}" not in back.split("Till kön")[0]  # the previous one is reviewed now
    with Store.open(db) as st:
        hist = st.history(first)
        assert [h["verdict"] for h in hist] == ["rejected", "confirmed"] and hist[1]["reviewer"] == USER
        assert st.flag(first)["status"] == "rejected"
        audit_text = " ".join(str(v) for row in st.audit_rows() for v in tuple(row))
        assert "journalanteckning" not in audit_text  # comments are never audited
        latest = st.latest_verdicts()
    assert latest.set_index("flag_id").loc[first, "verdict"] == "rejected"


def test_host_header_must_be_loopback(client: Any) -> None:
    assert client.get("/", headers={"Host": "evil.example:8765"}).status_code == 400
    ok = client.get("/login", headers={"Host": "127.0.0.1:8765"})  # the cookie is for localhost: a fresh session
    assert ok.status_code == 200 and "csrf" in ok.get_data(as_text=True)
    assert client.get("/login", headers={"Host": "[::1]:8765"}).status_code == 200


def test_security_headers(client: Any) -> None:
    h = client.get("/").headers
    assert "default-src 'none'" in h["Content-Security-Policy"] and h["X-Frame-Options"] == "DENY"
    assert h["Cache-Control"] == "no-store"


def test_scores_and_triage_order_the_queue(results: Path, tmp_path: Path, ruleset: Any) -> None:
    from lowvalue.review.app import create_app

    from .conftest import copy_results

    res = copy_results(results, tmp_path / "res")
    flags = _flags(res)
    n = len(flags)
    scored = flags.assign(risk=[(i * 37 % n) / n for i in range(n)], risk_percentile=50.0)  # 37 is coprime to n
    assert scored.risk.is_unique
    write_derived(scored, res, "flags_scored.parquet")
    path = tmp_path / "r.sqlite"
    with Store.open(path, create=True) as st:
        st.load_results(res)
        st.add_user(USER, PASSWORD)
        rows, total = st.queue(store_module.Filters(), per_page=5)
    assert total == n
    assert [r["flag_id"] for r in rows] == list(scored.sort_values("risk", ascending=False).flag_id[:5])
    triage = flags[["flag_id"]].assign(p_confirmed=0.5, triage_rank=range(len(flags), 0, -1))
    write_derived(triage, res, "flags_triage.parquet")
    with Store.open(path) as st:
        st.load_results(res)
    app = create_app(path, res, rules=ruleset)
    c = app.test_client()
    login(c)
    listed = re.findall(r'href="/case/([0-9a-f]+)', c.get("/").get_data(as_text=True))
    assert listed[:3] == list(flags.flag_id.iloc[::-1][:3])


@pytest.mark.skipif(not (MODEL / "model.json").is_file(), reason="shipped model not present")
def test_case_page_shows_the_shap_explanation_with_a_model(db: Path, results: Path, ruleset: Any) -> None:
    from lowvalue.review.app import create_app

    app = create_app(db, results, MODEL, rules=ruleset)
    c = app.test_client()
    login(c)
    fid = _flags(results).query("rule_id == 'LV-RX-022'").flag_id.iloc[0]
    html = c.get(f"/case/{fid}").get_data(as_text=True)
    assert "Bidrag till risken" in html and "log-odds" in html and "inte orsaker" in html
    en = c.get(f"/case/{fid}?lang=en").get_data(as_text=True)
    assert "Contributions to the risk" in en and "describe the model, not causes" in en
    no_harm = [r.id for r in ruleset.do_not_do if not r.harms]
    flags = _flags(results)
    other = flags[flags.rule_id.isin(no_harm)].flag_id.iloc[0]
    html = c.get(f"/case/{other}?lang=sv").get_data(as_text=True)
    assert "ingen kopplad skademarkör" in html and "Bidrag till risken" not in html


@pytest.mark.skipif(not (MODEL / "model.json").is_file(), reason="shipped model not present")
def test_swedish_pages_never_call_a_trigger_a_vardskada(db: Path, results: Path, ruleset: Any) -> None:
    """Queue and case pages, with the explanation and without a linked trigger (issue 14, item 3)."""
    from lowvalue.review.app import create_app

    c = create_app(db, results, MODEL, rules=ruleset).test_client()
    login(c)
    flags = _flags(results)
    no_trigger = [r.id for r in ruleset.do_not_do if not r.harms]
    explained = flags[flags.rule_id == "LV-RX-022"].flag_id.iloc[0]
    unlinked = flags[flags.rule_id.isin(no_trigger)].flag_id.iloc[0]
    pages = ["/?lang=sv", f"/case/{explained}", f"/case/{unlinked}"]
    html = [c.get(p).get_data(as_text=True) for p in pages]
    assert "Bidrag till risken" in html[1] and "ingen kopplad skademarkör" in html[2]
    assert not [p for p, h in zip(pages, html) if "vårdskad" in h.lower()]


@pytest.mark.skipif(not (MODEL / "model.json").is_file(), reason="shipped model not present")
@pytest.mark.parametrize("lang", ["sv", "en"])
def test_case_page_and_cli_show_the_same_explanation_text(db: Path, results: Path, ruleset: Any, lang: str) -> None:
    """One function builds the text (issue 14, item 4): the case page shows its risk and context sections verbatim,
    `lowvalue explain` prints all of it; the horizon is the model's, in both languages."""
    from click.testing import CliRunner
    from markupsafe import escape

    from lowvalue.cli import main
    from lowvalue.review.app import create_app
    from lowvalue.risk.explain import explain

    c = create_app(db, results, MODEL, rules=ruleset).test_client()
    login(c)
    fid = _flags(results).query("rule_id == 'LV-ABX-005'").flag_id.iloc[0]  # harm window 90 d, model horizon 30 d
    ex = explain(fid, results, MODEL, lang=lang)
    html = c.get(f"/case/{fid}?lang={lang}").get_data(as_text=True)
    shown = ex.sections["risk"] + ex.sections["context"]
    assert len(shown) > 10
    missing = [line for line in shown if str(escape(line.strip())) not in html]
    assert not missing, missing
    horizon = json.loads((MODEL / "metrics.json").read_text())["horizon_days"]
    said = {"sv": f"inom {horizon} dagar", "en": f"within {horizon} days"}[lang]
    assert said in html and {"sv": "inom 90 dagar", "en": "within 90 days"}[lang] not in html
    cli = CliRunner().invoke(main, ["explain", fid, "--results", str(results), "--model", str(MODEL), "--lang", lang])
    assert cli.exit_code == 0, cli.output
    assert ex.text() in cli.output
