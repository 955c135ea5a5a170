"""Sampled review rounds (issue 16): the draw, blinding, double review, adjudication, roles and the statistics."""

from __future__ import annotations

import math
import re
import sqlite3
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from lowvalue.errors import LowvalueError
from lowvalue.review.sampling import case_state, draw_round, round_queue
from lowvalue.review.stats import cohen_kappa, round_labels, round_stats, weighted_proportion, wilson
from lowvalue.review.store import InconsistentVerdict, Store

from .conftest import PASSWORD, USER, csrf_of, login

REASON = {"confirmed": "meets_rule", "rejected": "coding_error", "unsure": "data_missing"}


def _csrf(client: Any) -> str:
    with client.session_transaction() as s:
        return s["csrf"]


# the draw ------------------------------------------------------------------------------------------------------------

def test_a_round_is_reproducible_per_rule_and_tier_and_stores_its_frame(db: Path, results: Path, tmp_path: Path) -> None:
    import shutil

    other = Path(shutil.copy2(db, tmp_path / "other.sqlite"))
    flags = pd.read_parquet(results / "flags.parquet")
    drawn = []
    for path in (db, other):
        with Store.open(path) as st:
            s = draw_round(st, results, per_rule=3, seed=11, tiers=("specific",))
            drawn.append([r[0] for r in st.con.execute("SELECT flag_id FROM round_cases WHERE round_id = ? "
                                                       "ORDER BY position", [s.round_id])])
            frame = s.frame.set_index("rule_id")
    assert drawn[0] == drawn[1] and len(drawn[0]) == s.cases  # same results, design and seed: same cases, same order
    expect = flags[flags.variant == "specific"].groupby("rule_id").size()
    assert (frame.frame_n == expect.reindex(frame.index)).all()
    assert (frame.sample_n == expect.reindex(frame.index).clip(upper=3)).all()
    assert set(flags.set_index("flag_id").loc[drawn[0], "variant"]) == {"specific"}
    assert drawn[0] != sorted(drawn[0])  # a random order, not the id or risk order
    with Store.open(db) as st:
        s2 = draw_round(st, results, per_rule=3, seed=12, tiers=("specific",))
        again = [r[0] for r in st.con.execute("SELECT flag_id FROM round_cases WHERE round_id = ? ORDER BY position",
                                              [s2.round_id])]
        assert again != drawn[0]
        row = st.con.execute("SELECT design, seed, strata, frame FROM rounds WHERE round_id = 1").fetchone()
        assert row["design"] == "random" and row["seed"] == 11 and '"results_path"' in row["frame"]
        with pytest.raises(sqlite3.IntegrityError, match="append-only"), st.con:
            st.con.execute("UPDATE rounds SET seed = 1")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"), st.con:
            st.con.execute("DELETE FROM round_cases")


def test_a_stratified_round_keeps_every_stratum_size_and_samples_unflagged_candidates(db: Path, results: Path) -> None:
    cand = pd.read_parquet(results / "candidates.parquet")
    unflagged = cand[cand.eligible & ~cand.sensitive & ~cand.specific]
    with Store.open(db) as st:
        s = draw_round(st, results, per_rule=4, seed=3, strata=("unit", "period"), unflagged=2)
        strata = pd.read_sql_query("SELECT * FROM round_strata", st.con)
        assert strata.stratum.str.contains(r" \| \d{4}-Q[1-4]$").all()
        flagged = strata[strata.tier != "unflagged"].groupby(["rule_id", "tier"]).frame_n.sum()
        flags = pd.read_parquet(results / "flags.parquet").groupby(["rule_id", "variant"]).size()
        assert (flagged == flags.rename_axis(["rule_id", "tier"]).reindex(flagged.index)).all()
        unf = strata[strata.tier == "unflagged"].groupby("rule_id").frame_n.sum()
        assert (unf == unflagged.groupby("rule_id").size().reindex(unf.index)).all()
        if len(unflagged):
            ids = [r[0] for r in st.con.execute("SELECT flag_id FROM round_cases WHERE tier = 'unflagged'")]
            assert ids and set(ids) <= set(unflagged.candidate_id)
            rows, _ = st.queue(__import__("lowvalue.review.store", fromlist=["Filters"]).Filters())
            assert not set(ids) & {r["flag_id"] for r in rows}  # not in the ordinary queue
    assert "stratified by unit, period" in s.describe()


