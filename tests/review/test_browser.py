"""A real browser runs a blinded double-review round end to end, and ``review stats`` matches a hand computation.

Playwright drives Debian's Chromium (``apt-get install chromium``; ``.ci/run`` installs it) against the real
server (waitress, ``build_server``) on loopback. Skipped when Playwright or Chromium is missing.
"""

from __future__ import annotations

import math
import shutil
import threading
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pytest

from .conftest import PASSWORD, USER

CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium")
                 if p and Path(p).is_file()), None)
pytest.importorskip("playwright.sync_api", reason="playwright not installed")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium (apt-get install chromium)")

ADJUDICATOR, ADJ_PASSWORD = "carin", "a-third-long-password-x"
# anna and bertil on the four cases in the round's order; they disagree on the second, carin settles it as rejected
ANNA = ["confirmed", "confirmed", "rejected", "confirmed"]
BERTIL = ["confirmed", "rejected", "rejected", "confirmed"]
REASON = {"confirmed": "meets_rule", "rejected": "coding_error"}


@pytest.fixture()
def served(db: Path, results: Path) -> Iterator[tuple[str, int, str]]:
    from lowvalue.review.app import build_server
    from lowvalue.review.sampling import draw_round
    from lowvalue.review.store import Store

    flags = pd.read_parquet(results / "flags.parquet")
    counts = flags[flags.variant == "specific"].rule_id.value_counts()
    rule = sorted(counts[counts >= 4].index)[0]
    with Store.open(db) as st:
        st.add_user(ADJUDICATOR, ADJ_PASSWORD, role="adjudicator")
        rid = draw_round(st, results, per_rule=4, seed=2, tiers=("specific",), rules=(rule,),
                         reviewers=(USER, "bertil"), reviewers_per_case=2).round_id
    server = build_server(db, results, host="127.0.0.1", port=0)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", rid, rule
    finally:
        server.shutdown()
        t.join(10)


def _login(page: Any, base: str, user: str, password: str) -> None:
    page.goto(f"{base}/login?lang=en")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def _review(page: Any, base: str, rid: int, verdicts: list[str]) -> list[str]:
    """Open the round from the menu, give a verdict on every case in the queue's order; return the case ids."""
    page.click("text=Review rounds")
    page.click(f"a[href='/round/{rid}']")
    assert page.locator("#round-queue").inner_text().count("hidden until you give a verdict") == len(verdicts)
    ids = [a.inner_text() for a in page.locator("#round-queue tbody a").all()]
    for fid, verdict in zip(ids, verdicts):
        page.goto(f"{base}/round/{rid}/case/{fid}")
        assert page.locator("#blind-note").is_visible() and "hidden" in page.locator("#tier").inner_text()
        assert page.locator("#conditions").is_visible()
        page.check(f"input[name=verdict][value={verdict}]")
        page.select_option("select[name=reason]", REASON[verdict])
        page.click("#verdict-form button[type=submit]")
        page.wait_for_url(f"{base}/round/{rid}/case/{fid}")
        assert page.locator("#blind-note").count() == 0  # unblinded for this reviewer once they have answered
    return ids


def test_a_blinded_double_review_round_in_a_browser_and_its_statistics(served: tuple[str, int, str], db: Path) -> None:
    from click.testing import CliRunner
    from playwright.sync_api import sync_playwright

    from lowvalue.cli import main

    base, rid, rule = served
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            anna = browser.new_context().new_page()
            _login(anna, base, USER, PASSWORD)
            ids = _review(anna, base, rid, ANNA)
            assert "Other reviewers' verdicts are shown once" in anna.content()
            bertil = browser.new_context().new_page()
            _login(bertil, base, "bertil", "another-long-password")
            bertil.goto(f"{base}/round/{rid}/case/{ids[1]}")
            assert bertil.locator("#history").count() == 0  # anna's verdict is hidden from bertil
            assert _review(bertil, base, rid, BERTIL) == ids  # the same random order for both
            bertil.goto(f"{base}/round/{rid}/case/{ids[1]}")
            history = bertil.locator("#history").inner_text()
            assert USER in history and "bertil" in history  # both answered: both verdicts visible
            carin = browser.new_context().new_page()
            _login(carin, base, ADJUDICATOR, ADJ_PASSWORD)
            carin.goto(f"{base}/round/{rid}/adjudicate")
            assert carin.locator("#round-queue tbody tr").count() == 1 and ids[1] in carin.content()
            carin.click(f"a[href='/round/{rid}/case/{ids[1]}']")
            carin.check("input[name=verdict][value=rejected]")
            carin.select_option("select[name=reason]", "exception_not_coded")
            carin.click("#verdict-form button[type=submit]")
            carin.wait_for_url(f"{base}/round/{rid}/adjudicate")
            assert "adjudicated" in carin.content()
        finally:
            browser.close()

    r = CliRunner().invoke(main, ["review", "stats", "--db", str(db), "--round", str(rid)])
    assert r.exit_code == 0, r.output
    # by hand: final labels confirmed, rejected (adjudicated), rejected, confirmed → PPV 2/4
    z, n, phat = 1.959964, 4, 0.5
    centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n))
    # kappa of anna vs bertil: po = 3/4; anna 3 confirmed 1 rejected, bertil 2 and 2 → pe = 3/4·1/2 + 1/4·1/2 = 1/2
    po, pe = 0.75, 0.5
    kappa = (po - pe) / (1 - pe)
    se = math.sqrt(po * (1 - po) / (n * (1 - pe) ** 2))
    line = next(x for x in r.output.splitlines() if x.startswith(rule))
    assert f"PPV {phat:.2f} ({centre - half:.2f}–{centre + half:.2f})" in line, line
    assert f"{kappa:.2f} ({kappa - z * se:.2f}–{min(1, kappa + z * se):.2f}), n=4" in line, line
    assert f"review round {rid} (simple random sample, seed 2)" in r.output