def test_bad_designs_are_one_line_errors(db: Path, results: Path) -> None:
    with Store.open(db) as st:
        for kw, msg in [({"tiers": ("maybe",)}, "--tier"), ({"strata": ("ward",)}, "--strata"),
                        ({"reviewers_per_case": 2}, "double review"), ({"reviewers": ("nobody",)}, "no enabled user"),
                        ({"reviewers": (USER,), "reviewers_per_case": 2}, "two distinct")]:
            with pytest.raises(LowvalueError, match=msg):
                draw_round(st, results, per_rule=2, seed=1, **kw)


# verdicts in a round -------------------------------------------------------------------------------------------------

def _double_round(db: Path, results: Path, per_rule: int = 2) -> int:
    with Store.open(db) as st:
        return draw_round(st, results, per_rule=per_rule, seed=5, tiers=("specific",), reviewers=(USER, "bertil"),
                          reviewers_per_case=2).round_id


def test_double_review_is_blind_until_both_answer_then_disagreement_goes_to_adjudication(db: Path,
                                                                                         results: Path) -> None:
    rid = _double_round(db, results)
    with Store.open(db) as st:
        st.add_user("carin", "a-third-long-password-x", role="adjudicator")
        fid = round_queue(st, rid, USER)[0]["flag_id"]
        assert case_state(st, rid, fid, USER).blinded
        st.record_verdict(fid, USER, "confirmed", "meets_rule", round_id=rid)
        s = case_state(st, rid, fid, USER)
        assert not s.blinded and not s.all_answered and s.mine == "confirmed"
        assert [h["reviewer"] for h in st.history(fid, round_id=rid, reviewer="bertil")] == []
        assert st.flag(fid)["status"] == "unreviewed"  # a round's verdicts never show in the ordinary queue
        with pytest.raises(LowvalueError, match="no disagreement"):
            st.record_verdict(fid, "carin", "rejected", "coding_error", round_id=rid, stage="adjudication")
        st.record_verdict(fid, "bertil", "rejected", "coding_error", round_id=rid)
        s = case_state(st, rid, fid, "carin")
        assert s.all_answered and s.needs_adjudication and not s.may_review
        with pytest.raises(LowvalueError, match="no right"):
            st.record_verdict(fid, USER, "confirmed", "meets_rule", round_id=rid, stage="adjudication")
        st.set_role("bertil", "adjudicator")
        with pytest.raises(LowvalueError, match="cannot adjudicate"):  # not one's own disagreement
            st.record_verdict(fid, "bertil", "rejected", "coding_error", round_id=rid, stage="adjudication")
        st.record_verdict(fid, "carin", "rejected", "exception_not_coded", round_id=rid, stage="adjudication")
        assert case_state(st, rid, fid, USER).adjudicated == "rejected"
        labels = round_labels(st, rid).set_index("flag_id")
        assert labels.loc[fid, "round_verdict"] == "rejected"
        with pytest.raises(LowvalueError, match="not assigned"):
            st.record_verdict(fid, "carin", "confirmed", "meets_rule", round_id=rid)
        kept = [(h["reviewer"], h["verdict"], h["stage"]) for h in st.history(fid, round_id=rid)]
        assert sorted(kept) == [("anna", "confirmed", "review"), ("bertil", "rejected", "review"),
                                ("carin", "rejected", "adjudication")]  # every reviewer's verdict kept


def test_a_reason_that_contradicts_the_verdict_is_refused(db: Path, results: Path) -> None:
    fid = pd.read_parquet(results / "flags.parquet").flag_id.iloc[0]
    with Store.open(db) as st:
        for verdict, reason in [("confirmed", "coding_error"), ("rejected", "meets_rule"), ("unsure", "meets_rule"),
                                ("confirmed", "exception_not_coded")]:
            with pytest.raises(InconsistentVerdict):
                st.record_verdict(fid, USER, verdict, reason)
        assert st.history(fid) == []


# statistics against a hand computation -------------------------------------------------------------------------------

def test_wilson_matches_scipy_and_the_weighted_form_reduces_to_it() -> None:
    from scipy.stats import binomtest

    for k, n in [(5, 5), (0, 7), (13, 20), (1, 3)]:
        ci = binomtest(k, n).proportion_ci(method="wilson")
        assert wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)
    y = pd.Series([1, 1, 0, 1, 0, 1])
    p, lo, hi, n_eff = weighted_proportion(y, pd.Series([2.0] * 6))
    assert (p, n_eff) == (pytest.approx(4 / 6), pytest.approx(6)) and (lo, hi) == pytest.approx(wilson(4, 6))
    assert wilson(5, 5)[0] == pytest.approx(0.5655, abs=1e-4)  # 5 of 5 confirmed: 0.57–1.00


def test_kappa_matches_a_hand_computation_and_sklearn() -> None:
    from sklearn.metrics import cohen_kappa_score

    a = pd.Series(["confirmed"] * 6 + ["rejected"] * 3 + ["unsure"])
    b = pd.Series(["confirmed"] * 5 + ["rejected"] * 4 + ["unsure"])
    k, lo, hi, n = cohen_kappa(a, b)
    po, pe = 0.9, 0.6 * 0.5 + 0.3 * 0.4 + 0.1 * 0.1
    assert k == pytest.approx((po - pe) / (1 - pe)) == pytest.approx(cohen_kappa_score(a, b))
    se = math.sqrt(po * (1 - po) / (n * (1 - pe) ** 2))
    assert (lo, hi) == pytest.approx((k - 1.959964 * se, min(1.0, k + 1.959964 * se)), abs=1e-6)


def test_round_stats_give_ppv_wilson_and_kappa_per_rule_and_tier(db: Path, results: Path) -> None:
    rid = _double_round(db, results, per_rule=4)
    with Store.open(db) as st:
        cases = pd.read_sql_query("SELECT flag_id, rule_id FROM round_cases WHERE round_id = ? ORDER BY position",
                                  st.con, params=[rid])
        rule = cases.rule_id.value_counts().index[0]
        mine = cases[cases.rule_id == rule].flag_id.tolist()
        a = ["confirmed", "confirmed", "rejected", "unsure"][: len(mine)]
        b = ["confirmed", "rejected", "rejected", "unsure"][: len(mine)]
        for fid, va, vb in zip(mine, a, b):
            st.record_verdict(fid, USER, va, REASON[va], round_id=rid)
            st.record_verdict(fid, "bertil", vb, REASON[vb], round_id=rid)
        stats = round_stats(st, rid)
    row = stats[(stats.rule_id == rule) & (stats.tier == "specific")].iloc[0]
    final = [x if x == y else None for x, y in zip(a, b)]  # disagreement without adjudication: pending
    conf, rej = final.count("confirmed"), final.count("rejected")
    assert (row.judged, row.confirmed, row.rejected, row.pending) == (conf + rej, conf, rej, final.count(None))
    assert row.unsure == final.count("unsure")
    assert row.estimate == pytest.approx(conf / (conf + rej)) and (row.lcl, row.ucl) == pytest.approx(
        wilson(conf, conf + rej))
    assert row.kappa == pytest.approx(cohen_kappa(pd.Series(a), pd.Series(b))[0]) and row.kappa_n == len(mine)
    assert row.design.startswith(f"review round {rid} (simple random sample")
    assert stats[stats.rule_id != rule].judged.sum() == 0


def test_review_sample_and_stats_commands(db: Path, results: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from lowvalue.cli import main

    run = lambda *a: CliRunner().invoke(main, ["review", *a])  # noqa: E731
    r = run("sample", str(results), "--db", str(db), "--per-rule", "2", "--tier", "specific", "--seed", "9",
            "--reviewers", f"{USER},bertil", "--double")
    assert r.exit_code == 0 and "round 1:" in r.output and "design random, seed 9" in r.output, r.output
    r = run("stats", "--db", str(db), "--out", str(tmp_path / "stats.csv"))
    assert r.exit_code == 0 and "review round 1 (simple random sample, seed 9)" in r.output, r.output
    assert "Wilson 95 % CI" in r.output and (tmp_path / "stats.csv").is_file()
    sv = run("stats", "--db", str(db), "--lang", "sv").output
    assert "granskningsomgång 1 (obundet slumpmässigt urval, frö 9)" in sv and "lågvärdevård" in sv
    r = run("stats", "--db", str(db), "--round", "7")
    assert r.exit_code == 2 and "no review round 7" in r.output
    r = run("sample", str(results), "--db", str(db), "--per-rule", "2", "--seed", "1", "--strata", "ward")
    assert r.exit_code == 2 and "--strata" in r.output


# the web app ---------------------------------------------------------------------------------------------------------

def test_round_pages_hide_tier_and_risk_until_the_verdict(app: Any, client: Any, db: Path, results: Path) -> None:
    rid = _double_round(db, results)
    with Store.open(db) as st:
        fid = round_queue(st, rid, USER)[0]["flag_id"]
    html = client.get(f"/round/{rid}").get_data(as_text=True)
    assert "dold tills du bedömt" in html and "lågvärdevård" not in html.split("<tbody>")[1]
    r = client.get(f"/case/{fid}")  # the ordinary case page does not unblind a case still to review in the round
    assert r.status_code == 302 and r.location.endswith(f"/round/{rid}/case/{fid}")
    page = client.get(f"/round/{rid}/case/{fid}").get_data(as_text=True)
    assert 'id="blind-note"' in page and "Predicerad risk" not in page and 'id="conditions"' in page
    r = client.post(f"/round/{rid}/case/{fid}/verdict", data={"csrf": _csrf(client), "verdict": "confirmed",
                                                             "reason": "coding_error"})
    assert r.status_code == 302  # inconsistent: back to the case with a message, nothing saved
    assert "Skälet passar inte" in client.get(r.location).get_data(as_text=True)
    r = client.post(f"/round/{rid}/case/{fid}/verdict", data={"csrf": _csrf(client), "verdict": "confirmed",
                                                             "reason": "meets_rule"})
    page = client.get(r.location).get_data(as_text=True)
    assert 'id="blind-note"' not in page and "Predicerad risk" in page and 'id="others-hidden"' in page
    other = app.test_client()
    login(other, "bertil", "another-long-password")
    page = other.get(f"/round/{rid}/case/{fid}").get_data(as_text=True)
    assert "bekräftad lågvärdevård" not in page.split("Historik")[1]  # anna's verdict hidden from bertil
    assert client.get(f"/round/{rid}/adjudicate").status_code == 403  # a reviewer may not adjudicate
    assert client.get("/admin/users").status_code == 403
    assert client.post(f"/case/{fid}/reidentify", data={"csrf": _csrf(client)}).status_code == 403


def test_adjudicator_settles_a_disagreement_and_admin_manages_users(app: Any, db: Path, results: Path) -> None:
    rid = _double_round(db, results)
    with Store.open(db) as st:
        st.add_user("carin", "a-third-long-password-x", role="admin")
        fid = round_queue(st, rid, USER)[0]["flag_id"]
        st.record_verdict(fid, USER, "confirmed", "meets_rule", round_id=rid)
        st.record_verdict(fid, "bertil", "rejected", "coding_error", round_id=rid)
    c = app.test_client()
    login(c, "carin", "a-third-long-password-x")
    html = c.get(f"/round/{rid}/adjudicate").get_data(as_text=True)
    assert fid in html and "väntar på skiljedom" in html
    page = c.get(f"/round/{rid}/case/{fid}").get_data(as_text=True)
    assert 'name="stage" value="adjudication"' in page
    r = c.post(f"/round/{rid}/case/{fid}/verdict", data={"csrf": _csrf(c), "verdict": "rejected",
                                                        "reason": "exception_not_coded", "stage": "adjudication"})
    assert r.status_code == 302
    with Store.open(db) as st:
        assert case_state(st, rid, fid, "carin").adjudicated == "rejected"
    r = c.post(f"/case/{fid}/reidentify", data={"csrf": _csrf(c), "round": str(rid)})
    person = pd.read_parquet(results / "flags.parquet").set_index("flag_id").loc[fid, "person_id"]
    assert r.status_code == 200 and person in r.get_data(as_text=True)
    with Store.open(db) as st:
        audit = [(a["actor"], a["action"], a["target"], a["detail"]) for a in st.audit_rows()]
    assert ("carin", "reidentify", fid, "shown") in audit and not any(person in str(a) for a in audit)
    # user admin: add, role, reset, disable; a reviewer's sessions end at each change
    anna = app.test_client()
    login(anna)
    assert anna.get("/").status_code == 200
    for form in ({"action": "add", "username": "dora", "password": "yet-another-fine-passphrase", "role": "reviewer"},
                 {"action": "role", "username": USER, "role": "adjudicator"},
                 {"action": "reset", "username": "dora", "password": "a-changed-fine-passphrase"},
                 {"action": "disable", "username": "bertil"}):
        r = c.post("/admin/users", data={"csrf": _csrf(c), **form})
        assert r.status_code == 302 and "Klart." in c.get("/admin/users").get_data(as_text=True), form
    assert anna.get("/").location.endswith("/login")  # the role change ended anna's session
    with Store.open(db) as st:
        assert st.role(USER) == "adjudicator" and st.role("dora") == "reviewer" and st.role("bertil") is None
        assert st.authenticate("dora", "a-changed-fine-passphrase") == "ok"
    r = c.post("/admin/users", data={"csrf": _csrf(c), "action": "add", "username": "eve", "password": "short"})
    assert "too short" in c.get(r.location).get_data(as_text=True)


def test_a_password_change_ends_every_session_of_the_user(app: Any) -> None:
    a, b = app.test_client(), app.test_client()
    login(a)
    login(b)
    token = csrf_of(a.get("/password").get_data(as_text=True))
    r = a.post("/password", data={"csrf": token, "old": PASSWORD, "password": "a-brand-new-passphrase-42"})
    assert r.location.endswith("/login")
    assert a.get("/").location.endswith("/login") and b.get("/").location.endswith("/login")
    assert login(app.test_client(), USER, "a-brand-new-passphrase-42").status_code == 302


def test_the_case_page_of_a_transfusion_flag_shows_the_haemoglobin_and_the_exclusions(client: Any,
                                                                                      results: Path) -> None:
    flags = pd.read_parquet(results / "flags.parquet")
    hosp = flags[(flags.rule_id == "LV-HOSP-027") & (flags.variant == "specific")]
    if hosp.empty:
        pytest.skip("no LV-HOSP-027 flag in the example")
    html = client.get(f"/case/{hosp.flag_id.iloc[0]}").get_data(as_text=True)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
    assert re.search(r"Indexvärde NPU\d+ \(NPU\): Haemoglobin in blood \(B-Hb\) \d+,\d g/L, \d+ h före", text), text
    assert text.count("kontrollerat – fanns inte") == 4 and "sökt i kodsystemen" in text
    assert "no_bleeding" not in html and "hb_at_least_80" not in html  # no raw condition names
    assert 'id="timeline"' in html
    for rule in ("LV-RX-022", "LV-SCR-009"):  # rules whose tier logic is only exclusions: still a full page
        f = flags[(flags.rule_id == rule) & (flags.variant == "specific")]
        if len(f):
            t = client.get(f"/case/{f.flag_id.iloc[0]}").get_data(as_text=True)
            assert "kontrollerat – fanns inte" in t and "Inget underlag registrerat" not in t, rule


def test_an_unflagged_candidate_is_a_case_of_its_round_only_and_names_the_condition_that_failed(
        client: Any, db: Path, results: Path) -> None:
    cand = pd.read_parquet(results / "candidates.parquet")
    unflagged = cand[cand.eligible & ~cand.sensitive & ~cand.specific]
    if unflagged.empty:
        pytest.skip("no eligible unflagged candidate in the example")
    rule = unflagged.rule_id.iloc[0]
    with Store.open(db) as st:
        rid = draw_round(st, results, per_rule=1, unflagged=1, seed=4, rules=(rule,), blinded=False).round_id
        fid = st.con.execute("SELECT flag_id FROM round_cases WHERE round_id = ? AND tier = 'unflagged'",
                             [rid]).fetchone()[0]
    assert client.get(f"/case/{fid}").status_code == 404
    html = client.get(f"/round/{rid}/case/{fid}").get_data(as_text=True)
    assert "inte flaggad" in html and ("uteslutningsgrund fanns" in html or "inte uppfyllt" in html)
    assert "inte registrerat" in html or html.count("uppfyllt") >= 1
